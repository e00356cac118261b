"""Invalidations a writer could not deliver, kept in the database until a
process that reaches the cache delivers them.

Before a write commits, its tags are marked in the cache (see ``writes``). When
the mark cannot be set (the cache is unreachable, full, or this process's
breaker is open), the tags are written into the table
``django_cachekit_pending`` in the write's own transaction, so they exist if
and only if the write commits, and outlive the writer. Every ``PENDING_POLL``
seconds one process (the first to claim the turn in the cache) reads the table
of each database it is connected to, bumps those tags and deletes the rows.

With ``STRICT_INVALIDATION`` such a write fails instead, before it commits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from django_cachekit.core import keys, protocol
from django_cachekit.core.settings import conf

logger = logging.getLogger("django_cachekit")

TABLE = "django_cachekit_pending"
BATCH = 500


class InvalidationUnavailable(DatabaseError):
    """With ``STRICT_INVALIDATION``: a write was refused before it committed,
    because the cache could not be told what it changes."""


class _Local(threading.local):
    internal = False


_local = _Local()
_no_table: set[str] = set()  # aliases whose database has no table (migrations not run)


def internal() -> bool:
    """Whether the statement running is this module's own (the connection hook lets it pass)."""
    return _local.internal


@contextmanager
def _own_statements() -> Iterator[None]:
    _local.internal = True
    try:
        yield
    finally:
        _local.internal = False


def announce(connection: BaseDatabaseWrapper, tags: Iterable[str]) -> None:
    """The cache could not be told that ``tags`` are about to be written on
    ``connection``: refuse the write (strict) or record them with it."""
    tags = list(dict.fromkeys(tags))
    if not tags:
        return
    if conf.STRICT_INVALIDATION:
        raise InvalidationUnavailable(
            f"The cache {conf.CACHE_ALIAS!r} could not be told about a write of {', '.join(tags[:5])}"
            f"{' and others' if len(tags) > 5 else ''}; with STRICT_INVALIDATION it is refused."
        )
    # Delivered by this process as soon as it reaches the cache, whatever happens to the record.
    protocol.runtime().lost(tags)
    alias = connection.alias
    if alias in _no_table:
        return
    in_transaction = not connection.get_autocommit()
    sid = f"ck_pending_{threading.get_ident()}"
    try:
        with _own_statements(), connection.cursor() as cursor:
            if in_transaction:
                connection._savepoint(sid)  # type: ignore[attr-defined]
            try:
                table = connection.ops.quote_name(TABLE)
                cursor.execute(
                    f"INSERT INTO {table} (tags, created) VALUES (%s, %s)", ["\n".join(tags), timezone.now()]
                )
            except DatabaseError:
                if in_transaction:
                    connection._savepoint_rollback(sid)  # type: ignore[attr-defined]
                raise
            if in_transaction:
                connection._savepoint_commit(sid)  # type: ignore[attr-defined]
    except DatabaseError as exc:
        _forget_if_missing(connection)
        logger.error(
            "django-cachekit: could not record invalidations in %s on %r (run migrate): %s; "
            "only this process will deliver them",
            TABLE,
            alias,
            exc,
        )


def poll(rt: protocol.Runtime) -> bool:
    """Deliver what writers recorded; False if it could not be (the cache is then not trusted)."""
    ok, claimed = rt.call(rt.store.claim, keys.pending_turn(), conf.PENDING_POLL)
    if not ok or not claimed:
        return ok  # another process has the turn (or the cache failed: that lookup finds out)
    for connection in connections.all(initialized_only=True):
        alias = connection.alias
        if alias in _no_table or alias in conf.REPLICAS or connection.connection is None:
            continue
        if connection.in_atomic_block or not connection.get_autocommit():
            continue  # never inside the application's transaction
        if not _deliver(rt, connection):
            return False
    return True


def _deliver(rt: protocol.Runtime, connection: BaseDatabaseWrapper) -> bool:
    # The DB-API cursor: not the application's statement, not logged or counted as one.
    table = connection.ops.quote_name(TABLE)
    try:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(f"SELECT id, tags FROM {table} ORDER BY id LIMIT {BATCH}")
            rows = cursor.fetchall()
            if not rows:
                return True
            tags = list(dict.fromkeys(tag for _, text in rows for tag in str(text).split("\n") if tag))
            if not rt.retire(tags):
                return False
            ids = ", ".join(str(int(row_id)) for row_id, _ in rows)
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({ids})")
        finally:
            cursor.close()
    except Exception as exc:  # no table (migrations not run), a closed connection
        _forget_if_missing(connection)
        logger.warning("django-cachekit: could not read %s on %r: %s", TABLE, connection.alias, exc)
        return True
    logger.warning(
        "django-cachekit: %d invalidation(s) recorded by writers that could not reach the cache delivered", len(tags)
    )
    return True


def _forget_if_missing(connection: BaseDatabaseWrapper) -> None:
    """Stop using the table on ``connection`` for this process if it does not exist (``migrate`` not run)."""
    try:
        if TABLE not in connection.introspection.table_names():
            _no_table.add(connection.alias)
    except Exception:  # the connection itself failed: try again next time
        pass
