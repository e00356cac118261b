"""In-process counters of what the cache did, per namespace (a model label or a function).

Each thread counts in its own dict, so counting takes no lock on the hot path;
``snapshot()`` adds them up.
"""

from __future__ import annotations

import threading
from collections import Counter

EVENTS = ("hit", "miss", "stale", "corrupt", "bypass", "store", "invalidation", "error")

_local = threading.local()
_live: list[tuple[threading.Thread, Counter[tuple[str, str]]]] = []
_retired: Counter[tuple[str, str]] = Counter()  # counts of threads that have ended
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
        return counts


def record(event: str, namespace: str, n: int = 1) -> None:
    _counts()[(namespace, event)] += n


def snapshot() -> dict[str, dict[str, int]]:
    with _lock:
        _prune()
        total = Counter(_retired)
        for _, counts in _live:
            total.update(dict(counts))
    out: dict[str, dict[str, int]] = {}
    for (namespace, event), n in total.items():
        out.setdefault(namespace, dict.fromkeys(EVENTS, 0))[event] = n
    return out


def reset() -> None:
    with _lock:
        _retired.clear()
        for _, counts in _live:
            counts.clear()
