"""The store that works with any Django cache backend."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache

from django_cachekit.stores import raw


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


def _is_version(value: Any) -> bool:
    return type(value) is int and -(2**63) < value < 2**63


def _marked(value: Any) -> bool:
    # A count of writers; anything else (a value of another type) marks nothing.
    return type(value) is int and value > 0


# How long one command may wait on an unresponsive server, unless the cache's OPTIONS say.
DEFAULT_SOCKET_TIMEOUT = 0.2


class PatternUnsupported(NotImplementedError):
    pass


class Store:
    """Tag versions and entries on any Django cache, through its public API."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self._reader: raw.Reader | None = None

    @property
    def cache(self) -> BaseCache:
        return caches[self.alias]

    def read_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values of the present ``keys``, read without unpickling a class where the
        backend allows (see ``raw``): a value that names one reads as ``raw.UNREADABLE``."""
        reader = self._reader
        if reader is None:
            reader = self._reader = raw.reader_for(self.cache) or self._get_many
        return reader(keys)

    def _get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return self.cache.get_many(list(keys))

    def incr(self, key: str, delta: int = 1) -> int:
        """The cache's ``incr``, except that LocMem's (which unpickles the value) first
        deletes a value that is not a count: it then raises ``ValueError``, as for a missing key."""
        cache = self.cache
        if isinstance(cache, LocMemCache) and type(self.read(key)) is not int:
            cache.delete(key)
        return int(cache.incr(key, delta))

    def read(self, key: str) -> Any:
        return self.read_many([key]).get(key)

    def describe(self) -> str:
        backend = type(self.cache)
        return f"{backend.__module__}.{backend.__qualname__}"

    def fetch(
        self, keys: Sequence[str], version_keys: Sequence[str], mark_keys: Sequence[str] = ()
    ) -> tuple[list[Any], list[int | None], list[bool]]:
        """Entries for ``keys``, versions for ``version_keys`` and whether each of
        ``mark_keys`` says a write is being committed, in one round trip."""
        found = self.read_many([*keys, *version_keys, *mark_keys])
        entries = [found.get(k) for k in keys]
        versions = [v if _is_version(v) else None for v in (found.get(k) for k in version_keys)]
        return entries, versions, [_marked(found.get(k)) for k in mark_keys]

    def unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the cache cannot be reached (what the breaker counts),
        rather than that it refused this call (a key, a value, a full cache)."""
        if isinstance(exc, OSError):  # sockets: refused, reset, timed out
            return True
        name = type(exc).__name__
        return any(word in name for word in ("Connection", "Timeout", "UnexpectedClose", "ServerDown"))

    def claim(self, key: str, seconds: float) -> bool:
        """Take ``key`` for ``seconds`` unless another process holds it."""
        return bool(self.cache.add(key, 1, max(1, math.ceil(seconds))))

    def mark(
        self,
        mark_keys: Sequence[str],
        token: str,
        bound: float,
        wait: bool = True,
        version_keys: Sequence[str] = (),
    ) -> None:
        """Say that writes of these tags are being committed, for at most ``bound``
        seconds, and bump ``version_keys`` (theirs) as a bump would.

        With ``wait=False`` a store may send the marks and read the reply later,
        at ``settle()`` or before its next command.

        Here a mark is a count of writers that expires ``bound`` seconds after
        its first writer marked it (``incr`` keeps a key's expiry); the Redis
        store keeps a deadline per writer instead.
        """
        cache = self.cache
        timeout = max(1, math.ceil(bound))
        for key in version_keys:
            self._incr(key)
        for key in mark_keys:
            if not cache.add(key, 1, timeout):
                try:
                    self.incr(key)
                except ValueError:  # expired in between
                    cache.add(key, 1, timeout)
                except Exception:
                    if _is_version(self.read(key)):
                        raise
                    cache.set(key, 1, timeout)  # what was there counted no writer

    def settle(self) -> None:
        """Read the replies of what ``mark(wait=False)`` sent."""

    def unmark(self, mark_keys: Sequence[str], token: str) -> None:
        cache = self.cache
        for key in mark_keys:
            try:
                self.incr(key, -1)
            except ValueError:  # expired: its writers are past their bound
                pass
            except Exception:
                if _is_version(self.read(key)):
                    raise
                cache.delete(key)

    def unmark_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> None:
        """``unmark`` for several writers (a token and its mark keys each)."""
        for token, mark_keys in items:
            self.unmark(mark_keys, token)

    def ensure(
        self, version_keys: Sequence[str], timeout: int, values: Sequence[int] | None = None
    ) -> list[int | None]:
        """Create missing version keys at fresh values; return the current versions.

        ``timeout`` is a version's shortest life. Here versions never expire (a
        cache's own eviction removes them), so they outlive every entry stamped
        with them; the Redis store extends them instead.
        """
        cache = self.cache
        starts = list(values) if values is not None else [fresh_version() for _ in version_keys]
        for key, start in zip(version_keys, starts):
            cache.add(key, start, None)
        found = self.read_many(version_keys)
        out: list[int | None] = []
        for key, start in zip(version_keys, starts):
            value = found.get(key)
            if not _is_version(value):
                # Not a version (another writer's value, a wrong type): a missing one.
                value = start
                cache.set(key, value, None)
            out.append(value)
        return out

    def set(self, key: str, value: bytes, timeout: int | None, version_keys: Sequence[str] = ()) -> None:
        """Store an entry stamped with ``version_keys``, which must live at least as long."""
        self.cache.set(key, value, timeout)

    def set_many(self, items: dict[str, bytes], timeout: int | None, version_keys: Sequence[str] = ()) -> None:
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
            self._incr(key)
        stored = 0
        for write in writes:
            current = self.read_many([e.key for e in write.expect if not e.create])
            if any(not e.create and current.get(e.key) != e.version for e in write.expect) or not all(
                cache.add(e.key, e.version, None) for e in write.expect if e.create
            ):
                for key in write.otherwise:
                    self._incr(key)
                continue
            cache.set(write.key, write.value, write.timeout)
            stored += 1
        if unmark is not None:
            self.unmark(unmark[1], unmark[0])
        return stored

    def _incr(self, key: str) -> None:
        """Increment a version; a missing one stays missing, and what is not a version is deleted."""
        cache = self.cache
        try:
            self.incr(key)
        except ValueError:  # missing
            pass
        except Exception:
            # A value incr cannot take (the backend's own error): if the key holds
            # something other than a version, it is one that is missing.
            if _is_version(self.read(key)):
                raise
            cache.delete(key)

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

    def match_tags(self, pattern: str, version_key: Callable[[str], str]) -> list[str]:
        """The tags whose version keys (``version_key(tag)``) exist and whose names match the glob ``pattern``."""
        raise PatternUnsupported(
            f"invalidate_pattern() needs a Redis cache; the cache {self.alias!r} uses {self.describe()}."
        )

    # -- totals: counters shared by every process (the metrics layer's) ------------------------

    def add_totals(
        self, group: str, counts: dict[str, int], largest: dict[str, dict[str, int]], keep: int, ttl: int
    ) -> None:
        """Add ``counts`` (field -> n) to the counters of ``group``; merge each of ``largest``
        (name -> {member: score}) into the ``keep`` highest-scored members kept under that name.
        ``ttl`` bounds how long totals nobody adds to are kept where the cache can tell."""
        cache = self.cache
        fields = set(counts) | {f"{name}|store" for name in largest}
        index_key = f"{group}index"
        index = _list(self.read(index_key))
        if not fields.issubset(index):  # the first add of a field, or the totals were cleared
            cache.set(index_key, sorted(fields.union(index)), None)
        for field, n in counts.items():
            key = _counter_key(group, field)
            try:
                self.incr(key, n)
            except ValueError:  # no counter yet
                if not cache.add(key, n, None):
                    self.incr(key, n)
        if largest:
            kept = _largest(self.read(f"{group}big"))
            for name, members in largest.items():
                merge_largest(kept.setdefault(name, {}), members, keep)
            cache.set(f"{group}big", kept, None)

    def read_totals(self, group: str, keep: int) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        """``(counts, largest)`` of ``group``, as ``add_totals`` left them."""
        fields = _list(self.read(f"{group}index"))
        by_key = {_counter_key(group, field): field for field in fields}
        counts: dict[str, int] = {}
        for key, n in self.read_many(list(by_key)).items():
            if type(n) is int:
                counts[by_key[key]] = counts.get(by_key[key], 0) + n
        return counts, _largest(self.read(f"{group}big"))

    def clear_totals(self, group: str) -> None:
        cache = self.cache
        fields = _list(self.read(f"{group}index"))
        cache.delete_many([*(_counter_key(group, field) for field in fields), f"{group}index", f"{group}big"])

    # -- plain records: short text (the HTTP layer's Last-Modified seconds), never an entry ------

    def plain_get_many(self, keys: Sequence[str]) -> list[str | None]:
        """The text stored under each key by ``plain_add``/``plain_set``; None where the
        key is missing or holds anything else."""
        found = self.read_many(keys)
        return [_text(found.get(k)) for k in keys]

    def plain_add(self, key: str, value: str, timeout: int | None) -> bool:
        """Store ``value`` unless ``key`` exists; whether it was stored."""
        return bool(self.cache.add(key, value, timeout))

    def plain_set(self, key: str, value: str, timeout: int | None) -> None:
        self.cache.set(key, value, timeout)

    def plain_incr(self, key: str, timeout: int | None) -> int:
        """Add 1 to the count under ``key`` (read back by ``plain_get_many`` as decimal text),
        created at 0 for ``timeout`` seconds if missing; returns the new count."""
        cache = self.cache
        cache.add(key, 0, timeout)
        try:
            return self.incr(key)
        except ValueError:  # expired in between, or not a count
            cache.add(key, 1, timeout)
            return 1


def _list(value: Any) -> list[Any]:
    return value if type(value) is list else []


def _largest(value: Any) -> dict[str, dict[str, int]]:
    return value if type(value) is dict else {}


def _text(value: Any) -> str | None:
    # Text, or a count (a plain_incr counter): anything else is no record.
    if type(value) is str:
        return value
    return str(value) if type(value) is int else None


def _counter_key(group: str, field: str) -> str:
    return f"{group}c:{hashlib.blake2b(field.encode(), digest_size=10).hexdigest()}"


def merge_largest(into: dict[str, int], members: dict[str, int], keep: int) -> None:
    """Merge ``members`` into ``into``, keeping the ``keep`` highest scores."""
    for member, n in members.items():
        if n > into.get(member, 0):
            into[member] = n
    for member in sorted(into, key=into.__getitem__)[: max(len(into) - keep, 0)]:
        del into[member]
