"""A saved instance's values as the database would return them.

Write-through stores the row a save wrote, without reading it back. That is
only right when each value is what a read would return: ``"5"`` assigned to an
IntegerField reads back as ``5``, a Decimal is rounded to its places, an aware
datetime comes back in UTC. Fields whose round trip is known are normalised
here; a model with any other field type is not written through (its next read
is an ordinary miss).
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.expressions import Combinable
from django.utils import timezone

Normalizer = Callable[[Any], Any]

_TO_PYTHON = (
    models.AutoField,
    models.BigAutoField,
    models.SmallAutoField,
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
    models.CharField,
    models.TextField,
    models.SlugField,
    models.EmailField,
    models.URLField,
    models.BooleanField,
    models.UUIDField,
    models.DateField,
    models.TimeField,
    models.DurationField,
    models.GenericIPAddressField,
)


_INTEGER_FIELDS = tuple(kind for kind in _TO_PYTHON if issubclass(kind, models.IntegerField))  # auto fields too
_TEXT_FIELDS = (models.CharField, models.TextField, models.SlugField, models.EmailField, models.URLField)


def _datetime(field: models.Field[Any, Any]) -> Normalizer:
    def normalize(value: Any) -> Any:
        if type(value) is datetime.datetime and value.tzinfo is datetime.UTC and settings.USE_TZ:
            return value  # already as read back
        value = field.to_python(value)
        if value is None or not settings.USE_TZ:
            return value
        if timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_default_timezone())
        return value.astimezone(datetime.UTC)

    return normalize


def _decimal(field: models.DecimalField[Any, Any]) -> Normalizer:
    places = field.decimal_places
    quantum = decimal.Decimal(1).scaleb(-places) if places is not None else None

    def normalize(value: Any) -> Any:
        value = field.to_python(value)
        if value is None or quantum is None:
            return value
        return value.quantize(quantum, context=field.context)

    return normalize


def _json(field: models.JSONField[Any, Any]) -> Normalizer:
    def normalize(value: Any) -> Any:
        if value is None:
            return None
        return json.loads(json.dumps(value, cls=field.encoder), cls=field.decoder)

    return normalize


def _text(field: models.Field[Any, Any]) -> Normalizer:
    def normalize(value: Any) -> Any:
        value = field.to_python(value)
        # A str subclass (a SafeString, say) reads back as a plain str: what is
        # marked safe in the writer's process is not safe in every reader's.
        return value if value is None or type(value) is str else str.__str__(value)

    return normalize


def _float(value: Any) -> Any:
    return None if value is None else float(value)


def _file(value: Any) -> Any:
    if value is None:
        return None
    return getattr(value, "name", value) or ""


def normalizer(field: models.Field[Any, Any]) -> Normalizer | None:
    """How to turn ``field``'s attribute into the value a read returns, or None if unknown."""
    kind = type(field)
    if isinstance(field, models.ForeignKey) and kind in (models.ForeignKey, models.OneToOneField):
        return normalizer(field.target_field)
    if kind is models.DateTimeField:
        return _datetime(field)
    if kind is models.DecimalField:
        return _decimal(field)  # type: ignore[arg-type]
    if kind is models.JSONField:
        return _json(field)  # type: ignore[arg-type]
    if kind is models.FloatField:
        return _float
    if kind in (models.FileField, models.ImageField):
        return _file
    if kind in _TEXT_FIELDS:
        return _text(field)
    if kind in _TO_PYTHON:
        return field.to_python
    return None


def kept_type(field: models.Field[Any, Any]) -> type | None:
    """The type whose values ``field`` reads back unchanged (the normalizer can be skipped), if any."""
    kind = type(field)
    if isinstance(field, models.ForeignKey) and kind in (models.ForeignKey, models.OneToOneField):
        return kept_type(field.target_field)
    if kind in _INTEGER_FIELDS:
        return int
    if kind in _TEXT_FIELDS:
        return str
    if kind is models.BooleanField:
        return bool
    return None


def normalizers(fields: tuple[models.Field[Any, Any], ...]) -> tuple[Normalizer, ...] | None:
    found = [normalizer(f) for f in fields]
    if any(n is None for n in found):
        return None
    return tuple(found)  # type: ignore[arg-type]


def saved_row(
    obj: models.Model, attnames: tuple[str, ...], norms: tuple[Normalizer, ...], kept: tuple[type | None, ...]
) -> tuple[Any, ...] | None:
    """The row ``obj`` was saved as, or None when a value is not known without a read."""
    values = obj.__dict__
    row = []
    for name, norm, plain in zip(attnames, norms, kept):
        if name not in values:  # deferred, or a generated column
            return None
        value = values[name]
        if type(value) is plain:  # an int of an integer field, a str of a text field...: as read
            row.append(value)
            continue
        if isinstance(value, (Combinable, models.Expression)) or hasattr(value, "resolve_expression"):
            return None
        try:
            row.append(norm(value))
        except Exception:  # a value the field would reject on read: let the read decide
            return None
    return tuple(row)
