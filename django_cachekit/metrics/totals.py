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

from django_cachekit.core import keys, protocol, signals
from django_cachekit.core.settings import conf
from django_cachekit.metrics import counters
from django_cachekit.stores.base import merge_largest

logger = logging.getLogger("django_cachekit")

Counts = Counter[tuple[str, str]]
Biggest = dict[str, dict[str, int]]  # namespace -> {key: bytes}

_flush_lock = threading.Lock()  # one flush at a time; collect() and reset() wait for it
_start_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None
_exit_hooked = False


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
    """Hits as a percentage of lookups (hits, misses, stale, unreadable and rejected entries); None without lookups."""
    lookups = sum(counts.get(e, 0) for e in counters.LOOKUPS)
    return round(100.0 * counts.get("hit", 0) / lookups, 1) if lookups else None


def kind(namespace: str) -> str:
    """``model``, ``function``, the prefix of a prefixed namespace (``fragment:...``, ``view:...``) or itself."""
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
        counters.reset()


def _merge(into: dict[str, int], entries: dict[str, int]) -> None:
    merge_largest(into, entries, counters.BIGGEST_KEPT)


def _field(namespace: str, event: str) -> str:
    return f"{namespace}|{event}"


def _split(field: str | bytes) -> tuple[str, str]:
    text = field.decode() if isinstance(field, bytes) else field
    namespace, _, event = text.rpartition("|")
    return namespace, event


class _Shared:
    """The shared totals, kept by the store: fields ``namespace|event``, the largest entries per namespace."""

    def __init__(self) -> None:
        self.store = protocol.runtime().store
        self.group = keys.totals_group()

    def add(self, counts: Counts, changed: Biggest) -> None:
        fields = {_field(ns, event): n for (ns, event), n in counts.items()}
        # Totals no process has added to for TAG_TIMEOUT seconds (a test run's, say) expire.
        self.store.add_totals(self.group, fields, changed, counters.BIGGEST_KEPT, conf.TAG_TIMEOUT)

    def read(self) -> tuple[Counts, Biggest]:
        fields, biggest = self.store.read_totals(self.group, counters.BIGGEST_KEPT)
        counts: Counts = Counter()
        for field, n in fields.items():
            counts[_split(field)] += n
        return counts, biggest

    def clear(self) -> None:
        self.store.clear_totals(self.group)


def _shared() -> _Shared:
    return _Shared()


def _forget_in_child() -> None:
    # The flush thread did not survive the fork, and a lock it held must not block the child.
    global _flush_lock, _start_lock, _wake, _thread
    _flush_lock = threading.Lock()
    _start_lock = threading.Lock()
    _wake = threading.Event()
    _thread = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
