"""Signals about what the cache did, for logs, metrics exporters and debugging panels.

The sender is the model class for a model's entries and invalidations, else
the namespace string (a ``@cached`` function's dotted name, ``"tags"`` for
your own tags, ``"global"`` for ``invalidate_all()``). Every signal also gets
``namespace`` (a string). The cache only builds and sends a signal when a
receiver is connected, so unused signals cost a hit one attribute test.

- ``cache_hit``: ``key``, the entry served.
- ``cache_miss``: ``key`` and ``reason``: ``"miss"`` (no entry), ``"stale"``
  (an entry stamped with older versions), ``"corrupt"`` (an unreadable one) or
  ``"rejected"`` (one not signed for its key by this site, never unpickled).
- ``cache_invalidated``: ``tags``, the tags of that namespace that were
  bumped; or ``key`` when one ``@cached`` call's entry was deleted.
"""

from __future__ import annotations

import threading
from typing import Any

from django.apps import apps
from django.dispatch import Signal

from django_cachekit.memo import Memo

cache_hit = Signal()
cache_miss = Signal()
cache_invalidated = Signal()

_senders: Memo[str, Any] = Memo(10_000)
_lock = threading.Lock()


def sender_for(namespace: str) -> Any:
    """The model class whose label is ``namespace``, or ``namespace`` itself."""
    try:
        return _senders[namespace]
    except KeyError:
        pass
    sender: Any = namespace
    if apps.ready:
        for model in apps.get_models(include_auto_created=True):
            if model._meta.label_lower == namespace:
                sender = model
                break
    with _lock:
        return _senders.remember(namespace, sender)


def hit(namespace: str, key: str) -> None:
    cache_hit.send(sender_for(namespace), namespace=namespace, key=key)


def miss(namespace: str, key: str, reason: str) -> None:
    cache_miss.send(sender_for(namespace), namespace=namespace, key=key, reason=reason)


def invalidated(namespace: str, tags: tuple[str, ...] = (), key: str | None = None) -> None:
    cache_invalidated.send(sender_for(namespace), namespace=namespace, tags=tags, key=key)
