"""One vocabulary for the arguments every cached thing takes: ``timeout=`` and ``tags=``.

``cache()``, ``@cached``, ``cache_response``, the fragment tag and
``CacheMeta`` check them here, so a bad value gets the same words wherever it
is given, naming the function and the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django_cachekit.core import keys

# "The configured timeout": ``CACHEKIT["TIMEOUT"]``, or the model's ``CacheMeta.timeout``.
DEFAULT: Any = object()


def is_timeout(value: Any) -> bool:
    """A number of seconds an entry may live: a positive integer, or None for no expiry."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


def timeout(value: Any, what: str) -> Any:
    """``value`` if it is ``DEFAULT`` or a timeout, else a ValueError naming ``what`` and the value."""
    if value is DEFAULT or is_timeout(value):
        return value
    raise ValueError(f"{what} timeout must be a positive number of seconds or None, not {value!r}.")


def tags(value: Any, what: str) -> list[str]:
    """The internal names of the user tags ``value`` (a tag string or an iterable of them)."""
    if value is None:
        return []
    try:
        return keys.user_tags(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} tags must be tag strings, not {value!r}: {exc}") from None


def tags_or_callable(value: Any, what: str) -> tuple[str, ...] | Callable[..., Iterable[str]]:
    """``tags``, or ``value`` itself when it is a callable giving tags per call."""
    if callable(value):
        return value  # type: ignore[no-any-return]
    return tuple(tags(value, what))
