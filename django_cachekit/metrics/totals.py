"""The counts of every process, added up in the cache.

Each process counts in memory (``metrics``). A background thread adds what is
new to counters in the cache every ``METRICS_FLUSH_INTERVAL`` seconds and when
the process exits, so a read of the cache never waits for it. On Redis a flush
is one pipeline (``HINCRBY`` per counter, ``ZADD`` for the largest entries);
other caches get ``incr`` (or ``add``) per counter. ``collect()`` reads the
shared totals plus what this process has not flushed yet.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.core.cache import BaseCache

from django_cachekit.core import keys, protocol, signals
from django_cachekit.core.settings import conf
from django_cachekit.metrics import counters
from django_cachekit.stores.redis import RedisStore

logger = logging.getLogger("django_cachekit")

Counts = Counter[tuple[str, str]]
Biggest = dict[str, dict[str, int]]  # namespace -> {key: bytes}

_flush_lock = threading.Lock()  # one flush at a time; collect() and reset() wait for it
_start_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None
_exit_hooked = False
_indexed: set[str] = set()  # counter names this process has put in the shared index


def start() -> None:
    """Start this process's background flush, unless it runs already."""
    global _thread, _exit_hooked
    thread = _thread
    if thread is not None and thread.is_alive():
        return
    with _start_lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_run, name="django-cachekit-metrics", daemon=True)
        _thread.start()
        if not _exit_hooked:
            atexit.register(_flush_at_exit)
            _exit_hooked = True


def wake() -> None:
    """Ask the background thread to flush now rather than at the end of its interval."""
    _wake.set()


def _run() -> None:
    while True:
        _wake.wait(conf.METRICS_FLUSH_INTERVAL)
        _wake.clear()
        try:
            flush()
        except Exception:  # the thread must outlive any surprise
            logger.exception("django-cachekit: metrics flush failed")


def _flush_at_exit() -> None:
    try:
        flush()
    except Exception:  # interpreter shutdown: nothing useful to do with it
        pass


def flush() -> bool:
    """Add this process's new counts to the shared totals; False if they could not be written."""
    if not conf.METRICS:
        return False
    with _flush_lock:
        found = counters.pending()
        _, counts, changed = found
        if not counts and not changed:
            return True
        if not protocol.runtime().breaker.allow():
            return False
        try:
            _shared().add(counts, changed)
        except Exception as exc:  # any cache client error: try again at the next flush
            logger.warning("django-cachekit: could not add metrics to the cache: %r", exc)
            return False
        counters.mark_flushed(found)
        return True


@dataclass
class Report:
    counts: dict[str, dict[str, int]]  # namespace -> event -> count
    biggest: dict[str, list[tuple[int, str]]]  # namespace -> [(bytes, key)], largest first
    shared: bool  # whether the counts include other processes'

    def rows(self) -> list[dict[str, Any]]:
        """One row per namespace, most lookups first."""
        rows: list[dict[str, Any]] = []
        for namespace, counts in self.counts.items():
            rows.append(
                {
                    "namespace": namespace,
                    "kind": kind(namespace),
                    "lookups": sum(counts[e] for e in counters.LOOKUPS),
                    "hit_rate": hit_rate(counts),
                    **{event: counts[event] for event in counters.EVENTS},
                    "biggest": [{"bytes": n, "key": k} for n, k in self.biggest.get(namespace, [])],
                }
            )
        rows.sort(key=lambda r: (-r["lookups"], -r["invalidation"], r["namespace"]))
        return rows

    def total(self) -> dict[str, int]:
        return {event: sum(c[event] for c in self.counts.values()) for event in counters.EVENTS}


def hit_rate(counts: dict[str, int]) -> float | None:
    """Hits as a percentage of lookups (hits, misses, stale and unreadable entries); None without lookups."""
    lookups = sum(counts.get(e, 0) for e in counters.LOOKUPS)
    return round(100.0 * counts.get("hit", 0) / lookups, 1) if lookups else None


def kind(namespace: str) -> str:
    """``model``, ``function``, the prefix of a prefixed namespace (``fragment:...``) or the namespace itself."""
    if namespace in ("tags", "global", "cache"):
        return namespace
    head, colon, _ = namespace.partition(":")
    if colon and head.isidentifier():
        return head
    return "function" if isinstance(signals.sender_for(namespace), str) else "model"


def collect() -> Report:
    """Every process's counts when ``METRICS`` is on (this process's alone otherwise).

    Raises the cache client's error when the shared totals cannot be read.
    """
    if not conf.METRICS:
        return Report(counters.snapshot(), counters.biggest(), shared=False)
    with _flush_lock:
        counts, biggest = _shared().read()
        _, unflushed, _ = counters.pending()
    counts.update(unflushed)
    for namespace, entries in counters.biggest().items():
        _merge(biggest.setdefault(namespace, {}), {k: n for n, k in entries})
    return Report(
        counters.as_table(+counts),
        {ns: sorted(((n, k) for k, n in found.items()), reverse=True) for ns, found in biggest.items() if found},
        shared=True,
    )


def reset() -> None:
    """Clear the shared totals (when ``METRICS`` is on) and this process's counts."""
    with _flush_lock:
        if conf.METRICS:
            _shared().clear()
        _indexed.clear()
        counters.reset()


def _merge(into: dict[str, int], entries: dict[str, int]) -> None:
    for key, n in entries.items():
        if n > into.get(key, 0):
            into[key] = n
    for key in sorted(into, key=into.__getitem__)[: max(len(into) - counters.BIGGEST_KEPT, 0)]:
        del into[key]


def _name(suffix: str) -> str:
    return f"{keys.prefix()}metrics:{suffix}"


def _field(namespace: str, event: str) -> str:
    return f"{namespace}|{event}"


def _split(field: str | bytes) -> tuple[str, str]:
    text = field.decode() if isinstance(field, bytes) else field
    namespace, _, event = text.rpartition("|")
    return namespace, event


class _CacheTotals:
    """Shared totals on any Django cache: one counter key per (namespace, event), an index of them."""

    def __init__(self, cache: BaseCache) -> None:
        self.cache = cache

    def _counter(self, field: str) -> str:
        return _name(f"c:{keys.digest(field)}")

    def add(self, counts: Counts, changed: Biggest) -> None:
        cache = self.cache
        names = {_field(ns, event) for ns, event in counts} | {_field(ns, "store") for ns in changed}
        _indexed.update(names)
        index = cache.get(_name("index")) or []
        if not _indexed.issubset(index):  # first flush of a name, or the totals were reset
            cache.set(_name("index"), sorted(_indexed.union(index)), None)
        for (ns, event), n in counts.items():
            key = self._counter(_field(ns, event))
            try:
                cache.incr(key, n)
            except ValueError:  # no counter yet
                if not cache.add(key, n, None):
                    cache.incr(key, n)
        if changed:
            biggest: Biggest = cache.get(_name("big")) or {}
            for ns, entries in changed.items():
                _merge(biggest.setdefault(ns, {}), entries)
            cache.set(_name("big"), biggest, None)

    def read(self) -> tuple[Counts, Biggest]:
        cache = self.cache
        names = cache.get(_name("index")) or []
        by_key = {self._counter(name): name for name in names}
        found = cache.get_many(list(by_key))
        counts: Counts = Counter()
        for key, n in found.items():
            counts[_split(by_key[key])] += int(n)
        return counts, dict(cache.get(_name("big")) or {})

    def clear(self) -> None:
        cache = self.cache
        names = cache.get(_name("index")) or []
        cache.delete_many([*(self._counter(name) for name in names), _name("index"), _name("big")])


class _RedisTotals:
    """Shared totals on Redis: one hash of counters, one sorted set of the largest entries per namespace."""

    def __init__(self, store: RedisStore) -> None:
        self.client = store.client
        self.make_key = store._make_key

    def _key(self, suffix: str) -> str:
        return str(self.make_key(_name(suffix)))

    def add(self, counts: Counts, changed: Biggest) -> None:
        pipe = self.client.pipeline(transaction=False)
        hash_key = self._key("counts")
        for (ns, event), n in counts.items():
            pipe.hincrby(hash_key, _field(ns, event), n)
        # Totals no process has added to for TAG_TIMEOUT seconds (a test run's, say) expire.
        ttl = conf.TAG_TIMEOUT
        pipe.expire(hash_key, ttl)
        for ns, entries in changed.items():
            big = self._key(f"big:{ns}")
            pipe.hincrby(hash_key, _field(ns, "store"), 0)  # so that reset() finds this namespace
            pipe.zadd(big, entries, gt=True)
            pipe.zremrangebyrank(big, 0, -counters.BIGGEST_KEPT - 1)
            pipe.expire(big, ttl)
        pipe.execute()

    def read(self) -> tuple[Counts, Biggest]:
        counts: Counts = Counter()
        for field, n in self.client.hgetall(self._key("counts")).items():
            counts[_split(field)] += int(n)
        namespaces = sorted({ns for ns, _ in counts})
        pipe = self.client.pipeline(transaction=False)
        for ns in namespaces:
            pipe.zrevrange(self._key(f"big:{ns}"), 0, counters.BIGGEST_KEPT - 1, withscores=True)
        biggest: Biggest = {}
        for ns, entries in zip(namespaces, pipe.execute()):
            if entries:
                biggest[ns] = {(k.decode() if isinstance(k, bytes) else k): int(n) for k, n in entries}
        return counts, biggest

    def clear(self) -> None:
        hash_key = self._key("counts")
        namespaces = {_split(field)[0] for field in self.client.hkeys(hash_key)}
        self.client.delete(hash_key, *(self._key(f"big:{ns}") for ns in namespaces))


def _shared() -> _CacheTotals | _RedisTotals:
    store = protocol.runtime().store
    if isinstance(store, RedisStore):
        return _RedisTotals(store)
    return _CacheTotals(store.cache)


def _forget_in_child() -> None:
    # The flush thread did not survive the fork, and a lock it held must not block the child.
    global _flush_lock, _start_lock, _wake, _thread
    _flush_lock = threading.Lock()
    _start_lock = threading.Lock()
    _wake = threading.Event()
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
