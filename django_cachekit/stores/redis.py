"""Redis, talked to directly: django-redis's default client and Django's RedisCache.

Keys go through the cache's own ``make_key`` (prefix, version, key function), so
they live in the same namespace as the cache's other keys. Entries are stored as
the bytes django-cachekit encodes; versions as Redis integers.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.core.cache import BaseCache, caches

from django_cachekit.memo import Memo
from django_cachekit.stores.base import DEFAULT_SOCKET_TIMEOUT, Store, Write


def _script(name: str) -> str:
    """The Lua script ``name`` (a ``.lua`` file beside this module), after the functions they share."""
    return (_SCRIPTS / "common.lua").read_text() + (_SCRIPTS / f"{name}.lua").read_text()


_SCRIPTS = Path(__file__).resolve().parent
# What each script does is said at the top of its file.
_MARK = _script("mark")
_BUMP = _script("bump")
_ENSURE = _script("ensure")
_STORE = _script("store")

_GLOB = re.compile(r"([*?\[\]\\])")


def redis_client_for(cache: BaseCache) -> Any | None:
    """The redis-py client behind ``cache``, or None when it is not plain Redis."""
    module = type(cache).__module__
    if module.startswith("django_redis"):
        client = getattr(cache, "client", None)
        try:
            from django_redis.client import DefaultClient, ShardClient
        except ImportError:  # pragma: no cover
            return None
        if isinstance(client, DefaultClient) and not isinstance(client, ShardClient):
            return client.get_client(write=True)
        return None
    if module == "django.core.cache.backends.redis":
        return cache._cache.get_client(write=True)  # type: ignore[attr-defined]
    return None


def _own_connections(client: Any) -> Any | None:
    """The client's pool if its connections can be opened outside it, else None.

    A plain TCP, TLS or Unix socket connection can; Sentinel's connections (they
    ask the pool for the master) and client-side caching proxies cannot, and go
    through the client.
    """
    from redis.connection import Connection, ConnectionPool, SSLConnection, UnixDomainSocketConnection

    pool = getattr(client, "connection_pool", None)
    if not isinstance(pool, ConnectionPool) or getattr(pool, "cache", None) is not None:
        return None
    if pool.connection_class not in (Connection, SSLConnection, UnixDomainSocketConnection):
        return None
    return pool


class ValueRefused(Exception):
    """A value the server would not take: the caller's error, not an unreachable cache."""


class _Sent:
    """A script sent on a thread's connection whose reply is not read yet."""

    __slots__ = ("args", "failed", "keys", "script")

    def __init__(self, script: Any, keys: list[Any], args: list[Any], failed: Failed | None) -> None:
        self.script, self.keys, self.args, self.failed = script, keys, args, failed


Failed = Callable[[BaseException], None]


class _Line(threading.local):
    connection: Any = None
    pack: Any = None
    pid = 0

    def __init__(self) -> None:
        self.sent: list[_Sent] = []


def _packer(connection: Any) -> Any:
    """How to pack a command's arguments for ``connection``: with hiredis directly
    when redis-py would use it and the encoding is UTF-8 (redis-py's wrapper
    converts and checks every argument, which django-cachekit's never need),
    else as redis-py does."""
    import redis.connection

    hiredis_packer = getattr(redis.connection, "HiredisRespSerializer", None)
    encoder = getattr(connection, "encoder", None)
    if (
        hiredis_packer is not None
        and isinstance(getattr(connection, "_command_packer", None), hiredis_packer)
        and getattr(encoder, "encoding", "").lower().replace("-", "").replace("_", "") == "utf8"
        and getattr(encoder, "encoding_errors", "") == "strict"
    ):
        from hiredis import pack_command

        return lambda args: [pack_command(args)]
    return lambda args: connection.pack_command(*args)


def _round_trip(connection: Any, packed: Any) -> Any:
    from redis.exceptions import ResponseError

    try:
        connection.send_packed_command(packed, check_health=False)
        return connection.read_response()
    except ResponseError:  # the server's answer, read whole: the connection stays usable
        raise
    except BaseException:
        connection.disconnect()  # a reply left unread must not answer the next command
        raise


def _version(raw: Any) -> int | None:
    if raw is None:
        return None
    try:
        version = int(raw)
    except ValueError:
        return None
    return version if -(2**63) < version < 2**63 else None


_HOLDERS = re.compile(rb"\w+:\d+(?: \w+:\d+)*")


def _marks(raw: bytes | str) -> bool:
    """Whether a mark key's value names writers; anything else written there marks nothing."""
    if isinstance(raw, str):
        raw = raw.encode()
    return _HOLDERS.fullmatch(raw) is not None


class RedisStore(Store):
    def __init__(self, alias: str, client: Any, socket_timeout: float = DEFAULT_SOCKET_TIMEOUT) -> None:
        super().__init__(alias)
        self.client = client
        self.socket_timeout = socket_timeout
        self._bump = client.register_script(_BUMP)
        self._mark = client.register_script(_MARK)
        self._ensure = client.register_script(_ENSURE)
        self._store = client.register_script(_STORE)
        self._make_key = caches[alias].make_key
        self._made: Memo[str, str] = Memo(50_000)
        self._pool = _own_connections(client)
        self._line = _Line()

    def command(self, *args: Any) -> Any:
        """One command on this thread's own connection to the cache's server.

        Reads and bumps are most of what django-cachekit sends: on a connection
        of its own per thread (and process) they skip the pool's checkout and
        redis-py's per-command wrapping, about 15 µs of a 60 µs round trip. The
        connection is opened with the pool's settings (address, database,
        password, timeouts) and closed when the thread ends.
        """
        if self._pool is None:
            return self.client.execute_command(*args)
        from redis.exceptions import ConnectionError

        line = self._line
        if line.sent:
            if line.pid == os.getpid() and line.connection is not None:
                return self._after_owed(args)
            line.sent = []  # a forked child: the parent reads its own replies
        connection = self._connection()
        packed = line.pack(args)
        try:
            return _round_trip(connection, packed)
        except ConnectionError:
            # A socket the server closed while idle: one retry on a new one.
            # Running a bump twice is safe: versions only move forward.
            return _round_trip(connection, packed)

    def commands(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip on this thread's connection; the
        first error is raised once every reply is read."""
        if self._pool is None:
            pipe = self.client.pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            return pipe.execute()  # type: ignore[no-any-return]
        from redis.exceptions import ResponseError

        line = self._line
        if line.sent:
            self.settle()
        connection = self._connection()
        packed = [chunk for args in commands for chunk in line.pack(args)]
        replies: list[Any] = []
        error: ResponseError | None = None
        try:
            connection.send_packed_command(packed, check_health=False)
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except ResponseError as exc:
                    error = error or exc
                    replies.append(exc)
        except BaseException:
            connection.disconnect()
            raise
        if error is not None:
            raise error
        return replies

    def _connection(self) -> Any:
        line = self._line
        connection = line.connection
        if connection is None or line.pid != os.getpid():
            # After a fork the parent's socket is left alone (the parent still uses it).
            pool = self._pool
            assert pool is not None
            connection = line.connection = pool.connection_class(**self._connection_kwargs(pool))
            line.pack = _packer(connection)
            line.pid = os.getpid()
        return connection

    def _connection_kwargs(self, pool: Any) -> dict[str, Any]:
        """The pool's settings, with the store's socket timeout where the cache's OPTIONS set none."""
        kwargs = dict(pool.connection_kwargs)
        for name in ("socket_timeout", "socket_connect_timeout"):
            if name not in kwargs:
                kwargs[name] = self.socket_timeout
                if "orig_" + name in kwargs:  # redis-py's maintenance notifications restore it
                    kwargs["orig_" + name] = self.socket_timeout
        return kwargs

    def unreachable(self, exc: BaseException) -> bool:
        from redis.exceptions import ConnectionError, TimeoutError

        return isinstance(exc, (ConnectionError, TimeoutError, OSError))

    def _send_script(self, script: Any, keys: list[Any], args: list[Any], failed: Failed | None = None) -> None:
        """Send a script without waiting for its reply; ``settle`` (or the next command) reads it.

        ``failed`` is told if the script turns out to have failed; without it
        the error is raised by ``settle``.
        """
        line = self._line
        if self._pool is None:
            self._script(script, keys, args)
            return
        connection = self._connection()
        packed = line.pack(("EVALSHA", script.sha, len(keys), *keys, *args))
        try:
            connection.send_packed_command(packed, check_health=False)
        except BaseException:
            connection.disconnect()
            self._lose_sent()
            raise
        line.sent.append(_Sent(script, keys, args, failed))

    def _lose_sent(self) -> None:
        # The connection is gone with the replies it owed: run those scripts again.
        sent, self._line.sent = self._line.sent, []
        self._again(sent)

    def _again(self, sent: list[_Sent]) -> None:
        error: BaseException | None = None
        for item in sent:
            try:
                self._script(item.script, item.keys, item.args)
            except Exception as exc:
                if item.failed is None:
                    error = error or exc
                else:
                    item.failed(exc)
        if error is not None:
            raise error

    def settle(self) -> None:
        """Read every reply owed to what ``_send_script`` sent on this thread, in order.

        A script the server did not know (a restarted or flushed server) or whose
        reply was lost with the connection runs again: marking twice under one
        holder is the same, and a bump only moves versions forward.
        """
        line = self._line
        if not line.sent:
            return
        if line.pid != os.getpid():
            line.sent = []  # sent by the process this one was forked from, which reads its replies
            return
        _, again, failures = self._drain()
        self._report(again, failures)

    def _drain(self) -> tuple[BaseException | None, list[_Sent], list[tuple[_Sent, BaseException]]]:
        """Read the replies the connection owes. Returns why the connection was
        lost (None if it is still up), what must run again, and what failed
        (told to the caller only once nothing is left unread: a ``failed`` hook
        may send commands of its own)."""
        from redis.exceptions import ConnectionError, NoScriptError, ResponseError

        line = self._line
        sent, line.sent = line.sent, []
        again: list[_Sent] = []
        failures: list[tuple[_Sent, BaseException]] = []
        for index, item in enumerate(sent):
            try:
                line.connection.read_response()
            except NoScriptError:
                again.append(item)
            except ResponseError as exc:  # refused, read whole: the connection stays usable
                failures.append((item, exc))
            except ConnectionError as exc:
                line.connection.disconnect()
                return exc, again + sent[index:], failures
            except BaseException as exc:  # a timeout: what the server did is unknown
                line.connection.disconnect()
                failures += [(lost, exc) for lost in sent[index:]]
                return exc, again, failures
        return None, again, failures

    def _report(self, again: list[_Sent], failures: list[tuple[_Sent, BaseException]]) -> None:
        """Run again what must be, tell each ``failed``; raise the first failure of a script without one."""
        error: BaseException | None = None
        for item, exc in failures:
            if item.failed is None:
                error = error or exc
            else:
                item.failed(exc)
        try:
            self._again(again)
        finally:
            if error is not None:
                raise error

    def _after_owed(self, args: tuple[Any, ...]) -> Any:
        """Send a command behind the replies its connection owes, then read them
        all: the wait for what was sent before overlaps this command's own."""
        from redis.exceptions import ConnectionError, ResponseError

        line = self._line
        connection = line.connection
        try:
            connection.send_packed_command(line.pack(args), check_health=False)
        except BaseException:
            connection.disconnect()
            self._lose_sent()
            return self.command(*args)
        lost, again, failures = self._drain()
        reply: Any = None
        refused: BaseException | None = None
        if lost is None:
            try:
                reply = connection.read_response()
            except ResponseError as exc:
                refused = exc
            except BaseException as exc:
                connection.disconnect()
                lost = exc
        self._report(again, failures)
        if refused is not None:
            raise refused
        if lost is None:
            return reply
        if isinstance(lost, ConnectionError):
            return self.command(*args)  # a socket the server closed: once more on a new one
        raise lost

    def _script(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        from redis.exceptions import NoScriptError

        try:
            return self.command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed server: load it, run it again
            self.command("SCRIPT", "LOAD", script.script)
            return self.command("EVALSHA", script.sha, len(keys), *keys, *args)

    def _version_key(self, key: str) -> str:
        # Version keys repeat (a model's tags, "g"): remember what the cache's key function made.
        try:
            return self._made[key]
        except KeyError:
            return self._made.remember(key, str(self._make_key(key)))

    def fetch(
        self, keys: Sequence[str], version_keys: Sequence[str], mark_keys: Sequence[str] = ()
    ) -> tuple[list[Any], list[int | None], list[bool]]:
        make_key = self._make_key
        made, make = self._made.get, self._version_key
        names = [make_key(k) for k in keys]
        names += [made(k) or make(k) for k in version_keys]
        names += [made(k) or make(k) for k in mark_keys]
        raw = self.command("MGET", *names) if names else []
        n, m = len(keys), len(keys) + len(version_keys)
        return raw[:n], [_version(v) for v in raw[n:m]], [v is not None and _marks(v) for v in raw[m:]]

    def mark(
        self,
        mark_keys: Sequence[str],
        token: str,
        bound: float,
        wait: bool = True,
        version_keys: Sequence[str] = (),
    ) -> None:
        if mark_keys:
            made, make = self._made.get, self._version_key
            names = [made(k) or make(k) for k in mark_keys]
            names += [made(k) or make(k) for k in version_keys]
            args = [token, max(1, int(bound * 1000)), len(mark_keys)]
            if wait:
                self._script(self._mark, names, args)
            else:
                self._send_script(self._mark, names, args)

    def unmark(self, mark_keys: Sequence[str], token: str) -> None:
        self.bump([], 0, (), (token, mark_keys))

    def unmark_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> None:
        made, make = self._made.get, self._version_key
        sha = self._bump.sha
        commands = []
        for token, mark_keys in items:
            names = [made(k) or make(k) for k in mark_keys]
            commands.append(("EVALSHA", sha, len(names), *names, 0, 0, len(names), token))
        from redis.exceptions import NoScriptError

        try:
            self.commands(commands)
        except NoScriptError:
            self.command("SCRIPT", "LOAD", self._bump.script)
            self.commands(commands)

    def ensure(
        self, version_keys: Sequence[str], timeout: int, values: Sequence[int] | None = None
    ) -> list[int | None]:
        from django_cachekit.stores.base import fresh_version

        make_key = self._make_key
        starts = values if values is not None else [fresh_version() for _ in version_keys]
        raw = self._script(self._ensure, [make_key(k) for k in version_keys], [timeout * 1000, *starts])
        return [_version(v) for v in raw]

    def set(self, key: str, value: bytes, timeout: int | None, version_keys: Sequence[str] = ()) -> None:
        self.set_many({key: value}, timeout, version_keys)

    def set_many(self, items: dict[str, bytes], timeout: int | None, version_keys: Sequence[str] = ()) -> None:
        if not items:
            return
        make_key = self._make_key
        made, make = self._made.get, self._version_key
        names = [make_key(k) for k in items]
        names += [made(k) or make(k) for k in version_keys]
        from redis.exceptions import ConnectionError

        try:
            self._script(self._store, names, [timeout * 1000 if timeout else 0, len(items), *items.values()])
        except ConnectionError:
            size = sum(len(v) for v in items.values())
            if size < 512 * 1024:
                raise
            # Redis closes the connection on a value past its proto-max-bulk-len:
            # if it answers now, the value was refused, the server is fine.
            self.command("PING")
            raise ValueRefused(f"the cache refused a value of {size} bytes (closed the connection)") from None

    def delete_many(self, keys: Sequence[str]) -> None:
        if keys:
            made, make = self._made.get, self._version_key
            self.command("DEL", *(made(k) or make(k) for k in keys))

    def claim(self, key: str, seconds: float) -> bool:
        return self.command("SET", self._make_key(key), 1, "NX", "PX", max(1, int(seconds * 1000))) is not None

    def bump(
        self,
        version_keys: Sequence[str],
        timeout: int,
        writes: Sequence[Write] = (),
        unmark: tuple[str, Sequence[str]] | None = None,
        failed: Failed | None = None,
    ) -> int:
        made, make = self._made.get, self._version_key
        keys = [made(k) or make(k) for k in version_keys]
        nbump = len(keys)
        token = ""
        if unmark is not None:
            token = unmark[0]
            keys += [made(k) or make(k) for k in unmark[1]]
        args: list[Any] = [timeout * 1000, nbump, len(keys) - nbump, token]
        for write in writes:
            keys += [made(k) or make(k) for k in write.otherwise]
            keys.append(self._make_key(write.key))
            args += (len(write.otherwise), len(write.expect))
            for expect in write.expect:
                keys.append(made(expect.key) or make(expect.key))
                args += ("c" if expect.create else "v", expect.version)
            args.extend((write.timeout * 1000 if write.timeout else 0, write.value))
        if not keys:
            return 0
        if failed is not None and self._pool is not None:
            self._send_script(self._bump, keys, args, failed)
            return 0
        return int(self._script(self._bump, keys, args))

    def ttls(self, keys: Sequence[str]) -> list[float | None]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(self._make_key(key))
        # PTTL: -1 for a key without expiry, -2 for a missing key.
        return [math.inf if ms == -1 else max(ms, 0) / 1000 for ms in pipe.execute()]

    def touch_many(self, items: dict[str, int | None]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for key, timeout in items.items():
            made = self._make_key(key)
            if timeout:
                pipe.pexpire(made, timeout * 1000)
            else:
                pipe.persist(made)
                pipe.exists(made)
        results = pipe.execute()
        touched, i = 0, 0
        for timeout in items.values():
            if timeout:
                touched += bool(results[i])
                i += 1
            else:
                touched += bool(results[i + 1])
                i += 2
        return touched

    def match_tags(self, pattern: str, version_key: Callable[[str], str]) -> list[str]:
        """The tags whose version keys (``version_key(tag)``) match ``pattern``, a glob over
        tag names, found by SCAN.

        Only the glob is the caller's: the key's prefix and the cache's own parts
        around it are matched literally.
        """
        marker = "\x00"
        head, _, tail = str(self._make_key(version_key(marker))).partition(marker)
        match = _GLOB.sub(r"\\\1", head) + pattern + _GLOB.sub(r"\\\1", tail)
        found: dict[str, None] = {}  # SCAN may return a key more than once
        for key in self.client.scan_iter(match=match, count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            found[name[len(head) : len(name) - len(tail)]] = None
        return list(found)

    # -- totals: one hash of counters per group, one sorted set per name of the largest ----------

    def _totals_key(self, suffix: str) -> str:
        return str(self._make_key(suffix))

    def add_totals(
        self, group: str, counts: dict[str, int], largest: dict[str, dict[str, int]], keep: int, ttl: int
    ) -> None:
        pipe = self.client.pipeline(transaction=False)
        hash_key = self._totals_key(f"{group}counts")
        for field, n in counts.items():
            pipe.hincrby(hash_key, field, n)
        pipe.expire(hash_key, ttl)
        for name, members in largest.items():
            big = self._totals_key(f"{group}big:{name}")
            pipe.hincrby(hash_key, f"{name}|store", 0)  # so that clear_totals() finds this name
            pipe.zadd(big, members, gt=True)
            pipe.zremrangebyrank(big, 0, -keep - 1)
            pipe.expire(big, ttl)
        pipe.execute()

    def read_totals(self, group: str, keep: int) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        counts: dict[str, int] = {}
        for field, n in self.client.hgetall(self._totals_key(f"{group}counts")).items():
            text = field.decode() if isinstance(field, bytes) else field
            counts[text] = counts.get(text, 0) + int(n)
        names = sorted({field.rpartition("|")[0] for field in counts})
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.zrevrange(self._totals_key(f"{group}big:{name}"), 0, keep - 1, withscores=True)
        largest: dict[str, dict[str, int]] = {}
        for name, members in zip(names, pipe.execute()):
            if members:
                largest[name] = {(m.decode() if isinstance(m, bytes) else m): int(n) for m, n in members}
        return counts, largest

    def clear_totals(self, group: str) -> None:
        hash_key = self._totals_key(f"{group}counts")
        names = {(f.decode() if isinstance(f, bytes) else f).rpartition("|")[0] for f in self.client.hkeys(hash_key)}
        self.client.delete(hash_key, *(self._totals_key(f"{group}big:{name}") for name in names))

    # -- plain records: Redis strings written and read raw, never through a serializer --------------

    def plain_get_many(self, keys: Sequence[str]) -> list[str | None]:
        raw = self.command("MGET", *(self._make_key(k) for k in keys)) if keys else []
        return [_plain(value) for value in raw]

    def plain_add(self, key: str, value: str, timeout: int | None) -> bool:
        expiry = ("PX", timeout * 1000) if timeout else ()
        return self.command("SET", self._make_key(key), value, "NX", *expiry) is not None

    def plain_set(self, key: str, value: str, timeout: int | None) -> None:
        expiry = ("PX", timeout * 1000) if timeout else ()
        self.command("SET", self._make_key(key), value, *expiry)

    def plain_incr(self, key: str, timeout: int | None) -> int:
        name = self._make_key(key)
        expiry = ("PX", timeout * 1000) if timeout else ()
        # Created with its expiry first: INCR alone would make a key that never expires.
        _, count = self.commands([("SET", name, 0, "NX", *expiry), ("INCR", name)])
        return int(count)


def _plain(raw: Any) -> str | None:
    if isinstance(raw, bytes):
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    return raw if isinstance(raw, str) else None
