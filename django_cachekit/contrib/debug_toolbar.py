"""A django-debug-toolbar panel: the cache hits, misses and invalidations of one request.

Install django-debug-toolbar (``pip install django-cachekit[debug-toolbar]``), then::

    DEBUG_TOOLBAR_PANELS = [
        *debug_toolbar.settings.PANELS_DEFAULTS,
        "django_cachekit.contrib.debug_toolbar.CachekitPanel",
    ]

The panel listens to ``cache_hit``, ``cache_miss`` and ``cache_invalidated``
only while a request it instruments runs, and keeps what each request did
apart from the others' (a context variable), threads and async views alike.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar, Token
from typing import Any

from debug_toolbar.panels import Panel
from django.http import HttpRequest, HttpResponse

from django_cachekit.core import signals
from django_cachekit.metrics import totals

SHOWN = 500  # events listed per request; the counts cover them all

_events: ContextVar[list[dict[str, Any]] | None] = ContextVar("django_cachekit_panel_events", default=None)
_lock = threading.Lock()
_listening = 0


def _on_hit(sender: Any, namespace: str, key: str, **kwargs: Any) -> None:
    events = _events.get()
    if events is not None:
        events.append({"event": "hit", "namespace": namespace, "detail": key})


def _on_miss(sender: Any, namespace: str, key: str, reason: str = "miss", **kwargs: Any) -> None:
    events = _events.get()
    if events is not None:
        events.append({"event": reason, "namespace": namespace, "detail": key})


def _on_invalidated(
    sender: Any, namespace: str, tags: tuple[str, ...] = (), key: str | None = None, **kwargs: Any
) -> None:
    events = _events.get()
    if events is not None:
        events.append({"event": "invalidated", "namespace": namespace, "detail": key or " ".join(tags)})


_RECEIVERS = (
    (signals.cache_hit, _on_hit),
    (signals.cache_miss, _on_miss),
    (signals.cache_invalidated, _on_invalidated),
)


def _listen() -> None:
    global _listening
    with _lock:
        _listening += 1
        if _listening == 1:
            for signal, receiver in _RECEIVERS:
                signal.connect(receiver, weak=False, dispatch_uid=f"django_cachekit.panel.{receiver.__name__}")


def _stop() -> None:
    # The receivers stay connected only while some request is instrumented: hits elsewhere send nothing.
    global _listening
    with _lock:
        _listening -= 1
        if _listening == 0:
            for signal, receiver in _RECEIVERS:
                signal.disconnect(dispatch_uid=f"django_cachekit.panel.{receiver.__name__}")


class CachekitPanel(Panel):
    title = "django-cachekit"
    template = "django_cachekit/debug_toolbar_panel.html"
    is_async = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._recorded: list[dict[str, Any]] = []
        self._token: Token[list[dict[str, Any]] | None] | None = None

    @property
    def nav_title(self) -> str:
        return "Cachekit"

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()  # type: ignore[no-untyped-call]
        if not stats:
            return ""
        return f"{stats['hits']} hits, {stats['misses']} misses, {stats['invalidations']} invalidations"

    def enable_instrumentation(self) -> None:
        if self._token is None:
            self._recorded = []
            self._token = _events.set(self._recorded)
            _listen()

    def disable_instrumentation(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                _events.reset(token)
            except ValueError:  # disabled from another context: it ends with its context anyway
                pass
            _stop()

    def generate_stats(self, request: HttpRequest, response: HttpResponse) -> None:
        events = self._recorded
        counts = {
            name: sum(e["event"] == name for e in events) for name in ("hit", "miss", "stale", "corrupt", "rejected")
        }
        namespaces: dict[str, dict[str, int]] = {}
        for e in events:
            row = namespaces.setdefault(
                e["namespace"], {"hit": 0, "miss": 0, "stale": 0, "corrupt": 0, "rejected": 0, "invalidated": 0}
            )
            row[e["event"]] += 1
        rate = totals.hit_rate(counts)
        self.record_stats(  # type: ignore[no-untyped-call]
            {
                "hits": counts["hit"],
                "misses": counts["miss"] + counts["stale"] + counts["corrupt"] + counts["rejected"],
                "stale": counts["stale"],
                "invalidations": sum(e["event"] == "invalidated" for e in events),
                "hit_rate": rate,
                "namespaces": [
                    {"namespace": ns, **row, "hit_rate": totals.hit_rate(row)} for ns, row in sorted(namespaces.items())
                ],
                "events": events[:SHOWN],
                "hidden": max(len(events) - SHOWN, 0),
            }
        )
