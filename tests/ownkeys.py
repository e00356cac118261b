"""``clear()`` on a Redis test cache deletes this run's keys only.

django-redis's and Django's ``RedisCache.clear()`` are ``FLUSHDB``: every key of
the database, whoever wrote it. The suite clears its cache around every test, so
in the tests (``install()``, from tests/conftest.py) ``clear()`` instead SCANs the
keys under the cache's ``KEY_PREFIX`` (``<prefix>:<version>:<key>``, Django's
key function) and UNLINKs them. A cache with no prefix, or its own key function,
has no keys of its own to find: ``clear()`` refuses rather than flush the database.

The backend classes keep their module and name, so django-cachekit still sees them
as plain Redis (its fast path). Memcached has no way to delete by prefix: the suite
runs a private server instead (tests/memcachedserver.py).
"""

from __future__ import annotations

import re
from typing import Any

from django.core.cache.backends.base import default_key_func

BATCH = 1000
_GLOB = re.compile(r"([*?\[\]\\])")
_installed: dict[type, Any] = {}


def pattern(cache: Any) -> str:
    """The glob of every key ``cache`` makes: its prefix, a colon, anything."""
    if not cache.key_prefix or cache.key_func is not default_key_func:
        raise RuntimeError(
            f"clear() in the tests deletes the keys under the cache's KEY_PREFIX, and {cache!r} has "
            f"{'no KEY_PREFIX' if not cache.key_prefix else 'its own KEY_FUNCTION'}: it would flush the database"
        )
    return _GLOB.sub(r"\\\1", cache.key_prefix) + ":*"


def delete_own_keys(client: Any, match: str) -> int:
    """UNLINK every key matching ``match``; the number deleted."""
    deleted, batch = 0, []
    for key in client.scan_iter(match=match, count=BATCH):
        batch.append(key)
        if len(batch) == BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def _django_redis_clear(self: Any) -> None:
    from django_redis.client import DefaultClient

    if not isinstance(self.client, DefaultClient):  # a shard or Sentinel client: not what the suite uses
        raise RuntimeError(f"clear() in the tests supports django-redis's DefaultClient, not {self.client!r}")
    delete_own_keys(self.client.get_client(write=True), pattern(self))


def _redis_cache_clear(self: Any) -> bool:
    return bool(delete_own_keys(self._cache.get_client(None, write=True), pattern(self)))


def install() -> None:
    """Make ``clear()`` of both Redis backends delete only the cache's own keys, for this process."""
    import django.core.cache.backends.redis as django_redis_backend
    import django_redis.cache

    for cls, clear in (
        (django_redis.cache.RedisCache, _django_redis_clear),
        (django_redis_backend.RedisCache, _redis_cache_clear),
    ):
        if cls not in _installed:
            _installed[cls] = cls.clear
            cls.clear = clear


def uninstall() -> None:
    while _installed:
        cls, clear = _installed.popitem()
        cls.clear = clear
