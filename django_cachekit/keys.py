"""Names of cache keys and tags.

Every key is ``[KEY_PREFIX:]ck:<schema>:<kind>:<rest>``; tag versions live under
``[KEY_PREFIX:]ck:v:<tag>``. Anything a user controls is hashed unless it is
short and made of safe characters, so keys stay valid for Memcached.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from .conf import conf

GLOBAL_TAG = "g"
TABLE_TAG_KINDS = frozenset("mrotkf")  # tags named "<kind>:<table>[:...]"
_SAFE = re.compile(r"[A-Za-z0-9_.\-]{1,80}\Z")
_SAFE_TAG = re.compile(r"[A-Za-z0-9_.:\-/@]{1,160}\Z")


def digest(data: str, size: int = 16) -> str:
    return hashlib.blake2b(data.encode(), digest_size=size).hexdigest()


def safe_part(value: Any) -> str:
    text = str(value)
    if type(value) is int or _SAFE.match(text):
        return text
    return "#" + digest(text)


def prefix() -> str:
    return conf.KEY_BASE


def version_key(tag: str, base: str | None = None) -> str:
    return f"{base if base is not None else conf.KEY_BASE}v:{tag}"


def version_keys(tags: Iterable[str]) -> list[str]:
    base = conf.KEY_BASE
    return [f"{base}v:{tag}" for tag in tags]


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
