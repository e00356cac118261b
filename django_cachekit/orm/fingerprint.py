"""A key for a queryset without compiling its SQL.

Compiling SQL costs about as much as the cache round trip, so a cached
queryset records how it was built instead: each ``filter()``, ``exclude()``,
``order_by()``, slice... appends a step with its arguments. Two querysets
built by the same steps from the same manager run the same SQL, so the steps
are the key.

Two guards keep this exact:

- Only plain values are recorded (numbers, strings, dates, UUIDs, saved model
  instances, ``Q`` and ``F`` over those), each by its exact encoding
  (``keys.exact``). Anything else (a subquery, an expression) makes the chain
  unknown and the SQL is compiled as before.
- After each recorded step a cheap summary of the query's state is kept. At
  read time it must still match: a method that changed the query without being
  recorded (``annotate()``, ``extra()``, an in-place change) is noticed, and
  the SQL is compiled.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from django.db import models
from django.db.models import F, Q
from django.db.models.sql import Query

from django_cachekit.core import keys

_SCALARS = (type(None), bool, int, float, str, bytes)
_PLAIN = (decimal.Decimal, datetime.date, datetime.time, datetime.timedelta, uuid.UUID)


class Unknown(Exception):
    """A value the fingerprint cannot describe exactly."""


def value(v: Any) -> tuple[Any, Any]:
    """``(exact, shape)``: the value's exact encoding, and only its type (shape decides joins, not values)."""
    if isinstance(v, Q):
        children = [child(c) for c in v.children]
        return (
            ("Q", v.connector, v.negated, tuple(c[0] for c in children)),
            ("Q", v.connector, v.negated, tuple(c[1] for c in children)),
        )
    kind = type(v)
    if kind is F:
        return ("F", v.name), ("F", v.name)
    found = _shape(v)
    try:
        return keys.exact(v), found
    except keys.Unencodable:
        raise Unknown from None


def _shape(v: Any) -> Any:
    kind = type(v)
    if kind in _SCALARS:
        return kind.__name__
    if isinstance(v, str):  # choices enums and other str subclasses
        return "str"
    if isinstance(v, _PLAIN):
        return kind.__name__
    if isinstance(v, (list, tuple, set, frozenset)):
        return kind.__name__, tuple(sorted({keys.exact(_shape(i)) for i in v}))
    if isinstance(v, models.Model):
        if v.pk is None:
            raise Unknown
        return "model", v._meta.label_lower
    raise Unknown


def child(c: Any) -> tuple[Any, Any]:
    if isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str):
        exact, shape = value(c[1])
        return (c[0], exact), (c[0], shape)
    return value(c)


def step(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """One recorded call, as ``(exact, shape)``.

    A string given positionally names a field or an order (``order_by("?")``,
    ``select_related("author")``): it decides the SQL's joins and functions, so
    it is part of the shape, not only of the key.
    """
    parts = [value(a) for a in args]
    named = [(k, *value(v)) for k, v in sorted(kwargs.items())]
    return (
        (name, tuple(p[0] for p in parts), tuple((k, e) for k, e, _ in named)),
        (
            name,
            tuple(a if type(a) is str else p[1] for a, p in zip(args, parts)),
            tuple((k, s) for k, _, s in named),
        ),
    )


def state(query: Query) -> tuple[Any, ...]:
    """What any change to the query's SQL would change; cheap to compute."""
    where = query.where
    return (
        tuple(map(id, where.children)),
        where.connector,
        where.negated,
        tuple(query.alias_map),
        query.low_mark,
        query.high_mark,
        query.order_by,
        query.extra_order_by,
        query.default_ordering,
        query.standard_ordering,
        query.select_related,
        query.distinct,
        query.distinct_fields,
        query.deferred_loading,
        query.values_select,
        query.default_cols,
        tuple(query.annotations),
        tuple(query.extra),
        query.extra_tables,
        query.combinator,
        query.select_for_update,
        query.group_by,
        query.select,
        query.filter_is_sticky,
    )
