"""Tags of foreign-key values: which lists filtered on a foreign key a write changes.

A list such as ``Article.objects.filter(author=a)`` carries the field tag of
``author_id = a.pk`` instead of its table's model tag, so a write to another
author's articles leaves it cached. What a write bumps for these lists is
decided here, for every way a row changes:

- an INSERT: the values it writes, read from its parameters (``inserted``);
- a save: the row's old and new values (``changed``), known from its load; the
  save's own UPDATE is then ``covering``-ed, so the connection hook leaves
  the table's keyed tag alone for it (``covered``);
- anything else (an UPDATE or DELETE by SQL, a save whose values cannot be
  told, ``unknown``): the table's keyed tag, which retires every such list.
"""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections, models

from django_cachekit.core import keys
from django_cachekit.invalidation import buffers, statements
from django_cachekit.schema import meta
from django_cachekit.schema.meta import KEYED_ATTR, ModelInfo

_local = threading.local()


def inserted(sql: str, params: Any, many: bool, table: str, keyed: dict[str, str]) -> list[str] | None:
    """Field tags of the foreign-key values an INSERT writes (``keyed``: column -> field), or None
    when it cannot tell."""
    columns = statements.inserted_columns(sql)
    if columns is None or params is None or isinstance(params, dict):
        return None
    positions = [(i, c) for i, c in enumerate(columns) if c in keyed]
    if len(positions) != len(keyed):
        return None  # a foreign key left to its database default
    width = len(columns)
    tags: dict[str, None] = {}
    try:
        for param_set in params if many else (params,):
            values = list(param_set)
            if not values or len(values) % width:
                return None
            for start in range(0, len(values), width):
                for i, column in positions:
                    tags[keys.field_tag(table, column, meta.keyed_value(values[start + i]))] = None
    except (TypeError, ValueError):
        return None
    return list(tags)


def covered(table: str, pks: list[Any]) -> bool:
    """Whether this UPDATE is the save's own; the first UPDATE of the row is,
    another one (a signal handler's) bumps the keyed tag."""
    covered = getattr(_local, "covered", None)
    if covered is None or len(pks) != 1 or covered != (table, pks[0]):
        return False
    _local.covered = None
    return True


class covering:
    """Inside the block, an UPDATE of this one ``(table, pk)`` row leaves the keyed
    tag alone: the save running it reports the row's old and new foreign-key values."""

    __slots__ = ("previous", "row")

    def __init__(self, row: tuple[str, Any] | None) -> None:
        self.row = row
        self.previous: tuple[str, Any] | None = None

    def __enter__(self) -> None:
        if self.row is not None:
            self.previous = getattr(_local, "covered", None)
            _local.covered = self.row

    def __exit__(self, *exc_info: object) -> None:
        if self.row is not None:
            _local.covered = self.previous


def changed(info: ModelInfo, old: tuple[Any, ...], new: tuple[Any, ...]) -> list[str] | None:
    """Field tags of the row's old and new foreign-key values, or None if one is not an integer."""
    tags: dict[str, None] = {}
    table = info.table
    try:
        for (_, column), before, after in zip(info.keyed, old, new):
            tags[keys.field_tag(table, column, meta.keyed_value(before))] = None
            if after != before or type(after) is not type(before):
                tags[keys.field_tag(table, column, meta.keyed_value(after))] = None
    except (TypeError, ValueError):
        return None
    return list(tags)


def unknown(obj: models.Model, using: str) -> None:
    """A save whose foreign-key values cannot be reported: every list keyed on its table goes."""
    obj.__dict__.pop(KEYED_ATTR, None)
    buffers.record(connections[using], meta.info(type(obj)).keyed_tags)
