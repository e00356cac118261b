"""Query and function keys name every value exactly: two different values never share an entry."""

import datetime
import decimal
import enum
import functools
import json
import math
import uuid
import zoneinfo

import pytest
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpResponse

from django_cachekit import cached, fragments
from django_cachekit.core import keys
from django_cachekit.http.decorators import conditional
from django_cachekit.metrics import counters as metrics
from tests.conftest import DB
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "x" * 60


def bypasses(namespace):
    return metrics.snapshot().get(namespace, {}).get("bypass", 0)


# -- queries ------------------------------------------------------------------------------


def test_long_json_values_that_differ_at_the_end_read_their_own_rows(queries):
    # psycopg's Jsonb repr keeps the first 35 characters and the length: both look alike.
    first = ArticleFactory(extra={"text": LONG, "n": 1})
    second = ArticleFactory(extra={"text": LONG, "n": 2})
    with queries(1):
        assert [a.pk for a in Article.objects.cache().filter(extra={"text": LONG, "n": 1})] == [first.pk]
    with queries(1):
        assert [a.pk for a in Article.objects.cache().filter(extra={"text": LONG, "n": 2})] == [second.pk]
    with queries(0):
        assert [a.pk for a in Article.objects.cache().filter(extra={"text": LONG, "n": 2})] == [second.pk]
        assert [a.pk for a in Article.objects.cache().filter(extra={"text": LONG, "n": 1})] == [first.pk]


def test_fifty_json_values_each_read_their_own_rows(queries):
    author = AuthorFactory()
    rows = {n: ArticleFactory(author=author, extra={"pad": "p" * 40, "k": n}).pk for n in range(10, 60)}
    for n, pk in rows.items():
        assert [a.pk for a in Article.objects.cache().filter(extra={"pad": "p" * 40, "k": n})] == [pk]
    with queries(0):
        for n, pk in rows.items():
            assert [a.pk for a in Article.objects.cache().filter(extra={"pad": "p" * 40, "k": n})] == [pk]


class Opaque:
    """A parameter the database understands, with a repr that says nothing about it."""

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return "Opaque()"

    def __conform__(self, protocol):  # sqlite3 adapts it to its number
        return self.n


@pytest.fixture
def opaque_parameters():
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        from psycopg.adapt import Dumper
        from psycopg.postgres import types

        class OpaqueDumper(Dumper):
            oid = types["int8"].oid

            def dump(self, obj):
                return str(obj.n).encode()

        connection.connection.adapters.register_dumper(Opaque, OpaqueDumper)


def test_an_unencodable_parameter_reads_the_database_every_time(queries, opaque_parameters):
    one = ArticleFactory(views=1)
    two = ArticleFactory(views=2)

    def read(n):
        return [a.pk for a in Article.objects.cache().extra(where=["views = %s"], params=[Opaque(n)])]

    with queries(1):
        assert read(1) == [one.pk]
    with queries(1):
        assert read(1) == [one.pk]
    with queries(1):
        assert read(2) == [two.pk]
    assert bypasses("testapp.article") == 3


def test_an_unencodable_parameter_of_count_and_aggregate_reads_the_database(queries, opaque_parameters):
    ArticleFactory(views=1)
    qs = Article.objects.cache().extra(where=["views = %s"], params=[Opaque(1)])
    for _ in range(2):
        with queries(1):
            assert qs.count() == 1
        with queries(1):
            assert qs.aggregate(n=Count("id")) == {"n": 1}


def test_aggregate_filters_on_instances_with_equal_reprs_do_not_share_an_entry(queries):
    # Two authors of the same name: "<Author: Ann>" twice.
    ann, other_ann = AuthorFactory(name="Ann"), AuthorFactory(name="Ann")
    ArticleFactory(author=ann)
    ArticleFactory.create_batch(2, author=other_ann)

    def written_by(author):
        return Article.objects.cache().aggregate(n=Count("id", filter=Q(author=author)))["n"]

    with queries(1):
        assert written_by(ann) == 1
    with queries(1):
        assert written_by(other_ann) == 2
    with queries(0):
        assert (written_by(ann), written_by(other_ann)) == (1, 2)


# -- functions ----------------------------------------------------------------------------


class Same:
    """Objects that differ but print alike."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "Same()"


def test_function_arguments_with_equal_reprs_get_their_own_results():
    calls = []

    @cached(timeout=60)
    def value_of(obj):
        calls.append(obj)
        return obj.value

    assert value_of(Same(1)) == 1
    assert value_of(Same(2)) == 2
    assert value_of(Same(2)) == 2
    assert len(calls) == 3  # not cached: no key names these objects exactly
    assert bypasses(f"{__name__}.{value_of.__qualname__}") == 3


def test_function_arguments_that_differ_only_in_type_or_precision():
    @cached(timeout=60)
    def described(value):
        return repr(value)

    for value in (1, True, 1.0, "1", decimal.Decimal("1.0"), decimal.Decimal("1.00"), [1], (1,), {"a": 1}, {"a": True}):
        assert described(value) == repr(value)


def test_per_user_identities_with_equal_reprs_never_share_validators(rf):
    ArticleFactory()

    @conditional(depends_on=[Article], per_user=lambda request: Same(request.GET["user"]))
    def page(request):
        return HttpResponse(f"for {request.GET['user']}")

    first = page(rf.get("/", {"user": "ada"}))
    assert first.status_code == 200
    assert page(rf.get("/", {"user": "bob"}, HTTP_IF_NONE_MATCH=first.get("ETag", '"none"'))).status_code == 200
    assert not first.has_header("ETag")

    @conditional(depends_on=[Article], per_user=lambda request: request.GET["user"])
    def named(request):
        return HttpResponse("named")

    etag = named(rf.get("/", {"user": "ada"}))["ETag"]
    assert named(rf.get("/", {"user": "ada"}, HTTP_IF_NONE_MATCH=etag)).status_code == 304
    assert named(rf.get("/", {"user": "bob"}, HTTP_IF_NONE_MATCH=etag)).status_code == 200


def test_a_fragment_varying_on_an_unsaved_instance_is_refused():
    with pytest.raises(TypeError, match="vary cannot be part of a fragment key.*unsaved"):
        fragments.fragment("card", [], vary=Article(title="new"))
    article = ArticleFactory()
    assert fragments.fragment("card", [], vary=article).key != fragments.fragment("card", [], vary=article.author).key


# -- the encoding -------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


def test_distinct_values_have_distinct_encodings():
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    instant = datetime.datetime(2024, 1, 1, 12, tzinfo=datetime.UTC)
    values = [
        None,
        1,
        True,
        1.0,
        "1",
        b"1",
        bytearray(b"1"),
        memoryview(b"1x"),
        0,
        False,
        0.0,
        -0.0,
        math.nan,
        math.inf,
        "",
        decimal.Decimal("1.0"),
        decimal.Decimal("1.00"),
        decimal.Decimal("1"),
        decimal.Decimal("NaN"),
        datetime.date(2024, 1, 1),
        datetime.datetime(2024, 1, 1),
        instant,
        instant.astimezone(paris),
        instant.astimezone(datetime.timezone(datetime.timedelta(hours=1))),
        instant.astimezone(datetime.timezone(datetime.timedelta(hours=-5))),
        datetime.time(12),
        datetime.time(12, tzinfo=datetime.UTC),
        datetime.timedelta(days=1),
        datetime.timedelta(seconds=86399, microseconds=1),
        uuid.UUID(int=1),
        Colour.RED,
        Colour.BLUE,
        [1, [2]],
        [[1], 2],
        [1, 2],
        (1, 2),
        {1, 2},
        frozenset({1, 2}),
        {"a": 1},
        {"a": "1"},
        {"a": {"b": [1]}},
        {"a": {"b": (1,)}},
        ["a", "b"],
        ["a,b"],
        ["ab"],
        ("s1:a",),
        ("s1:", "a"),
        json.dumps,
        Same,
    ]
    encodings = [keys.exact(v) for v in values]
    assert len(set(encodings)) == len(values), [v for v, e in zip(values, encodings) if encodings.count(e) > 1]


def test_equal_values_have_equal_encodings():
    assert keys.exact({"a": 1, "b": [2, 3]}) == keys.exact({"b": [2, 3], "a": 1})
    assert keys.exact({3, 1, 2}) == keys.exact({2, 3, 1})
    assert keys.exact(decimal.Decimal("1.10")) == keys.exact(decimal.Decimal("1.10"))
    assert keys.exact(functools.partial(json.dumps, cls=json.JSONEncoder)) == keys.exact(
        functools.partial(json.dumps, cls=json.JSONEncoder)
    )


def test_model_instances_are_encoded_by_label_and_pk():
    article = ArticleFactory()
    assert keys.exact(article) == keys.exact(Article.objects.get(pk=article.pk))
    assert keys.exact(article) != keys.exact(article.author)
    with pytest.raises(keys.Unencodable, match="unsaved"):
        keys.exact(Article(title="new"))


def test_values_without_a_faithful_encoding_are_refused():
    for value in (Same(1), object(), [1, Same(1)], {"a": Same(1)}, {Same(1): 1}, lambda: 1):
        with pytest.raises(keys.Unencodable) as raised:
            keys.exact(value)
        assert repr(value) in str(raised.value) or "Same()" in str(raised.value)


def test_expressions_are_encoded_by_their_arguments():
    assert keys.exact(Count("id")) == keys.exact(Count("id"))
    assert keys.exact(Count("id")) != keys.exact(Count("pk"))
    assert keys.exact(Count("id", filter=Q(views=1))) != keys.exact(Count("id", filter=Q(views=True)))
    assert keys.exact(Q(views=1) | Q(views=2)) != keys.exact(Q(views=1) & Q(views=2))
    with pytest.raises(keys.Unencodable):
        keys.exact(Count("id", filter=Q(views=Same(1))))


@pytest.mark.skipif(DB != "postgres", reason="psycopg's JSON wrappers")
def test_psycopg_json_wrappers():
    from psycopg.types.json import Json, Jsonb

    assert keys.exact(Jsonb({"text": LONG, "n": 1})) != keys.exact(Jsonb({"text": LONG, "n": 2}))
    assert keys.exact(Jsonb({"n": 1})) != keys.exact(Json({"n": 1}))
    assert keys.exact(Jsonb({"n": 1})) == keys.exact(Jsonb({"n": 1}, dumps=json.dumps))
    assert keys.exact(Jsonb({"n": 1})) != keys.exact(Jsonb({"n": 1}, dumps=functools.partial(json.dumps, indent=1)))
    with pytest.raises(keys.Unencodable):
        keys.exact(Jsonb({"n": 1}, dumps=lambda obj: "{}"))


@pytest.mark.skipif(DB != "postgres", reason="psycopg's range types")
def test_psycopg_ranges():
    from psycopg.types.range import Range

    assert keys.exact(Range(1, 5)) == keys.exact(Range(1, 5))
    assert keys.exact(Range(1, 5)) != keys.exact(Range(1, 5, "[]"))
    assert keys.exact(Range(1, 5)) != keys.exact(Range(1, 6))
    assert keys.exact(Range(empty=True)) != keys.exact(Range(None, None))
