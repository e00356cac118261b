"""In-process counters of what the cache did, per namespace (a model label or a function)."""

from __future__ import annotations

import threading
from collections import Counter

EVENTS = ("hit", "miss", "stale", "corrupt", "bypass", "store", "invalidation", "error")

_lock = threading.Lock()
_counts: Counter[tuple[str, str]] = Counter()


def record(event: str, namespace: str, n: int = 1) -> None:
    with _lock:
        _counts[(namespace, event)] += n


def snapshot() -> dict[str, dict[str, int]]:
    with _lock:
        items = list(_counts.items())
    out: dict[str, dict[str, int]] = {}
    for (namespace, event), n in items:
        out.setdefault(namespace, dict.fromkeys(EVENTS, 0))[event] = n
    return out


def reset() -> None:
    with _lock:
        _counts.clear()
