"""Rates over time from the cumulative totals: what changed between two readings.

The shared totals only grow (until a reset), so a rate needs two readings:
``rates(before, after)`` gives each namespace's hit rate and lookups per second
over the time between them. ``cachekit_stats --watch`` and the example
project's monitor page both sample with ``read()`` and use ``rates()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_cachekit.metrics import counters, totals

__all__ = ["Reading", "rates", "read"]


@dataclass(frozen=True)
class Reading:
    at: float  # seconds since the epoch
    counts: dict[str, dict[str, int]]  # namespace -> event -> count, cumulative


def read(report: totals.Report | None = None) -> Reading:
    """The totals now (``report``, or ``totals.collect()``'s); raises the cache client's error like it."""
    at = time.time()
    return Reading(at, (report if report is not None else totals.collect()).counts)


def rates(before: Reading, after: Reading, wanted: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """What happened between two readings: ``{"at", "seconds", "namespaces": [...], "total": {...}}``.

    Each namespace row has the events' counts over the interval, ``lookups``,
    ``hit_rate`` (None without lookups) and ``lookups_per_second``; rows come
    most lookups first, namespaces with nothing new are left out. A namespace
    whose totals went down was reset in between: it counts from zero.
    ``wanted``: the namespaces to keep (and add up in ``total``), all by default.
    """
    seconds = after.at - before.at
    rows: list[dict[str, Any]] = []
    for namespace, counts in after.counts.items():
        if wanted is not None and not wanted(namespace):
            continue
        old = before.counts.get(namespace, {})
        delta = {event: counts.get(event, 0) - old.get(event, 0) for event in counters.EVENTS}
        if any(n < 0 for n in delta.values()):
            delta = {event: counts.get(event, 0) for event in counters.EVENTS}
        if not any(delta.values()):
            continue
        rows.append({"namespace": namespace, "kind": totals.kind(namespace), **_rates(delta, seconds)})
    rows.sort(key=lambda r: (-r["lookups"], -r["invalidation"], r["namespace"]))
    total = {event: sum(r[event] for r in rows) for event in counters.EVENTS}
    return {"at": after.at, "seconds": seconds, "namespaces": rows, "total": _rates(total, seconds)}


def _rates(delta: dict[str, int], seconds: float) -> dict[str, Any]:
    lookups = sum(delta[e] for e in counters.LOOKUPS)
    return {
        **delta,
        "lookups": lookups,
        "hit_rate": totals.hit_rate(delta),
        # Two readings at the same instant (a clock step) have no rate rather than a division by zero.
        "lookups_per_second": round(lookups / seconds, 2) if seconds > 0 else None,
    }
