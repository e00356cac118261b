"""Keys and tags for querysets, derived from the SQL they run."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from django.db.models.expressions import Col
from django.db.models.fields.related_lookups import RelatedExact
from django.db.models.lookups import Exact
from django.db.models.sql import Query
from django.db.models.sql.where import AND

from django_cachekit.core import arguments, events, keys
from django_cachekit.invalidation import buffers, hook
from django_cachekit.memo import Memo, resettable
from django_cachekit.schema import meta

logger = logging.getLogger("django_cachekit")

_LEARNED_MAX = 10_000
# entry key -> tables seen read beyond those named in the main SQL (aggregates over joins)
_learned: Memo[str, frozenset[str]] = Memo(_LEARNED_MAX)
# (model, shape of the steps that built a queryset) -> tables its SQL reads, and its keyed filters
_shapes: Memo[Any, Shape] = Memo(_LEARNED_MAX)
# entry key -> what the SQL of a read's probe (an aggregate's expressions) reads and calls
_probes: Memo[str, Probe] = Memo(_LEARNED_MAX)


@dataclass(frozen=True)
class Spec:
    """What ``.cache()`` asked for."""

    timeout: Any  # int | None, or DEFAULT for the model's timeout
    tags: tuple[str, ...]


# A filter ``column = value`` on an integer foreign key: (position among the
# WHERE clause's top-level conditions, alias, table, column).
Keyed = tuple[int, str, str, str]


@dataclass(frozen=True)
class Shape:
    tables: frozenset[str]
    keyed: tuple[Keyed, ...]
    volatile: bool  # its SQL calls the clock or a random source: its result is not a function of the data


@dataclass(frozen=True)
class Probe:
    tables: frozenset[str]
    volatile: bool


DEFAULT = arguments.DEFAULT
OFF = Spec(timeout=None, tags=())


@dataclass
class Plan:
    key: str
    tags: tuple[str, ...]
    tables: frozenset[str]
    namespace: str
    store: bool


def namespace(qs: QuerySet[Any]) -> str:
    return str(qs.model._meta.label_lower)


def plan(
    qs: QuerySet[Any], spec: Spec, kind: str, extra: Any = None, probe: Callable[[], QuerySet[Any]] | None = None
) -> Plan | None:
    """How to cache ``qs`` read as ``kind``; None when it must go to the database.

    The key comes from the steps that built the queryset when they are known
    (no SQL is compiled on a hit), else from its SQL; either way from the exact
    encoding of every value in it (``keys.exact``), and a value without one
    leaves the read uncached. The tags are the model tags of every table the
    SQL reads; for a known shape of steps they are remembered, so the SQL is
    compiled once per shape and process. ``probe`` gives a queryset whose SQL
    reads what the real read will (an aggregate's joins); it is compiled once
    per key. SQL that calls the clock or a random source is cached only for a
    timeout given to ``.cache()``.
    """
    db = qs.db
    info = meta.info(qs.model)
    ns = info.label
    found = qs._fingerprint() if hasattr(qs, "_fingerprint") else None
    found_shape: Shape | None = None
    try:
        if found is not None:
            digest = keys.digest(keys.exact(("steps", meta.registry_digest(), kind, extra, spec.tags, found[0])))
            shape = (info.label, found[1])
            found_shape = _shapes.get(shape)
        else:
            shape = None
        if found_shape is None:
            try:
                sql, params = qs.query.get_compiler(using=db).as_sql()
            except EmptyResultSet:
                return None
            found_shape = Shape(frozenset(hook.read_tables(sql)), keyed_filters(qs.query, sql), volatile(sql))
            if shape is not None:
                _shapes.remember(shape, found_shape)
            else:
                digest = keys.digest(keys.exact(("sql", kind, extra, spec.tags, sql, params)))
    except keys.Unencodable as exc:
        _bypass(ns, "a value without an exact encoding: %s", exc)
        return None
    tables = found_shape.tables
    key = keys.entry_key(info.schema, keys.QUERY, f"{db}:{digest}")
    is_volatile = found_shape.volatile
    extra_tables = _learned.get(key)
    if probe is not None:
        probed = _probes.get(key)
        if probed is None:
            probed = _probes.remember(key, _probe(probe, db))
        is_volatile = is_volatile or probed.volatile
        if probed.tables:
            extra_tables = probed.tables | (extra_tables or frozenset())
    if is_volatile and spec.timeout is DEFAULT:
        _bypass(ns, "SQL that calls the clock or a random source, without a timeout given to .cache()")
        return None
    if extra_tables:
        tables |= extra_tables
    known = meta.table_models()
    if not tables or not tables.issubset(known):
        _bypass(ns, "tables outside the model registry")
        return None
    by_value = _field_tags(qs.query, found_shape.keyed, extra_tables) if found_shape.keyed else {}
    table_tags: list[str] = []
    for table in sorted(tables):
        tag = by_value.get(table)
        if tag is None:
            table_tags.append(keys.model_tag(table))
        else:
            table_tags += (keys.keyed_tag(table), tag)
    tags = (*table_tags, *spec.tags, keys.GLOBAL_TAG)
    pending = buffers.pending(db)
    if pending and not pending.isdisjoint(tags):
        events.record("bypass", ns)
        return None
    return Plan(key, tags, tables, ns, may_store(db))


def _bypass(ns: str, why: str, *args: Any) -> None:
    events.record("bypass", ns)
    logger.debug("django-cachekit: not caching a query of %s: " + why, ns, *args)


# SQL of PostgreSQL, SQLite, MySQL and Oracle whose value changes without any write.
_VOLATILE_CALLS = frozenset(
    """now statement_timestamp clock_timestamp transaction_timestamp timeofday random rand setseed
    nextval currval lastval setval gen_random_uuid uuid_generate_v1 uuid_generate_v1mc uuid_generate_v4
    uuid uuid_short txid_current txid_current_if_assigned pg_current_xact_id randomblob changes
    last_insert_rowid total_changes sysdate curdate curtime unix_timestamp utc_timestamp utc_date utc_time
    current_timestamp current_date current_time localtimestamp localtime sys_guid systimestamp""".split()  # noqa: SIM905
)
# Keywords that need no parentheses.
_VOLATILE_WORDS = frozenset(
    ("current_timestamp", "current_date", "current_time", "localtimestamp", "localtime", "systimestamp", "dbms_random")
)
# SQLite's date functions called without a time value mean 'now'.
_NOW_BY_DEFAULT = frozenset(("date", "time", "datetime", "julianday", "unixepoch"))
# Date inputs that mean the current time: SQLite's 'now', PostgreSQL's 'now'::timestamp and its kin.
_NOW_LITERALS = frozenset(("now", "today", "tomorrow", "yesterday"))
_SQL_TOKEN = re.compile(
    r"'((?:[^']|'')*)'"  # a string literal
    r'|"(?:[^"]|"")*"|`[^`]*`'  # a quoted identifier
    r"|([A-Za-z_][\w$]*)(\s*\((\s*\))?)?"  # a word, and whether it is called (with no arguments)
)


def volatile(sql: str) -> bool:
    """Whether ``sql`` calls the clock or a random source, so that running it twice
    on the same data may give two results."""
    for match in _SQL_TOKEN.finditer(sql):
        literal, word, call, empty = match.groups()
        if literal is not None:
            if literal.strip().lower() in _NOW_LITERALS:
                return True
        elif word is not None:
            word = word.lower()
            if word in _VOLATILE_WORDS or (call and word in _VOLATILE_CALLS) or (empty and word in _NOW_BY_DEFAULT):
                return True
    return False


def keyed_filters(query: Query, sql: str) -> tuple[Keyed, ...]:
    """The conditions ``fk = value`` that every row a query reads from a table must meet.

    One per table, from the WHERE clause's top-level AND, on an integer foreign
    key of a table the SQL reads once (not again in a subquery or a self-join).
    Such a query depends only on the rows holding that value, so it is tagged by
    the value instead of by the whole table.
    """
    where = query.where
    if where.connector != AND or where.negated or query.combinator:
        return ()
    counts = Counter(hook.read_table_list(sql))
    chosen: dict[str, Keyed] = {}
    children: list[Any] = where.children
    for position, child in enumerate(children):
        if type(child) not in (Exact, RelatedExact):
            continue
        lhs = child.lhs
        if type(lhs) is not Col or hasattr(child.rhs, "resolve_expression"):
            continue
        join = query.alias_map.get(lhs.alias)
        table: str | None = getattr(join, "table_name", None)
        if table is None or counts.get(table) != 1 or table in chosen:
            continue
        column = lhs.target.column
        if column in meta.keyed_columns(table):
            chosen[table] = (position, lhs.alias, table, column)
    return tuple(chosen.values())


def _field_tags(query: Query, keyed: tuple[Keyed, ...], extra_tables: frozenset[str] | None) -> dict[str, str]:
    """``{table: field tag}`` for this query's values of its shape's keyed filters."""
    children: list[Any] = query.where.children
    found: dict[str, str] = {}
    for position, alias, table, column in keyed:
        if extra_tables and table in extra_tables:
            continue  # read again by a query beyond the main SQL, unfiltered
        try:
            child = children[position]
            lhs = child.lhs
            if type(child) not in (Exact, RelatedExact) or lhs.alias != alias or lhs.target.column != column:
                continue
            value = meta.keyed_value(child.rhs)
        except (AttributeError, IndexError, TypeError, ValueError):
            continue
        found[table] = keys.field_tag(table, column, value)
    return found


def verify(plan: Plan, seen: set[str]) -> bool:
    """Whether the queries run for ``plan`` read only tables it is tagged with."""
    extra = seen - plan.tables
    if not extra:
        return True
    _learned.remember(plan.key, _learned.get(plan.key, frozenset()) | extra)
    logger.debug("django-cachekit: %s read %s beyond its SQL; not stored this time", plan.key, sorted(extra))
    return False


def _probe(probe: Callable[[], QuerySet[Any]], db: str) -> Probe:
    try:
        sql, _ = probe().query.get_compiler(using=db).as_sql()
    except Exception:  # the probe is a hint; the recorded tables of a miss are the check
        return Probe(frozenset(), False)
    return Probe(frozenset(hook.read_tables(sql)), volatile(sql))


def may_store(db: str) -> bool:
    """Whether a value read now on ``db`` may be stored for others.

    Outside a transaction, always. Inside one, only under READ COMMITTED on
    PostgreSQL: at stricter isolation a transaction reads an older snapshot than
    the versions it just read from the cache. The isolation counts whether it
    comes from the connection's options or from SQL run on it (``SET
    TRANSACTION ISOLATION LEVEL``, ``BEGIN ISOLATION LEVEL``, a session default).
    """
    from django_cachekit.invalidation import sessions

    connection = connections[db]
    if sessions.reads_old_snapshot(connection):
        return False
    if not connection.in_atomic_block:
        return True
    if connection.vendor != "postgresql":
        return False
    level = getattr(connection, "isolation_level", None)
    try:
        from psycopg import IsolationLevel

        return level in (None, IsolationLevel.READ_COMMITTED)
    except ImportError:  # psycopg2
        return level in (None, 1)


@resettable
def clear() -> None:
    _learned.clear()
    _shapes.clear()
    _probes.clear()


def may_store_here() -> bool:
    """Whether a value read now, on any connection of this thread, may be stored for others (the read flow's guard)."""
    return all(may_store(c.alias) for c in connections.all(initialized_only=True))
