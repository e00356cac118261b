"""The versioned-tag protocol: read an entry with its tags' versions, store it
stamped with the versions read before the database was queried, bump tags.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from . import codec, keys, metrics, signals
from .backends import get_store
from .backends.base import Store, Write
from .breaker import Breaker
from .conf import conf
from .signals import cache_hit, cache_invalidated, cache_miss

logger = logging.getLogger("django_cachekit")

T = TypeVar("T")
Versions = dict[str, int]
Found = tuple[bool, Any, "Versions | None"]

_disabled: ContextVar[bool] = ContextVar("django_cachekit_disabled", default=False)


@contextmanager
def cache_disabled() -> Iterator[None]:
    """Read from the database and store nothing inside the block; writes still invalidate."""
    token = _disabled.set(True)
    try:
        yield
    finally:
        _disabled.reset(token)


def reading() -> bool:
    return conf.ENABLED and not _disabled.get()


class Tally:
    """What lookups and stores did inside ``tallying()``: how cache warming counts.

    ``hits`` are the keys found valid, ``stored`` the keys stored with their
    timeout; with ``dry`` nothing is stored, only counted.
    """

    def __init__(self, dry: bool = False) -> None:
        self.dry = dry
        self.hits: dict[str, None] = {}
        self.stored: dict[str, int | None] = {}


_tally: ContextVar[Tally | None] = ContextVar("django_cachekit_tally", default=None)


@contextmanager
def tallying(dry: bool = False) -> Iterator[Tally]:
    tally = Tally(dry)
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


class Runtime:
    """A cache alias as django-cachekit uses it: its store and its circuit breaker."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.breaker = Breaker()
        # Marks whose lifting failed (their bump was lost): lifted when the cache is back.
        self.unlifted: list[tuple[str, list[str]]] = []

    @property
    def store(self) -> Store:
        return get_store(self.alias)

    def call(self, fn: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        """Run a store call: ``(True, result)``, or ``(False, None)`` after counting the failure."""
        try:
            result = fn(*args)
        except Exception as exc:  # any cache client error: the database stays the source of truth
            metrics.record("error", "cache")
            self.breaker.failure(exc)
            return False, None
        self.breaker.success()
        return True, result

    def usable(self) -> bool:
        breaker = self.breaker
        if not breaker.allow():
            return False
        if breaker.lost_invalidations:
            # Bumps were lost while the cache was unreachable: retire every entry first.
            if not self.call(self.store.bump, keys.version_keys([keys.GLOBAL_TAG]), conf.TAG_TIMEOUT)[0]:
                return False
            breaker.lost_invalidations = False
            # Every entry is retired now: what those writers marked may be read again.
            while self.unlifted:
                token, mark_keys = self.unlifted.pop()
                if not self.call(self.store.unmark, mark_keys, token)[0]:
                    self.unlifted.append((token, mark_keys))
                    return False
        return True

    def lost(self, unmark: tuple[str, list[str]] | None) -> None:
        """A bump could not be sent: retire everything before the cache is trusted again."""
        self.breaker.lost_invalidations = True
        if unmark is not None and len(self.unlifted) < 1000:
            self.unlifted.append(unmark)


_runtimes: dict[str, Runtime] = {}
_lock = threading.Lock()


def runtime() -> Runtime:
    alias = conf.CACHE_ALIAS
    try:
        return _runtimes[alias]
    except KeyError:
        with _lock:
            return _runtimes.setdefault(alias, Runtime(alias))


def reset() -> None:
    with _lock:
        _runtimes.clear()


def _validate(raw: Any, required: Sequence[str], versions: Versions, namespace: str, key: str) -> tuple[bool, Any]:
    """Whether ``raw`` is a current entry: it carries every ``required`` tag (and
    maybe others that were fetched), each at the version it was stamped with."""
    if raw is None:
        metrics.record("miss", namespace)
        if cache_miss.receivers:
            signals.miss(namespace, key, "miss")
        return False, None
    try:
        entry_tags, entry_stamp, payload = codec.decode(raw)
        valid = entry_tags[: len(required)] == required and entry_stamp == tuple(versions[t] for t in entry_tags)
    except codec.CorruptEntry as exc:
        logger.warning("django-cachekit: unreadable entry in %s treated as a miss: %s", namespace, exc)
        metrics.record("corrupt", namespace)
        if cache_miss.receivers:
            signals.miss(namespace, key, "corrupt")
        return False, None
    except (KeyError, TypeError):  # stamped with tags this read did not fetch: not its entry
        valid = False
    if valid:
        metrics.record("hit", namespace)
        if cache_hit.receivers:
            signals.hit(namespace, key)
        return True, payload
    metrics.record("stale", namespace)
    if cache_miss.receivers:
        signals.miss(namespace, key, "stale")
    return False, None


def lookup(
    key: str, tags: Sequence[str], namespace: str, required: int | None = None, vkeys: list[str] | None = None
) -> Found:
    """``(hit, payload, versions)`` for one entry, in one round trip when versions exist.

    The entry must carry the first ``required`` tags (all by default) and may
    carry more of ``tags``; it is valid when the versions it was stamped with
    equal the current ones. On a miss, ``versions`` holds what to stamp a fresh
    value with, or None when nothing may be stored (the cache is unavailable).
    """
    rt = runtime()
    if not rt.usable():
        metrics.record("bypass", namespace)
        return False, None, None
    if vkeys is None:
        vkeys = keys.version_keys(tags)
    needed = tags if required is None else tags[:required]
    _, fetched = rt.call(rt.store.fetch, [key], vkeys, keys.mark_keys(needed))
    if fetched is None:
        return False, None, None
    entries, found, marks = fetched
    if True in marks:
        # A write of one of its tags is being committed: neither the entry nor
        # what the database returns now may be trusted past the commit.
        metrics.record("bypass", namespace)
        return False, None, None
    versions: Versions = {t: v for t, v in zip(tags, found) if v is not None}
    # An entry may carry fewer tags than were fetched, so a missing version
    # only matters when the entry needs it.
    hit, payload = _validate(entries[0], tuple(tags[:required]), versions, namespace, key)
    if hit and (tally := _tally.get()) is not None:
        tally.hits[key] = None
    if hit or len(versions) == len(tags):
        return hit, payload, versions
    return False, None, _complete(rt, tags, vkeys, found)


def lookup_many(items: Sequence[tuple[str, Sequence[str]]], namespace: str, required: int | None = None) -> list[Found]:
    """``lookup`` for several entries in one round trip (shared tags are read once)."""
    if not items:
        return []
    rt = runtime()
    if not rt.usable():
        metrics.record("bypass", namespace, len(items))
        return [(False, None, None)] * len(items)
    all_tags = list(dict.fromkeys(tag for _, tags in items for tag in tags))
    vkeys = keys.version_keys(all_tags)
    _, fetched = rt.call(rt.store.fetch, [key for key, _ in items], vkeys, keys.mark_keys(all_tags))
    if fetched is None:
        return [(False, None, None)] * len(items)
    entries, found, marks = fetched
    if True in marks:  # see lookup()
        metrics.record("bypass", namespace, len(items))
        return [(False, None, None)] * len(items)
    versions: Versions | None = {t: v for t, v in zip(all_tags, found) if v is not None}
    results = [
        _validate(raw, tuple(tags[:required]), versions, namespace, key)  # type: ignore[arg-type]
        for raw, (key, tags) in zip(entries, items)
    ]
    tally = _tally.get()
    if tally is not None:
        tally.hits.update((key, None) for (key, _), (hit, _) in zip(items, results) if hit)
    if len(versions) < len(all_tags) and not all(hit for hit, _ in results):  # type: ignore[arg-type]
        versions = _complete(rt, all_tags, vkeys, found)
    return [(hit, payload, versions) for hit, payload in results]


def _complete(rt: Runtime, tags: Sequence[str], vkeys: list[str], found: list[int | None]) -> Versions | None:
    """Versions with the missing ones created at fresh values; None if the cache failed."""
    missing = [k for k, v in zip(vkeys, found) if v is None]
    _, created = rt.call(rt.store.ensure, missing, conf.TAG_TIMEOUT)
    if created is None or None in created:
        return None
    filled = dict(zip(missing, created))
    return {t: v if v is not None else filled[k] for t, k, v in zip(tags, vkeys, found)}  # type: ignore[misc]


def versions(tags: Sequence[str]) -> Versions | None:
    """Current versions of ``tags``, creating missing ones; None if the cache is unavailable."""
    rt = runtime()
    if not rt.usable():
        return None
    vkeys = keys.version_keys(tags)
    _, fetched = rt.call(rt.store.fetch, [], vkeys, keys.mark_keys(tags))
    if fetched is None or True in fetched[2]:
        return None
    found = fetched[1]
    if None in found:
        return _complete(rt, tags, vkeys, found)
    return dict(zip(tags, found))  # type: ignore[arg-type]


def stamp(tags: Sequence[str], versions: Versions) -> tuple[int, ...]:
    return tuple(versions[t] for t in tags)


def store(
    key: str, tags: tuple[str, ...], versions: Versions, payload: Any, timeout: int | None, namespace: str
) -> None:
    rt = runtime()
    if not rt.breaker.allow():
        return
    tally = _tally.get()
    if tally is not None and tally.dry:
        tally.stored[key] = timeout
        return
    value = codec.encode(tags, stamp(tags, versions), payload)
    if rt.call(rt.store.set, key, value, timeout)[0]:
        metrics.record("store", namespace)
        metrics.record_size(namespace, key, len(value))
        if tally is not None:
            tally.stored[key] = timeout


def store_many(
    items: Sequence[tuple[str, tuple[str, ...], Versions, Any]], timeout: int | None, namespace: str
) -> None:
    rt = runtime()
    if not items or not rt.breaker.allow():
        return
    tally = _tally.get()
    if tally is not None and tally.dry:
        tally.stored.update((key, timeout) for key, *_ in items)
        return
    values = {key: codec.encode(tags, stamp(tags, versions), payload) for key, tags, versions, payload in items}
    if rt.call(rt.store.set_many, values, timeout)[0]:
        metrics.record("store", namespace, len(items))
        for key, value in values.items():
            metrics.record_size(namespace, key, len(value))
        if tally is not None:
            tally.stored.update(dict.fromkeys(values, timeout))


def delete(keys_: Sequence[str]) -> None:
    rt = runtime()
    if rt.breaker.allow():
        rt.call(rt.store.delete_many, keys_)


def new_token() -> str:
    """A writer's name for its marks (see ``mark``)."""
    return secrets.token_hex(8)


def mark(tags: Sequence[str], token: str, wait: bool = True) -> None:
    """Say that a write of ``tags`` is about to be committed, before it is.

    Until the bump that follows the commit lifts it (or ``WRITE_MARK_TIMEOUT``
    passes, for a writer that died), readers of these tags in every process
    neither serve entries nor store what they read: without it, between the
    commit and the bump, another process could still be served the old row.
    A mark that may not have been set (the cache timed out) is lifted like one
    that was: a server that only paused may still apply it. With
    ``wait=False`` the marks may be sent without waiting for the reply:
    ``settle()`` must then be called before what they protect is written.
    """
    if not tags:
        return
    rt = runtime()
    if rt.breaker.allow():
        rt.call(rt.store.mark, keys.mark_keys(tags), token, conf.WRITE_MARK_TIMEOUT, wait)


def settle() -> None:
    """Wait until the marks sent by ``mark(wait=False)`` are set."""
    rt = runtime()
    rt.call(rt.store.settle)


def bump(tags: Sequence[str], writes: Sequence[Write] = (), unmark: tuple[str, Sequence[str]] | None = None) -> None:
    """Invalidate ``tags`` now, then store ``writes`` whose expectations hold,
    then lift the marks of ``unmark`` (a token and the tags it marked)."""
    if not tags and not writes and unmark is None:
        return
    rt = runtime()
    lifted = (unmark[0], keys.mark_keys(unmark[1])) if unmark is not None else None
    if not rt.breaker.allow():
        rt.lost(lifted)
        return
    # One invalidation per model (or namespace) per bump, whatever the number of its tags.
    grouped = metrics.by_namespace(tags)
    vkeys = keys.version_keys(tags)
    failed = None
    # While every tag it bumps is marked, no reader trusts what the bump retires
    # until it has run: its reply need not be waited for. (A write's fallback
    # tags are bumped only when another writer reached the row, whose own marks
    # and bump cover what it changed.)
    if unmark is not None and set(keys.version_keys(unmark[1])).issuperset(vkeys):

        def failed(exc: BaseException) -> None:
            metrics.record("error", "cache")
            rt.breaker.failure(exc)
            rt.lost(lifted)

    if not rt.call(rt.store.bump, vkeys, conf.TAG_TIMEOUT, writes, lifted, failed)[0]:
        rt.lost(lifted)
        return
    for namespace, bumped in grouped.items():
        metrics.record("invalidation", namespace)
        if cache_invalidated.receivers:
            signals.invalidated(namespace, bumped)
