"""Rendered output cached on the versions of the objects it shows.

A fragment's key names what it is (a name, the identities of its objects, a
digest of the template text that renders it, any ``vary`` values); its entry is
stamped with the versions of the objects' tags, the same tags that make up
``cache_version`` (the row, what touches it, its table's rows tag, the global
generation), plus the caller's tags. A save of an object, of a child that
``touch``-es it, or ``invalidate_tags()`` of one of the tags makes the entry a
miss; nothing else does, so fragments nest like Russian dolls: a child's change
re-renders the child's fragment and its parents', and every other fragment
stays a hit.

The template tag in ``templatetags/cachekit.py`` is a thin layer over these
functions; they can be used from Python too::

    fragment = fragments.fragment("card", [article, article.author], tags=["frontpage"])
    html = fragments.render(fragment, lambda: render_to_string("card.html", {...}))
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models

from django_cachekit.core import arguments, flow, keys
from django_cachekit.core.settings import conf
from django_cachekit.schema import meta

__all__ = ["Fragment", "fetch_many", "fragment", "object_tags", "render", "validate_timeout"]

DEFAULT: Any = arguments.DEFAULT
_VARY_TYPES = (str, int, float, bool, decimal.Decimal, datetime.date, datetime.time, uuid.UUID, models.Model)


@dataclass(frozen=True)
class Fragment:
    """Where a fragment lives: its key, the tags its entry is stamped with, its name."""

    key: str
    tags: tuple[str, ...]
    name: str

    @property
    def namespace(self) -> str:
        return f"fragment:{self.name}"


def _schema() -> str:
    return keys.digest(f"fragments:{conf.VERSION}", size=5)


def _identities(value: Any, what: str, entry_tags: list[str]) -> Any:
    """What names ``value`` in a key: an instance's identity, None, or a list of them, nested as given.

    A list stays a list, so ``x, y`` and ``x, [y]`` are different fragments;
    the tags of every instance are added to ``entry_tags``.
    """
    if value is None:
        return None  # "no object" is part of the key
    if isinstance(value, models.Model):
        if value.pk is None:
            raise ValueError(f"{what} is an unsaved {type(value).__name__}, which has no version yet: {value!r}.")
        info = meta.info(type(value))
        pk = info.pk_value(value.pk)
        entry_tags += info.version_tags(pk)
        return (info.label, info.schema, keys.safe_part(pk))
    if isinstance(value, (list, tuple, models.QuerySet)):
        found: list[Any] = []
        for i, item in enumerate(value):
            if not isinstance(item, models.Model):
                raise TypeError(f"{what}[{i}] must be a model instance, not {type(item).__name__} {item!r}.")
            found.append(_identities(item, f"{what}[{i}]", entry_tags))
        return found
    raise TypeError(
        f"{what} must be a saved model instance, a list of them or None, not {type(value).__name__} {value!r}."
    )


def object_tags(obj: models.Model) -> tuple[str, ...]:
    """The tags whose versions make up ``obj.cache_version``."""
    info = meta.info(type(obj))
    return info.version_tags(info.pk_value(obj.pk))


def _check_vary(value: Any, what: str) -> None:
    if value is None or isinstance(value, _VARY_TYPES):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_vary(item, f"{what}[{i}]")
        return
    raise TypeError(
        f"{what} must be a string, a number, a date, a model instance, None or a list of them, "
        f"not {type(value).__name__} {value!r}."
    )


def fragment(
    name: str,
    objects: Iterable[Any] = (),
    *,
    source: str = "",
    tags: Iterable[str] | str = (),
    vary: Any = None,
    labels: Sequence[str] | None = None,
) -> Fragment:
    """The fragment ``name`` showing ``objects``, rendered by ``source``.

    ``objects`` are saved model instances, lists of them, or None; ``tags`` are
    user tags (``invalidate_tags()`` retires the fragment); ``vary`` is anything
    else the output depends on (a language, a user's id). ``labels`` name the
    objects in error messages.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A fragment name must be a non-empty string, not {name!r}.")
    identities: list[Any] = []
    entry_tags: list[str] = []
    for i, value in enumerate(objects):
        what = labels[i] if labels is not None and i < len(labels) else f"object {i + 1}"
        identities.append(_identities(value, what, entry_tags))
    entry_tags += keys.user_tags(tags)
    entry_tags.append(keys.GLOBAL_TAG)
    _check_vary(vary, "vary")
    key = keys.entry_key(_schema(), keys.FRAGMENT, keys.digest(_described(name, source, identities, vary)))
    return Fragment(key, tuple(dict.fromkeys(entry_tags)), name)


def _described(name: str, source: str, identities: list[Any], vary: Any) -> str:
    try:
        return keys.exact((name, source, identities, vary))
    except keys.Unencodable as exc:
        raise TypeError(f"vary cannot be part of a fragment key: {exc}") from None


def validate_timeout(timeout: Any) -> int | None:
    checked = arguments.timeout(timeout, "A fragment")
    return conf.TIMEOUT if checked is DEFAULT else checked  # type: ignore[no-any-return]


def usable(frag: Fragment) -> bool:
    """Whether the cache may be read for ``frag`` now: not inside ``cache_disabled()``,
    nor in a transaction that wrote one of its objects."""
    return flow.usable(frag.tags)


def fetch_many(frags: Sequence[Fragment]) -> dict[str, flow.Read]:
    """The reads of several fragments (entries and their tags' versions) in one round trip.

    A fragment that may not be read now gets a read that misses and stores
    nothing; pass each result to ``render(found=...)``.
    """
    if not frags:
        return {}
    reads = flow.begin_many([(f.key, f.tags) for f in frags], frags[0].namespace)
    return {f.key: read for f, read in zip(frags, reads)}


def render(frag: Fragment, render_fn: Callable[[], str], timeout: Any = DEFAULT, found: flow.Read | None = None) -> str:
    """The fragment's stored output if it is current, else ``render_fn()``, stored.

    The entry is stamped with the versions read before ``render_fn`` runs, so a
    write that lands while it renders leaves a miss, never stale output. Cache
    errors are counted and skipped: the fragment renders.
    """
    ttl = validate_timeout(timeout)
    read = found if found is not None and usable(frag) else flow.begin(frag.key, frag.tags, frag.namespace)
    if read.hit and isinstance(read.value, str):
        return read.value
    output = render_fn()
    read.store(str(output), ttl)
    return output
