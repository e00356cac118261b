"""Stores: how django-cachekit talks to a Django cache alias.

``base.Store`` works with every Django cache backend through the public cache
API. ``redis.RedisStore`` talks to Redis directly (one round trip per read, Lua
scripts for bumps) for django-redis and Django's own ``RedisCache``; it means
the same thing, only faster.
"""

from __future__ import annotations

import threading

from django.core.cache import caches

from django_cachekit.stores.base import DEFAULT_SOCKET_TIMEOUT, Store

_stores: dict[tuple[str, float], Store] = {}
_lock = threading.Lock()


def get_store(alias: str, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT) -> Store:
    """The store driving the cache ``alias``; ``socket_timeout`` bounds each command of its own
    connections where the cache's OPTIONS set no timeout."""
    key = (alias, socket_timeout)
    try:
        return _stores[key]
    except KeyError:
        pass
    with _lock:
        if key not in _stores:
            _stores[key] = _make_store(alias, socket_timeout)
        return _stores[key]


def _make_store(alias: str, socket_timeout: float) -> Store:
    from django_cachekit.stores.redis import redis_client_for

    cache = caches[alias]
    client = redis_client_for(cache)
    if client is not None:
        from django_cachekit.stores.redis import RedisStore

        return RedisStore(alias, client, socket_timeout)
    return Store(alias)


def reset() -> None:
    with _lock:
        _stores.clear()
