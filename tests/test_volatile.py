"""Queries whose result is not a function of the data (the clock, randomness) are not cached,
unless ``.cache(timeout=...)`` says for how long they may be."""

import datetime

import pytest
from django.db import connection
from django.db.models import Count, Max, Q
from django.db.models.functions import Now, Random
from django.utils import timezone

from django_cachekit.metrics import counters as metrics
from django_cachekit.orm import queries as plans
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


def bypasses():
    return metrics.snapshot().get("testapp.article", {}).get("bypass", 0)


def move_unseen(pk, published):
    """Change a row as time would: without a write the cache sees (another connection)."""
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        if connection.vendor == "sqlite":
            sql = "UPDATE testapp_article SET published = ? WHERE id = ?"
            value = published.astimezone(datetime.UTC).replace(tzinfo=None).isoformat(" ")
        else:
            sql = "UPDATE testapp_article SET published = %s WHERE id = %s"
            value = published
        raw.cursor().execute(sql, [value, pk])
        raw.commit()
    finally:
        raw.close()


@pytest.fixture
def scheduled():
    """An article published an hour from now."""
    return ArticleFactory(published=timezone.now() + datetime.timedelta(hours=1))


def test_a_filter_on_now_sees_a_row_come_due(queries, scheduled):
    def due():
        return [a.pk for a in Article.objects.cache().filter(published__lt=Now())]

    with queries(1):
        assert due() == []
    move_unseen(scheduled.pk, timezone.now() - datetime.timedelta(minutes=1))
    with queries(1):
        assert due() == [scheduled.pk]
    assert bypasses() == 2


def test_count_exists_aggregate_and_values_on_now_are_not_cached(queries, scheduled):
    qs = Article.objects.cache().filter(published__lt=Now())
    for _ in range(2):
        with queries(1):
            assert qs.count() == 0
        with queries(1):
            assert qs.exists() is False
        with queries(1):
            assert qs.aggregate(n=Count("id")) == {"n": 0}
        with queries(1):
            assert list(qs.values_list("title", flat=True)) == []
    move_unseen(scheduled.pk, timezone.now() - datetime.timedelta(minutes=1))
    with queries(1):
        assert qs.count() == 1


def test_an_aggregate_over_now_is_not_cached(queries, scheduled):
    def due():
        return Article.objects.cache().aggregate(n=Count("id", filter=Q(published__lt=Now())))["n"]

    with queries(1):
        assert due() == 0
    move_unseen(scheduled.pk, timezone.now() - datetime.timedelta(minutes=1))
    with queries(1):
        assert due() == 1


def test_random_order_runs_sql_on_every_read(queries):
    ArticleFactory.create_batch(3)
    for _ in range(2):
        with queries(1):
            assert len(list(Article.objects.cache().order_by("?"))) == 3
        with queries(1):
            assert len(list(Article.objects.cache().order_by(Random()))) == 3
        with queries(1):
            assert len(list(Article.objects.cache().values("title").order_by("?")[:2])) == 2
    assert bypasses() == 6


def test_random_order_does_not_share_a_shape_with_a_field_order(queries):
    ArticleFactory.create_batch(2)
    plans.clear()
    with queries(1):
        list(Article.objects.cache().order_by("title"))
    with queries(0):
        list(Article.objects.cache().order_by("title"))
    for _ in range(2):
        with queries(1):
            list(Article.objects.cache().order_by("?"))


def test_an_explicit_timeout_caches_a_volatile_query_anyway(queries):
    ArticleFactory.create_batch(3)
    with queries(1):
        first = [a.pk for a in Article.objects.cache(timeout=60).order_by("?")]
    with queries(0):
        assert [a.pk for a in Article.objects.cache(timeout=60).order_by("?")] == first
    with queries(1):
        assert Article.objects.cache(timeout=60).filter(published__lt=Now()).count() == 0
    with queries(0):
        assert Article.objects.cache(timeout=60).filter(published__lt=Now()).count() == 0
    ArticleFactory(published=timezone.now() - datetime.timedelta(days=1))  # a write still retires it
    with queries(1):
        assert Article.objects.cache(timeout=60).filter(published__lt=Now()).count() == 1


def test_a_random_annotation_is_not_cached(queries):
    ArticleFactory.create_batch(2)
    for _ in range(2):
        with queries(1):
            assert len([a.r for a in Article.objects.cache().annotate(r=Random())]) == 2
        with queries(1):
            Article.objects.cache().aggregate(m=Max(Random()))


def test_plain_queries_stay_cached(queries):
    author = AuthorFactory()
    ArticleFactory(author=author, title="now")
    with queries(1):
        assert Article.objects.cache().filter(title="now", author=author).count() == 1
    with queries(0):
        assert Article.objects.cache().filter(title="now", author=author).count() == 1


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT NOW()",
        "SELECT * FROM t WHERE d < CURRENT_TIMESTAMP",
        "SELECT * FROM t WHERE d < current_date",
        "SELECT CURRENT_TIME(3)",
        "SELECT LOCALTIMESTAMP",
        "SELECT * FROM t WHERE d < STATEMENT_TIMESTAMP()",
        "SELECT clock_timestamp ( )",
        "SELECT timeofday()",
        'SELECT "t"."id" FROM "t" ORDER BY RANDOM() ASC',
        "SELECT setseed(0.5)",
        "SELECT nextval('s')",
        "SELECT currval('s'), lastval(), setval('s', 1)",
        "SELECT gen_random_uuid()",
        "SELECT uuid_generate_v4()",
        "SELECT txid_current()",
        "SELECT randomblob(4)",
        "SELECT RAND()",
        "SELECT date('now')",
        "SELECT datetime('NOW', '-1 day')",
        "SELECT julianday('now')",
        "SELECT * FROM t WHERE d < STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')",
        "SELECT changes(), last_insert_rowid(), total_changes()",
        "SELECT SYSDATE()",
        "SELECT CURDATE()",
        "SELECT UNIX_TIMESTAMP()",
        "SELECT UUID()",
        "SELECT 'a''b', now()",
        'SELECT "t"."x" FROM "t" WHERE "t"."d" < \'now\'::timestamp',
    ],
)
def test_volatile_sql(sql):
    assert plans.volatile(sql)


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "t"."random", "t"."now" FROM "t" WHERE "t"."current_date" = %s',
        "SELECT `random`, `now` FROM `t`",
        "SELECT * FROM t WHERE title = 'now()' OR title = 'random()'",
        "SELECT * FROM t WHERE title = 'it''s random() now()'",
        "SELECT nowhere, randomly, uuid_col FROM t",
        'SELECT * FROM t WHERE d = STRFTIME(\'%%Y\', "t"."d")',
        "SELECT COUNT(*) FROM t",
    ],
)
def test_stable_sql(sql):
    assert not plans.volatile(sql)
