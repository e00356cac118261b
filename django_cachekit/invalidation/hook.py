"""Invalidation from the SQL itself.

A wrapper on every database connection (Django's ``execute_wrappers``) reads
each write statement after it succeeds: INSERT, UPDATE, DELETE, TRUNCATE and
upserts, whether they come from ``save()``, ``QuerySet.update()``, bulk
operations, deletion cascades, ``SET_NULL`` or a raw cursor. Every write bumps
the table's model tag. A write whose WHERE clause names primary keys (``WHERE
"t"."id" = %s`` or ``IN (...)``) bumps those rows' object tags; any other
UPDATE or DELETE bumps the table's rows tag, which every object entry of the
table carries.

Tables with integer foreign keys also have a keyed tag: queries filtered on a
foreign-key value are tagged by that value and the keyed tag instead of the
model tag. An INSERT names the values of the rows it adds (their field tags are
bumped); a ``save()`` whose old values are known reports them itself (see
``changes``); any other write to such a table bumps its keyed tag.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from django_cachekit.core import keys
from django_cachekit.invalidation import buffers, links, outbox, sessions, statements
from django_cachekit.invalidation import keyed as keyed_tags
from django_cachekit.invalidation.statements import Statement
from django_cachekit.memo import Memo, resettable
from django_cachekit.schema import meta

logger = logging.getLogger("django_cachekit")

_IDENT = statements.IDENT
_PK_TAIL = re.compile(
    rf"\s+WHERE\s+(?:(?P<qual>{_IDENT})\s*\.\s*)?(?P<col>{_IDENT})\s*"
    r"(?:(?P<eq>=\s*%s)|(?P<any>=\s*ANY\s*\(\s*%s\s*\))|IN\s*\((?P<list>\s*%s(?:\s*,\s*%s)*\s*)\))"
    r"(?:\s+RETURNING\s+[^;%()]*)?\s*;?\s*\Z",
    re.I,
)
_READ_TABLES = re.compile(r'\b(?:FROM|JOIN)\s+("(?:[^"]|"")+"|`[^`]+`)')
_unquote = statements.unquote


def read_table_list(sql: str) -> list[str]:
    """Every table a SELECT reads, once per FROM or JOIN naming it (Django quotes every table name it writes)."""
    return [_unquote(name) for name in _READ_TABLES.findall(sql)]


def read_tables(sql: str) -> set[str]:
    """The tables a SELECT reads."""
    return set(read_table_list(sql))


# The trailing WHERE of statements seen: (column, table qualifier, number of
# placeholders, "= ANY(%s)"), or None.
_Tail = tuple[str, "str | None", int, bool] | None
_tails: Memo[str, _Tail] = Memo()


def _tail(sql: str) -> _Tail:
    return _tails.of(sql, _read_tail)


def _read_tail(sql: str) -> _Tail:
    upper = sql.rfind(" WHERE ")
    start = upper if upper >= 0 else sql.lower().rfind(" where ")
    match = _PK_TAIL.match(sql, start) if start >= 0 else None
    found: _Tail = None
    if match is not None:
        qual = match.group("qual")
        count = 1 if match.group("eq") or match.group("any") else match.group("list").count("%s")
        found = (
            _unquote(match.group("col")),
            _unquote(qual) if qual is not None else None,
            count,
            bool(match.group("any")),
        )
    return found


# First characters of statements that may write: the rest (SET, SHOW, VALUES, ...) are skipped unread.
_WRITE_START = frozenset("IiUuDdTtRrWwMmCcLlAaEe(/-#")
_SELECT_START = frozenset("Ss")
_ROW_KINDS = frozenset({"insert", "upsert", "update", "delete"})


def _pks(sql: str, params: Any, many: bool, model: Any) -> list[Any] | None:
    """Primary keys named by a trailing ``WHERE pk = %s`` / ``IN (...)``, else None."""
    if params is None or isinstance(params, dict):
        return None
    tail = _tail(sql)
    if tail is None:
        return None
    column, qual, count, any_ = tail
    pk = model._meta.pk
    if column.lower() != pk.column.lower() or (qual is not None and qual.lower() != model._meta.db_table.lower()):
        return None
    found: list[Any] = []
    for param_set in params if many else (params,):
        values = list(param_set)[-count:]
        if any_:
            if len(values) != 1 or not isinstance(values[0], (list, tuple)):
                return None
            values = list(values[0])
        found += [pk.to_python(v) for v in values]
    return found


def _dependents(table: str) -> Iterator[str]:
    """Tables changed by the database itself when rows of ``table`` are deleted."""
    seen = {table}
    todo = [table]
    while todo:
        for child, cascades in _db_on_delete().get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                yield child
                if cascades:
                    todo.append(child)


_on_delete_map: dict[str, list[tuple[str, bool]]] | None = None


def _db_on_delete() -> dict[str, list[tuple[str, bool]]]:
    global _on_delete_map
    if _on_delete_map is None:
        found: dict[str, list[tuple[str, bool]]] = {}
        try:
            from django.db.models.deletion import DB_CASCADE, DatabaseOnDelete  # type: ignore[attr-defined]
        except ImportError:  # Django < 6.1 has no database-level on_delete
            _on_delete_map = found
            return found
        for table, model in meta.table_models().items():
            for field in model._meta.concrete_fields:
                on_delete = getattr(field.remote_field, "on_delete", None)
                if field.is_relation and isinstance(on_delete, DatabaseOnDelete):
                    target = field.related_model._meta.db_table  # type: ignore[union-attr]
                    found.setdefault(target, []).append((table, on_delete is DB_CASCADE))
        _on_delete_map = found
    return _on_delete_map


def write_tags(sql: str, params: Any = None, many: bool = False) -> list[str]:
    """The tags a successful write statement invalidates (empty for reads)."""
    first = statements.first_char(sql)
    if first not in _WRITE_START:
        if first in _SELECT_START:
            return _select_tags(sql, params, many)
        if ";" not in sql:
            return []
    return _statement_tags(statements.read(sql), sql, params, many)


def _select_tags(sql: str, params: Any, many: bool) -> list[str]:
    """A SELECT writes only through ``INTO`` or a function that writes: plain reads are not read further."""
    if not sessions.writers_for(sql) and "NTO" not in sql and "nto" not in sql and ";" not in sql:
        return []
    return _statement_tags(statements.read(sql), sql, params, many)


def _statement_tags(statement: Statement, sql: str, params: Any, many: bool) -> list[str]:
    kind = statement.kind
    if not kind:
        return []
    if kind in _ROW_KINDS:
        return _row_tags(statement, sql, params, many)
    connection = sessions.current(sql)
    if kind == "select":
        writers = sessions.writers(connection)
        return _routine_tags(writers, statements.calls(statement)) if writers else []
    if kind == "call":
        writers = sessions.writers(connection)
        if statement.target not in writers and (
            connection is None or not sessions.is_routine(connection, statement.target)
        ):
            return [keys.GLOBAL_TAG]  # a procedure whose body cannot be read here
        return _routine_tags(writers, frozenset((statement.target,)))
    if kind == "execute":
        body = sessions.prepared(connection, statement.target)
        if body is None:
            return [keys.GLOBAL_TAG]  # a statement prepared where this process did not see it
        return _statement_tags(_as_whole(body), sql, None, False)
    tags = _whole_tables(statement.tables, cascade=statement.cascade)
    if statement.calls:
        writers = sessions.writers(connection)
        if writers:
            tags += _routine_tags(writers, statement.calls)
    if statement.unknown:
        tags.append(keys.GLOBAL_TAG)
    return tags


def _as_whole(statement: Statement) -> Statement:
    """A statement run with parameters it does not hold (EXECUTE): its tables are written as a whole."""
    if statement.kind not in _ROW_KINDS:
        return statement
    return Statement("tables", tables=(statement.table,), cascade=statement.kind == "delete")


def _routine_tags(writers: dict[str, sessions.Routine], names: frozenset[str]) -> list[str]:
    """What the routines among ``names`` that write retire."""
    tags: list[str] = []
    for name in names:
        routine = writers.get(name)
        if routine is not None:
            tags += _whole_tables(routine.tables, cascade=routine.cascade)
            if routine.unknown:
                tags.append(keys.GLOBAL_TAG)
    return tags


def _row_tags(statement: Statement, sql: str, params: Any, many: bool) -> list[str]:
    """A plain INSERT, UPDATE or DELETE of one table: the rows it names, when it names them."""
    kind = statement.kind
    found = _known(statement.table)
    if len(found) != 1:
        return _whole_tables(found, cascade=kind == "delete")
    table = found[0]
    model = meta.table_models()[table]
    text = statement.text or sql
    tags = [keys.model_tag(table)]
    keyed = meta.keyed_columns(table)
    if kind == "upsert":
        tags.append(keys.rows_tag(table))
    if kind in ("insert", "upsert"):
        if kind == "insert" and keyed:
            inserted = keyed_tags.inserted(text, params, many, table, keyed)
            if inserted is not None:
                return tags + inserted
        if keyed:
            tags.append(keys.keyed_tag(table))
        return tags
    try:
        pks = _pks(text, params, many, model)
    except Exception:  # an unexpected parameter shape: fall back to the whole table
        pks = None
    if pks is None:
        tags.append(keys.rows_tag(table))
    else:
        tags += [keys.object_tag(table, pk) for pk in pks]
    if keyed and not (kind == "update" and pks is not None and keyed_tags.covered(table, pks)):
        tags.append(keys.keyed_tag(table))
    if kind == "delete":
        tags += _whole_tables(_dependents(table))
    return tags


_lower_tables: tuple[dict[str, Any], dict[str, list[str]]] | None = None


def _known(name: str) -> list[str]:
    """The cached tables a name written in SQL may be: PostgreSQL folds unquoted names to lower case,
    SQLite and MySQL (on most systems) ignore case, so any case matches."""
    global _lower_tables
    known = meta.table_models()
    if name in known:
        return [name]
    if _lower_tables is None or _lower_tables[0] is not known:
        index: dict[str, list[str]] = {}
        for table in known:
            index.setdefault(table.lower(), []).append(table)
        _lower_tables = (known, index)
    return list(_lower_tables[1].get(name.lower(), ()))


def _whole_tables(names: Any, cascade: bool = False) -> list[str]:
    """Every entry of these tables (and, with ``cascade``, of the tables their deleted rows empty):
    their queries, their rows, and for a link table the ``cache_version`` of every row on both sides."""
    tags: dict[str, None] = {}
    link_tables = links.links()
    for name in names:
        for table in _known(name):
            found = [table, *_dependents(table)] if cascade else [table]
            for one in found:
                tags.update(dict.fromkeys((keys.model_tag(one), keys.rows_tag(one))))
                if meta.keyed_columns(one):
                    tags[keys.keyed_tag(one)] = None
                link = link_tables.get(one)
                if link is not None:
                    tags.update(dict.fromkeys(keys.rows_tag(side) for sides in link.sides for side in sides))
    return list(tags)


_local = threading.local()


@contextmanager
def recording() -> Iterator[set[str]]:
    """Collect the tables every SELECT reads inside the block (to check a prediction)."""
    stack: list[set[str]] = getattr(_local, "stack", None) or []
    _local.stack = stack
    found: set[str] = set()
    stack.append(found)
    try:
        yield found
    finally:
        stack.pop()


def execute_wrapper(execute: Any, sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    if outbox.internal():  # django-cachekit's own record of what it could not deliver
        return execute(sql, params, many, context)
    sessions.observe(context["connection"], sql)
    if not isinstance(sql, str):
        sql = str(sql)
    link = linked = None
    try:
        link = links.match(sql)
        if link is not None:
            # The raw DB-API cursor: our SELECT must not be analysed or counted as the statement.
            linked = links.before(context["cursor"].cursor, link, sql, params, many)
    except Exception:
        logger.exception("django-cachekit: could not read the link rows a statement changes")
        link = None
    connection = context["connection"]
    try:
        tags = write_tags(sql, params, many)
    except Exception:
        logger.exception("django-cachekit: could not analyse a statement; invalidating everything")
        tags = [keys.GLOBAL_TAG]
    # Known before the statement runs, so they can be marked before it commits.
    token = buffers.before_statement(connection, tags) if tags else ""
    try:
        result = execute(sql, params, many, context)
    except BaseException:
        buffers.abandon(tags, token)
        raise
    try:
        if link is not None:
            tags = tags + links.tags(context["cursor"].cursor, link, sql, params, many, linked or [])
        if tags:
            buffers.record(connection, tags, token)
        elif getattr(_local, "stack", None):
            tables = read_tables(sql)
            for found in _local.stack:
                found |= tables
    except Exception:
        # The statement already ran; never fail it, but never risk stale data either.
        logger.exception("django-cachekit: could not analyse a statement; invalidating everything")
        buffers.record(connection, [*tags, keys.GLOBAL_TAG], token)
    return result


def install(connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if execute_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.append(execute_wrapper)
    buffers.install(connection)


def install_all() -> None:
    for connection in connections.all(initialized_only=True):
        install(connection)


@resettable
def clear() -> None:
    global _on_delete_map, _lower_tables
    _on_delete_map = None
    _lower_tables = None
    links.clear()
    sessions.clear()
