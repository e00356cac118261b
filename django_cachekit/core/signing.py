"""HMAC-SHA256 of an entry's key and bytes, with keys derived from ``SECRET_KEY``.

The algorithm is fixed here, never read from an entry. The signing key is
derived from ``SECRET_KEY`` with a salt of django-cachekit's own (so it signs
nothing else of the site); entries signed with a key of ``SECRET_KEY_FALLBACKS``
are accepted too, so that a rotation does not empty the cache.

The keys are worked out once and forgotten when those settings change. Each is
kept as the SHA-256 states after its inner and outer pads, so a MAC costs two
state copies and the hashing of the message, about 2 µs for a row.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from django_cachekit.memo import resettable

SALT = "django_cachekit.entry"
MAC_SIZE = 32

_Pads = tuple[Any, Any]  # hashlib's sha256 objects (their type is private)
_keys: list[_Pads] | None = None


def derived_key(secret: str | bytes) -> bytes:
    return salted_hmac(SALT, "entry signing key", secret=secret, algorithm="sha256").digest()


def _pads(key: bytes) -> _Pads:
    block = key.ljust(64, b"\x00")  # a 32-byte key fits SHA-256's 64-byte block
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


def _all_keys() -> list[_Pads]:
    global _keys
    if _keys is None:
        secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
        _keys = [_pads(derived_key(secret)) for secret in secrets]
    return _keys


@resettable
def reset() -> None:
    global _keys
    _keys = None


def _mac(pads: _Pads, key: bytes, body: Any) -> bytes:
    inner = pads[0].copy()
    inner.update(key)
    inner.update(body)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()  # type: ignore[no-any-return]


def _key_bytes(key: str) -> bytes:
    encoded = key.encode()
    # Its length first: where the key ends and the body starts is never ambiguous.
    return len(encoded).to_bytes(4, "big") + encoded


def sign(key: str, body: bytes) -> bytes:
    """The MAC of ``body`` stored under ``key``, with the current ``SECRET_KEY``'s key."""
    return _mac(_all_keys()[0], _key_bytes(key), body)


def verify(key: str, mac: Any, body: Any) -> bool:
    """Whether ``mac`` is the MAC of ``body`` under ``key`` with ``SECRET_KEY``'s key or a fallback's."""
    encoded = _key_bytes(key)
    return any(hmac.compare_digest(_mac(pads, encoded, body), mac) for pads in _all_keys())
