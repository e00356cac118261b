"""A live view of the cache: hit rate per model, view, cached function and fragment.

The page draws the totals it was rendered with at once, then polls
``data.json`` every 2 seconds. The totals are ``cachekit_stats``'s: every
process's counts (flushed to the cache every ``METRICS_FLUSH_INTERVAL``
seconds) plus this process's latest. Each answer also carries ``interval``:
what happened since the previous reading this server process took (the same
``django_cachekit.metrics.series.rates`` as ``cachekit_stats --watch``), which
the page keeps for a few minutes and draws as lines.
"""

import functools
import threading
from pathlib import Path

from django.http import JsonResponse
from django.shortcuts import render
from django.template import TemplateSyntaxError, engines
from django.template.backends.django import DjangoTemplates
from django.template.utils import get_app_template_dirs
from django.utils import timezone

from django_cachekit.metrics import series, totals
from django_cachekit.templatetags.cachekit import CacheFragmentNode

TARGET = 80.0  # the hit rate the chart marks as the goal, in percent
KINDS = ["model", "view", "function", "fragment"]  # the order of the chart's groups
POLL_SECONDS = 2  # how often the page asks for data.json
WINDOW_MINUTES = 5  # how much of the past the page's line charts keep

_lock = threading.Lock()
_last: series.Reading | None = None  # the reading the next interval starts from


def forget():
    """Start the next interval afresh (tests)."""
    global _last
    with _lock:
        _last = None


@functools.lru_cache(maxsize=1)
def nested_fragments():
    """``{inner fragment namespace: the namespace of the fragment around it}``, from the project's templates.

    An inner fragment is rendered, and so looked up, only when the fragment
    around it misses: its hit rate is low by construction, since most of its
    renders are served inside the outer fragment's entry.
    """
    found = {}
    for engine in engines.all():
        if not isinstance(engine, DjangoTemplates):
            continue
        dirs = [*engine.engine.dirs, *(get_app_template_dirs("templates") if engine.engine.app_dirs else ())]
        for path in sorted({p for d in dirs for p in Path(d).rglob("*.html")}):
            source = path.read_text(errors="replace")
            if "cachefragment" not in source:
                continue
            try:
                compiled = engine.engine.from_string(source)
            except TemplateSyntaxError:
                continue
            # Depth first: a fragment inside two others ends up naming the closer one.
            for outer in compiled.nodelist.get_nodes_by_type(CacheFragmentNode):
                for inner in outer.nodelist.get_nodes_by_type(CacheFragmentNode):
                    found[f"fragment:{inner.name}"] = f"fragment:{outer.name}"
    return found


def _order(row):
    return (KINDS.index(row["kind"]) if row["kind"] in KINDS else len(KINDS), -row["lookups"], row["namespace"])


def snapshot(report):
    nested = nested_fragments()
    rows = [
        {
            "namespace": r["namespace"],
            "kind": r["kind"],
            "hits": r["hit"],
            "misses": r["miss"] + r["corrupt"] + r["rejected"],
            "stale": r["stale"],
            "lookups": r["lookups"],
            "hit_rate": r["hit_rate"],
            "invalidations": r["invalidation"],
            "inside": nested.get(r["namespace"]),
        }
        for r in report.rows()
        if r["lookups"]
    ]
    rows.sort(key=_order)
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


def data():
    """The totals now and, after a first reading, what changed since the previous one."""
    global _last
    try:
        report = totals.collect()
    except Exception as exc:  # the cache is down: say so instead of failing the page
        return {"error": f"The cache could not be read: {exc}", "rows": [], "total": None, "interval": None}
    reading = series.read(report)
    with _lock:
        before, _last = _last, reading
    interval = None
    if before is not None:
        found = series.rates(before, reading)
        keep = ("namespace", "kind", "lookups", "hit_rate", "lookups_per_second", "stale")
        interval = {
            "at": found["at"],
            "seconds": found["seconds"],
            "namespaces": [{k: r[k] for k in keep} for r in found["namespaces"]],
            "total": {k: found["total"][k] for k in keep[2:]},
        }
    return {**snapshot(report), "interval": interval}


def hit_rate(request):
    context = {"initial": data(), "poll_seconds": POLL_SECONDS, "window_minutes": WINDOW_MINUTES}
    return render(request, "monitor/hit_rate.html", context)


def hit_rate_data(request):
    return JsonResponse(data())
