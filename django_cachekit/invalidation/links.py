"""Link tables of many-to-many relations: a link row written or deleted changes
the ``cache_version`` of both rows it links.

``add()`` inserts link rows, ``remove()``/``clear()``, cascades and direct
deletes remove them, and Django sends no signal for most of these (an
auto-created through model never sends delete signals). So link rows are read
from the SQL: an INSERT's values, and for a DELETE or UPDATE the rows its WHERE
clause matches, selected just before it runs on the same cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps

from django_cachekit.core import keys
from django_cachekit.invalidation import statements
from django_cachekit.invalidation.statements import Statement
from django_cachekit.schema import meta

# First characters of statements that may write a link table (REPLACE INTO included, comments before any).
_WRITE_START = frozenset("IiDdUuRr(/-#")
_KINDS = {"insert": "INSERT", "upsert": "INSERT", "update": "UPDATE", "delete": "DELETE"}
Found = tuple["Link", str, Statement]


@dataclass(frozen=True)
class Link:
    table: str
    pk: str
    columns: tuple[str, str]
    sides: tuple[tuple[str, ...], tuple[str, ...]]  # tables of each linked model (with parents)

    def tags(self, rows: Sequence[Sequence[Any]]) -> list[str]:
        found: dict[str, None] = {}
        for row in rows:
            for value, tables in zip(row, self.sides):
                if value is not None:
                    found.update(dict.fromkeys(keys.touch_tag(table, value) for table in tables))
        return list(found)


_links: dict[str, Link] | None = None


def links() -> dict[str, Link]:
    global _links
    if _links is None:
        found: dict[str, Link] = {}
        for model in apps.get_models():
            for field in model._meta.local_many_to_many:
                through = field.remote_field.through  # type: ignore[attr-defined]
                if not isinstance(through, type):
                    continue
                source, target = model, field.remote_field.model
                if not (meta.is_cached_model(source) or meta.is_cached_model(target)):  # type: ignore[arg-type]
                    continue
                found[through._meta.db_table] = Link(
                    table=through._meta.db_table,
                    pk=str(through._meta.pk.column),  # type: ignore[union-attr]
                    columns=(field.m2m_column_name(), field.m2m_reverse_name()),  # type: ignore[attr-defined]
                    sides=(meta.info(source).tables, meta.info(target).tables),  # type: ignore[arg-type]
                )
        _links = found
    return _links


def clear() -> None:
    global _links
    _links = None


_lower_links: tuple[dict[str, Link], dict[str, Link]] | None = None


def _find(known: dict[str, Link], table: str) -> Link | None:
    """The link table a name written in SQL is, in any case (as the database folds or ignores it)."""
    global _lower_links
    link = known.get(table)
    if link is None:
        if _lower_links is None or _lower_links[0] is not known:
            _lower_links = (known, {name.lower(): found for name, found in known.items()})
        link = _lower_links[1].get(table.lower())
    return link


def match(sql: str) -> Found | None:
    """The link table a plain write statement changes, if any."""
    if statements.first_char(sql) not in _WRITE_START:
        return None
    known = links()
    if not known:
        return None
    found = statements.read(sql)
    kind = _KINDS.get(found.kind)
    if kind is None:
        return None
    link = _find(known, found.table)
    if link is None:
        return None
    return link, kind, found


def _select(cursor: Any, link: Link, head: Statement, sql: str, params: Any, columns: Sequence[str]) -> list[Any]:
    where = statements.where_at(head.text or sql, head.head)
    if where is None:
        clause, args = "", ()
    else:
        clause = sql[where:]
        # An UPDATE's SET placeholders come before the WHERE's.
        args = tuple(params or ())[sql.count("%s", 0, where) :] if params else ()
    names = ", ".join(f'"{c}"' for c in columns)
    cursor.execute(f'SELECT {names} FROM "{link.table}"{clause}', args)
    return list(cursor.fetchall())


def before(cursor: Any, found: Found, sql: str, params: Any, many: bool) -> list[Any]:
    """For a DELETE or UPDATE: the (pk, source, target) rows it is about to change."""
    link, kind, head = found
    if kind == "INSERT" or many:
        return []
    return _select(cursor, link, head, sql, params, (link.pk, *link.columns))


def tags(cursor: Any, found: Found, sql: str, params: Any, many: bool, rows: list[Any]) -> list[str]:
    """``t:`` tags of the rows on both sides of the links a statement wrote."""
    link, kind, head = found
    if kind == "INSERT":
        columns = statements.inserted_columns(head.text or sql, head.head)
        if columns is None or not set(link.columns) <= set(columns):
            return []
        width = len(columns)
        flat = [v for p in params for v in p] if many else list(params or ())
        index = [columns.index(c) for c in link.columns]
        chunks = [flat[i : i + width] for i in range(0, len(flat), width)]
        return link.tags([[chunk[i] for i in index] for chunk in chunks])
    linked = [row[1:] for row in rows]
    if kind == "UPDATE" and rows:
        after = _select_by_pk(cursor, link, [row[0] for row in rows])
        linked += after
    return link.tags(linked)


def _select_by_pk(cursor: Any, link: Link, pks: list[Any]) -> list[Any]:
    names = ", ".join(f'"{c}"' for c in link.columns)
    marks = ", ".join(["%s"] * len(pks))
    cursor.execute(f'SELECT {names} FROM "{link.table}" WHERE "{link.pk}" IN ({marks})', pks)
    return list(cursor.fetchall())
