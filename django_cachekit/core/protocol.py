"""The versioned-tag protocol: read an entry with its tags' versions, store it
stamped with the versions read before the database was queried, bump tags.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django_cachekit.core import codec, events, keys, signals
from django_cachekit.core.breaker import Breaker
from django_cachekit.core.settings import conf
from django_cachekit.core.signals import cache_hit, cache_miss
from django_cachekit.memo import resettable
from django_cachekit.stores import get_store
from django_cachekit.stores import reset as reset_stores
from django_cachekit.stores.base import Store, Write

logger = logging.getLogger("django_cachekit")

# Seconds between two warnings about rejected entries: a cache full of them logs a line a minute, not one per read.
REJECTED_LOG_INTERVAL = 60.0
_rejected_logged: list[float] = [-REJECTED_LOG_INTERVAL, 0]  # when the last warning was logged, rejections since

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


Repair = Callable[["Runtime"], bool]
CLOCK_TIMEOUT = 10 * 365 * 24 * 3600


class Runtime:
    """A cache alias as django-cachekit uses it: its store, its circuit breaker,
    and what this process owes it.

    A bump that could not be delivered is owed, tag by tag: before this process
    trusts the cache again it delivers them (or makes those versions missing).
    ``repairs`` are called every ``PENDING_POLL`` seconds by lookups: the
    invalidation layer looks there for what other processes could not deliver.
    """

    repairs: list[Repair] = []

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.breaker = Breaker()
        self._lock = threading.Lock()
        self.owed: dict[str, None] = {}  # tags whose bump is not delivered yet
        self.retire_all = False  # too many owed, or the store's versions moved back: bump the global tag
        # Marks whose lifting was lost with their bump: lifted once the cache answers
        # (a server that only paused may have set them late).
        self.unlifted: list[tuple[str, list[str]]] = []
        self.next_poll = 0.0
        self._clock = threading.local()
        self.clock_key = keys.clock_key()
        self._last = threading.local()  # how this thread's last failed call failed

    def refused(self) -> bool:
        """Whether this thread's last failed call was refused by a cache that answered
        (a full Redis), rather than not answered: then a delete may still get through."""
        return getattr(self._last, "refused", False)

    def owed_tags(self) -> list[str]:
        with self._lock:
            return [*self.owed, *([keys.GLOBAL_TAG] if self.retire_all else ())]

    def delivered(self, tags: Sequence[str]) -> None:
        with self._lock:
            for tag in tags:
                self.owed.pop(tag, None)
            if keys.GLOBAL_TAG in tags:
                self.retire_all = False

    def clock_holds(self, value: int | None) -> bool:
        """Whether the store's clock (advanced by every bump) is where this thread
        last saw it or later. A clock that went back (a restart from an older
        snapshot, a failover to a replica that missed bumps) may make old entries
        valid again: every entry is retired before the cache is trusted again. A
        missing clock (a new, flushed or restarted-empty cache) is created from
        the time of day, so that it starts past any clock it replaces."""
        local = self._clock
        seen = getattr(local, "seen", None)
        if value is None:
            local.seen = None
            start = time.time_ns() // 1000 * 1024
            self.call(self.store.ensure, [self.clock_key], CLOCK_TIMEOUT, [start])
            return True
        if seen is None or value >= seen:
            local.seen = value
            return True
        logger.warning(
            "django-cachekit: the cache's versions moved back (%s after %s): every entry is retired", value, seen
        )
        local.seen = None
        with self._lock:
            self.retire_all = True
        self.repair()
        return False

    @property
    def store(self) -> Store:
        return get_store(self.alias, conf.SOCKET_TIMEOUT)

    @property
    def lost_invalidations(self) -> bool:
        return bool(self.owed or self.retire_all)

    def call(self, fn: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        """Run a store call: ``(True, result)``, or ``(False, None)`` after counting the failure.

        Only an unreachable cache counts toward the breaker: a key or value the
        cache refuses is the caller's error, logged and counted as an error.
        """
        try:
            result = fn(*args)
        except Exception as exc:  # any cache client error: the database stays the source of truth
            events.record("error", "cache")
            unreachable = self.store.unreachable(exc)
            self._last.refused = not unreachable
            if unreachable:
                self.breaker.failure(exc)
            else:
                logger.warning("django-cachekit: the cache refused a call: %r", exc)
            return False, None
        self.breaker.success()
        return True, result

    def usable(self) -> bool:
        if not self.breaker.allow():
            return False
        if (self.owed or self.retire_all or self.unlifted) and not self.repair():
            return False
        if self.repairs:
            now = time.monotonic()
            if now >= self.next_poll:
                self.next_poll = now + conf.PENDING_POLL
                for repair in self.repairs:
                    if not repair(self):
                        self.next_poll = now  # try again at the next lookup
                        return False
        return True

    def retire(self, tags: Sequence[str]) -> bool:
        """Bump ``tags``, or else make their versions missing (a full cache refuses
        a bump but not a delete); whether either was done."""
        vkeys = keys.version_keys(tags)
        if self.call(self.store.bump, [*vkeys, self.clock_key], conf.TAG_TIMEOUT)[0]:
            return True
        return self.refused() and self.call(self.store.delete_many, vkeys)[0]

    def repair(self) -> bool:
        """Deliver what this process owes the cache; False while it cannot."""
        tags = self.owed_tags()
        if tags:
            if not self.retire(tags):
                return False
            self.delivered(tags)
            logger.warning("django-cachekit: %d invalidation(s) delivered late", len(tags))
        with self._lock:
            unlifted, self.unlifted = self.unlifted, []
        if unlifted and not self.call(self.store.unmark_many, unlifted)[0]:
            with self._lock:
                self.unlifted[:0] = unlifted
            return False
        return True

    def lost(self, tags: Sequence[str], unmark: tuple[str, list[str]] | None = None) -> None:
        """A bump of ``tags`` could not be delivered: owe it until the cache answers.

        Its marks (``unmark``) are lifted then too (at most the last 100; the
        others expire within ``WRITE_MARK_TIMEOUT``, only keeping those tags
        from being cached meanwhile).
        """
        with self._lock:
            if len(self.owed) + len(tags) > 10_000:
                self.retire_all = True
                self.owed.clear()
            elif not self.retire_all:
                self.owed.update(dict.fromkeys(tags))
            if unmark is not None:
                self.unlifted.append(unmark)
                del self.unlifted[:-100]


_runtimes: dict[str, Runtime] = {}
_lock = threading.Lock()


def runtime() -> Runtime:
    alias = conf.CACHE_ALIAS
    try:
        return _runtimes[alias]
    except KeyError:
        with _lock:
            return _runtimes.setdefault(alias, Runtime(alias))


@resettable
def reset() -> None:
    with _lock:
        _runtimes.clear()
    _rejected_logged[:] = [-REJECTED_LOG_INTERVAL, 0]


resettable(reset_stores)  # their connections' settings come from the settings


def rejected(namespace: str, key: str, exc: BaseException) -> None:
    """An entry not signed for its key by this site: a miss, counted and logged, never unpickled."""
    events.record("rejected", namespace)
    if cache_miss.receivers:
        signals.miss(namespace, key, "rejected")
    now = time.monotonic()
    last, unlogged = _rejected_logged
    if now - last < REJECTED_LOG_INTERVAL:
        _rejected_logged[1] = unlogged + 1
        return
    _rejected_logged[:] = [now, 0]
    logger.warning(
        "django-cachekit: rejected the entry %s in %s, treated as a miss and never unpickled: %s%s",
        key,
        namespace,
        exc,
        f" ({unlogged} more rejected since the last warning)" if unlogged else "",
    )


def _validate(raw: Any, required: Sequence[str], versions: Versions, namespace: str, key: str) -> tuple[bool, Any]:
    """Whether ``raw`` is a current entry: it carries every ``required`` tag (and
    maybe others that were fetched), each at the version it was stamped with."""
    if raw is None:
        events.record("miss", namespace)
        if cache_miss.receivers:
            signals.miss(namespace, key, "miss")
        return False, None
    try:
        entry_tags, entry_stamp, payload = codec.decode(key, raw)
        valid = entry_tags[: len(required)] == required and entry_stamp == tuple(versions[t] for t in entry_tags)
    except codec.RejectedEntry as exc:
        rejected(namespace, key, exc)
        return False, None
    except codec.CorruptEntry as exc:
        logger.warning("django-cachekit: unreadable entry in %s treated as a miss: %s", namespace, exc)
        events.record("corrupt", namespace)
        if cache_miss.receivers:
            signals.miss(namespace, key, "corrupt")
        return False, None
    except (KeyError, TypeError):  # stamped with tags this read did not fetch: not its entry
        valid = False
    if valid:
        events.record("hit", namespace)
        if cache_hit.receivers:
            signals.hit(namespace, key)
        return True, payload
    events.record("stale", namespace)
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
        events.record("bypass", namespace)
        return False, None, None
    if vkeys is None:
        vkeys = keys.version_keys(tags)
    needed = tags if required is None else tags[:required]
    fetched = _fetch(rt, [key], vkeys, keys.mark_keys(needed))
    if fetched is None:
        return False, None, None
    entries, found, marks = fetched
    if True in marks:
        # A write of one of its tags is being committed: neither the entry nor
        # what the database returns now may be trusted past the commit.
        events.record("bypass", namespace)
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
        events.record("bypass", namespace, len(items))
        return [(False, None, None)] * len(items)
    all_tags = list(dict.fromkeys(tag for _, tags in items for tag in tags))
    vkeys = keys.version_keys(all_tags)
    fetched = _fetch(rt, [key for key, _ in items], vkeys, keys.mark_keys(all_tags))
    if fetched is None:
        return [(False, None, None)] * len(items)
    entries, found, marks = fetched
    if True in marks:  # see lookup()
        events.record("bypass", namespace, len(items))
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


def _fetch(
    rt: Runtime, entry_keys: list[str], vkeys: list[str], mark_keys: list[str]
) -> tuple[list[Any], list[int | None], list[bool]] | None:
    """``store.fetch`` with the store's clock; None if the cache failed or its
    versions moved back (then nothing read now is trusted)."""
    clock_key = rt.clock_key
    _, fetched = rt.call(rt.store.fetch, entry_keys, [*vkeys, clock_key], mark_keys)
    if fetched is None:
        return None
    found = fetched[1]
    clock = found.pop()
    local = rt._clock
    seen = getattr(local, "seen", None)
    if clock is not None and (seen is None or clock >= seen):  # the common case, inlined
        local.seen = clock
        return fetched
    if rt.clock_holds(clock):
        return fetched
    if not rt.lost_invalidations:  # everything was retired: what the cache holds now is current
        _, fetched = rt.call(rt.store.fetch, entry_keys, [*vkeys, clock_key], mark_keys)
        if fetched is not None and rt.clock_holds(fetched[1].pop()):
            return fetched
    events.record("bypass", "cache")
    return None


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
    fetched = _fetch(rt, [], vkeys, keys.mark_keys(tags))
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
    value = codec.encode(key, tags, stamp(tags, versions), payload)
    if rt.call(rt.store.set, key, value, timeout, keys.version_keys(tags))[0]:
        events.record("store", namespace)
        events.sized(namespace, key, len(value))
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
    values = {key: codec.encode(key, tags, stamp(tags, versions), payload) for key, tags, versions, payload in items}
    vkeys = keys.version_keys(dict.fromkeys(tag for _, tags, _, _ in items for tag in tags))
    if rt.call(rt.store.set_many, values, timeout, vkeys)[0]:
        events.record("store", namespace, len(items))
        for key, value in values.items():
            events.sized(namespace, key, len(value))
        if tally is not None:
            tally.stored.update(dict.fromkeys(values, timeout))


def delete(keys_: Sequence[str]) -> None:
    rt = runtime()
    if rt.breaker.allow():
        rt.call(rt.store.delete_many, keys_)


def new_token() -> str:
    """A writer's name for its marks (see ``mark``)."""
    return secrets.token_hex(8)


def mark(tags: Sequence[str], token: str, wait: bool = True) -> bool:
    """Say that a write of ``tags`` is about to be committed, before it is.

    Until the bump that follows the commit lifts it (or ``WRITE_MARK_TIMEOUT``
    passes, for a writer that died), readers of these tags in every process
    neither serve entries nor store what they read; and marking bumps the tags
    too, so the entries stored before it are retired even if the bump after
    the commit is lost. A mark that may not have been set (the cache timed
    out) is lifted like one that was: a server that only paused may still
    apply it. With ``wait=False`` the marks may be sent without waiting for the
    reply: ``settle()`` must then be called before what they protect is
    written. False when the marks are known not to be set (with ``wait``).
    """
    if not tags:
        return True
    rt = runtime()
    if not rt.breaker.allow():
        return False
    vkeys = keys.version_keys(tags)
    ok, _ = rt.call(rt.store.mark, keys.mark_keys(tags), token, conf.WRITE_MARK_TIMEOUT, wait, [*vkeys, rt.clock_key])
    if not ok and rt.refused():
        rt.call(rt.store.delete_many, vkeys)  # a full cache: what it cannot mark, nobody reads as current
    return ok


def settle() -> bool:
    """Wait until the marks sent by ``mark(wait=False)`` are set; False if they may not be."""
    rt = runtime()
    return rt.call(rt.store.settle)[0]


def bump(
    tags: Sequence[str],
    writes: Sequence[Write] = (),
    unmark: tuple[str, Sequence[str]] | None = None,
    marked: bool = True,
) -> None:
    """Invalidate ``tags`` now, then store ``writes`` whose expectations hold,
    then lift the marks of ``unmark`` (a token and the tags it marked);
    ``marked=False`` says those marks may not all be set.

    A bump is never dropped: when the cache cannot take it (the breaker is
    open, the call fails), this process owes it and delivers it before it
    trusts the cache again; a full cache gets the versions deleted instead.
    """
    if not tags and not writes and unmark is None:
        return
    rt = runtime()
    lifted = (unmark[0], keys.mark_keys(unmark[1])) if unmark is not None else None
    if not rt.breaker.allow():
        rt.lost(tags, lifted)
        return
    # What this process owes from earlier failures rides along: a writer that never reads delivers it too.
    owed = rt.owed_tags() if rt.owed or rt.retire_all else []
    vkeys = keys.version_keys([*tags, *owed])
    failed = None
    # While every tag it bumps is marked, no reader trusts what the bump retires
    # until it has run: its reply need not be waited for. (A write's fallback
    # tags are bumped only when another writer reached the row, whose own marks
    # and bump cover what it changed.)
    if marked and not owed and unmark is not None and set(keys.version_keys(unmark[1])).issuperset(vkeys):

        def failed(exc: BaseException) -> None:
            events.record("error", "cache")
            unreachable = rt.store.unreachable(exc)
            if unreachable:
                rt.breaker.failure(exc)
            if unreachable or not rt.call(rt.store.delete_many, vkeys)[0]:
                rt.lost(tags, lifted)

    clocked = [*vkeys, rt.clock_key] if vkeys else vkeys
    if not rt.call(rt.store.bump, clocked, conf.TAG_TIMEOUT, writes, lifted, failed)[0]:
        if not (vkeys and rt.refused() and rt.call(rt.store.delete_many, vkeys)[0]):
            rt.lost(tags, lifted)
        return
    if owed:
        rt.delivered(owed)
    events.invalidated(tags)
