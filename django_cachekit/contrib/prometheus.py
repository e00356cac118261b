"""django-cachekit's counts for Prometheus, through prometheus-client (``pip install django-cachekit[prometheus]``).

Add the collector to prometheus-client's default registry, next to your own metrics::

    from django_cachekit.contrib.prometheus import register
    register()                    # e.g. in your AppConfig.ready()

or serve django-cachekit's metrics on their own URL::

    from django_cachekit.contrib.prometheus import metrics_view
    urlpatterns += [path("metrics/cache", metrics_view)]   # keep it off the public internet

The counts are every process's (``CACHEKIT["METRICS"]``): any worker answers a
scrape with the same totals, up to the last flush of the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from django_cachekit.metrics import counters, totals

logger = logging.getLogger("django_cachekit")


class CachekitCollector(Collector):
    """``cachekit_events_total{namespace, kind, event}`` and, per namespace, the hit ratio and largest entry."""

    def describe(self) -> Iterable[Metric]:
        # Without this, registering the collector would read the cache to learn its metrics' names.
        return self._families()

    def collect(self) -> Iterable[Metric]:
        try:
            report = totals.collect()
        except Exception as exc:  # a scrape must not fail because the cache did
            logger.warning("django-cachekit: metrics read from this process only: %r", exc)
            report = totals.Report(counters.snapshot(), counters.biggest(), shared=False)
        return self._families(report)

    def _families(self, report: totals.Report | None = None) -> list[Metric]:
        events = CounterMetricFamily(
            "cachekit_events",
            "What django-cachekit's cache did, per namespace (a model label or a function) and event.",
            labels=["namespace", "kind", "event"],
        )
        ratio = GaugeMetricFamily(
            "cachekit_hit_ratio",
            "Hits over lookups (hits, misses, stale and unreadable entries), per namespace.",
            labels=["namespace"],
        )
        largest = GaugeMetricFamily(
            "cachekit_largest_entry_bytes",
            "The size of the largest entry stored, per namespace.",
            labels=["namespace"],
        )
        shared = GaugeMetricFamily(
            "cachekit_metrics_shared", "1 when the counts are every process's, 0 when this process's only."
        )
        if report is not None:
            for namespace, counts in sorted(report.counts.items()):
                kind = totals.kind(namespace)
                for event in counters.EVENTS:
                    events.add_metric([namespace, kind, event], counts[event])
                rate = totals.hit_rate(counts)
                if rate is not None:
                    ratio.add_metric([namespace], rate / 100)
                biggest = report.biggest.get(namespace)
                if biggest:
                    largest.add_metric([namespace], biggest[0][0])
            shared.add_metric([], 1 if report.shared else 0)
        return [events, ratio, largest, shared]


_collector: CachekitCollector | None = None


def register(registry: CollectorRegistry = REGISTRY) -> CachekitCollector:
    """Add the collector to ``registry`` (prometheus-client's default one), once."""
    global _collector
    if _collector is None:
        _collector = CachekitCollector()
        registry.register(_collector)
    return _collector


_own_registry = CollectorRegistry(auto_describe=False)
_own_registry.register(CachekitCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """django-cachekit's metrics in Prometheus's text format."""
    return HttpResponse(generate_latest(_own_registry), content_type=CONTENT_TYPE_LATEST)
