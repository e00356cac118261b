"""Reading a Django cache's values without letting them run code.

Django's backends unpickle what they read: whoever can write to the cache
server chooses what ``pickle.loads`` runs. django-cachekit writes entries as
signed bytes and its records as numbers, text and lists of them, none of which
needs a class to load, so here values are read with an unpickler that finds
no class at all: what names one is ``UNREADABLE``, and never runs.

LocMem is read from its dict, Memcached (pymemcache) through a client of
django-cachekit's own with that unpickler. Other backends (pylibmc,
django-redis's shard and herd clients) are read through their own API: their
clients unpickle before anything can be checked. The Redis store reads raw
bytes and needs none of this.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends.locmem import LocMemCache


class _Unreadable:
    """What was read where a value names a class: not a value django-cachekit writes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Any = _Unreadable()


class _DataOnly(pickle.Unpickler):
    # Without a class or a function nothing can be called: bytes, text, numbers, containers.
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data")


def data_only(pickled: bytes) -> Any:
    """The value pickled in ``pickled`` if it needs no class to load, else ``UNREADABLE``."""
    try:
        return _DataOnly(io.BytesIO(pickled)).load()
    except Exception:  # a class, or not a pickle at all
        return UNREADABLE


Reader = Callable[[Sequence[str]], dict[str, Any]]


def reader_for(cache: BaseCache) -> Reader | None:
    """How to read ``cache`` without unpickling classes (key -> value of the present keys),
    or None where only the cache's own ``get_many`` can."""
    if isinstance(cache, LocMemCache):
        return _locmem_reader(cache)
    module = type(cache).__module__
    if module == "django.core.cache.backends.memcached" and type(cache).__name__ == "PyMemcacheCache":
        return _PyMemcacheReader(cache)
    return None


def _locmem_reader(cache: LocMemCache) -> Reader:
    def read(keys: Sequence[str]) -> dict[str, Any]:
        made = {cache.make_and_validate_key(key): key for key in keys}
        found: dict[str, Any] = {}
        with cache._lock:  # type: ignore[attr-defined]
            stored = cache._cache  # type: ignore[attr-defined]
            for name, key in made.items():
                pickled = stored.get(name)
                if pickled is None or cache._has_expired(name):  # type: ignore[attr-defined]
                    continue
                stored.move_to_end(name, last=False)  # as LocMem's get does: recently used
                found[key] = data_only(pickled)
        return found

    return read


class _DataOnlySerde:
    """pymemcache's pickle serde, but for what it unpickles."""

    def __init__(self, serde: Any) -> None:
        self.serde = serde

    def serialize(self, key: Any, value: Any) -> Any:
        return self.serde.serialize(key, value)

    def deserialize(self, key: Any, value: bytes, flags: int) -> Any:
        from pymemcache.serde import FLAG_PICKLE

        if flags & FLAG_PICKLE:
            return data_only(value)
        return self.serde.deserialize(key, value, flags)


class _PyMemcacheReader:
    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache
        self.local = threading.local()  # the cache's own clients are one per thread too

    def _client(self) -> Any:
        client = getattr(self.local, "client", None)
        if client is None:
            cache: Any = self.cache
            options = {**cache._options, "serde": _DataOnlySerde(cache._options["serde"])}
            client = self.local.client = cache._class(cache.client_servers, **options)
        return client

    def __call__(self, keys: Sequence[str]) -> dict[str, Any]:
        made = {self.cache.make_and_validate_key(key): key for key in keys}
        if not made:
            return {}
        return {made[name]: value for name, value in self._client().get_multi(list(made)).items()}
