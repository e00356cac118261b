"""A broken cache is never an outage and never a source of stale data.

The fault harness (tests/faultserver.py) runs a private redis-server per test
and breaks it: garbage written over every key, versions that expire before
their entries, an old snapshot loaded after a save, SIGSTOP (a hung server),
SIGKILL and an empty restart on the same port, oversized values, a full
memory, FLUSHALL, and writers that cannot reach the cache at all. The library
is pointed at it through the alias ``"faulty"`` with no socket timeouts in its
OPTIONS: bounding every wait is the library's job.

A second Django process (tests/failsafe_reader.py) on the same test database
and the same throwaway server reads (or writes) in a loop and prints JSON
lines. Every row's ``views`` only grows, so a read is STALE when it returns
fewer views than a save of that row that had returned before the read began
(``Ledger``); reads that overlap a save may see either value. Times are
``time.monotonic()``, which is system-wide on Linux, so the two processes'
events can be compared.

Everything here needs a Redis cache (``CACHEKIT_TEST_CACHE=django-redis`` or
``redis``) and ``redis-server``, except the last test, which runs on the
suite's own locmem or memcached cache.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest
import redis.exceptions
from django.core.cache import caches
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

import django_cachekit
from django_cachekit import cached
from django_cachekit.core import codec, keys
from django_cachekit.core import protocol as core
from django_cachekit.core.settings import conf
from django_cachekit.invalidation import outbox
from django_cachekit.schema import meta
from tests import settings as test_settings
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory, TagFactory
from tests.faultserver import cache_on, dead_location, running
from tests.testapp.models import Article, Tag
from tests.waiting import wait_until

# Being written at the same time as these tests: fail with a clear message instead of an ImportError.
InvalidationUnavailable = getattr(django_cachekit, "InvalidationUnavailable", None)

ROOT = Path(__file__).resolve().parent.parent
READER = ROOT / "tests" / "failsafe_reader.py"
TABLE = Article._meta.db_table

pytestmark = pytest.mark.django_db(transaction=True)
throwaway_redis = [
    pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="runs against a throwaway Redis"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def on_throwaway_redis(test):
    for mark in throwaway_redis:
        test = mark(test)
    return test


# -- the ledger of saves and reads ------------------------------------------------------------


_announcing = threading.local()


class Ledger:
    """Saves that returned and reads that began, across threads and processes; finds stale reads.

    A save whose tags went to the table of undelivered invalidations (its writer could
    not reach the cache) may be served old by another process for the README's bound,
    ``PENDING_POLL`` plus one poll; ``save`` notes which saves did.
    """

    def __init__(self, poll=None):
        self.origin = time.monotonic()  # times in messages are seconds since this
        self.saves = []  # (returned at, pk, views)
        self.announced = set()  # (pk, views) of saves recorded in the table, not marked in the cache
        self.grace = 2 * (poll if poll is not None else conf.PENDING_POLL) + 0.25
        self.reads = []  # (began at, who, {pk: views}, queries)
        self.errors = []
        self.events = []  # (at, what): the faults, for messages

    def note(self, what):
        self.events.append((time.monotonic(), what))

    def created(self, *articles):
        now = time.monotonic()
        self.saves += [(now, a.pk, a.views) for a in articles]

    def save(self, article, views):
        article.views = views
        article.title = f"v{views}"
        _announcing.tags = []
        try:
            article.save()
        finally:
            announced, _announcing.tags = _announcing.tags, None
        self.saves.append((time.monotonic(), article.pk, views))
        if announced:
            self.announced.add((article.pk, views))

    def read(self, who, read):
        began = time.monotonic()
        with CaptureQueriesContext(connection) as ctx:
            seen = read()
        self.reads.append((began, who, seen, len(ctx.captured_queries)))
        return seen

    def add_child(self, child, pks=()):
        """The child's reads, and its writes as saves of ``pks``."""
        for event in child.events:
            if event["kind"] in ("get", "list"):
                seen = {int(pk): views for pk, views in event["views"].items()}
                self.reads.append((event["t0"], f"child {event['kind']}", seen, event["q"]))
            elif event["kind"] == "write":
                self.saves += [(event["t1"], pk, event["n"]) for pk in pks]
            elif event["kind"] == "error":
                self.errors.append(f"child: {event['error']}")

    def floor(self, pk, began):
        return max(
            (
                views
                for t, p, views in self.saves
                if p == pk and t < began and ((p, views) not in self.announced or t + self.grace < began)
            ),
            default=None,
        )

    def stale(self, expected_pks=None):
        """Descriptions of the stale reads (a missing row counts, if ``expected_pks`` says it is there)."""
        found = []
        for began, who, seen, _ in self.reads:
            pks = set(seen) | (set(expected_pks) if expected_pks is not None and who.endswith("list") else set())
            for pk in pks:
                floor = self.floor(pk, began)
                if floor is not None and (pk not in seen or seen[pk] < floor):
                    found.append(
                        f"{who} at +{began - self.origin:.3f}s: row {pk} views={seen.get(pk)} < {floor} saved before"
                    )
        return found

    def reads_after(self, moment, who="child"):
        return [r for r in self.reads if r[0] > moment and r[1].startswith(who)]

    def assert_fresh(self, expected_pks=None):
        assert not self.errors, self.errors[:5]
        stale = self.stale(expected_pks)
        events = [f"{what} at +{at - self.origin:.3f}s" for at, what in self.events]
        assert not stale, f"{len(stale)} stale rows in {len(self.reads)} reads ({events}): {stale[:8]}"


@pytest.fixture(autouse=True)
def _noting_announcements(monkeypatch):
    """Let ``Ledger.save`` see whether the save's tags went to the table of undelivered invalidations."""
    announce = outbox.announce

    def noting(connection, tags):
        tags = list(tags)
        if getattr(_announcing, "tags", None) is not None:
            _announcing.tags += tags
        return announce(connection, tags)

    monkeypatch.setattr(outbox, "announce", noting)


def get_views(pk):
    return {pk: Article.objects.cache().get(pk=pk).views}


def list_rows(pks):
    # The same queryset as tests/failsafe_reader.py: the two processes share its entry.
    return list(Article.objects.cache().filter(pk__in=list(pks)).order_by("pk"))


def list_views(pks):
    return {a.pk: a.views for a in list_rows(pks)}


def database_views(pks):
    return dict(Article.objects.nocache().filter(pk__in=list(pks)).values_list("pk", "views"))


def counted(read):
    """``(value, queries run)``."""
    with CaptureQueriesContext(connection) as ctx:
        value = read()
    return value, len(ctx.captured_queries)


def wait_for_hit(read, within, expect=None):
    """Read until a read runs no query (a hit); fail after ``within`` seconds. Returns the seconds it took."""
    started = time.monotonic()
    runs = []
    while True:
        value, n = counted(read)
        runs.append(n)
        if expect is not None:
            assert value == expect, f"read {value!r}, expected {expect!r}"
        if n == 0:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"no hit within {within} s: queries per read {runs}")
        time.sleep(0.05)


def warm(articles):
    """Cache each object and the list of them, and check they are hits."""
    pks = [a.pk for a in articles]
    for article in articles:
        get_views(article.pk)
        value, n = counted(lambda: get_views(article.pk))  # noqa: B023
        assert n == 0, "the healthy cache did not serve a cached get"
    list_views(pks)
    value, n = counted(lambda: list_views(pks))
    assert n == 0, "the healthy cache did not serve a cached list"
    return pks


def bounded(target, timeout, *args):
    """Run ``target`` in a thread, waiting at most ``timeout`` s for it.

    Returns ``(finished, result or exception, seconds it took, the thread)``; join the
    thread later (bounded) if it did not finish.
    """
    out = {}

    def run():
        started = time.monotonic()
        try:
            out["result"] = target(*args)
        except Exception as exc:
            out["result"] = exc
        finally:
            out["took"] = time.monotonic() - started
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return (not thread.is_alive(), out.get("result"), out.get("took"), thread)


# -- the second process ---------------------------------------------------------------------


class Child:
    """A tests/failsafe_reader.py process; its JSON lines are collected by a thread."""

    def __init__(self, stop_file, location, cachekit=None, **options):
        self.stop_file = stop_file
        config = {"location": location, "cachekit": cachekit or {}, "stop": str(stop_file), **options}
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CACHEKIT_TEST_RUN": test_settings.RUN_ID,
            "CK_DB_NAME": str(connection.settings_dict["NAME"]),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(READER), json.dumps(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events = []
        self.stderr = []
        self._ready = threading.Event()
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_out(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                self.stderr.append(line)
                continue
            if event["kind"] == "ready":
                self._ready.set()
            self.events.append(event)

    def _read_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the child did not start: {''.join(self.stderr)[-3000:]}")

    def wait(self, timeout=30):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the child did not finish in {timeout} s: {''.join(self.stderr)[-3000:]}") from None
        for thread in self._threads:
            thread.join(5)
        assert code == 0, f"the child exited with {code}: {''.join(self.stderr)[-3000:]}"
        return self.events

    def finish(self, timeout=30):
        """Tell a loop to stop, and wait for it."""
        self.stop_file.touch()
        return self.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def spawn(tmp_path):
    """``spawn(location, cachekit, **options)`` starts a child; every child is killed at teardown."""
    made = []

    def start(location, cachekit=None, **options):
        child = Child(tmp_path / f"stop-{len(made)}", location, cachekit, **options)
        made.append(child)
        return child

    yield start
    for child in made:
        child.kill()


@pytest.fixture
def server():
    with running() as s:
        yield s


def garble(client, wrong_type=3):
    """Overwrite every key with ``b"garbage"``, and give a few (version keys and an entry) a hash instead."""
    found = list(client.scan_iter(count=1000))
    assert found, "nothing was cached"
    for key in found:
        client.set(key, b"garbage")
    versions = [k for k in found if b"ck:v:" in k]
    entries = [k for k in found if b"ck:v:" not in k and b"ck:w:" not in k]
    for key in [*versions[: wrong_type - 1], *entries[:1]]:
        # In one transaction: a reader running beside may write the key again between a DELETE and an HSET.
        client.pipeline(transaction=True).delete(key).hset(key, "garbage", "garbage").execute()
    return found


# -- A. garbage versions are missing versions ------------------------------------------------


@on_throwaway_redis
def test_garbage_everywhere_reads_the_database_then_hits_again(server, queries):
    with cache_on(server):
        articles = ArticleFactory.create_batch(3)
        pks = warm(articles)
        Article.objects.nocache().filter(pk=pks[0]).update(views=7)  # a change the cache was told about
        garble(server.client())
        garbled = time.monotonic()
        expected = database_views(pks)
        for pk in pks:
            with queries(1):  # garbage is never served
                assert get_views(pk) == {pk: expected[pk]}
        with queries(1):
            assert list_views(pks) == expected
        # Within a second of the garbage, hits again: the get above ran its one query, the same get none.
        wait_for_hit(
            lambda: get_views(pks[1]), within=1.0 - (time.monotonic() - garbled), expect={pks[1]: expected[pks[1]]}
        )
        wait_for_hit(lambda: list_views(pks), within=1.0 - (time.monotonic() - garbled), expect=expected)
        assert not core.runtime().breaker.is_open


@on_throwaway_redis
def test_garbage_everywhere_then_saves_are_seen_by_every_process(server, spawn):
    ledger = Ledger()
    with cache_on(server):
        articles = ArticleFactory.create_batch(2)
        ledger.created(*articles)
        pks = warm(articles)
        child = spawn(server.url, pks=pks)
        child.wait_ready()
        garble(server.client())
        ledger.note("garbage")
        for views in range(1, 6):
            for article in articles:
                ledger.save(article, views)
                ledger.read("parent get", lambda: get_views(article.pk))  # noqa: B023
            ledger.read("parent list", lambda: list_views(pks))
            time.sleep(0.1)
        last_save = time.monotonic()
        wait_until(
            lambda: sum(e["kind"] == "list" and e["t0"] > last_save for e in child.events) >= 2,
            10,
            "the child did not read twice after the last save",
        )
        child.finish()
        ledger.add_child(child)
        assert len(ledger.reads_after(last_save)) >= 2, "the child did not read after the last save"
        ledger.assert_fresh(pks)
        # And the cache is of use again: hits within a second.
        wait_for_hit(lambda: get_views(pks[0]), within=1.0, expect={pks[0]: 5})


@on_throwaway_redis
def test_a_garbage_version_while_another_process_updates(server, spawn):
    ledger = Ledger()
    with cache_on(server) as alias:
        articles = ArticleFactory.create_batch(3)
        ledger.created(*articles)
        pks = warm(articles)
        client = server.client()
        # The version every list of articles is stamped with, which QuerySet.update() bumps.
        version = caches[alias].make_key(keys.version_keys([keys.model_tag(TABLE)])[0])
        assert client.exists(version)
        client.set(version, b"garbage")
        child = spawn(server.url, pks=pks, mode="update", pause=0.02)
        child.wait_ready()
        deadline = time.monotonic() + 3
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            if rounds % 10 == 0:
                client.set(version, b"garbage")  # again and again, while the child bumps it
            ledger.read("parent list", lambda: list_views(pks))
            time.sleep(0.02)
        child.finish()
        ledger.add_child(child, pks)
        writes = [e for e in child.events if e["kind"] == "write"]
        assert len(writes) >= 10, "the child barely wrote"
        assert len(ledger.reads_after(writes[-1]["t1"] - 1.0, "parent")) >= 5
        ledger.assert_fresh(pks)
        assert list_views(pks) == database_views(pks)


# -- B. versions live at least as long as their entries --------------------------------------


@on_throwaway_redis
def test_entries_without_timeout_outlive_a_short_tag_timeout(server, queries):
    with cache_on(server, TAG_TIMEOUT=2, TIMEOUT=None):
        article = ArticleFactory(title="before")
        Article.objects.cache().get(pk=article.pk)
        with queries(0):
            assert Article.objects.cache().get(pk=article.pk).title == "before"
        time.sleep(3)
        with queries(0):  # still a hit: its versions did not expire before it
            assert Article.objects.cache().get(pk=article.pk).title == "before"
        article.title = "after"
        article.save()
        assert Article.objects.cache().get(pk=article.pk).title == "after"


def stamped_versions(server, alias, article):
    """PTTL (ms) of each version key the article's object entry is stamped with."""
    client = server.client()
    key = meta.info(Article).object_key("default", article.pk)
    raw = client.get(caches[alias].make_key(key))
    assert raw is not None, "the object entry was not stored"
    tags, _, _ = codec.decode(key, raw)
    assert tags
    made = [caches[alias].make_key(k) for k in keys.version_keys(tags)]
    assert all("ck:v:" in k for k in made)
    return {key: client.pttl(key) for key in made}


def short_lived(ttls, at_least_ms=59_000):
    # -1: no expiry; -2: missing.
    return {key: ttl for key, ttl in ttls.items() if ttl != -1 and ttl < at_least_ms}


@on_throwaway_redis
def test_version_keys_live_as_long_as_the_entries_stamped_with_them(server, queries):
    with cache_on(server, TIMEOUT=60, TAG_TIMEOUT=2) as alias:
        article = ArticleFactory()
        entry = caches[alias].make_key(meta.info(Article).object_key("default", article.pk))
        client = server.client()
        client.delete(entry)
        with queries(1):  # a miss, stored
            Article.objects.cache().get(pk=article.pk)
        assert 55_000 < client.pttl(entry) <= 60_000
        assert not short_lived(stamped_versions(server, alias, article))
        # Every version key there is, too (an entry stamped with a missing one is a miss anyway).
        every = {k: client.pttl(k) for k in client.scan_iter(match="*ck:v:*")}
        assert every and not short_lived(every)


@on_throwaway_redis
def test_a_store_extends_an_older_shorter_lived_version(server, queries):
    with cache_on(server, TIMEOUT=60, TAG_TIMEOUT=2) as alias:
        article = ArticleFactory()
        client = server.client()
        for key in client.scan_iter(match="*ck:v:*"):
            client.pexpire(key, 1500)  # versions made long ago, about to expire
        client.delete(caches[alias].make_key(meta.info(Article).object_key("default", article.pk)))
        with queries(1):
            Article.objects.cache().get(pk=article.pk)
        assert not short_lived(stamped_versions(server, alias, article))
        time.sleep(2)
        with queries(0):
            Article.objects.cache().get(pk=article.pk)


# -- C. versions never move backwards unnoticed ----------------------------------------------


@on_throwaway_redis
def test_an_old_snapshot_loaded_after_a_save_is_not_served(server, queries):
    with cache_on(server):
        article = ArticleFactory(title="old")
        pks = warm([article])
        server.snapshot()  # the old entries, valid by the versions saved with them
        article.title = "new"
        article.views = 1
        article.save()
        Article.objects.cache().get(pk=article.pk)
        with queries(0):
            assert Article.objects.cache().get(pk=article.pk).title == "new"
        assert list_views(pks) == {article.pk: 1}
        server.kill()
        server.restart()
        assert server.client().dbsize() > 0, "the snapshot was not loaded"
        assert Article.objects.cache().get(pk=article.pk).title == "new"
        assert list_views(pks) == {article.pk: 1}


@on_throwaway_redis
def test_an_old_snapshot_is_not_served_to_another_process(server, spawn):
    ledger = Ledger()
    with cache_on(server):
        articles = ArticleFactory.create_batch(2)
        ledger.created(*articles)
        pks = warm(articles)
        child = spawn(server.url, pks=pks)
        child.wait_ready()
        # The child caches the old rows too.
        wait_until(lambda: sum(e["kind"] == "list" for e in child.events) >= 2, 10, "the child read once only")
        server.snapshot()
        ledger.note("snapshot")
        for views in (1, 2):
            for article in articles:
                ledger.save(article, views)
                ledger.read("parent get", lambda: get_views(article.pk))  # noqa: B023
            ledger.read("parent list", lambda: list_views(pks))
            time.sleep(0.2)
        server.kill()
        ledger.note("kill")
        server.restart()
        back = time.monotonic()
        ledger.note("restart")
        for _ in range(10):
            ledger.read("parent get", lambda: get_views(pks[0]))
            ledger.read("parent list", lambda: list_views(pks))
            time.sleep(0.1)
        wait_until(
            lambda: sum(e["kind"] == "list" and e["t0"] > back for e in child.events) >= 2,
            10,
            "the child did not read twice after the restart",
        )
        child.finish()
        ledger.add_child(child)
        assert len(ledger.reads_after(back)) >= 4, "the child did not read after the restart"
        ledger.assert_fresh(pks)


# -- D. a hung cache never hangs a request ---------------------------------------------------

WAITS_BOUND = 2  # unreachable cache commands one call may wait for
HANG_BOUND = 2.5  # seconds outside SQL: the server stays down for 5 s, each command waits 0.2 s


class FailedCommands:
    """Counts, per thread, the cache commands that could not reach the server: each one a wait."""

    def __init__(self, breaker):
        self.breaker = breaker
        self.count = breaker.failure
        self.by_thread = {}
        self.opened_at = None  # when the breaker first opened, by its own clock
        breaker.failure = self.failure

    def failure(self, exc):
        thread = threading.get_ident()
        self.by_thread[thread] = self.by_thread.get(thread, 0) + 1
        self.count(exc)
        if self.opened_at is None:
            self.opened_at = self.breaker.opened_at

    def start(self):
        self.by_thread[threading.get_ident()] = 0

    def commands(self):
        return self.by_thread.get(threading.get_ident(), 0)

    def stop(self):
        del self.breaker.failure


def workload(server, fault, recover):
    """8 threads save and read their own row and the list of all; break the server for 5 s.

    Returns the ledger, the calls ``(kind, began, took, queries, seconds in SQL, cache commands
    that failed)``, when the fault began, when the breaker opened and when the server was back.
    """
    ledger = Ledger()
    calls = []
    failed = FailedCommands(core.runtime().breaker)
    articles = ArticleFactory.create_batch(8)
    ledger.created(*articles)
    pks = [a.pk for a in articles]
    stop = threading.Event()

    def call(kind, fn):
        in_database = [0.0]

        def timer(execute, sql, params, many, context):
            # Innermost of the execute wrappers (after django-cachekit's): the time SQLite or
            # PostgreSQL took, lock waits included, and nothing the cache did.
            started = time.monotonic()
            try:
                return execute(sql, params, many, context)
            finally:
                in_database[0] += time.monotonic() - started

        failed.start()
        began = time.monotonic()
        try:
            with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(timer):
                assert connection.execute_wrappers[-1] is timer
                seen = fn()
        except Exception:
            ledger.errors.append(f"{kind}: {traceback.format_exc()}")
            return
        took = time.monotonic() - began
        calls.append((kind, began, took, len(ctx.captured_queries), in_database[0], failed.commands()))
        if seen is not None:
            ledger.reads.append((began, f"thread {kind}", seen, len(ctx.captured_queries)))

    def worker(article):
        try:
            connection.ensure_connection()
            views = 0
            while not stop.is_set():
                views += 1

                def save(views=views):
                    article.views = views
                    article.title = f"v{views}"
                    article.save()
                    ledger.saves.append((time.monotonic(), article.pk, views))

                call("save", save)
                call("get", lambda: get_views(article.pk))
                call("get", lambda: get_views(article.pk))
                call("list", lambda: list_views(pks))
                time.sleep(0.01)
        finally:
            connections.close_all()

    warm(articles)
    threads = [threading.Thread(target=worker, args=(a,), daemon=True) for a in articles]
    for thread in threads:
        thread.start()
    opened = None
    try:
        time.sleep(1)
        faulted = time.monotonic()
        fault()
        ledger.note("fault")
        while time.monotonic() - faulted < 5:
            if opened is None and core.runtime().breaker.is_open:
                opened = time.monotonic()
            time.sleep(0.005)
        recover()
        back = time.monotonic()
        ledger.note("back")
        # Run on until a thread's get was a hit (and a second more), for at most 5 s.
        while time.monotonic() - back < 5:
            hits = [c for c in calls if c[0] == "get" and c[1] > back and c[3] == 0]
            if hits and time.monotonic() - hits[0][1] > 1:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        server.resume()
        for thread in threads:
            thread.join(10)
        failed.stop()
    hung = [t for t in threads if t.is_alive()]
    assert not hung, f"{len(hung)} threads still in a call 10 s after the end"
    opened = failed.opened_at or opened  # the breaker's own clock, not this loop's
    return ledger, calls, faulted, opened, back, pks


def check_workload(ledger, calls, faulted, opened, back, pks):
    assert not ledger.errors, f"{len(ledger.errors)} exceptions reached callers: {ledger.errors[:2]}"
    # What a call waited for besides its SQL: with SQLite, 8 writers also wait for the database's lock.
    # A call waits for at most two commands that time out (README: "a call at most about twice that"),
    # each bounded by the socket timeout: 0.4 s in all, within the 0.5 s a call may wait.
    assert WAITS_BOUND * conf.SOCKET_TIMEOUT <= 0.5
    waited = sorted(
        (commands, kind, round(took, 3), round(began - faulted, 3))
        for kind, began, took, _, _, commands in calls
        if commands > WAITS_BOUND
    )[::-1]
    assert not waited, (
        f"{len(waited)} calls waited for over {WAITS_BOUND} unreachable cache commands "
        f"(commands, kind, seconds, began after the fault): {waited[:5]}"
    )
    # And nothing hangs for the fault's 5 s: the wall clock, with room for a loaded machine.
    hung = sorted(
        (round(took - sql, 3), round(took, 3), kind, round(began - faulted, 3))
        for kind, began, took, _, sql, _ in calls
        if took - sql > HANG_BOUND
    )[::-1]
    assert not hung, (
        f"{len(hung)} calls spent over {HANG_BOUND} s outside SQL (that, in all, kind, began after the fault): {hung[:5]}"
    )
    assert opened is not None and opened - faulted <= 1.0, f"breaker opened after {opened and opened - faulted} s"
    assert [c for c in calls if c[1] > back], "no call after the server was back"
    ledger.assert_fresh(pks)
    hits = [c for c in calls if c[0] == "get" and c[1] > back and c[3] == 0]
    assert hits and hits[0][1] - back <= 5, "no hit within 5 s of the server coming back"


@on_throwaway_redis
@pytest.mark.parametrize("fault", ["pause", "kill"])
def test_a_hung_or_dead_cache_never_hangs_a_request(server, fault):
    with cache_on(server, BREAKER_COOLDOWN=1):
        if fault == "pause":
            found = workload(server, server.pause, server.resume)
        else:
            found = workload(server, server.kill, server.restart)  # empty: nothing was saved
    check_workload(*found)


@on_throwaway_redis
def test_after_the_cooldown_one_request_probes_a_hung_cache(server):
    with cache_on(server, BREAKER_COOLDOWN=1):
        article = ArticleFactory()
        warm([article])
        server.pause()
        pending = []
        try:
            deadline = time.monotonic() + 8
            while not core.runtime().breaker.is_open and time.monotonic() < deadline:
                finished, result, _, thread = bounded(lambda: get_views(article.pk), 2)
                pending.append(thread)
                assert finished, "a get on the hung server did not return in 2 s"
                assert not isinstance(result, Exception), result
            assert core.runtime().breaker.is_open, "the breaker did not open in 8 s"
            breaker = core.runtime().breaker
            wait_until(
                lambda: breaker.opened_at is None or time.monotonic() - breaker.opened_at > conf.BREAKER_COOLDOWN,
                conf.BREAKER_COOLDOWN + 5,
                "the cooldown did not pass",
            )
            barrier = threading.Barrier(6)
            took = {}
            waited = {}
            failed = FailedCommands(breaker)

            def one(i):
                try:
                    connection.ensure_connection()
                    barrier.wait(5)
                    failed.start()
                    began = time.monotonic()
                    assert get_views(article.pk) == {article.pk: 0}
                    took[i] = time.monotonic() - began
                    waited[i] = failed.commands()
                finally:
                    connections.close_all()

            threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(3)
            pending += threads
            durations = [took.get(i, float("inf")) for i in range(6)]
            failed.stop()
        finally:
            server.resume()
            for thread in pending:
                thread.join(10)
        assert len(took) == 6, f"{6 - len(took)} of 6 requests did not return in 3 s: {durations}"
        # The probe waits for the hung server (one command); the others skip it.
        probes = [i for i in range(6) if waited[i]]
        assert len(probes) == 1, f"{len(probes)} of 6 requests waited for the hung cache: {waited}, {durations}"
        assert waited[probes[0]] == 1, f"the probe waited for {waited[probes[0]]} commands"


# -- E. a bad key or value is the caller's error, not an outage ------------------------------


@on_throwaway_redis
def test_a_value_the_server_refuses_does_not_open_the_breaker(server, queries):
    with cache_on(server, BREAKER_THRESHOLD=2):
        server.client().config_set("proto-max-bulk-len", "1mb")
        made = {}

        @cached(timeout=60)
        def big(i):
            made[i] = os.urandom(2 * 1024 * 1024)  # incompressible: the entry stays over 1 MB
            return made[i]

        @cached(timeout=60)
        def pair(i):
            return big(100 + i) + b"!"  # two refused stores in a row: the inner one, then this one

        for i in range(5):
            assert big(i) == made[i]
        for i in range(2):
            assert pair(i) == made[100 + i] + b"!"
        breaker = core.runtime().breaker
        assert not breaker.is_open, f"the breaker opened ({breaker.failures} failures)"
        article = ArticleFactory()
        Article.objects.cache().get(pk=article.pk)
        with queries(0):
            Article.objects.cache().get(pk=article.pk)


# -- F. a full Redis never resurrects --------------------------------------------------------


def fill(client, policy):
    """Junk keys until a script's small write is refused for memory (noeviction), or 6 MB of them (evicting)."""
    if policy != "noeviction":
        for i in range(120):
            client.set(f"junk:{i}", b"x" * 50_000)
        return
    i = 0
    for size in (50_000, 5_000, 500, 50, 5):  # smaller and smaller: no room is left, not even for a version
        while True:
            i += 1
            assert i < 20_000, "the server never filled up"
            try:
                client.set(f"junk:{i}", b"x" * size)
            except redis.exceptions.OutOfMemoryError:
                break
        if size < 500:
            try:  # what the library's scripts do: a write from Lua
                client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "junk:probe", "1")
            except redis.exceptions.OutOfMemoryError:
                return
    raise AssertionError("a small write from a script is still accepted")


@on_throwaway_redis
@pytest.mark.parametrize("policy", ["noeviction", "allkeys-lru"])
def test_a_full_cache_never_serves_what_a_save_replaced(policy, spawn):
    ledger = Ledger()
    with running(maxmemory="2mb", maxmemory_policy=policy) as server, cache_on(server):
        articles = ArticleFactory.create_batch(3)
        ledger.created(*articles)
        pks = warm(articles)
        child = spawn(server.url, pks=pks)
        child.wait_ready()
        wait_until(lambda: sum(e["kind"] == "list" for e in child.events) >= 2, 10, "the child read once only")
        fill(server.client(), policy)
        ledger.note("full")
        for views in range(1, 5):
            for article in articles:
                ledger.save(article, views)
                ledger.read("parent get", lambda: get_views(article.pk))  # noqa: B023
            ledger.read("parent list", lambda: list_views(pks))
            time.sleep(0.15)
        last_save = time.monotonic()
        wait_until(
            lambda: sum(e["kind"] == "list" and e["t0"] > last_save for e in child.events) >= 2,
            10,
            "the child did not read twice after the last save",
        )
        child.finish()
        ledger.add_child(child)
        assert len(ledger.reads_after(last_save)) >= 2, "the child did not read after the last save"
        ledger.assert_fresh(pks)


# -- G. restart empty / FLUSHALL mid-workload ------------------------------------------------


@on_throwaway_redis
def test_flushall_and_an_empty_restart_while_saving(server, spawn):
    ledger = Ledger()
    options = {"BREAKER_COOLDOWN": 1}
    with cache_on(server, **options):
        saved, quiet = ArticleFactory.create_batch(2)  # ``quiet`` is never saved: its hits come back
        ledger.created(saved, quiet)
        pks = warm([saved, quiet])
        child = spawn(server.url, options, pks=pks)
        child.wait_ready()
        stop = threading.Event()

        def saver():
            try:
                views = 0
                while not stop.is_set():
                    views += 1
                    try:
                        ledger.save(saved, views)
                        ledger.read("parent get", lambda: get_views(saved.pk))
                        ledger.read("parent list", lambda: list_views(pks))
                    except Exception:
                        ledger.errors.append(traceback.format_exc())
                    time.sleep(0.02)
            finally:
                connections.close_all()

        thread = threading.Thread(target=saver, daemon=True)
        thread.start()
        try:
            time.sleep(0.7)
            server.client().flushall()
            ledger.note("flushall")
            time.sleep(1.5)
            server.kill()
            ledger.note("kill")
            assert not os.path.exists(server.dump)
            time.sleep(0.5)
            server.restart()
            back = time.monotonic()
            ledger.note("restart")
            wait_for_hit(lambda: get_views(quiet.pk), within=5, expect={quiet.pk: 0})
            wait_until(
                lambda: (
                    any(
                        e["kind"] == "get" and str(quiet.pk) in e["views"] and e["t0"] > back and e["q"] == 0
                        for e in child.events
                    )
                    and sum(e["kind"] == "list" and e["t0"] > back for e in child.events) >= 2
                ),
                5,
                "the child had no hit after the restart",
            )
        finally:
            stop.set()
            thread.join(10)
        assert not thread.is_alive(), "the saver hung"
        child.finish()
        ledger.add_child(child)
        assert len(ledger.reads_after(back)) >= 4, "the child did not read after the restart"
        ledger.assert_fresh(pks)
        child_hits = [
            e
            for e in child.events
            if e["kind"] == "get" and str(quiet.pk) in e["views"] and back < e["t0"] < back + 5 and e["q"] == 0
        ]
        assert child_hits, "the child had no hit within 5 s of the restart"


# -- H. lost invalidations are repaired everywhere and survive the writer's exit -------------


@on_throwaway_redis
def test_an_invalidation_a_writer_could_not_send_is_repaired_after_it_exits(server, spawn, queries):
    poll = 1.0
    with cache_on(server, PENDING_POLL=poll):
        article = ArticleFactory(title="before")
        tag = TagFactory()
        pks = warm([article])
        Tag.objects.cache().get(pk=tag.pk)
        with queries(0):
            Tag.objects.cache().get(pk=tag.pk)
        # The writer's cache is a port where nothing listens: its marks and bumps all fail.
        writer = spawn(dead_location(), {"PENDING_POLL": poll}, mode="save", pk=article.pk, title="after")
        writer.wait()
        exited = time.monotonic()
        assert Article.objects.nocache().get(pk=article.pk).title == "after"
        while True:
            title = Article.objects.cache().get(pk=article.pk).title
            listed = [a.title for a in list_rows(pks)]
            if title == "after" and listed == ["after"]:
                break
            waited = time.monotonic() - exited
            assert waited < poll + 1, f"still {title!r} and {listed!r} {waited:.2f} s after the writer exited"
            time.sleep(0.05)
        with queries(0):  # the repair retired that row's entries, not everything
            Tag.objects.cache().get(pk=tag.pk)


@on_throwaway_redis
@pytest.mark.parametrize("how", ["save", "update", "atomic"])
def test_strict_invalidation_refuses_a_write_it_cannot_announce(how):
    assert InvalidationUnavailable is not None, "django_cachekit.InvalidationUnavailable does not exist"
    assert issubclass(InvalidationUnavailable, DatabaseError)
    article = ArticleFactory(title="before")
    with cache_on(dead_location(), STRICT_INVALIDATION=True):
        with pytest.raises(InvalidationUnavailable):
            if how == "save":
                article.title = "after"
                article.save()
            elif how == "update":
                Article.objects.filter(pk=article.pk).update(title="after")
            else:
                with transaction.atomic():
                    article.title = "after"
                    article.save()
    assert Article.objects.nocache().get(pk=article.pk).title == "before"


# -- A, on any store: locmem and memcached ---------------------------------------------------


@pytest.mark.skipif(CACHE not in ("locmem", "memcached"), reason="the generic store: locmem and memcached")
@pytest.mark.parametrize("which", ["object", "rows", "global"])
def test_a_garbage_version_is_a_missing_version_on_any_store(which, queries):
    article = ArticleFactory(title="before")
    tag = {
        "object": keys.object_tag(TABLE, article.pk),
        "rows": keys.rows_tag(TABLE),
        "global": keys.GLOBAL_TAG,
    }[which]
    (version,) = keys.version_keys([tag])
    caches[conf.CACHE_ALIAS].set(version, "garbage")
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "before"
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "before"
    article.title = "after"
    article.save()
    assert Article.objects.cache().get(pk=article.pk).title == "after"
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "after"
