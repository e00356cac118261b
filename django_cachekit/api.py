"""The public functions: a caching decorator and invalidation by tag, model,
object and pattern."""

from __future__ import annotations

import functools
import inspect
import re
import string
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from django.db import DEFAULT_DB_ALIAS, connections, models

from django_cachekit.core import arguments, events, flow, keys, protocol, signals
from django_cachekit.core.protocol import cache_disabled
from django_cachekit.core.settings import conf
from django_cachekit.invalidation import buffers
from django_cachekit.orm import queries
from django_cachekit.schema import meta
from django_cachekit.stores.base import PatternUnsupported

__all__ = [
    "PatternUnsupported",
    "cache_disabled",
    "cached",
    "invalidate_all",
    "invalidate_model",
    "invalidate_object",
    "invalidate_pattern",
    "invalidate_tags",
]

F = TypeVar("F", bound=Callable[..., Any])
_DEFAULT = queries.DEFAULT


def _record(tags: list[str], using: str | None) -> None:
    # Inside a transaction on ``using`` this waits for the commit, like the writes it describes.
    buffers.record(connections[using or DEFAULT_DB_ALIAS], tags)


def invalidate_tags(*tags: str, using: str | None = None) -> None:
    """Make every entry carrying one of ``tags`` a miss."""
    _record(keys.user_tags(tags), using)


def invalidate_model(model: type[models.Model], using: str | None = None) -> None:
    """Retire every cached query and object of ``model``; use it after raw SQL run elsewhere."""
    info = meta.info(meta.model_class(model, "invalidate_model"))
    _record([*info.model_tags, *info.keyed_tags, *info.rows_tags], using)


def invalidate_object(obj: models.Model, using: str | None = None) -> None:
    """Retire ``obj``'s entry, its ``cache_version`` and the queries of its model."""
    if not isinstance(obj, models.Model) or obj.pk is None:
        raise TypeError(f"invalidate_object() takes a saved model instance, not {obj!r}.")
    info = meta.info(type(obj))
    pk = info.pk_value(obj.pk)
    _record([*info.version_tags(pk)[: 2 * len(info.tables)], *info.model_tags, *info.keyed_tags], using)


def invalidate_all(using: str | None = None) -> None:
    """Retire every entry django-cachekit has stored, by bumping the global generation."""
    _record([keys.GLOBAL_TAG], using)


def invalidate_pattern(pattern: str, using: str | None = None) -> int:
    """Retire the entries whose ``cached(key=...)`` name, or one of whose tags, matches a glob.

    The matching names' and tags' versions are bumped, like ``invalidate_tags``:
    a reader that computed before the call never has its entry served. Inside
    ``transaction.atomic`` on ``using`` the bump waits for the commit, and the
    glob is matched again then, so a name first stored in between is retired
    too; a rollback retires nothing. Needs Redis (SCAN); other backends raise
    ``PatternUnsupported``, inside a transaction too. Returns how many names
    and tags matched (inside a transaction: at the call).
    """
    if not isinstance(pattern, str) or not pattern or any(c.isspace() for c in pattern):
        raise ValueError(f"invalidate_pattern() takes a non-empty glob without spaces, not {pattern!r}.")
    found = _matching_tags(pattern)  # at the call: a backend without SCAN fails here, not at commit
    sent_at_once: list[bool] = []

    def resolve() -> list[str]:
        if registering:  # sent now: what was just found
            sent_at_once.append(True)
            return found
        return _matching_at_commit(pattern)

    connection = connections[using or DEFAULT_DB_ALIAS]
    registering = True
    buffers.record_resolved(connection, resolve)
    registering = False
    if not sent_at_once:
        # Until the commit, this transaction's own reads of these entries bypass the cache.
        buffers.record(connection, found)
    return len(found)


def _matching_tags(pattern: str) -> list[str]:
    """The tags with a version whose names match ``pattern``: ``cached(key=...)`` names and user tags."""
    store = protocol.runtime().store
    named = keys.entry_key(_function_schema(), keys.NAMED, keys.named_pattern(pattern))
    names = store.match_tags(keys.call_tag(named), keys.version_key)
    return [*names, *store.match_tags(keys.user_tag_pattern(pattern), keys.version_key)]


def _matching_at_commit(pattern: str) -> list[str]:
    # A commit must not fail for the cache: if the glob cannot be matched, every entry is retired instead.
    rt = protocol.runtime()
    ok, found = rt.call(_matching_tags, pattern)
    if not ok or found is None:
        rt.retire_all = True
        return []
    return found


def _function_schema() -> str:
    return keys.digest(f"functions:{conf.VERSION}", size=5)


def _key_fields(template: str, where: str) -> Iterator[str]:
    """The first names of the fields of a ``cached(key=...)`` format string, nested ones included."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"cached() key {template!r} of {where} is not a valid format string: {exc}.") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if conversion not in (None, "r", "s", "a"):
            raise ValueError(f"cached() key {template!r} of {where} has an unknown conversion !{conversion}.")
        yield re.match(r"[^.\[]*", field).group()  # type: ignore[union-attr]
        if spec:
            yield from _key_fields(spec, where)


def _check_key(template: str, name: str, signature: inspect.Signature, varkw: str | None) -> None:
    """A key template names only the function's arguments: checked when decorating, not at the first call."""
    for field in _key_fields(template, name):
        if not field or field.isdigit():
            raise ValueError(
                f"cached() key {template!r} of {name} has the positional field {{{field}}}; "
                "name the function's arguments instead."
            )
        if field not in signature.parameters and varkw is None:
            raise ValueError(
                f"cached() key {template!r} names {field!r}, which is not an argument of {name}{signature}."
            )


def _format_key(template: str, name: str, arguments: dict[str, Any], varkw: str | None) -> str:
    values = {**arguments[varkw], **arguments} if varkw is not None and varkw in arguments else arguments
    try:
        return template.format_map(values)
    except KeyError as exc:  # only a name for **kwargs that this call does not pass
        raise TypeError(
            f"cached() key {template!r} of {name} needs {exc.args[0]!r}, which this call does not pass."
        ) from None


def cached(
    timeout: Any = _DEFAULT,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    depends_on: Iterable[Any] = (),
    key: str | Callable[..., str] | None = None,
) -> Any:
    """Cache a function's result (cache-aside), invalidated by tags and model writes.

    ``tags`` may be a callable of the function's arguments; ``depends_on`` takes
    models (any write to them) and instances (any change to that row); ``key``
    names the entry, as a format string over the arguments (checked against the
    signature here) or a callable, so ``invalidate_pattern`` can reach it. A name
    belongs to its function, and is hashed unless short and plain (``keys.name_part``).
    """
    if callable(timeout) and not isinstance(timeout, type):
        return cached()(timeout)
    arguments.timeout(timeout, "cached()")
    if not callable(tags):
        static_tags = arguments.tags(tags, "cached()")
    if key is not None and not (isinstance(key, str) and key) and not callable(key):
        raise ValueError(f"cached() key must be a non-empty format string or a callable, not {key!r}.")
    depends_on = list(depends_on)
    for dep in depends_on:
        if not isinstance(dep, models.Model):
            meta.model_class(dep, "cached(depends_on=...)")

    def decorator(func: F) -> F:
        signature = inspect.signature(func)
        name = f"{func.__module__}.{func.__qualname__}"
        dep_tags: list[str] | None = None
        varkw = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
        if isinstance(key, str):
            _check_key(key, name, signature, varkw)

        def entry_key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            if key is None:
                # Raises keys.Unencodable for an argument without an exact encoding: such a call has no key.
                described = keys.exact((name, tuple(bound.arguments.items())))
                return keys.entry_key(_function_schema(), keys.FUNCTION, keys.digest(described))
            given = key(*args, **kwargs) if callable(key) else _format_key(key, name, bound.arguments, varkw)
            if not isinstance(given, str) or not given:
                raise ValueError(f"cached() key for {name} must give a non-empty string, not {given!r}.")
            return keys.entry_key(_function_schema(), keys.NAMED, keys.named_rest(name, given))

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal dep_tags
            if not protocol.reading():
                return func(*args, **kwargs)
            if dep_tags is None:
                dep_tags = meta.depends_tags(depends_on)
            try:
                entry = entry_key(args, kwargs)
            except keys.Unencodable:
                events.record("bypass", name)
                return func(*args, **kwargs)
            user = keys.user_tags(tags(*args, **kwargs)) if callable(tags) else static_tags
            # The call's own tag: invalidate() bumps it, so a reader that computed before never gets served.
            entry_tags = (keys.call_tag(entry), *dep_tags, *user, keys.GLOBAL_TAG)
            ttl = conf.TIMEOUT if timeout is _DEFAULT else timeout
            return flow.read_through(entry, entry_tags, name, lambda: func(*args, **kwargs), ttl)

        def invalidate(*args: Any, **kwargs: Any) -> None:
            """Retire this call's entry (inside ``transaction.atomic``: when it commits)."""
            try:
                entry = entry_key(args, kwargs)
            except keys.Unencodable:  # such a call is never stored
                return
            _record([keys.call_tag(entry)], None)
            events.record("invalidation", name)
            if signals.cache_invalidated.receivers:
                signals.invalidated(name, key=entry)

        wrapper.invalidate = invalidate  # type: ignore[attr-defined]
        wrapper.cache_key = lambda *a, **kw: entry_key(a, kw)  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorator
