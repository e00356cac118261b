"""clear() on the test cache deletes this run's keys only (tests/ownkeys.py)."""

import uuid
from types import SimpleNamespace

import pytest
from django.core.cache import caches

from tests import ownkeys
from tests import settings as test_settings
from tests.conftest import CACHE, needs_redis


def raw_client():
    import redis

    return redis.Redis.from_url(test_settings.REDIS_URL)


@needs_redis
def test_another_clients_keys_in_the_same_database_survive_clear():
    cache = caches["default"]
    prefix = cache.key_prefix
    others = {
        f"another-app:{uuid.uuid4().hex}": b"theirs",
        f"{prefix}x:1:{uuid.uuid4().hex}": b"a longer prefix that starts with ours",
        f"{prefix}{uuid.uuid4().hex}": b"ours without the colon",
    }
    client = raw_client()
    try:
        client.mset(others)
        for n in range(2500):  # more than one SCAN batch and one UNLINK batch
            cache.set(f"mine-{n}", n)
        cache.set("other-version", 1, version=7)
        assert client.exists(cache.make_key("mine-0"), cache.make_key("other-version", version=7)) == 2
        cache.clear()
        assert cache.get("mine-0") is None and cache.get("other-version", version=7) is None
        assert list(client.scan_iter(match=ownkeys.pattern(cache), count=1000)) == []
        assert client.mget(list(others)) == list(others.values())
    finally:
        client.delete(*others)
        client.close()


@needs_redis
def test_a_cache_without_a_prefix_refuses_to_clear():
    backend = test_settings.CACHES["default"]["BACKEND"]
    from django.core.cache import CacheHandler

    handler = CacheHandler({"bare": {"BACKEND": backend, "LOCATION": test_settings.REDIS_URL}})
    with pytest.raises(RuntimeError, match="no KEY_PREFIX: it would flush the database"):
        handler["bare"].clear()


def test_the_glob_matches_the_prefix_literally():
    cache = SimpleNamespace(key_prefix="t1*[a]?", key_func=ownkeys.default_key_func)
    assert ownkeys.pattern(cache) == r"t1\*\[a\]\?:*"


@pytest.mark.skipif(CACHE != "memcached", reason="the memcached combination's server")
def test_memcached_is_the_runs_own_server():
    location = caches["default"]._servers
    assert location == [test_settings.MEMCACHED]
    assert test_settings.MEMCACHED != "127.0.0.1:11211"
