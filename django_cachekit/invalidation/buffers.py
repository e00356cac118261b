"""When invalidations are sent: around the commit, once per tag per transaction.

Writes are collected in buffers. Inside ``transaction.atomic`` a buffer is
registered with ``on_commit`` for the current savepoint, so a rollback (or a
savepoint rollback) discards it and nothing is invalidated. Outside a
transaction, a save collects its statements and signals in one batch and
flushes it when the save returns; a lone statement is flushed at once. In a
transaction managed by hand (autocommit off, no ``atomic``), one buffer per
connection waits for ``commit()`` and is dropped by ``rollback()``.

The commit protocol: before COMMIT (or before a statement that commits on its
own runs), the tags it will bump are marked as being written, so readers in
every process neither serve nor store entries of them; right after COMMIT,
before any ``on_commit`` hook of the application runs, one bump retires the
old entries, writes fresh ones through and lifts the marks.

While a transaction holds unflushed tags, reads that depend on them bypass the
cache: a writer reads its own writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_cachekit.core import codec, keys, protocol
from django_cachekit.invalidation import outbox
from django_cachekit.schema.meta import VERSIONS_ATTR
from django_cachekit.stores.base import Expect, Write, fresh_version


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

    def as_write(self, bumped: set[str], marked: Iterable[str] = ()) -> Write:
        stamp: list[int] = []
        expect: list[Expect] = []
        for vkey, tag, version in zip(keys.version_keys(self.tags), self.tags, self.before):
            if version is None:
                version = fresh_version()
                expect.append(Expect(vkey, version, create=True))
            else:
                # Bumped once by this flush and once by its mark; any other bump in
                # between fails the check.
                version += (tag in bumped) + (tag in marked)
                expect.append(Expect(vkey, version))
            stamp.append(version)
        if self.target is not None:
            # If the write is refused, these are too old and the next save's check fails safely.
            self.target.__dict__[VERSIONS_ATTR] = dict(zip(self.tags, stamp))
        return Write(
            self.key,
            codec.encode(self.key, self.tags, tuple(stamp), self.payload),
            self.timeout,
            expect,
            keys.version_keys(self.otherwise) if self.otherwise else (),
        )


@dataclass(eq=False)
class Buffer:
    tags: dict[str, None] = field(default_factory=dict)
    writes: dict[str, WriteThrough] = field(default_factory=dict)
    # Tags known only when they are sent (a pattern's matches): called at flush.
    resolvers: list[Callable[[], Iterable[str]]] = field(default_factory=list)
    token: str = ""  # the name of this buffer's marks
    marked: dict[str, None] = field(default_factory=dict)
    unsettled: bool = False  # marks sent whose reply is not read yet
    unannounced: dict[str, None] = field(default_factory=dict)  # marks that may not be set
    doubtful: bool = False  # a mark may not be set: the bump's reply is awaited
    later: dict[str, None] = field(default_factory=dict)  # to mark with the next statement's tags

    def mark(self, tags: Iterable[str], wait: bool = True) -> None:
        """Mark what a statement about to commit will bump (see ``core.mark``)."""
        if wait:
            self.settle()
        if self.later:
            tags = [*tags, *self.later]
            self.later.clear()
        new = [tag for tag in tags if tag not in self.marked]
        if not new:
            return
        if not self.token:
            self.token = protocol.new_token()
        if protocol.mark(new, self.token, wait):
            self.unsettled = self.unsettled or not wait
        else:
            self.unannounced.update(dict.fromkeys(new))
            self.doubtful = True
        self.marked.update(dict.fromkeys(new))

    def settle(self) -> None:
        if self.unsettled:
            self.unsettled = False
            if not protocol.settle():
                self.unannounced.update(self.marked)
                self.doubtful = True

    def announce(self, connection: BaseDatabaseWrapper) -> None:
        """Before the write commits: what could not be marked is recorded with it (or refused)."""
        self.settle()
        if self.unannounced:
            tags = list(self.unannounced)
            self.unannounced.clear()
            outbox.announce(connection, tags)

    def empty(self) -> bool:
        return not (self.tags or self.writes or self.resolvers or self.marked)

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

    def resolved(self) -> list[str]:
        """Every tag to bump, the resolvers' included."""
        tags = dict(self.tags)
        for resolve in self.resolvers:
            tags.update(dict.fromkeys(resolve()))
        return list(tags)

    def flush(self) -> None:
        tags, writes = self.resolved(), list(self.writes.values())
        self.settle()
        marked = set(self.marked)
        unmark = (self.token, list(marked)) if marked else None
        doubtful, self.doubtful = self.doubtful, False
        self.tags.clear()
        self.writes.clear()
        self.resolvers.clear()
        self.marked.clear()
        self.later.clear()
        self.unannounced.clear()
        self.unsettled = False  # the bump's own command reads any reply left
        bumped = set(tags)
        protocol.bump(tags, [w.as_write(bumped, marked) for w in writes], unmark, not doubtful)

    def absorb(self, others: list[Buffer]) -> None:
        """Take over what ``others`` hold, to be sent in one bump.

        A fresh entry survives only if no other buffer bumps its tags: one
        buffer cannot tell whether another's statements ran after its save.
        """
        for other in others:
            self.tags.update(other.tags)
            self.resolvers += other.resolvers
        owners: dict[str, int] = {}
        for other in others:
            for key in other.writes:
                owners[key] = owners.get(key, 0) + 1
        for index, other in enumerate(others):
            rest: set[str] = set()
            for position, another in enumerate(others):
                if position != index:
                    rest.update(another.tags)
            for key, write in other.writes.items():
                if owners[key] == 1 and rest.isdisjoint(write.tags):
                    self.writes[key] = write
                else:
                    self.tags.update(dict.fromkeys(write.otherwise))
            other.tags.clear()
            other.writes.clear()
            other.resolvers.clear()


class Level(Buffer):
    """A buffer flushed by ``on_commit``; Django drops it on rollback."""

    def __call__(self) -> None:
        self.flush()


class _Local(threading.local):
    def __init__(self) -> None:
        self.batches: dict[str, Buffer] = {}  # alias -> the batch of the save running on it


_local = _Local()
_MANUAL = "_cachekit_manual"  # a connection's buffer while autocommit is off outside atomic


def _autocommits(connection: BaseDatabaseWrapper) -> bool:
    return connection.get_autocommit()  # type: ignore[no-any-return]


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
    if not _autocommits(connection):
        manual: Buffer | None = connection.__dict__.get(_MANUAL)
        if manual is None:
            manual = connection.__dict__[_MANUAL] = Buffer()
        return manual
    return None


def mark_soon(connection: BaseDatabaseWrapper, tags: Iterable[str]) -> None:
    """Mark, without waiting for the cache, what the save running on
    ``connection`` outside a transaction is expected to bump: the reply is read
    before its first statement runs, so the round trip overlaps the save's own
    work instead of adding to it."""
    batch = _local.batches.get(connection.alias)
    if batch is not None:
        batch.mark(tags, wait=False)


def mark_with_statement(connection: BaseDatabaseWrapper, tags: Iterable[str]) -> None:
    """Mark ``tags`` with the next statement of the save running on ``connection``
    outside a transaction, in the same round trip (inside one, COMMIT marks
    every tag recorded)."""
    batch = _local.batches.get(connection.alias)
    if batch is not None:
        batch.later.update(dict.fromkeys(tags))


def before_statement(connection: BaseDatabaseWrapper, tags: list[str]) -> str:
    """Mark what a write statement will bump if it commits as it runs.

    Returns the token of a lone statement's marks, for ``record``; an empty
    string when a batch holds the marks or the statement waits for a COMMIT
    (which marks before it runs).
    """
    if not tags or connection.in_atomic_block:
        return ""
    batch = _local.batches.get(connection.alias)
    if batch is not None:
        batch.mark(tags)
        batch.announce(connection)
        return ""
    if not _autocommits(connection):
        return ""
    token = protocol.new_token()
    if not protocol.mark(tags, token):
        outbox.announce(connection, tags)
        return ""  # its bump then waits for its reply; a mark set after all expires
    return token


def record(connection: BaseDatabaseWrapper, tags: Iterable[str], token: str = "") -> None:
    buffer = current(connection)
    if buffer is None:
        tags = list(dict.fromkeys(tags))
        protocol.bump(tags, (), (token, tags) if token else None)
    else:
        buffer.add(tags)


def abandon(tags: list[str], token: str) -> None:
    """Lift the marks of a lone statement that failed: it changed nothing."""
    if token:
        protocol.bump([], (), (token, tags))


def record_resolved(connection: BaseDatabaseWrapper, resolve: Callable[[], Iterable[str]]) -> None:
    """``record`` for tags known only when they are sent: ``resolve`` is called
    at once outside a transaction, and inside one when its tags are sent."""
    buffer = current(connection)
    if buffer is None:
        record(connection, resolve())
    else:
        buffer.resolvers.append(resolve)


def committing(connection: BaseDatabaseWrapper, commit: Callable[[], Any]) -> Any:
    """Run the connection's COMMIT inside the commit protocol (see the module's docstring)."""
    buffers: list[Buffer] = [level for _, level in _live_levels(connection)]
    manual = connection.__dict__.pop(_MANUAL, None)
    if manual is not None:
        buffers.append(manual)
    buffers = [buffer for buffer in buffers if not buffer.empty()]
    if not buffers:
        return commit()
    merged = Buffer()
    merged.absorb(buffers)
    merged.mark(merged.resolved())
    try:
        merged.announce(connection)
    except outbox.InvalidationUnavailable:
        merged.flush()  # lifts what was marked; a bump is always safe
        raise
    try:
        return commit()
    finally:
        # Also when COMMIT failed: whether it took effect may be unknown, and a bump is always safe.
        merged.flush()


def install(connection: BaseDatabaseWrapper) -> None:
    """Run ``connection``'s commits through ``committing``; a rollback drops a manual buffer."""
    if _MANUAL + "_installed" in connection.__dict__:
        return
    commit, rollback = connection._commit, connection._rollback  # type: ignore[attr-defined]

    def _commit() -> Any:
        return committing(connection, commit)

    def _rollback() -> Any:
        connection.__dict__.pop(_MANUAL, None)
        return rollback()

    connection._commit = _commit  # type: ignore[attr-defined]
    connection._rollback = _rollback  # type: ignore[attr-defined]
    connection.__dict__[_MANUAL + "_installed"] = True


def pending(using: str) -> set[str] | None:
    """Tags written but not yet invalidated on ``using``, or None when there are none."""
    batch = _local.batches.get(using)
    connection = connections[using]
    manual: Buffer | None = connection.__dict__.get(_MANUAL)
    if batch is None and manual is None and not connection.in_atomic_block:
        return None
    found: set[str] = set(batch.tags) if batch is not None else set()
    if manual is not None:
        found.update(manual.tags)
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
        if self.connection.in_atomic_block or not _autocommits(self.connection):
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


def written_here(tags: Sequence[str]) -> bool:
    """Whether a transaction of this thread, on any connection, wrote one of ``tags`` (the read flow's guard)."""
    for connection in connections.all(initialized_only=True):
        pending_tags = pending(connection.alias)
        if pending_tags and not pending_tags.isdisjoint(tags):
            return True
    return False
