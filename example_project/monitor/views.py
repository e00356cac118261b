"""A live chart of the cache's hit rate per model and per cached function.

The page draws the numbers it was rendered with at once, then polls
``data.json`` every few seconds. The numbers are ``cachekit_stats``'s: every
process's counts (flushed to the cache every ``METRICS_FLUSH_INTERVAL``
seconds) plus this process's latest.
"""

from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone

from django_cachekit.metrics import totals

TARGET = 80.0  # the hit rate the chart marks as the goal, in percent
KINDS = ["model", "function", "fragment"]  # the order of the chart's groups


def snapshot():
    try:
        report = totals.collect()
    except Exception as exc:  # the cache is down: say so instead of failing the page
        return {"error": f"The cache could not be read: {exc}", "rows": [], "total": None}
    rows = [
        {
            "namespace": r["namespace"],
            "kind": r["kind"],
            "hits": r["hit"],
            "misses": r["miss"] + r["corrupt"],
            "stale": r["stale"],
            "lookups": r["lookups"],
            "hit_rate": r["hit_rate"],
            "invalidations": r["invalidation"],
        }
        for r in report.rows()
        if r["lookups"]
    ]
    rows.sort(
        key=lambda r: (KINDS.index(r["kind"]) if r["kind"] in KINDS else len(KINDS), -r["lookups"], r["namespace"])
    )
    total = report.total()
    return {
        "rows": rows,
        "total": {
            "hit_rate": totals.hit_rate(total),
            "lookups": sum(r["lookups"] for r in rows),
            "invalidations": total["invalidation"],
        },
        "shared": report.shared,
        "target": TARGET,
        "at": timezone.now().isoformat(timespec="seconds"),
    }


def hit_rate(request):
    return render(request, "monitor/hit_rate.html", {"initial": snapshot()})


def hit_rate_data(request):
    return JsonResponse(snapshot())
