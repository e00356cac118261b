"""Warming as a task, for projects that schedule work with a task runner.

Uses Django's ``django.tasks`` (Django 6.0 and later) or, on Django 5.2, the
``django-tasks`` backport. Enqueue ``warm_cache`` from your scheduler::

    from django_cachekit.tasks import warm_cache

    warm_cache.enqueue()                           # every warmer
    warm_cache.enqueue(labels=["blog"], limit=500) # the blog app's warmers
"""

from __future__ import annotations

from typing import Any

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[import-not-found,no-redef]

from django_cachekit.warming import warmers


class WarmingFailed(RuntimeError):
    """Some warmers failed (the others ran); the message names them."""


@task
def warm_cache(
    labels: list[str] | None = None, tags: list[str] | None = None, limit: int | None = None
) -> dict[str, Any]:
    """Run the selected warmers once (all of them by default) and return what they did.

    Raises ``WarmingFailed``, after running every other warmer, when one failed,
    so the task runner records the run as failed.
    """
    runner = warmers.Runner(limit=limit)
    selected = warmers.select(labels or (), tags or ())
    if not runner.cache_available():
        raise WarmingFailed("The cache is unavailable; nothing was warmed.")
    results = [runner.run(item) for item in selected]
    failed = [r for r in results if r.error is not None]
    if failed:
        names = "; ".join(f"{r.warmer.name}: {type(r.error).__name__}: {r.error}" for r in failed)
        raise WarmingFailed(f"{len(failed)} of {len(results)} warmers failed: {names}")
    return {
        "warmers": [r.as_dict() for r in results],
        "stored": sum(r.stored for r in results),
        "fresh": sum(r.fresh for r in results),
        "refreshed": sum(r.refreshed for r in results),
    }
