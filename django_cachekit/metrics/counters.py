"""In-process counters of what the cache did, per namespace (a model label or a function).

Each thread counts in its own dict, so counting takes no lock on the hot path;
``snapshot()`` adds them up. ``totals`` adds what is new to counters in the
cache from a background thread, so the counts of every process can be read.
The largest entries stored are remembered per namespace.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterable, Sequence

from django.db import models

from django_cachekit.core import keys, signals
from django_cachekit.schema import meta

EVENTS = ("hit", "miss", "stale", "corrupt", "rejected", "bypass", "store", "invalidation", "error")
# The outcomes of a lookup: a hit, or a miss of one kind (no entry, an outdated one, an unreadable one,
# one not signed for its key).
LOOKUPS = ("hit", "miss", "stale", "corrupt", "rejected")
BIGGEST_KEPT = 5

_local = threading.local()
_live: list[tuple[threading.Thread, Counter[tuple[str, str]]]] = []
_retired: Counter[tuple[str, str]] = Counter()  # counts of threads that have ended
_flushed: Counter[tuple[str, str]] = Counter()  # counts already added to the shared totals
_generation = 0  # changed by reset(): a flush that overlapped it must not mark anything flushed
_biggest: dict[str, dict[str, int]] = {}  # namespace -> {key: bytes} of its largest entries
_floor: dict[str, int] = {}  # namespace -> the size an entry must exceed to join them
_dirty: set[str] = set()  # namespaces whose largest entries changed since the last flush
_lock = threading.Lock()


def _prune() -> None:
    for entry in [e for e in _live if not e[0].is_alive()]:
        _live.remove(entry)
        _retired.update(dict(entry[1]))


def _counts() -> Counter[tuple[str, str]]:
    try:
        return _local.counts  # type: ignore[no-any-return]
    except AttributeError:
        counts: Counter[tuple[str, str]] = Counter()
        with _lock:
            _prune()
            _live.append((threading.current_thread(), counts))
        _local.counts = counts
        first_count()  # the background flush of the shared totals, once per process
        return counts


def _nothing() -> None:
    return None


# Set by ``django_cachekit.metrics.install``: starts the flush of the shared totals.
first_count = _nothing


def record(event: str, namespace: str, n: int = 1) -> None:
    _counts()[(namespace, event)] += n


_labels: dict[str, str] = {}  # what a tag's namespace is called in metrics: a model label or itself
_labels_of: dict[str, type[models.Model]] | None = None  # the table_models() they were worked out with


def by_namespace(tags: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``tags`` grouped by what they belong to: a model label, ``tags`` or ``global``."""
    global _labels_of
    tables = meta.table_models()
    if _labels_of is not tables:
        _labels.clear()
        _labels_of = tables
    labels = _labels
    grouped: dict[str, list[str]] = {}
    for tag in tags:
        # What the tag belongs to: a table, the user's tags, or everything.
        kind, _, rest = tag.partition(":")
        if kind == keys.CALL_TAG_KIND:
            continue  # counted under its function's name by the function's invalidate()
        if kind in keys.TABLE_TAG_KINDS:
            namespace = rest.partition(":")[0]
        else:
            namespace = "global" if tag == keys.GLOBAL_TAG else "tags"
        label = labels.get(namespace)
        if label is None:
            model = tables.get(namespace)
            label = labels[namespace] = model._meta.label_lower if model is not None else namespace
        grouped.setdefault(label, []).append(tag)
    return {ns: tuple(found) for ns, found in grouped.items()}


def invalidated(tags: Sequence[str]) -> None:
    """One invalidation per model (or namespace) a bump retired, whatever the number of its tags."""
    for namespace, bumped in by_namespace(tags).items():
        record("invalidation", namespace)
        if signals.cache_invalidated.receivers:
            signals.invalidated(namespace, bumped)


def record_size(namespace: str, key: str, nbytes: int) -> None:
    """Remember ``key`` if it is among the largest entries stored in ``namespace``."""
    if nbytes <= _floor.get(namespace, 0):
        return
    with _lock:
        entries = _biggest.setdefault(namespace, {})
        if entries.get(key, 0) >= nbytes:
            return
        entries[key] = nbytes
        if len(entries) > BIGGEST_KEPT:
            del entries[min(entries, key=entries.__getitem__)]
        if len(entries) == BIGGEST_KEPT:
            _floor[namespace] = min(entries.values())
        _dirty.add(namespace)


def _total() -> Counter[tuple[str, str]]:
    _prune()
    total = Counter(_retired)
    for _, counts in _live:
        total.update(dict(counts))
    return total


def as_table(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (namespace, event), n in counts.items():
        out.setdefault(namespace, dict.fromkeys(EVENTS, 0))[event] = n
    return out


def snapshot() -> dict[str, dict[str, int]]:
    with _lock:
        total = _total()
    return as_table(total)


def biggest() -> dict[str, list[tuple[int, str]]]:
    """The largest entries this process stored, per namespace: ``[(bytes, key), ...]``, largest first."""
    with _lock:
        return {ns: sorted(((n, k) for k, n in entries.items()), reverse=True) for ns, entries in _biggest.items()}


Pending = tuple[int, Counter[tuple[str, str]], dict[str, dict[str, int]]]


def pending() -> Pending:
    """What the shared totals lack: ``(generation, counts, {namespace: {key: bytes}})``."""
    with _lock:
        delta = _total()
        delta.subtract(_flushed)
        changed = {ns: dict(_biggest[ns]) for ns in _dirty if ns in _biggest}
        return _generation, +delta, changed


def mark_flushed(flushed: Pending) -> None:
    """``flushed`` (from ``pending()``) is now in the shared totals."""
    generation, counts, changed = flushed
    with _lock:
        if generation != _generation:
            return
        _flushed.update(counts)
        for ns, entries in changed.items():
            if _biggest.get(ns) == entries:
                _dirty.discard(ns)


def reset() -> None:
    global _generation
    with _lock:
        _retired.clear()
        for _, counts in _live:
            counts.clear()
        _flushed.clear()
        _biggest.clear()
        _floor.clear()
        _dirty.clear()
        _generation += 1


def _forget_in_child() -> None:
    # A forked child starts from zero: its parent flushes what it counted before the fork.
    global _lock
    _lock = threading.Lock()
    _live.clear()
    _retired.clear()
    _flushed.clear()
    _biggest.clear()
    _floor.clear()
    _dirty.clear()
    try:
        del _local.counts
    except AttributeError:
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
