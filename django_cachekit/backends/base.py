"""The store that works with any Django cache backend."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache


def fresh_version() -> int:
    # Random and far from 0 and 1: a version key that was evicted and created
    # again must never match a stamp taken before.
    return secrets.randbits(62) + 2


@dataclass
class Expect:
    """A condition on a tag version for a conditional store.

    ``version`` must be the current value; with ``create`` the key must be
    absent and is created with ``version``.
    """

    key: str
    version: int
    create: bool = False


@dataclass
class Write:
    """An entry stored if every expectation holds; if one does not, the
    ``otherwise`` version keys are incremented instead."""

    key: str
    value: bytes
    timeout: int | None
    expect: Sequence[Expect]
    otherwise: Sequence[str] = ()


def _marked(value: Any) -> bool:
    # A count of writers; anything else (a value of another type) marks nothing.
    return type(value) is int and value > 0


class PatternUnsupported(NotImplementedError):
    pass


class Store:
    """Tag versions and entries on any Django cache, through its public API."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def cache(self) -> BaseCache:
        return caches[self.alias]

    def describe(self) -> str:
        backend = type(self.cache)
        return f"{backend.__module__}.{backend.__qualname__}"

    def fetch(
        self, keys: Sequence[str], version_keys: Sequence[str], mark_keys: Sequence[str] = ()
    ) -> tuple[list[Any], list[int | None], list[bool]]:
        """Entries for ``keys``, versions for ``version_keys`` and whether each of
        ``mark_keys`` says a write is being committed, in one round trip."""
        found = self.cache.get_many([*keys, *version_keys, *mark_keys])
        entries = [found.get(k) for k in keys]
        versions = [v if isinstance(v, int) else None for v in (found.get(k) for k in version_keys)]
        return entries, versions, [_marked(found.get(k)) for k in mark_keys]

    def mark(self, mark_keys: Sequence[str], token: str, bound: float, wait: bool = True) -> None:
        """Say that writes of these tags are being committed, for at most ``bound`` seconds.

        With ``wait=False`` a store may send the marks and read the reply later,
        at ``settle()`` or before its next command.

        Here a mark is a count of writers that expires ``bound`` seconds after
        its first writer marked it (``incr`` keeps a key's expiry); the Redis
        store keeps a deadline per writer instead.
        """
        cache = self.cache
        timeout = max(1, math.ceil(bound))
        for key in mark_keys:
            if not cache.add(key, 1, timeout):
                try:
                    cache.incr(key)
                except ValueError:  # expired in between
                    cache.add(key, 1, timeout)

    def settle(self) -> None:
        """Read the replies of what ``mark(wait=False)`` sent."""

    def unmark(self, mark_keys: Sequence[str], token: str) -> None:
        cache = self.cache
        for key in mark_keys:
            try:
                cache.decr(key)
            except ValueError:  # expired: its writers are past their bound
                pass

    def ensure(self, version_keys: Sequence[str], timeout: int) -> list[int | None]:
        """Create missing version keys at fresh values; return the current versions."""
        cache = self.cache
        for key in version_keys:
            cache.add(key, fresh_version(), timeout)
        found = cache.get_many(list(version_keys))
        return [v if isinstance(v, int) else None for v in (found.get(k) for k in version_keys)]

    def set(self, key: str, value: bytes, timeout: int | None) -> None:
        self.cache.set(key, value, timeout)

    def set_many(self, items: dict[str, bytes], timeout: int | None) -> None:
        self.cache.set_many(items, timeout)

    def delete_many(self, keys: Sequence[str]) -> None:
        self.cache.delete_many(list(keys))

    def bump(
        self,
        version_keys: Sequence[str],
        timeout: int,
        writes: Sequence[Write] = (),
        unmark: tuple[str, Sequence[str]] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> int:
        """Increment existing versions, then store each write whose expectations hold,
        then lift the marks ``unmark`` (a token and its mark keys) set.

        With ``failed``, a store may send the bump without waiting for its reply
        and tell ``failed`` later if it did not take effect; the return value is
        then 0. Callers pass it only when every tag bumped is marked, so that
        no reader trusts what the bump retires before it runs.

        A missing version key is left missing: no entry can be stamped with it,
        and the next reader creates it at a fresh value. Returns how many writes
        were stored.
        """
        cache = self.cache
        for key in version_keys:
            try:
                cache.incr(key)
            except ValueError:
                pass
        stored = 0
        for write in writes:
            current = cache.get_many([e.key for e in write.expect if not e.create])
            if any(not e.create and current.get(e.key) != e.version for e in write.expect) or not all(
                cache.add(e.key, e.version, timeout) for e in write.expect if e.create
            ):
                for key in write.otherwise:
                    try:
                        cache.incr(key)
                    except ValueError:
                        pass
                continue
            cache.set(write.key, write.value, write.timeout)
            stored += 1
        if unmark is not None:
            self.unmark(unmark[1], unmark[0])
        return stored

    def ttls(self, keys: Sequence[str]) -> list[float | None]:
        """Seconds each key has left (``inf``: no expiry, ``0``: absent), None where the cache cannot tell."""
        cache = self.cache
        if not isinstance(cache, LocMemCache):
            return [None] * len(keys)
        expiries = cache._expire_info  # type: ignore[attr-defined]
        now = time.time()
        out: list[float | None] = []
        for key in keys:
            made = cache.make_and_validate_key(key)
            if made not in expiries:
                out.append(0.0)
            else:
                expiry = expiries[made]
                out.append(math.inf if expiry is None else max(expiry - now, 0.0))
        return out

    def touch_many(self, items: dict[str, int | None]) -> int:
        """Give each present key a new timeout; returns how many were present."""
        cache = self.cache
        return sum(bool(cache.touch(key, timeout)) for key, timeout in items.items())

    def match_tags(self, pattern: str) -> list[str]:
        """The tags whose version keys exist and whose names match the glob ``pattern``."""
        raise PatternUnsupported(
            f"invalidate_pattern() needs a Redis cache; the cache {self.alias!r} uses {self.describe()}."
        )
