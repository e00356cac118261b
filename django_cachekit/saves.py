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
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

from .memo import Memo

VENDORS = frozenset({"postgresql", "sqlite"})

_statements: Memo[tuple[Any, ...], str] = Memo()


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
    if pk is None or pk.is_relation or pk.column is None or len(getattr(meta, "pk_fields", (pk,))) != 1:
        return None
    params = []
    for field, _, value in values:
        if (
            field.column is None
            or hasattr(value, "resolve_expression")
            or hasattr(value, "prepare_database_save")
            or hasattr(field, "get_placeholder")
            or hasattr(field, "get_placeholder_sql")
        ):
            return None
        value = field.get_db_prep_save(value, connection=connection)
        if hasattr(value, "as_sql"):
            return None
        params.append(value)
    params.append(pk.get_db_prep_value(pk_val, connection, prepared=False))
    fields = tuple(field for field, _, _ in values)
    key = (meta.db_table, connection.vendor, fields)
    sql = _statements.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        columns = ", ".join(f"{quote(field.column)} = %s" for field in fields)  # type: ignore[arg-type]
        sql = _statements.remember(key, f"UPDATE {table} SET {columns} WHERE {table}.{quote(pk.column)} = %s")
    return sql, params
