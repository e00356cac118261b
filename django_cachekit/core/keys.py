"""Names of cache keys and tags.

Every key is ``[KEY_PREFIX:]ck:<schema>:<kind>:<rest>``; tag versions live under
``[KEY_PREFIX:]ck:v:<tag>``, marks of writes being committed under
``[KEY_PREFIX:]ck:w:<tag>``. Anything a user controls is hashed unless it is
short and made of safe characters, so keys stay valid for Memcached.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import hashlib
import json
import re
import struct
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.expressions import BaseExpression, Combinable

from django_cachekit.core.settings import conf

GLOBAL_TAG = "g"
TABLE_TAG_KINDS = frozenset("mrotkf")  # tags named "<kind>:<table>[:...]"
_SAFE = re.compile(r"[A-Za-z0-9_.\-]{1,80}\Z")
_SAFE_TAG = re.compile(r"[A-Za-z0-9_.:\-/@]{1,160}\Z")


def digest(data: str, size: int = 16) -> str:
    return hashlib.blake2b(data.encode(), digest_size=size).hexdigest()


# A name a user gives (``cached(key=...)``): kept as it is when every backend takes it, else hashed.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.:\-/@=,+]{1,128}\Z")
FUNCTION_ID_SIZE = 6  # bytes of a function's digest in its named keys


def name_part(name: str) -> str:
    """``name`` as a key part: itself when it is short and made of characters Memcached takes
    (no space, no control character), else ``#`` and its digest; no name kept as it is has a ``#``."""
    return name if _SAFE_NAME.match(name) else "#" + digest(name)


def function_id(qualified_name: str) -> str:
    """The part of a ``cached(key=...)`` key that names its function (``module.qualname``)."""
    return digest(qualified_name, size=FUNCTION_ID_SIZE)


def named_rest(function: str, name: str) -> str:
    """The rest of a ``cached(key=...)`` entry key: the function's id, then the name."""
    return f"{function_id(function)}:{name_part(name)}"


def named_pattern(pattern: str) -> str:
    """The glob over the rest of named entry keys that matches names matching ``pattern``, of any function."""
    return "?" * (2 * FUNCTION_ID_SIZE) + ":" + pattern


def safe_part(value: Any) -> str:
    text = str(value)
    if type(value) is int or _SAFE.match(text):
        return text
    return "#" + digest(text)


def prefix() -> str:
    return conf.KEY_BASE


def version_key(tag: str) -> str:
    return f"{conf.KEY_BASE}v:{tag}"


def version_keys(tags: Iterable[str]) -> list[str]:
    base = conf.KEY_BASE
    return [f"{base}v:{tag}" for tag in tags]


def clock_key() -> str:
    """The store's clock: advanced by every bump, read with every lookup (see ``Runtime.clock_holds``)."""
    return f"{conf.KEY_BASE}clock"


def mark_keys(tags: Iterable[str]) -> list[str]:
    """Keys that say a write of these tags is being committed (see ``core.mark``)."""
    base = conf.KEY_BASE
    return [f"{base}w:{tag}" for tag in tags]


def user_tag(tag: object) -> str:
    """The internal name of a tag given by a user (``invalidate_tags("user:42")``)."""
    if not isinstance(tag, str) or not tag:
        raise ValueError(f"A cache tag must be a non-empty string, not {tag!r}.")
    return "u:" + tag if _SAFE_TAG.match(tag) else "u#" + digest(tag)


def user_tags(tags: Iterable[object]) -> list[str]:
    if isinstance(tags, str):
        return [user_tag(tags)]
    return [user_tag(tag) for tag in tags]


def model_tag(table: str) -> str:
    return f"m:{table}"


def rows_tag(table: str) -> str:
    return f"r:{table}"


def keyed_tag(table: str) -> str:
    """Bumped by every write to ``table`` whose foreign-key values are not known:
    queries tagged by a foreign-key value carry it instead of the model tag."""
    return f"k:{table}"


def field_tag(table: str, column: str, value: Any) -> str:
    """The rows of ``table`` whose ``column`` holds ``value`` (an integer foreign key)."""
    return f"f:{table}:{column}={value}"


def object_tag(table: str, pk: Any) -> str:
    return f"o:{table}:{safe_part(pk)}"


def touch_tag(table: str, pk: Any) -> str:
    return f"t:{table}:{safe_part(pk)}"


def object_tags_of(tables: Iterable[str], part: str) -> tuple[str, ...]:
    """``object_tag`` of one row in each of ``tables``, its pk already ``safe_part``-ed."""
    return tuple([f"o:{table}:{part}" for table in tables])


def touch_tags_of(tables: Iterable[str], part: str) -> tuple[str, ...]:
    """``touch_tag`` of one row in each of ``tables``, its pk already ``safe_part``-ed."""
    return tuple([f"t:{table}:{part}" for table in tables])


def user_tag_pattern(pattern: str) -> str:
    """The glob over internal tag names that matches user tags matching ``pattern``."""
    return f"u:{pattern}"


# -- entry keys: "<prefix><schema>:<kind>:<rest>" ---------------------------------------------

OBJECT = "o"  # a row by primary key: "<db>:<pk>"
QUERY = "q"  # a queryset: "<db>:<digest>"
FUNCTION = "f"  # a @cached call: "<digest>"
NAMED = "k"  # a @cached(key=...) call: "<function id>:<name>"
FRAGMENT = "fr"  # a template fragment: "<digest>"
RESPONSE = "h"  # a cache_response view: "<digest>"


def entry_key(schema: str, kind: str, rest: str) -> str:
    """The key of an entry of ``kind`` (one of the constants above) under ``schema``."""
    return f"{conf.KEY_BASE}{schema}:{kind}:{rest}"


# -- records that are not entries ------------------------------------------------------------


def last_modified_keys(scope: str, digest: str) -> tuple[str, str]:
    """``(record, high)``: the second content with ``digest`` was first read, and the latest
    second any content of ``scope`` was given (``http.responses.last_modified``)."""
    return f"{conf.KEY_BASE}h:lm:{digest}", f"{conf.KEY_BASE}h:lh:{scope}"


def last_modified_claim(scope: str, second: int) -> str:
    """Which content of ``scope`` holds the Last-Modified ``second``."""
    return f"{conf.KEY_BASE}h:lc:{scope}:{second}"


def pending_turn() -> str:
    """Who delivers the table of undelivered invalidations next (``invalidation.outbox``)."""
    return f"{conf.KEY_BASE}pending"


def totals_group() -> str:
    """The prefix of the shared metrics totals (``metrics.totals``)."""
    return f"{conf.KEY_BASE}metrics:"


# -- exact encoding of values -------------------------------------------------------------


class Unencodable(TypeError):
    """A value no key can name exactly: a key built from it could stand for another value too."""

    def __init__(self, value: Any, reason: str = "has no exact encoding") -> None:
        super().__init__(f"{value!r} {reason}, so no cache key is made from it.")
        self.value = value


def exact(value: Any) -> str:
    """``value``'s type and its whole value as text: two values get the same text only if they are the same.

    Every encoding starts with a letter naming its type and carries its own
    length, so encodings put side by side never run into one another. A value
    that cannot be told apart from others this way raises ``Unencodable``.
    """
    kind = type(value)
    # The types of recorded query steps first: they are encoded on every cached read.
    if kind is str:
        return f"s{len(value)}:{value}"
    if kind is tuple:
        return f"P{len(value)}:{''.join([f's{len(i)}:{i}' if type(i) is str else exact(i) for i in value])}"
    if kind is int:
        return f"i{value};"
    if value is None:
        return "N"
    encode = _BY_TYPE.get(kind)
    return _other(value) if encode is None else encode(value)


def _text(tag: str, text: str) -> str:
    return f"{tag}{len(text)}:{text}"


def _float(value: float) -> str:
    return "f" + struct.pack(">d", value).hex()  # the bits: -0.0 and NaN stay apart


def _datetime(value: datetime.datetime | datetime.time) -> str:
    tag = "D" if isinstance(value, datetime.datetime) else "H"
    return _text(tag, f"{value.isoformat()}|{value.fold}|{value.tzname()}")


def _set(value: set[Any] | frozenset[Any]) -> str:
    return f"{'Z' if isinstance(value, frozenset) else 'S'}{len(value)}:{''.join(sorted(map(exact, value)))}"


def _dict(value: dict[Any, Any]) -> str:
    # Sorted by key: distinct keys have distinct encodings, none a prefix of another.
    return f"M{len(value)}:{''.join(sorted(exact(k) + exact(v) for k, v in value.items()))}"


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: lambda v: f"s{len(v)}:{v}",
    tuple: lambda v: f"P{len(v)}:{''.join(map(exact, v))}",
    int: lambda v: f"i{v};",
    bool: lambda v: "T" if v else "F",
    float: _float,
    bytes: lambda v: _text("b", v.hex()),
    bytearray: lambda v: _text("B", v.hex()),
    memoryview: lambda v: _text("v", v.tobytes().hex()),
    decimal.Decimal: lambda v: _text("d", str(v)),  # str keeps the exponent: 1.0 is not 1.00
    datetime.datetime: _datetime,
    datetime.date: lambda v: f"Y{v.isoformat()}",
    datetime.time: _datetime,
    datetime.timedelta: lambda v: f"W{v.days},{v.seconds},{v.microseconds};",
    uuid.UUID: lambda v: f"U{v.hex}",
    list: lambda v: f"L{len(v)}:{''.join(map(exact, v))}",
    set: _set,
    frozenset: _set,
    dict: _dict,
}
# Subclasses of these carry no state of their own when they have no instance dict (namedtuples, SafeString).
_BASES = (int, float, str, bytes, decimal.Decimal, datetime.date, datetime.time, datetime.timedelta, tuple, list)


def _name(obj: Any) -> str:
    """The importable name of a module-level class or function; anything else has none that is unique."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise Unencodable(obj, "is not a module-level class or function")
    return f"{module}.{qualname}"


def _other(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return _text("E", _name(type(value))) + exact(value.name) + exact(value.value)
    if isinstance(value, models.Model):
        if value.pk is None:
            raise Unencodable(value, "is an unsaved instance")
        return _text("O", value._meta.label_lower) + exact(value.pk)
    if isinstance(value, (Combinable, BaseExpression)) and hasattr(value, "_constructor_args"):
        # How Django itself tells expressions apart (``identity``): their class and constructor arguments.
        return _text("X", _name(type(value))) + exact(value._constructor_args)
    if isinstance(value, Q):
        path, args, kwargs = value.deconstruct()
        return _text("Q", path) + exact((args, kwargs))
    if isinstance(value, models.Field):
        if getattr(value, "model", None) is not None:
            return _text("G", f"{value.model._meta.label_lower}.{value.name}")
        return _text("g", _name(type(value))) + exact(value.deconstruct()[2:])
    if isinstance(value, functools.partial):
        return "p" + exact((value.func, value.args, value.keywords))
    if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return _text("C", _name(value))
    return _driver_value(value) or _subclass(value)


def _subclass(value: Any) -> str:
    kind = type(value)
    base = next((b for b in kind.__mro__ if b in _BY_TYPE), None)
    if base is None or base not in _BASES or getattr(value, "__dict__", None):
        raise Unencodable(value)
    return _text("K", _name(kind)) + _BY_TYPE[base](str.__str__(value) if base is str else value)


_JSON_DEFAULTS = (None, json.dumps)


def _driver_value(value: Any) -> str | None:
    """The JSON and range wrappers of psycopg 3 and psycopg2, as Django passes them."""
    kind = type(value)
    if not kind.__module__.startswith(("psycopg", "django.db.backends.postgresql")):
        return None
    names = {f"{c.__module__}.{c.__qualname__}" for c in kind.__mro__}
    if "psycopg.types.range.Range" in names or "psycopg2._range.Range" in names:
        bounds = "N" if value.isempty else exact((value.lower, value.upper, value.lower_inc, value.upper_inc))
        return _text("R", _name(kind)) + bounds
    if "psycopg.types.json._JsonWrapper" in names:
        obj, dumps = value.obj, value.dumps
    elif "psycopg2._json.Json" in names:
        obj, dumps = value.adapted, getattr(value, "_dumps", None)
    else:
        return None
    return _text("J", _name(kind)) + exact(obj) + ("N" if dumps in _JSON_DEFAULTS else exact(dumps))


CALL_TAG_KIND = "c"  # the tag of one ``@cached`` call's entry


def call_tag(entry_key: str) -> str:
    """The tag of one ``@cached`` call's entry, named from its key without the prefix and schema.

    ``c:k:<function id>:<name>`` for a ``cached(key=...)`` name, so ``invalidate_pattern``
    finds the version keys of matching names by SCAN; ``c:f:<digest>`` otherwise. The
    version key is shorter than the entry key, so it is valid wherever the entry key is.
    """
    return f"{CALL_TAG_KIND}:{entry_key.removeprefix(conf.KEY_BASE).partition(':')[2]}"
