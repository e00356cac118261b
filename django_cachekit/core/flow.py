"""The one read flow: cache-aside for every cached thing.

Objects, querysets, ``@cached`` functions, template fragments and responses
are all read the same way: not while reading is off (``cache_disabled()``) nor
when this transaction wrote one of the entry's tags; look the entry and its
tags' versions up; on a miss compute, and store what was computed stamped with
the versions read *before* computing, so a write that lands meanwhile leaves a
miss, never a stale entry; store only when a value read now may be shared.

``begin`` does the first half and returns a ``Read``; ``Read.store`` the
second. ``read_through`` is both around a function. What a mechanism of the
read path needs (single flight, early recompute, stale serving, a local tier)
goes here, and reaches every cached thing at once.

The layers above tell the flow what it cannot know itself (the protocol knows
nothing of transactions or isolation levels) through two guards,
registered with ``guard``: whether this transaction wrote one of some tags,
and whether a value read now may be stored for others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django_cachekit.core import protocol

Written = Callable[[Sequence[str]], bool]
Storable = Callable[[], bool]

_written: list[Written] = []
_storable: list[Storable] = []


def guard(*, written: Written | None = None, storable: Storable | None = None) -> None:
    """Register ``written(tags)``: this transaction wrote one of ``tags`` (the cache must not be
    read for them); ``storable()``: what is read now may be stored for others."""
    if written is not None and written not in _written:
        _written.append(written)
    if storable is not None and storable not in _storable:
        _storable.append(storable)


def usable(tags: Sequence[str]) -> bool:
    """Whether the cache may be read for an entry of ``tags`` now."""
    return protocol.reading() and not any(written(tags) for written in _written)


def storable() -> bool:
    """Whether a value read now may be stored for others."""
    return all(check() for check in _storable)


class Read:
    """One read of one entry: its lookup's outcome, and how to store what is computed on a miss."""

    __slots__ = ("guarded", "hit", "key", "namespace", "tags", "value", "versions")

    def __init__(
        self,
        key: str,
        tags: Sequence[str],
        namespace: str,
        found: protocol.Found,
        guarded: bool,
    ) -> None:
        self.key = key
        self.tags = tags
        self.namespace = namespace
        self.hit, self.value, self.versions = found
        self.guarded = guarded

    def store(self, value: Any, timeout: int | None, *, tags: Sequence[str] | None = None) -> None:
        """Store ``value`` stamped with the versions read before it was computed, if it may be."""
        if self.versions is None or (self.guarded and not storable()):
            return
        protocol.store(
            self.key, tuple(self.tags if tags is None else tags), self.versions, value, timeout, self.namespace
        )

    def forget(self) -> None:
        """Store nothing after all (what is computed may not be shared)."""
        self.versions = None


_SKIPPED: protocol.Found = (False, None, None)


def begin(
    key: str,
    tags: Sequence[str],
    namespace: str,
    *,
    required: int | None = None,
    vkeys: list[str] | None = None,
    found: protocol.Found | None = None,
    guarded: bool = True,
) -> Read:
    """Look the entry up. ``guarded=False``: the caller has checked the guards for its
    own database alias (and passes whether to store to ``Read.store`` by not storing);
    ``found``: the outcome of a lookup made already (``begin_many``'s)."""
    if guarded and not usable(tags):
        return Read(key, tags, namespace, _SKIPPED, guarded)
    if found is None:
        found = protocol.lookup(key, tags, namespace, required, vkeys)
    return Read(key, tags, namespace, found, guarded)


def begin_many(
    items: Sequence[tuple[str, Sequence[str]]], namespace: str, required: int | None = None, *, guarded: bool = True
) -> list[Read]:
    """``begin`` for several entries in one round trip; entries that may not be read now miss."""
    wanted = [i for i, (_, tags) in enumerate(items) if not guarded or usable(tags)]
    reads = [Read(key, tags, namespace, _SKIPPED, guarded) for key, tags in items]
    if wanted:
        found = protocol.lookup_many([items[i] for i in wanted], namespace, required)
        for i, outcome in zip(wanted, found):
            reads[i].hit, reads[i].value, reads[i].versions = outcome
    return reads


def store_many(reads: Sequence[tuple[Read, Any, Sequence[str] | None]], timeout: int | None) -> None:
    """Store several computed values, ``(read, value, tags or None)``, in one round trip."""
    items = [
        (read.key, tuple(read.tags if tags is None else tags), read.versions, value)
        for read, value, tags in reads
        if read.versions is not None and not (read.guarded and not storable())
    ]
    if items:
        protocol.store_many(items, timeout, reads[0][0].namespace)


def read_through(
    key: str,
    tags: Sequence[str],
    namespace: str,
    compute: Callable[[], Any],
    timeout: int | None,
    accept: Callable[[Any], bool] | None = None,
) -> Any:
    """The entry's value if it is current (and ``accept`` takes it), else ``compute()``, stored."""
    read = begin(key, tags, namespace)
    if read.hit and (accept is None or accept(read.value)):
        return read.value
    value = compute()
    read.store(value, timeout)
    return value
