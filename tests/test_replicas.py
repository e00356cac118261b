"""Cached reads routed to a replica are computed on the primary and keyed on its alias.

The PostgreSQL tests run against a real streaming standby (tests/replica.py)
that replays each commit 500 ms late; the others route reads to the "replica"
alias, which mirrors default, to count where each query runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.db.models import Max, Sum
from django.test.utils import CaptureQueriesContext, override_settings

from django_cachekit import cache_disabled
from django_cachekit.core import protocol as core
from django_cachekit.orm import replicas
from tests import replica
from tests.conftest import DB
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article


class _Router:
    """Reads of the test models from ``alias``, every write to default."""

    alias = ""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return self.alias if model._meta.app_label == "testapp" else None

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_relation(self, *objs: Any, **hints: Any) -> bool:
        return True


class StandbyRouter(_Router):
    alias = "standby"


class MirrorRouter(_Router):
    alias = "replica"


# name -> read of a queryset of Article around one article; equal for the cached and the primary's queryset.
READS: dict[str, Callable[[Any, Article], Any]] = {
    "get": lambda qs, a: (lambda o: (o.title, o.views))(qs.get(pk=a.pk)),
    "list": lambda qs, a: [(o.pk, o.title, o.views) for o in qs.filter(author_id=a.author_id).order_by("pk")],
    "select_related": lambda qs, a: [
        (o.title, o.author.name) for o in qs.select_related("author").filter(author_id=a.author_id)
    ],
    "values_list": lambda qs, a: list(qs.filter(pk=a.pk).values_list("title", flat=True)),
    "first": lambda qs, a: qs.filter(author_id=a.author_id).order_by("pk").first().title,
    "count": lambda qs, a: qs.filter(title="new").count(),
    "exists": lambda qs, a: qs.filter(title="new").exists(),
    "aggregate": lambda qs, a: qs.filter(author_id=a.author_id).aggregate(total=Sum("views")),
    "in_bulk": lambda qs, a: {pk: (o.title, o.views) for pk, o in qs.in_bulk([a.pk]).items()},
}


def cached_on(alias: str | None = None) -> Any:
    qs = Article.objects.cache()
    return qs if alias is None else qs.using(alias)


def on_primary() -> Any:
    return Article.objects.using("default")


def counted(read: Callable[[], Any], aliases: tuple[str, ...]) -> tuple[Any, dict[str, int]]:
    """``read()`` and the number of SQL queries it ran on each alias."""
    contexts = [CaptureQueriesContext(connections[alias]) for alias in aliases]
    for context in contexts:
        context.__enter__()
    try:
        result = read()
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)
    return result, {alias: len(context) for alias, context in zip(aliases, contexts)}


# -- a real, lagging PostgreSQL standby ------------------------------------------------

needs_standby = pytest.mark.skipif(DB != "postgres", reason="the standby is a PostgreSQL streaming replica")
STANDBY = ("default", "standby")


@pytest.fixture(scope="session")
def standby(django_db_setup: None) -> Iterator[replica.Standby]:
    primary = connections["default"].settings_dict
    conninfo = {"host": primary["HOST"] or "127.0.0.1", "port": int(primary["PORT"] or 5432), "user": primary["USER"]}
    try:
        server = replica.start(conninfo, name=primary["NAME"])
    except replica.Unavailable as exc:
        message = f"no PostgreSQL standby: {exc}"
        if os.environ.get("CACHEKIT_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    # The standby alias mirrors default: give it its own dict (default's is shared), in this thread and in new
    # ones, still marked a mirror so that no test flushes the read-only standby.
    own = {**primary, "PORT": str(server.port), "TEST": {**primary["TEST"], "MIRROR": "default"}}
    wrapper = connections["standby"]
    saved_dict, saved_settings = wrapper.settings_dict, connections.settings["standby"]
    wrapper.close()
    wrapper.settings_dict = own
    connections.settings["standby"] = own
    try:
        yield server
    finally:
        wrapper.close()
        wrapper.settings_dict = saved_dict
        connections.settings["standby"] = saved_settings
        replica.stop(server)


@pytest.fixture
def routed(standby: replica.Standby) -> Iterator[replica.Standby]:
    with override_settings(DATABASE_ROUTERS=["tests.test_replicas.StandbyRouter"]):
        yield standby


def written_on_primary(server: replica.Standby) -> Article:
    """An article the standby holds, then changed on the primary only (replayed 500 ms later)."""
    article = ArticleFactory(title="old", views=1)
    server.wait_caught_up()
    caches["default"].clear()  # the factory's write-through entries would make the first read a hit
    Article.objects.filter(pk=article.pk).update(title="new", views=2)
    return article


@needs_standby
@pytest.mark.django_db(transaction=True, databases=["default", "standby"])
@pytest.mark.parametrize("name", sorted(READS))
def test_a_read_routed_to_the_lagging_standby_is_stored_from_the_primary(routed, name):
    read = READS[name]
    article = written_on_primary(routed)
    first, first_queries = counted(lambda: read(cached_on(), article), STANDBY)
    second, second_queries = counted(lambda: read(cached_on(), article), STANDBY)
    routed.wait_caught_up()
    expected = read(on_primary(), article)
    assert read(cached_on(), article) == second == first == expected
    assert read(Article.objects.all(), article) == expected  # the standby caught up
    assert first_queries == {"default": 1, "standby": 0}
    assert second_queries == {"default": 0, "standby": 0}


@needs_standby
@pytest.mark.django_db(transaction=True, databases=["default", "standby"])
def test_an_uncached_read_still_goes_to_the_standby(routed):
    article = written_on_primary(routed)
    for read in (
        lambda: Article.objects.get(pk=article.pk),
        lambda: Article.objects.cache().nocache().get(pk=article.pk),
        lambda: list(Article.objects.cache().nocache().filter(pk=article.pk)),
    ):
        _, found = counted(read, STANDBY)
        assert found == {"default": 0, "standby": 1}
    with cache_disabled():
        _, found = counted(lambda: Article.objects.cache().get(pk=article.pk), STANDBY)
    assert found == {"default": 0, "standby": 1}


@needs_standby
@pytest.mark.django_db(transaction=True, databases=["default", "standby"])
@pytest.mark.parametrize("name", ["get", "list", "count", "in_bulk"])
def test_an_explicit_standby_alias_named_in_replicas(standby, name):
    read = READS[name]
    article = written_on_primary(standby)
    with override_settings(CACHEKIT={**settings.CACHEKIT, "REPLICAS": {"standby": "default"}}):
        first, first_queries = counted(lambda: read(cached_on("standby"), article), STANDBY)
        second, second_queries = counted(lambda: read(cached_on("standby"), article), STANDBY)
        standby.wait_caught_up()
        assert read(cached_on("standby"), article) == second == first == read(on_primary(), article)
        # One entry for both aliases.
        assert counted(lambda: read(cached_on("default"), article), STANDBY)[1] == {"default": 0, "standby": 0}
    assert first_queries == {"default": 1, "standby": 0}
    assert second_queries == {"default": 0, "standby": 0}


def _race(server: replica.Standby, seconds: float, writers: int, readers: int) -> None:
    """Writers change rows on the primary while readers read them cached through the standby.

    Once the writers stop and the standby has replayed everything, every cached
    read must equal the primary's row, whatever the readers stored meanwhile.
    """
    author = AuthorFactory()
    rows = [ArticleFactory(author=author, title=f"race {i}", views=0) for i in range(writers)]
    server.wait_caught_up()
    stop = threading.Event()
    errors: list[BaseException] = []
    names = ("get", "list", "values_list", "aggregate", "in_bulk")

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                while not stop.is_set():
                    work()
            except BaseException as exc:  # reported by the test, not lost in the thread
                errors.append(exc)
                stop.set()
            finally:
                connections.close_all()

        return run

    def writer(row: Article) -> Callable[[], None]:
        count = iter(range(1, 10**9))

        def write() -> None:
            views = next(count)
            if views % 2:
                Article.objects.filter(pk=row.pk).update(views=views)
            else:
                obj = Article.objects.using("default").get(pk=row.pk)
                obj.views = views
                obj.save()

        return write

    def reader(index: int) -> Callable[[], None]:
        def read() -> None:
            for name in names:
                READS[name](cached_on(), rows[index % len(rows)])
            Article.objects.cache().filter(author=author).aggregate(Max("views"))

        return read

    threads = [threading.Thread(target=guarded(writer(row))) for row in rows]
    threads += [threading.Thread(target=guarded(reader(i))) for i in range(readers)]
    for thread in threads:
        thread.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    server.wait_caught_up()
    for row in rows:
        for name in names:
            assert READS[name](cached_on(), row) == READS[name](on_primary(), row), name
    assert Article.objects.cache().filter(author=author).aggregate(Max("views")) == on_primary().filter(
        author=author
    ).aggregate(Max("views"))


@needs_standby
@pytest.mark.django_db(transaction=True, databases=["default", "standby"])
def test_race_of_writes_on_the_primary_and_cached_reads_through_the_standby(routed):
    _race(routed, seconds=3, writers=1, readers=3)


@needs_standby
@pytest.mark.soak
@pytest.mark.django_db(transaction=True, databases=["default", "standby"])
def test_soak_of_writes_on_the_primary_and_cached_reads_through_the_standby(routed):
    _race(routed, seconds=10, writers=2, readers=6)


# -- a router's read alias, on every database (the "replica" alias mirrors default) ---------

MIRROR = ("default", "replica")
mirror_db = pytest.mark.django_db(transaction=True, databases=["default", "replica"])


@pytest.fixture
def mirrored() -> Iterator[None]:
    with override_settings(DATABASE_ROUTERS=["tests.test_replicas.MirrorRouter"]):
        yield


@pytest.fixture
def article() -> Article:
    article = ArticleFactory(title="new", views=2)
    caches["default"].clear()
    return article


@mirror_db
@pytest.mark.parametrize("name", sorted(READS))
def test_a_routed_miss_runs_on_the_write_alias_and_shares_its_entry(mirrored, article, name):
    read = READS[name]
    first, first_queries = counted(lambda: read(cached_on(), article), MIRROR)
    again, again_queries = counted(lambda: read(cached_on(), article), MIRROR)
    primary, primary_queries = counted(lambda: read(cached_on("default"), article), MIRROR)
    assert first == again == primary == read(on_primary(), article)
    assert first_queries == {"default": 1, "replica": 0}
    assert again_queries == primary_queries == {"default": 0, "replica": 0}


@mirror_db
@pytest.mark.parametrize("name", ["get", "list", "count", "in_bulk"])
def test_the_replicas_setting_maps_an_explicit_alias(article, name):
    read = READS[name]
    with override_settings(CACHEKIT={**settings.CACHEKIT, "REPLICAS": {"replica": "default"}}):
        first, first_queries = counted(lambda: read(cached_on("replica"), article), MIRROR)
        primary, primary_queries = counted(lambda: read(cached_on("default"), article), MIRROR)
    assert first == primary == read(on_primary(), article)
    assert first_queries == {"default": 1, "replica": 0}
    assert primary_queries == {"default": 0, "replica": 0}


@mirror_db
def test_an_explicit_alias_without_the_setting_is_read_where_it_says(mirrored, article):
    _, found = counted(lambda: cached_on("replica").get(pk=article.pk), MIRROR)
    assert found == {"default": 0, "replica": 1}
    _, found = counted(lambda: cached_on().get(pk=article.pk), MIRROR)  # routed: the primary's own entry
    assert found == {"default": 1, "replica": 0}


@mirror_db
def test_a_read_that_cannot_be_stored_goes_where_the_router_sends_it(mirrored, article):
    core.runtime().breaker.opened_at = time.monotonic()  # the cache is unreachable: nothing will be stored
    for name in ("get", "list", "count", "in_bulk"):
        _, found = counted(lambda: READS[name](cached_on(), article), MIRROR)
        assert found == {"default": 0, "replica": 1}, name


@mirror_db
def test_instances_keep_the_alias_their_read_was_routed_to(mirrored, article):
    reads: dict[str, Callable[[Any], list[Any]]] = {
        "get": lambda qs: [qs.get(pk=article.pk)],
        "list": lambda qs: list(qs.filter(pk=article.pk)),
        "select_related": lambda qs: list(qs.select_related("author").filter(pk=article.pk)),
        "in_bulk": lambda qs: list(qs.in_bulk([article.pk]).values()),
    }
    for name, read in reads.items():
        for qs, alias in ((cached_on(), "replica"), (cached_on(), "replica"), (cached_on("default"), "default")):
            objs = read(qs)
            assert [o._state.db for o in objs] == [alias], name
            if name == "select_related":
                assert objs[0].author._state.db == alias


@mirror_db
def test_a_routed_instance_names_the_primary_entry_and_its_save_writes_it_through(mirrored, article):
    obj = cached_on().get(pk=article.pk)
    assert obj.cache_key == on_primary().get(pk=article.pk).cache_key
    assert replicas.of_instance(obj) == "default"
    obj.title = "saved"
    obj.save()
    found, queries = counted(lambda: cached_on().get(pk=article.pk).title, MIRROR)
    assert (found, queries) == ("saved", {"default": 0, "replica": 0})


def test_an_alias_is_its_own_primary_without_routers_or_setting():
    assert replicas.primary(Article, "replica", explicit=False, hints={}) == "replica"
    with override_settings(CACHEKIT={**settings.CACHEKIT, "REPLICAS": {"replica": "default"}}):
        assert replicas.primary(Article, "replica", explicit=True, hints={}) == "default"
        assert replicas.primary(Article, "default", explicit=True, hints={}) == "default"
    with override_settings(DATABASE_ROUTERS=["tests.test_replicas.MirrorRouter"]):
        assert replicas.primary(Article, "replica", explicit=False, hints={}) == "default"
        assert replicas.primary(Article, "replica", explicit=True, hints={}) == "replica"


@mirror_db
def test_warming_through_a_router_stores_the_entries_routed_reads_use(mirrored, article):
    from django_cachekit.warming import warmers as warming

    (result,) = warming.warm(["testapp.Article"])
    assert result.error is None and result.stored >= 2  # the query entry and the article's object entry
    found, queries = counted(lambda: [cached_on().get(pk=article.pk).title, cached_on().in_bulk([article.pk])], MIRROR)
    assert found[0] == "new" and queries == {"default": 0, "replica": 0}


@mirror_db
@pytest.mark.parametrize("name", ["get", "list", "count", "aggregate", "in_bulk"])
def test_a_routed_hit_is_one_lookup_and_compiles_no_sql(mirrored, article, monkeypatch, name):
    from django.db.models.sql.compiler import SQLCompiler

    read = READS[name]
    read(cached_on(), article)
    calls: list[str] = []

    def counting(owner: Any, attr: str) -> None:
        original = getattr(owner, attr)
        monkeypatch.setattr(owner, attr, lambda *a, **kw: calls.append(attr) or original(*a, **kw))

    counting(core, "lookup")
    counting(core, "lookup_many")
    counting(SQLCompiler, "as_sql")
    _, queries = counted(lambda: read(cached_on(), article), MIRROR)
    assert queries == {"default": 0, "replica": 0}
    assert calls in (["lookup"], ["lookup_many"])
