"""How entries are turned into bytes and back.

An entry is ``(tags, stamp, payload)``: the tags it depends on, their versions
when its data was read, and the data. Large entries are compressed.

With ``SIGN_ENTRIES`` (the default) an entry is ``[3][MAC][body]``, the body
being what is stored unsigned (``[1][pickle]`` or ``[2][zlib of the pickle]``)
and the MAC an HMAC-SHA256 of the entry's key and its body (see ``signing``).
The MAC is checked before the body is decompressed or unpickled: an entry
that is unsigned or badly signed is rejected, and nothing of it runs.
"""

from __future__ import annotations

import copyreg
import datetime
import io
import pickle
import zlib
from typing import Any

from django_cachekit.core import signing
from django_cachekit.core.settings import conf

_PLAIN = 1
_ZLIB = 2
_SIGNED = 3
_SIGNED_HEAD = bytes((_SIGNED,))
_BODY = 1 + signing.MAC_SIZE  # where a signed entry's body starts


class CorruptEntry(ValueError):
    pass


class RejectedEntry(CorruptEntry):
    """An entry that is not signed, or not by this site's keys, for its key: never unpickled."""


_UTC = datetime.UTC


def utc() -> datetime.tzinfo:
    """UTC, as entries name it (rows hold aware datetimes in UTC)."""
    return _UTC


def _reduce_timezone(tz: datetime.timezone) -> Any:
    return (utc, ()) if tz is _UTC else tz.__reduce__()


class _RowPickler(pickle.Pickler):
    """Pickles UTC as ``utc()``: the standard pickle of ``timezone(timedelta(0))``
    costs about as much as the rest of a row, to write and to read."""

    dispatch_table: dict[Any, Any] = {}


def _row_pickler() -> type[_RowPickler]:
    # copyreg's table, as it is now (a registration made after import counts), with UTC's.
    if len(_RowPickler.dispatch_table) != len(copyreg.dispatch_table) + 1:
        _RowPickler.dispatch_table = {**copyreg.dispatch_table, datetime.timezone: _reduce_timezone}
    return _RowPickler


def encode(key: str, tags: tuple[str, ...], stamp: tuple[int, ...], payload: Any) -> bytes:
    """The bytes stored under ``key`` for an entry (signed for that key with ``SIGN_ENTRIES``)."""
    if type(payload) is tuple:  # one row
        buffer = io.BytesIO()
        _row_pickler()(buffer, pickle.HIGHEST_PROTOCOL).dump((tags, stamp, payload))
        data = buffer.getvalue()
    else:  # a list of rows pickles UTC once, a table of its own costs more than it saves
        data = pickle.dumps((tags, stamp, payload), protocol=pickle.HIGHEST_PROTOCOL)
    limit = conf.COMPRESS_MIN_SIZE
    body = bytes((_ZLIB,)) + zlib.compress(data, 1) if limit and len(data) >= limit else bytes((_PLAIN,)) + data
    return signed(key, body) if conf.SIGN_ENTRIES else body


def signed(key: str, body: bytes) -> bytes:
    """``body`` (an unsigned entry's bytes) signed for ``key``."""
    entry = b"".join((_SIGNED_HEAD, signing.sign(key, body), body))
    signing.remember(key, entry)  # read back by this process without a MAC
    return entry


def decode(key: str, raw: Any) -> tuple[tuple[str, ...], tuple[int, ...], Any]:
    """The entry stored under ``key`` in ``raw``; anything that does not load raises
    ``CorruptEntry``, and with ``SIGN_ENTRIES`` anything not signed for ``key``
    ``RejectedEntry``, before any of it is decompressed or unpickled."""
    if isinstance(raw, bytes) and raw[:1] == _SIGNED_HEAD:
        if not signing.verify_entry(key, raw, 1):
            raise RejectedEntry("badly signed (another key, another SECRET_KEY, or forged)")
        raw = memoryview(raw)[_BODY:]
    elif conf.SIGN_ENTRIES:
        what = "bytes" if isinstance(raw, bytes) else "a value of another type"
        raise RejectedEntry(f"unsigned ({what})")
    elif not isinstance(raw, bytes) or not raw:
        raise CorruptEntry(f"not an entry: {type(raw).__name__}")
    try:
        body = memoryview(raw)[1:]
        if raw[0] == _PLAIN:
            entry = pickle.loads(body)
        elif raw[0] == _ZLIB:
            entry = pickle.loads(zlib.decompress(body))
        else:
            raise CorruptEntry(f"unknown format byte {raw[0]}")
    except CorruptEntry:
        raise
    except Exception as exc:  # unpickling runs arbitrary code paths: any failure is a miss
        raise CorruptEntry(f"{type(exc).__name__}: {exc}") from exc
    if not (isinstance(entry, tuple) and len(entry) == 3):
        raise CorruptEntry("not a (tags, stamp, payload) tuple")
    return entry
