"""Bounded memos of facts derived from values that repeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


_resets: list[Callable[[], None]] = []


def resettable(forget: Callable[[], None]) -> Callable[[], None]:
    """Register ``forget`` (a module's clearing of what it worked out from the settings or
    the models): ``reset_all`` runs it when the settings change. Usable as a decorator."""
    if forget not in _resets:
        _resets.append(forget)
    return forget


def reset_all() -> None:
    """Forget everything worked out from the settings: what every module registered."""
    for forget in list(_resets):
        forget()


class Memo(dict[K, V]):
    """A dict that forgets everything once it holds ``size`` items.

    For what is worked out from values that repeat (a statement's text, a
    query's shape) where forgetting only costs working it out again. Text keys
    longer than ``longest`` (a statement with a long ``IN (...)`` list, rarely
    repeated) are not kept.
    """

    def __init__(self, size: int = 1024, longest: int = 4096) -> None:
        super().__init__()
        self.size = size
        self.longest = longest

    def remember(self, key: K, value: V) -> V:
        if isinstance(key, str) and len(key) > self.longest:
            return value
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value

    def of(self, key: K, compute: Callable[[K], V]) -> V:
        """The value remembered for ``key``, computed (and remembered) on first use."""
        try:
            return self[key]
        except KeyError:
            return self.remember(key, compute(key))
