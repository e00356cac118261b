"""HMAC-SHA256 of an entry's key and bytes, with keys derived from ``SECRET_KEY``.

The algorithm is fixed here, never read from an entry. The signing key is
derived from ``SECRET_KEY`` with a salt of django-cachekit's own (so it signs
nothing else of the site); entries signed with a key of ``SECRET_KEY_FALLBACKS``
are accepted too, so that a rotation does not empty the cache.

The keys are worked out once and forgotten when those settings change. Each is
kept as the SHA-256 states after its inner and outer pads, and the inner state
after a cache key is remembered per key (entries are read again and again), so
checking a MAC costs two state copies and the hashing of the entry's bytes:
about 2 µs for a row when the processor's caches hold hashlib, 6 to 8 µs in a
request, where they hold everything else, and 75 µs for a list of 100 rows
(130 kB). Entries are read again and again, so ``verify_entry`` also remembers
the last entry it verified under each key (up to ``VERIFIED_BYTES`` in all): the
same bytes under the same key again are recognised by comparing them, which
costs an eighth of a MAC or less. The entries this process signs are remembered
too: its own writes are read back without a MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

from django_cachekit.memo import Memo, resettable

SALT = "django_cachekit.entry"
MAC_SIZE = 32

_Pads = tuple[Any, Any]  # hashlib's sha256 objects (their type is private)
_keys: list[_Pads] | None = None
# Cache key -> the inner state of each signing key after that cache key.
_after_key: Memo[str, tuple[Any, ...]] = Memo(10_000)
# Cache key -> the last entry under it whose MAC was found good (or that this process signed);
# forgotten all at once past VERIFIED_BYTES of entries, and with the keys. An entry over
# VERIFIED_LARGEST bytes is not kept. Lookups take no lock; changes take _verified_lock,
# so that threads keep _verified_size exact.
VERIFIED_BYTES = 4 << 20
VERIFIED_LARGEST = 512 << 10
_verified: dict[str, bytes] = {}
_verified_size = 0
_verified_lock = threading.Lock()


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
    global _keys, _verified_size
    _keys = None
    _after_key.clear()
    with _verified_lock:
        _verified.clear()
        _verified_size = 0


def forget_verified(key: str) -> None:
    """Forget the entry verified under ``key``: the next read of it checks its MAC."""
    global _verified_size
    with _verified_lock:
        entry = _verified.pop(key, None)
        if entry is not None:
            _verified_size -= len(entry)


def _inner_states(key: str) -> tuple[Any, ...]:
    try:
        return _after_key[key]
    except KeyError:
        pass
    encoded = _key_bytes(key)
    states = []
    for inner, _ in _all_keys():
        state = inner.copy()
        state.update(encoded)
        states.append(state)
    return _after_key.remember(key, tuple(states))


def _mac(after_key: Any, outer: Any, body: Any) -> bytes:
    inner = after_key.copy()
    inner.update(body)
    result = outer.copy()
    result.update(inner.digest())
    return result.digest()  # type: ignore[no-any-return]


def _key_bytes(key: str) -> bytes:
    encoded = key.encode()
    # Its length first: where the key ends and the body starts is never ambiguous.
    return len(encoded).to_bytes(4, "big") + encoded


def sign(key: str, body: bytes) -> bytes:
    """The MAC of ``body`` stored under ``key``, with the current ``SECRET_KEY``'s key."""
    return _mac(_inner_states(key)[0], _all_keys()[0][1], body)


def verify(key: str, mac: Any, body: Any) -> bool:
    """Whether ``mac`` is the MAC of ``body`` under ``key`` with ``SECRET_KEY``'s key or a fallback's."""
    states, keys = _inner_states(key), _all_keys()
    if hmac.compare_digest(_mac(states[0], keys[0][1], body), mac):
        return True
    return any(hmac.compare_digest(_mac(s, k[1], body), mac) for s, k in zip(states[1:], keys[1:]))


def verify_entry(key: str, entry: bytes, mac_at: int) -> bool:
    """Whether ``entry`` holds at ``mac_at`` the MAC of the bytes after it (the body) under ``key``.

    The last entry found good (or signed here) under each key is remembered: the
    same bytes under that key again pass without a MAC, for the cost of comparing
    them (exactly: one byte changed, or the same bytes under another key, is
    checked afresh).
    """
    if _verified.get(key) == entry:
        return True
    body_at = mac_at + MAC_SIZE
    if len(entry) < body_at:
        return False
    view = memoryview(entry)
    if not verify(key, view[mac_at:body_at], view[body_at:]):
        return False
    remember(key, entry)
    return True


def remember(key: str, entry: bytes) -> None:
    """Take ``entry`` as good under ``key`` (it was verified, or signed by this process)."""
    global _verified_size
    if len(entry) > VERIFIED_LARGEST:
        return
    with _verified_lock:
        replaced = _verified.get(key)
        if _verified_size + len(entry) > VERIFIED_BYTES:
            _verified.clear()
            _verified_size = 0
        elif replaced is not None:
            _verified_size -= len(replaced)
        _verified[key] = entry
        _verified_size += len(entry)
