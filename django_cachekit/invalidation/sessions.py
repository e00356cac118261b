"""What a database session holds beyond one statement's text.

Every statement run through Django's connections is observed before it runs:

- the isolation set in SQL (``SET TRANSACTION ISOLATION LEVEL``, ``SET SESSION
  CHARACTERISTICS``, ``default_transaction_isolation``, ``BEGIN ... ISOLATION
  LEVEL``, MySQL's ``SET SESSION TRANSACTION``). A session level lasts until it
  is changed, reset (``RESET ALL``, ``DISCARD ALL``, ``SET ... TO DEFAULT``) or
  the connection is replaced; a transaction level ends with its transaction.
  Within a transaction the strictest level seen counts: storing nothing is
  always safe, storing what an old snapshot read is not;
- prepared statements (``PREPARE``), so an ``EXECUTE`` writes what its
  statement writes;
- on PostgreSQL, the functions and procedures that write, read once per
  process from ``pg_proc`` (user schemas, VOLATILE, not part of an extension),
  so a ``SELECT`` or ``CALL`` of one retires what its body writes.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, NamedTuple

from django.db.backends.base.base import BaseDatabaseWrapper

from django_cachekit.invalidation import statements
from django_cachekit.invalidation.statements import STRICT_LEVELS, Statement

logger = logging.getLogger("django_cachekit")

_ATTR = "_cachekit_session"
# Statements that may change what a session holds: others are not read here.
_MAY_CONCERN = re.compile(
    r"\s*(?:(?:SET|START|BEGIN|RESET|END|COMMIT|ABORT|ROLLBACK|PREPARE|DEALLOCATE|DISCARD|CREATE|DROP|ALTER)\b"
    r"|/\*|--|\#)",
    re.I,
)


_MAY_START = frozenset("SsBbRrEeCcAaPpDd/-# \t\r\n")


class _TransactionMark:
    """Kept in ``run_on_commit`` (outside every savepoint) while a strict transaction lasts."""

    __slots__ = ()

    def __call__(self) -> None:
        pass


class _Session:
    __slots__ = ("level", "mark", "prepared", "raw", "raw_open", "raw_strict")

    def __init__(self, raw: Any) -> None:
        self.raw = raw  # the DB-API connection: a new one is a new session
        self.level = ""  # the session's isolation set in SQL
        self.mark: _TransactionMark | None = None
        self.raw_open = False  # a transaction begun in SQL outside transaction.atomic
        self.raw_strict = False
        self.prepared: dict[str, Statement] = {}


class _Local(threading.local):
    current: tuple[BaseDatabaseWrapper, str] | None = None


_local = _Local()


def _session(connection: BaseDatabaseWrapper) -> _Session:
    session: _Session | None = connection.__dict__.get(_ATTR)
    if session is None or session.raw is not connection.connection:
        session = _Session(connection.connection)
        connection.__dict__[_ATTR] = session
    return session


def observe(connection: BaseDatabaseWrapper, sql: Any) -> None:
    """Note a statement about to run on ``connection``."""
    text = sql if isinstance(sql, str) else str(sql)
    _local.current = (connection, text)
    try:
        if (text[:1] not in _MAY_START or _MAY_CONCERN.match(text) is None) and ";" not in text:
            return
        statement = statements.read(text)
        for part in statement.parts or (statement,):
            _apply(connection, part)
    except Exception:
        logger.exception("django-cachekit: could not read what a statement changes in its session")


def current(sql: str) -> BaseDatabaseWrapper | None:
    """The connection running ``sql`` now, when it was observed."""
    found = _local.current
    if found is None or (found[1] is not sql and found[1] != sql):
        return None
    return found[0]


def _apply(connection: BaseDatabaseWrapper, statement: Statement) -> None:
    if statement.routines_changed:
        _routines.clear()
    if not (statement.isolation or statement.begins or statement.ends or statement.prepares or statement.deallocates):
        return
    session = _session(connection)
    if statement.prepares is not None:
        name, body = statement.prepares
        session.prepared[name] = body
    if statement.deallocates:
        if statement.deallocates == "all":
            session.prepared.clear()
        session.prepared.pop(statement.deallocates, None)
    if statement.begins and not connection.in_atomic_block:
        session.raw_open, session.raw_strict = True, False
    if statement.isolation is not None:
        scope, level = statement.isolation
        if scope == "session":
            session.level = level
        elif scope == "reset":
            session.level = ""
        elif level in STRICT_LEVELS:
            _mark_strict(connection, session)
    if statement.ends and not connection.in_atomic_block:
        session.raw_open = session.raw_strict = False


def _mark_strict(connection: BaseDatabaseWrapper, session: _Session) -> None:
    if connection.in_atomic_block:
        if not _marked(connection, session):
            session.mark = _TransactionMark()
            # An empty set of savepoints: a savepoint rollback does not make the transaction less strict.
            hooks: list[Any] = connection.run_on_commit
            hooks.append((set(), session.mark, False))
    elif session.raw_open:
        session.raw_strict = True


def _marked(connection: BaseDatabaseWrapper, session: _Session) -> bool:
    mark = session.mark
    return mark is not None and any(entry[1] is mark for entry in connection.run_on_commit)


def reads_old_snapshot(connection: BaseDatabaseWrapper) -> bool:
    """Whether the transaction running on ``connection`` was made stricter than
    READ COMMITTED by SQL: it reads a snapshot older than the cache's versions."""
    session: _Session | None = connection.__dict__.get(_ATTR)
    if session is None or session.raw is not connection.connection:
        return False
    if connection.in_atomic_block:
        return session.level in STRICT_LEVELS or _marked(connection, session)
    return session.raw_open and (session.raw_strict or session.level in STRICT_LEVELS)


def prepared(connection: BaseDatabaseWrapper | None, name: str) -> Statement | None:
    if connection is None:
        return None
    session: _Session | None = connection.__dict__.get(_ATTR)
    if session is None or session.raw is not connection.connection:
        return None
    return session.prepared.get(name)


class Routine(NamedTuple):
    """What a function or procedure writes, with the routines it calls."""

    tables: tuple[str, ...]
    cascade: bool
    unknown: bool


# alias -> {lower-cased name: what the routines of that name write}; every routine, and the writers
_routines: dict[str, tuple[dict[str, Routine], dict[str, Routine]]] = {}
_lock = threading.Lock()
_CATALOG = """
SELECT p.proname, p.prosrc, l.lanname
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
  AND (p.prokind = 'p' OR p.provolatile = 'v')
  AND NOT EXISTS (
    SELECT 1 FROM pg_catalog.pg_depend d
    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
"""


def writers_for(sql: str) -> dict[str, Routine]:
    """The writing routines of the database running ``sql`` now (empty when it was not observed)."""
    found = _local.current
    if found is None or (found[1] is not sql and found[1] != sql) or found[0].vendor != "postgresql":
        return {}
    return _catalog_of(found[0])[1]


def writers(connection: BaseDatabaseWrapper | None) -> dict[str, Routine]:
    """The routines of ``connection``'s database that may write (PostgreSQL; empty elsewhere)."""
    return _catalog_of(connection)[1]


def is_routine(connection: BaseDatabaseWrapper, name: str) -> bool:
    """Whether ``name`` is a routine of the database, read and known not to write when not a writer."""
    return name in _catalog_of(connection)[0]


_NO_CATALOG: tuple[dict[str, Routine], dict[str, Routine]] = ({}, {})


def _catalog_of(connection: BaseDatabaseWrapper | None) -> tuple[dict[str, Routine], dict[str, Routine]]:
    if connection is None or connection.vendor != "postgresql":
        return _NO_CATALOG
    found = _routines.get(connection.alias)
    if found is None:
        if _in_failed_transaction(connection):
            return _NO_CATALOG  # the statement will fail too; read the catalog with a later one
        with _lock:
            found = _routines.get(connection.alias)
            if found is None:
                found = _load(connection)
                if found is None:
                    return _NO_CATALOG
                _routines[connection.alias] = found
    return found


_INERROR = 3  # libpq's PQTRANS_INERROR, in psycopg 3 and psycopg2 alike


def _in_failed_transaction(connection: BaseDatabaseWrapper) -> bool:
    raw = connection.connection
    info = getattr(raw, "info", None)
    status = getattr(info, "transaction_status", None)
    if status is None and hasattr(raw, "get_transaction_status"):
        status = raw.get_transaction_status()
    return status is not None and int(status) == _INERROR


def _load(connection: BaseDatabaseWrapper) -> tuple[dict[str, Routine], dict[str, Routine]] | None:
    try:
        rows = _catalog(connection)
    except Exception:
        logger.exception("django-cachekit: could not read the functions of database %r", connection.alias)
        return None
    blocks: dict[str, tuple[set[str], bool, bool, set[str]]] = {}
    for name, source, language in rows:
        tables, cascade, unknown, called = blocks.setdefault(name.lower(), (set(), False, False, set()))
        if language in ("sql", "plpgsql"):
            block = statements.read_block(source or "")
            tables.update(block.tables)
            called.update(block.calls)
            cascade, unknown = cascade or block.cascade, unknown or block.unknown
        else:
            unknown = True  # a body in another language cannot be read
        blocks[name.lower()] = (tables, cascade, unknown, called)
    return _resolve(blocks)


def _resolve(
    blocks: dict[str, tuple[set[str], bool, bool, set[str]]],
) -> tuple[dict[str, Routine], dict[str, Routine]]:
    """Each routine with what the routines it calls write, to a fixed point."""
    changed = True
    while changed:
        changed = False
        for name, (tables, cascade, unknown, called) in list(blocks.items()):
            for other in called & blocks.keys() - {name}:
                more, more_cascade, more_unknown, _ = blocks[other]
                grown = (tables | more, cascade or more_cascade, unknown or more_unknown, called)
                if grown[:3] != (tables, cascade, unknown):
                    blocks[name] = grown
                    tables, cascade, unknown = grown[:3]
                    changed = True
    every = {
        name: Routine(tuple(sorted(tables)), cascade, unknown) for name, (tables, cascade, unknown, _) in blocks.items()
    }
    return every, {name: routine for name, routine in every.items() if routine.tables or routine.unknown}


def _catalog(connection: BaseDatabaseWrapper) -> list[Any]:
    # A cursor of its own on the DB-API connection: the statement's cursor still holds its rows,
    # and this read is not one of the application's queries.
    cursor = connection.connection.cursor()
    savepoint = connection.in_atomic_block
    try:
        if savepoint:
            cursor.execute("SAVEPOINT cachekit_catalog")
        try:
            cursor.execute(_CATALOG)
            rows = list(cursor.fetchall())
        except Exception:
            if savepoint:
                cursor.execute("ROLLBACK TO SAVEPOINT cachekit_catalog")
            raise
        if savepoint:
            cursor.execute("RELEASE SAVEPOINT cachekit_catalog")
        return rows
    finally:
        cursor.close()


def clear() -> None:
    _routines.clear()
