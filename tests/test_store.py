"""The store contract every backend keeps: what a bump and a conditional write do.

Runs on whichever cache the suite is configured with (LocMem, django-redis,
Django's RedisCache, Memcached): the Redis script must mean what the generic
store does.
"""

import gc
import os
import threading

import pytest
from django.core.cache import caches

from django_cachekit.core import protocol as core
from django_cachekit.stores import get_store
from django_cachekit.stores.base import Expect, Write
from tests.conftest import CACHE, REDIS_CACHES, needs_redis
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def store():
    return get_store("default")


def versions(store, *keys):
    _, found, _ = store.fetch([], list(keys))
    return found


def entry(store, key):
    found, _, _ = store.fetch([key], [])
    return found[0]


def test_bump_increments_existing_versions_and_leaves_missing_ones_missing(store):
    a, b = store.ensure(["ck:test:a", "ck:test:b"], 600)
    store.bump(["ck:test:a", "ck:test:b", "ck:test:missing"], 600)
    assert versions(store, "ck:test:a", "ck:test:b", "ck:test:missing") == [a + 1, b + 1, None]


def test_bump_keeps_the_version_keys_expiry(store):
    (before,) = store.ensure(["ck:test:ttl"], 600)
    store.bump(["ck:test:ttl"], 7 * 24 * 3600)
    (ttl,) = store.ttls(["ck:test:ttl"])
    if ttl is None:
        pytest.skip(f"{store.describe()} does not report expiries")
    if CACHE in REDIS_CACHES:
        assert 0 < ttl <= 600
    else:  # elsewhere versions never expire: they must outlive every entry stamped with them
        assert ttl == float("inf")
    assert versions(store, "ck:test:ttl") == [before + 1]


def test_write_is_stored_when_its_expectations_hold(store):
    (v,) = store.ensure(["ck:test:o"], 600)
    write = Write(
        "ck:test:entry",
        b"fresh",
        60,
        [Expect("ck:test:o", v + 1), Expect("ck:test:new", 12345, create=True)],
        ["ck:test:fallback"],
    )
    (fallback,) = store.ensure(["ck:test:fallback"], 600)
    assert store.bump(["ck:test:o"], 600, [write]) == 1
    assert entry(store, "ck:test:entry") == b"fresh"
    assert versions(store, "ck:test:o", "ck:test:new", "ck:test:fallback") == [v + 1, 12345, fallback]


@pytest.mark.parametrize("broken", ["version", "create"])
def test_refused_write_bumps_its_fallbacks_instead(store, broken):
    o, taken, fallback = store.ensure(["ck:test:o", "ck:test:taken", "ck:test:fallback"], 600)
    expect = (
        [Expect("ck:test:o", o + 5)]  # another writer bumped it in between
        if broken == "version"
        else [Expect("ck:test:o", o), Expect("ck:test:taken", 999, create=True)]  # the row's tag exists already
    )
    write = Write("ck:test:entry", b"old", 60, expect, ["ck:test:fallback", "ck:test:missing"])
    assert store.bump([], 600, [write]) == 0
    assert entry(store, "ck:test:entry") is None
    assert versions(store, "ck:test:o", "ck:test:taken", "ck:test:fallback", "ck:test:missing") == [
        o,
        taken,
        fallback + 1,
        None,
    ]


def test_each_write_is_checked_on_its_own(store):
    a, b = store.ensure(["ck:test:a", "ck:test:b"], 600)
    good = Write("ck:test:good", b"good", None, [Expect("ck:test:a", a)])
    bad = Write("ck:test:bad", b"bad", None, [Expect("ck:test:b", b + 1)])
    assert store.bump([], 600, [bad, good]) == 1
    assert (entry(store, "ck:test:good"), entry(store, "ck:test:bad")) == (b"good", None)


def test_bump_of_thousands_of_tags(store):
    # The Redis script reads versions in groups of 1,000 keys; LocMem keeps 300 keys.
    n = 2500 if CACHE in REDIS_CACHES else 200
    tags = [f"ck:test:many:{i}" for i in range(n)]
    before = store.ensure(tags[::2], 600)  # every other one exists
    store.bump(tags, 600)
    after = versions(store, *tags)
    assert after[::2] == [v + 1 for v in before]
    assert after[1::2] == [None] * (n // 2)


# Redis: reads and bumps on a connection of the store's own per thread and process.


def own_connection(store):
    return store._line.connection


@needs_redis
def test_each_thread_reads_on_its_own_connection(store):
    keys = [f"ck:test:thread:{i}" for i in range(8)]
    expected = store.ensure(keys, 600)
    seen = {}
    errors = []

    def read(i):
        try:
            for _ in range(200):
                assert versions(store, keys[i]) == [expected[i]]
            seen[i] = own_connection(store)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({id(c) for c in seen.values()}) == 8


@needs_redis
def test_a_connection_the_server_closed_is_replaced_without_a_failure(store):
    (v,) = store.ensure(["ck:test:idle"], 600)
    assert versions(store, "ck:test:idle") == [v]
    breaker = core.runtime().breaker
    failures = breaker.failures
    client_id = store.command("CLIENT", "ID")
    store.client.client_kill_filter(_id=client_id)  # as a server's idle timeout would
    assert versions(store, "ck:test:idle") == [v]
    store.bump(["ck:test:idle"], 600)
    assert versions(store, "ck:test:idle") == [v + 1]
    assert breaker.failures == failures


@needs_redis
def test_bump_loads_its_script_again_after_a_script_flush(store):
    (v,) = store.ensure(["ck:test:flushed"], 600)
    store.client.script_flush()
    store.bump(["ck:test:flushed"], 600)
    assert versions(store, "ck:test:flushed") == [v + 1]


@needs_redis
def test_a_bump_sent_without_waiting_is_applied_before_the_next_command(store):
    (v,) = store.ensure(["ck:test:deferred"], 600)
    failures = []
    store.bump(["ck:test:deferred"], 600, failed=failures.append)
    assert store._line.sent  # its reply is still owed
    assert versions(store, "ck:test:deferred") == [v + 1]
    assert not store._line.sent and failures == []


@needs_redis
def test_a_bump_whose_reply_is_lost_with_its_connection_runs_again(store):
    (v,) = store.ensure(["ck:test:deferred-lost"], 600)
    store.client.script_flush()  # and the server does not know the script either
    failures = []
    store.bump(["ck:test:deferred-lost"], 600, failed=failures.append)
    store.bump(["ck:test:deferred-lost"], 600, failed=failures.append)
    store.settle()
    assert versions(store, "ck:test:deferred-lost") == [v + 2]
    store.bump(["ck:test:deferred-lost"], 600, failed=failures.append)
    store._line.connection.disconnect()  # the reply is gone; whether it ran is unknown
    store.settle()
    assert versions(store, "ck:test:deferred-lost")[0] in (v + 3, v + 4)  # run again: only forward
    assert failures == []


@needs_redis
def test_a_command_sent_behind_owed_replies_gets_its_own_reply(store):
    failing = store.client.register_script("return redis.error_reply('refused')")
    store.command("SCRIPT", "LOAD", failing.script)
    # Raw commands: the keys are made under the run's prefix, which clear() deletes.
    behind, told_key = caches["default"].make_key("ck:test:behind"), caches["default"].make_key("ck:test:told")
    store.command("SET", behind, "mine")
    told = []

    def failed(exc):
        told.append(str(exc))
        store.command("SET", told_key, "yes")  # a hook that talks to the cache itself

    store._send_script(failing, [], [], failed)
    store._send_script(failing, [], [], failed)
    assert store.command("GET", behind) == b"mine"  # not a reply owed to what was sent before
    assert told == ["refused", "refused"]
    assert store.command("GET", told_key) == b"yes"


@needs_redis
def test_a_bump_that_fails_after_it_was_sent_is_reported(store, monkeypatch):
    from redis.exceptions import TimeoutError

    store.ensure(["ck:test:deferred-failed"], 600)
    failures = []
    store.bump(["ck:test:deferred-failed"], 600, failed=failures.append)
    connection = store._line.connection

    def hung(*args, **kwargs):
        raise TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(connection, "read_response", hung)
    store.settle()
    assert [type(f) for f in failures] == [TimeoutError]


@pytest.mark.django_db(transaction=True)
def test_a_save_whose_deferred_bump_failed_is_not_forgotten(monkeypatch):
    from django_cachekit.stores.redis import RedisStore
    from tests.factories import ArticleFactory

    article = ArticleFactory()
    rt = core.runtime()
    if not isinstance(rt.store, RedisStore):
        pytest.skip("only the Redis store sends a bump without waiting")
    lost, deferred = [], []
    monkeypatch.setattr(rt, "lost", lambda tags, unmark=None: lost.append((list(tags), unmark)))
    monkeypatch.setattr(RedisStore, "delete_many", lambda self, keys: 1 / 0)  # the fallback fails too
    original = RedisStore.bump

    def failing(self, keys, timeout, writes=(), unmark=None, failed=None):
        if failed is None:
            return original(self, keys, timeout, writes, unmark)
        deferred.append(keys)
        failed(ConnectionError("gone"))
        return 0

    monkeypatch.setattr(RedisStore, "bump", failing)
    article.title = "changed"
    article.save()
    assert deferred  # every tag the save bumps is marked: sent without waiting
    assert len(lost) == 1
    tags, unmark = lost[0]
    assert f"o:testapp_article:{article.pk}" in tags and unmark is not None


@needs_redis
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_opens_its_own_connection(store):
    keys = [f"ck:test:fork:{i}" for i in range(2)]
    parent_value, child_value = store.ensure(keys, 600)
    assert versions(store, keys[0]) == [parent_value]  # the parent's connection is open
    pid = os.fork()
    if pid == 0:  # the child reads while the parent does: a shared socket would mix their replies
        code = 1
        try:
            ok = all(versions(store, keys[1]) == [child_value] for _ in range(300))
            code = 0 if ok and own_connection(store).pid == os.getpid() else 1
        finally:
            os._exit(code)
    ok = all(versions(store, keys[0]) == [parent_value] for _ in range(300))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ok


@needs_redis
def test_a_pool_of_other_connections_is_used_through_the_client(store, monkeypatch):
    from redis.connection import Connection

    from django_cachekit.stores.redis import RedisStore

    class Managed(Connection):  # as Sentinel's connections, which ask their pool for the master
        pass

    monkeypatch.setattr(store.client.connection_pool, "connection_class", Managed)
    other = RedisStore("default", store.client)
    sent = []
    execute = store.client.execute_command
    monkeypatch.setattr(store.client, "execute_command", lambda *a, **kw: sent.append(a[0]) or execute(*a, **kw))
    (v,) = other.ensure(["ck:test:managed"], 600)
    other.bump(["ck:test:managed"], 600)
    assert versions(other, "ck:test:managed") == [v + 1]
    assert {"EVALSHA", "MGET"} <= set(sent)
    assert own_connection(other) is None


@needs_redis
def test_a_threads_connection_closes_when_the_thread_ends(store):
    found = {}

    def work():
        found["id"] = store.command("CLIENT", "ID")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    del thread
    gc.collect()

    def connected():
        listing = store.client.execute_command("CLIENT", "LIST")
        if isinstance(listing, bytes):
            listing = listing.decode()
        return f"id={found['id']} " in listing

    wait_until(lambda: not connected(), 5, "the collected thread's connection is still open")


@needs_redis
@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_commands_are_packed_as_redis_py_packs_them(encoding):
    from redis.connection import Connection

    from django_cachekit.stores.redis import _packer

    connection = Connection(host="127.0.0.1", encoding=encoding)
    args = ("EVALSHA", "f" * 40, 2, "ck:v:o:café:1", "ck:v:g", 604800000, 1.5, b"\x00\xff entry", "v")
    assert _packer(connection)(args) == connection.pack_command(*args)


@needs_redis
def test_values_stored_by_a_bump_read_back_byte_for_byte(store):
    value = bytes(range(256)) * 8 + "é".encode()
    assert store.bump([], 600, [Write("ck:test:bytes", value, 60, [Expect("ck:test:bytes-v", 77, create=True)])]) == 1
    assert entry(store, "ck:test:bytes") == value


def put(store, key, value):
    """Write ``value`` at ``key`` as another client of the cache would."""
    from django.core.cache import caches

    caches[store.alias].set(key, value, 600)


@pytest.mark.parametrize("garbage", ["garbage", b"\x80\x03junk", 2.5, "99999999999999999999999"])
def test_a_version_that_is_not_an_integer_is_a_missing_one(store, garbage):
    a, b = store.ensure(["ck:test:bad-a", "ck:test:bad-b"], 600)
    put(store, "ck:test:bad-a", garbage)
    assert versions(store, "ck:test:bad-a", "ck:test:bad-b") == [None, b]
    store.bump(["ck:test:bad-a", "ck:test:bad-b"], 600)  # does not stop at the bad key
    assert versions(store, "ck:test:bad-b") == [b + 1]
    (fresh,) = store.ensure(["ck:test:bad-a"], 600)
    assert isinstance(fresh, int) and fresh != a
    assert versions(store, "ck:test:bad-a") == [fresh]
    put(store, "ck:test:bad-a", garbage)
    (again,) = store.ensure(["ck:test:bad-a"], 600)  # replaced, not read back as it is
    assert isinstance(again, int) and versions(store, "ck:test:bad-a") == [again]


@needs_redis
def test_a_version_key_of_another_type_is_a_missing_one(store):
    (b,) = store.ensure(["ck:test:typed-b"], 600)
    made = store._make_key("ck:test:typed-a")
    store.client.delete(made)
    store.client.hset(made, "x", "1")
    assert versions(store, "ck:test:typed-a") == [None]
    store.bump(["ck:test:typed-a", "ck:test:typed-b"], 600)
    assert versions(store, "ck:test:typed-b") == [b + 1]
    (fresh,) = store.ensure(["ck:test:typed-a"], 600)
    assert versions(store, "ck:test:typed-a") == [fresh]


@needs_redis
@pytest.mark.parametrize("raw", ["05", "-0", "+5", " 5", "9223372036854775807"])
def test_a_bump_or_a_mark_goes_past_a_value_incr_cannot_increment(store, raw):
    """Values INCR refuses (not written as Redis writes integers, or at its limit)
    are missing versions: the scripts delete them and go on to the other keys."""
    (b,) = store.ensure(["ck:test:odd-b"], 600)
    made = store._make_key("ck:test:odd-a")
    store.client.set(made, raw)
    store.bump(["ck:test:odd-a", "ck:test:odd-b"], 600)
    assert store.client.get(made) is None
    assert versions(store, "ck:test:odd-b") == [b + 1]
    store.client.set(made, raw)
    store.mark(["ck:w:test-odd"], "abc123", 5, version_keys=["ck:test:odd-a", "ck:test:odd-b"])
    assert store.client.get(made) is None
    assert versions(store, "ck:test:odd-b") == [b + 2]
    store.unmark(["ck:w:test-odd"], "abc123")


def test_garbage_at_a_mark_key_marks_nothing(store):
    put(store, "ck:w:test-garbage", "garbage")
    _, _, marks = store.fetch([], [], ["ck:w:test-garbage"])
    assert marks == [False]
    store.mark(["ck:w:test-garbage"], "abc123", 5)
    assert store.fetch([], [], ["ck:w:test-garbage"])[2] == [True]
    store.unmark(["ck:w:test-garbage"], "abc123")
    assert store.fetch([], [], ["ck:w:test-garbage"])[2] == [False]
