"""The UPDATE of a save, compiled once per model and set of fields.

Saving an existing row makes Django build a queryset filtered on the primary
key and compile an UPDATE from it, every time; on a cached model that costs
more than the cache's own work. In the plain case (every value a value, no
expression, no field with a placeholder of its own, a primary key that is one
plain column, PostgreSQL or SQLite) the statement's text is made once per
table and set of fields and reused, and the parameters are prepared as Django
prepares them. Anything else goes through Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from django_cachekit.memo import Memo
from django_cachekit.schema import rows

VENDORS = frozenset({"postgresql", "sqlite"})


class _Statement(NamedTuple):
    sql: str
    # Per field, the type of value Django passes through unchanged (a str of a
    # text field, a bool of a boolean field), else None.
    as_is: tuple[type | None, ...]


_statements: Memo[tuple[Any, ...], _Statement | None] = Memo()


def _statement(
    table: str, fields: tuple[models.Field[Any, Any], ...], pk: models.Field[Any, Any], connection: BaseDatabaseWrapper
) -> _Statement | None:
    if pk.column is None or any(
        field.column is None or hasattr(field, "get_placeholder") or hasattr(field, "get_placeholder_sql")
        for field in fields
    ):
        return None
    quote = connection.ops.quote_name
    name = quote(table)
    columns = ", ".join(f"{quote(field.column)} = %s" for field in fields)  # type: ignore[arg-type]
    as_is = tuple(kind if (kind := rows.kept_type(field)) in (str, bool) else None for field in fields)
    return _Statement(f"UPDATE {name} SET {columns} WHERE {name}.{quote(pk.column)} = %s", as_is)


def update_statement(
    model: type[models.Model],
    pk_val: Any,
    values: Sequence[tuple[models.Field[Any, Any], Any, Any]],
    connection: BaseDatabaseWrapper,
) -> tuple[str, list[Any]] | None:
    """``(sql, params)`` of the UPDATE that sets ``values`` (``(field, model, value)``
    as ``Model._save_table`` passes them) on row ``pk_val``, or None when Django must build it."""
    if not values or connection.vendor not in VENDORS:
        return None
    meta = model._meta
    pk = meta.pk
    if pk is None or pk.is_relation or len(getattr(meta, "pk_fields", (pk,))) != 1:
        return None
    fields = tuple([field for field, _, _ in values])
    key = (meta.db_table, connection.vendor, fields)
    try:
        statement = _statements[key]
    except KeyError:
        statement = _statements.remember(key, _statement(meta.db_table, fields, pk, connection))
    if statement is None:
        return None
    params = []
    for (field, _, value), as_is in zip(values, statement.as_is):
        if type(value) is as_is:  # what get_db_prep_save would return
            params.append(value)
            continue
        if hasattr(value, "resolve_expression") or hasattr(value, "prepare_database_save"):
            return None
        value = field.get_db_prep_save(value, connection=connection)
        if hasattr(value, "as_sql"):
            return None
        params.append(value)
    params.append(pk.get_db_prep_value(pk_val, connection, prepared=False))
    return statement.sql, params
