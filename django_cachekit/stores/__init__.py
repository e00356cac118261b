"""Stores: how django-cachekit talks to a Django cache alias.

``base.Store`` works with every Django cache backend through the public cache
API. ``redis.RedisStore`` talks to Redis directly (one round trip per read, Lua
scripts for bumps) for django-redis and Django's own ``RedisCache``; it means
the same thing, only faster.
"""

from __future__ import annotations

import threading

from django.core.cache import caches

from django_cachekit.stores.base import Store

_stores: dict[str, Store] = {}
_lock = threading.Lock()


def get_store(alias: str) -> Store:
    try:
        return _stores[alias]
    except KeyError:
        pass
    with _lock:
        if alias not in _stores:
            _stores[alias] = _make_store(alias)
        return _stores[alias]


def _make_store(alias: str) -> Store:
    from django_cachekit.stores.redis import redis_client_for

    cache = caches[alias]
    client = redis_client_for(cache)
    if client is not None:
        from django_cachekit.stores.redis import RedisStore

        return RedisStore(alias, client)
    return Store(alias)


def reset() -> None:
    with _lock:
        _stores.clear()
