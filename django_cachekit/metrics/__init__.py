"""What the cache did: counters of this process (``counters``), totals of every
process shared through the cache (``totals``); ``contrib`` exports them."""

from __future__ import annotations


def install() -> None:
    """Subscribe the counters to the protocol's events and let the first count start the shared totals."""
    from django_cachekit.core import events
    from django_cachekit.metrics import counters, totals

    counters.first_count = totals.start
    events.subscribe(record=counters.record, sized=counters.record_size, invalidated=counters.invalidated)
