"""What the protocol did, told to whoever subscribed (the metrics layer).

The protocol and every layer above it report through three hooks, and know
nothing of who counts:

- ``record(event, namespace, n=1)``: an outcome (``hit``, ``miss``, ``stale``,
  ``corrupt``, ``rejected``, ``bypass``, ``store``, ``invalidation``, ``error``) in a
  namespace (a model label, a function's dotted name, ``cache``);
- ``sized(namespace, key, nbytes)``: an entry stored, with its size;
- ``invalidated(tags)``: the tags a bump retired.

Each hook is a module attribute that ``subscribe`` replaces: with one
subscriber a report is one call, with none a call that does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Record = Callable[..., None]
Sized = Callable[[str, str, int], None]
Invalidated = Callable[[Sequence[str]], None]


def _nothing(*args: Any) -> None:
    return None


record: Record = _nothing
sized: Sized = _nothing
invalidated: Invalidated = _nothing

_subscribers: dict[str, list[Callable[..., None]]] = {"record": [], "sized": [], "invalidated": []}


def _fan_out(listeners: list[Callable[..., None]]) -> Callable[..., None]:
    if not listeners:
        return _nothing
    if len(listeners) == 1:
        return listeners[0]
    fixed = tuple(listeners)

    def every(*args: Any) -> None:
        for listener in fixed:
            listener(*args)

    return every


def _publish() -> None:
    global record, sized, invalidated
    record = _fan_out(_subscribers["record"])
    sized = _fan_out(_subscribers["sized"])
    invalidated = _fan_out(_subscribers["invalidated"])


def subscribe(
    *, record: Record | None = None, sized: Sized | None = None, invalidated: Invalidated | None = None
) -> None:
    """Add listeners (each at most once)."""
    for name, listener in (("record", record), ("sized", sized), ("invalidated", invalidated)):
        if listener is not None and listener not in _subscribers[name]:
            _subscribers[name].append(listener)
    _publish()


def unsubscribe(
    *, record: Record | None = None, sized: Sized | None = None, invalidated: Invalidated | None = None
) -> None:
    for name, listener in (("record", record), ("sized", sized), ("invalidated", invalidated)):
        if listener is not None and listener in _subscribers[name]:
            _subscribers[name].remove(listener)
    _publish()
