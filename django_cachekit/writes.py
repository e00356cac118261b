"""When invalidations are sent: at commit, once per tag per transaction.

Writes are collected in buffers. Inside ``transaction.atomic`` a buffer is
registered with ``on_commit`` for the current savepoint, so a rollback (or a
savepoint rollback) discards it and nothing is invalidated. Outside a
transaction, a save collects its statements and signals in one batch and
flushes it when the save returns; a lone statement is flushed at once.

While a transaction holds unflushed tags, reads that depend on them bypass the
cache: a writer reads its own writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from . import codec, core, keys
from .backends.base import Expect, Write, fresh_version
from .meta import VERSIONS_ATTR


@dataclass
class WriteThrough:
    """A fresh object entry to store after commit, if no other write raced it.

    ``before`` holds each tag's version read before the write; None marks a tag
    of a new row, which must still be absent at flush and is created then.
    """

    key: str
    tags: tuple[str, ...]
    before: tuple[int | None, ...]
    payload: Any
    timeout: int | None
    target: Any = None  # the saved instance: it learns the versions its entry is stamped with
    # Tags to bump instead when the check fails (or the write is dropped): what
    # the flush reported on the assumption that no other write reached the row.
    otherwise: tuple[str, ...] = ()

    def as_write(self, bumped: set[str]) -> Write:
        stamp: list[int] = []
        expect: list[Expect] = []
        for vkey, tag, version in zip(keys.version_keys(self.tags), self.tags, self.before):
            if version is None:
                version = fresh_version()
                expect.append(Expect(vkey, version, create=True))
            else:
                # Bumped once by this flush; any other bump in between fails the check.
                version += tag in bumped
                expect.append(Expect(vkey, version))
            stamp.append(version)
        if self.target is not None:
            # If the write is refused, these are too old and the next save's check fails safely.
            self.target.__dict__[VERSIONS_ATTR] = dict(zip(self.tags, stamp))
        return Write(
            self.key,
            codec.encode(self.tags, tuple(stamp), self.payload),
            self.timeout,
            expect,
            keys.version_keys(self.otherwise) if self.otherwise else (),
        )


@dataclass(eq=False)
class Buffer:
    tags: dict[str, None] = field(default_factory=dict)
    writes: dict[str, WriteThrough] = field(default_factory=dict)

    def add(self, tags: Iterable[str]) -> None:
        tags = list(tags)
        self.tags.update(dict.fromkeys(tags))
        if self.writes:
            # A later statement touched a row whose fresh entry is queued: drop it.
            touched = set(tags)
            for key in [k for k, w in self.writes.items() if not touched.isdisjoint(w.tags)]:
                self.drop(key)

    def drop(self, key: str) -> None:
        """Forget a queued write; what it would have bumped on failure is bumped."""
        write = self.writes.pop(key)
        self.tags.update(dict.fromkeys(write.otherwise))

    def drop_all(self) -> None:
        for key in list(self.writes):
            self.drop(key)

    def add_write(self, write: WriteThrough) -> None:
        self.writes[write.key] = write

    def flush(self) -> None:
        tags, writes = list(self.tags), list(self.writes.values())
        self.tags.clear()
        self.writes.clear()
        bumped = set(tags)
        core.bump(tags, [w.as_write(bumped) for w in writes])


class Level(Buffer):
    """A buffer flushed by ``on_commit``; Django drops it on rollback."""

    def __call__(self) -> None:
        self.flush()


class _Local(threading.local):
    def __init__(self) -> None:
        self.batches: dict[str, Buffer] = {}  # alias -> the batch of the save running on it


_local = _Local()


def _live_levels(connection: BaseDatabaseWrapper) -> Iterator[tuple[set[Any], Level]]:
    for sids, func, _ in getattr(connection, "run_on_commit", ()):
        if isinstance(func, Level):
            yield sids, func


def current(connection: BaseDatabaseWrapper) -> Buffer | None:
    """Where writes on ``connection`` go now; None means: invalidate immediately."""
    batch = _local.batches.get(connection.alias)
    if batch is not None:
        return batch
    if connection.in_atomic_block:
        # atomic(savepoint=False) pushes None: it is the same savepoint level.
        sids = set(connection.savepoint_ids) - {None}
        for level_sids, level in _live_levels(connection):
            if level_sids - {None} == sids:
                return level
        level = Level()
        connection.on_commit(level)
        return level
    return None


def record(connection: BaseDatabaseWrapper, tags: Iterable[str]) -> None:
    buffer = current(connection)
    if buffer is None:
        core.bump(list(dict.fromkeys(tags)))
    else:
        buffer.add(tags)


def pending(using: str) -> set[str] | None:
    """Tags written but not yet invalidated on ``using``, or None when there are none."""
    batch = _local.batches.get(using)
    connection = connections[using]
    if batch is None and not connection.in_atomic_block:
        return None
    found: set[str] = set(batch.tags) if batch is not None else set()
    if connection.in_atomic_block:
        for _, level in _live_levels(connection):
            found.update(level.tags)
    return found or None


class batch:
    """Collect the writes of one operation outside a transaction and flush them at the end.

    Inside a transaction this does nothing: the transaction's own buffers apply.
    If the block raises, tags are still invalidated (a statement may have been
    committed) but no entry is written through.
    """

    __slots__ = ("buffer", "connection")

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.buffer: Buffer | None = None

    def __enter__(self) -> Buffer | None:
        batches = _local.batches
        using = self.connection.alias
        if using in batches:
            return batches[using]
        if self.connection.in_atomic_block:
            return None
        buffer = self.buffer = batches[using] = Buffer()
        return buffer

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        buffer = self.buffer
        if buffer is None:
            return
        try:
            if exc_type is not None:
                buffer.drop_all()
        finally:
            del _local.batches[self.connection.alias]
            buffer.flush()
