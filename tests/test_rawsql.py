"""Raw SQL through Django's connections: every statement that writes is seen,
and isolation set in SQL keeps an old snapshot out of the cache.

Each test reads through the cache twice (the repeat runs no query), runs the
statement through ``connection.cursor()`` and reads again.
"""

import threading

import pytest
from django.db import connection, connections, transaction

from django_cachekit.orm import queries as cachekit_queries
from tests.conftest import DB, needs_postgres
from tests.factories import ArticleFactory, AuthorFactory, TagFactory
from tests.testapp.models import Article, ArticleTotals, Legacy, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def run(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def cached_twice(queries, read, n=1):
    with queries(n):
        first = read()
    with queries(0):
        assert read() == first
    return first


def titles():
    return sorted(Article.objects.cache().values_list("title", flat=True))


def test_a_commented_update_is_seen(queries):
    article = ArticleFactory(title="old")
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).title, n=0)  # written through
    assert cached_twice(queries, titles) == ["old"]
    run(
        "/* from a report */ UPDATE testapp_article SET title = %s -- the new title\n WHERE id = %s",
        ["new", article.pk],
    )
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "new"
    with queries(1):
        assert titles() == ["new"]


def test_mixed_case_raw_sql_is_seen(queries):
    article = ArticleFactory(title="old")
    assert cached_twice(queries, titles) == ["old"]
    run("Update TestApp_Article Set Title = %s Where Id = %s", ["new", article.pk])
    with queries(1):
        assert titles() == ["new"]
    run("DELETE FROM TESTAPP_ARTICLE")
    with queries(1):
        assert titles() == []


def test_a_commented_link_insert_changes_both_sides(queries):
    article, tag = ArticleFactory(), TagFactory()
    version = article.cache_version
    names = lambda: sorted(Tag.objects.cache().filter(articles=article).values_list("name", flat=True))  # noqa: E731
    assert cached_twice(queries, names) == []
    run(
        "-- linked by hand\nINSERT INTO testapp_article_tags (article_id, tag_id) VALUES (%s, %s)", [article.pk, tag.pk]
    )
    with queries(1):
        assert names() == [tag.name]
    assert article.cache_version != version


@pytest.fixture
def legacy_table():
    run("CREATE TABLE testapp_legacy (id integer PRIMARY KEY, name varchar(50) NOT NULL)")
    yield
    run("DROP TABLE testapp_legacy")


def test_raw_writes_to_an_unmanaged_models_table(queries, legacy_table):
    Legacy.objects.create(id=1, name="one")
    names = lambda: sorted(Legacy.objects.cache().values_list("name", flat=True))  # noqa: E731
    assert cached_twice(queries, names) == ["one"]
    cached_twice(queries, lambda: Legacy.objects.cache().get(pk=1).name, n=0)
    run("INSERT INTO testapp_legacy (id, name) VALUES (%s, %s)", [2, "two"])
    with queries(1):
        assert names() == ["one", "two"]
    run("update Testapp_Legacy set name = 'uno' where id = 1")
    with queries(1):
        assert Legacy.objects.cache().get(pk=1).name == "uno"


@needs_postgres
def test_merge_is_seen(queries):
    article = ArticleFactory(title="old")
    assert cached_twice(queries, titles) == ["old"]
    run(
        "MERGE INTO testapp_article a USING (SELECT %s::bigint AS id) v ON a.id = v.id "
        "WHEN MATCHED THEN UPDATE SET title = 'merged'",
        [article.pk],
    )
    with queries(1):
        assert titles() == ["merged"]


@needs_postgres
def test_a_do_block_is_seen(queries):
    ArticleFactory(title="old")
    assert cached_twice(queries, titles) == ["old"]
    run("DO $$ BEGIN UPDATE testapp_article SET title = 'done'; END $$")
    with queries(1):
        assert titles() == ["done"]


@pytest.fixture
def totals_view():
    run(
        "CREATE MATERIALIZED VIEW testapp_articletotals AS "
        "SELECT author_id, count(*)::integer AS total FROM testapp_article GROUP BY author_id"
    )
    yield
    run("DROP MATERIALIZED VIEW testapp_articletotals")


@needs_postgres
def test_refresh_of_a_materialized_view_model(queries, totals_view):
    author = AuthorFactory()
    ArticleFactory(author=author)
    run("REFRESH MATERIALIZED VIEW testapp_articletotals")
    total = lambda: ArticleTotals.objects.cache().get(pk=author.pk).total  # noqa: E731
    assert cached_twice(queries, total) == 1
    ArticleFactory(author=author)
    with queries(0):
        assert total() == 1  # the view has not changed yet
    run("/* nightly */ REFRESH MATERIALIZED VIEW testapp_articletotals")
    with queries(1):
        assert total() == 2


@pytest.fixture
def retitle_routines():
    run(
        "CREATE FUNCTION testapp_retitle(t text) RETURNS integer LANGUAGE plpgsql AS "
        "$$ BEGIN UPDATE testapp_article SET title = t; RETURN 1; END $$"
    )
    run("CREATE PROCEDURE testapp_retitle_all(t text) LANGUAGE sql AS $$ UPDATE testapp_article SET title = t $$")
    yield
    run("DROP FUNCTION testapp_retitle(text)")
    run("DROP PROCEDURE testapp_retitle_all(text)")


@needs_postgres
def test_a_select_of_a_function_that_writes_and_a_call(queries, retitle_routines):
    ArticleFactory(title="old")
    assert cached_twice(queries, titles) == ["old"]
    run("SELECT testapp_retitle(%s)", ["by function"])
    with queries(1):
        assert titles() == ["by function"]
    run("CALL testapp_retitle_all(%s)", ["by procedure"])
    with queries(1):
        assert titles() == ["by procedure"]
    with queries(0):
        assert titles() == ["by procedure"]


@needs_postgres
def test_execute_of_a_prepared_statement(queries):
    ArticleFactory(title="old")
    assert cached_twice(queries, titles) == ["old"]
    run("PREPARE testapp_rename (text) AS UPDATE testapp_article SET title = $1")
    try:
        run("EXECUTE testapp_rename('prepared')")
    finally:
        run("DEALLOCATE testapp_rename")
    with queries(1):
        assert titles() == ["prepared"]


def _commit_a_new_article(author_id):
    try:
        ArticleFactory(title="new", author_id=author_id, category=None)
    finally:
        connections.close_all()


def _insert_from_another_thread(author_id):
    thread = threading.Thread(target=_commit_a_new_article, args=(author_id,), daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()


@needs_postgres
@pytest.mark.parametrize(
    "statement",
    [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "set transaction isolation level serializable",
        "SET LOCAL transaction_isolation = 'repeatable read'",
    ],
)
def test_repeatable_read_set_in_sql_stores_nothing_it_reads(queries, statement):
    author = ArticleFactory(title="old").author
    with transaction.atomic():
        run(statement)
        assert titles() == ["old"]  # the snapshot is taken here
        _insert_from_another_thread(author.pk)
        assert titles() == ["old"]  # still the snapshot: not stored for anyone
        assert not cachekit_queries.may_store("default")
    assert cachekit_queries.may_store("default")
    with queries(1):
        assert titles() == ["new", "old"]


@needs_postgres
def test_begin_isolation_level_outside_atomic(queries):
    author = ArticleFactory(title="old").author
    run("BEGIN ISOLATION LEVEL REPEATABLE READ")
    try:
        assert titles() == ["old"]
        _insert_from_another_thread(author.pk)
        assert titles() == ["old"]
        assert not cachekit_queries.may_store("default")
    finally:
        run("COMMIT")
    assert cachekit_queries.may_store("default")
    with queries(1):
        assert titles() == ["new", "old"]


@needs_postgres
@pytest.mark.parametrize(
    ("strict", "reset"),
    [
        ("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ", "RESET ALL"),
        ("SET default_transaction_isolation = 'serializable'", "SET default_transaction_isolation TO DEFAULT"),
        ("SET default_transaction_isolation TO 'repeatable read'", "DISCARD ALL"),
    ],
)
def test_a_session_default_lasts_until_reset(queries, strict, reset):
    author = ArticleFactory(title="old").author
    run(strict)
    try:
        for _ in range(2):  # every transaction of the session, not only the next one
            with transaction.atomic():
                assert not cachekit_queries.may_store("default")
        with transaction.atomic():
            assert titles() == ["old"]
            _insert_from_another_thread(author.pk)
            assert titles() == ["old"]
    finally:
        run(reset)
    with transaction.atomic():
        assert cachekit_queries.may_store("default")
    with queries(1):
        assert titles() == ["new", "old"]


@needs_postgres
def test_a_new_connection_is_a_new_session():
    run("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    connection.close()
    with transaction.atomic():
        run("SELECT 1")
        assert cachekit_queries.may_store("default")


@pytest.mark.skipif(DB != "sqlite", reason="SQLite only")
def test_sqlite_raw_writes_with_comments(queries):
    article = ArticleFactory(title="old")
    assert cached_twice(queries, titles) == ["old"]
    run(
        "/* a */ INSERT OR REPLACE INTO testapp_article (id, title, body, author_id, views, rating, extra) "
        "SELECT id, 'replaced', body, author_id, views, rating, extra FROM testapp_article WHERE id = %s",
        [article.pk],
    )
    with queries(1):
        assert titles() == ["replaced"]
