"""The servers and programs a run needs, checked before the first test.

The cache and database of a run (tests/settings.py) need Redis, PostgreSQL or
Memcached; the slow tests that need nginx or Chromium say so with
``@pytest.mark.programs(...)``. tests/conftest.py stops the run, before any test,
with one line naming what is missing, where it was looked for and the command that
starts or installs it (``missing_services``, ``missing_programs``), rather than
let every test fail on it.
"""

from __future__ import annotations

import os
import shutil
import socket
import urllib.parse
from collections.abc import Iterable
from typing import Any

EXIT_STATUS = 4  # pytest's own statuses are 0 to 5; 4 is its usage error, close enough to "fix your setup first"
TIMEOUT = 2.0
SERVICES_SH = "bash scripts/services.sh"
DEFAULT_REDIS = ("127.0.0.1", 6379)
DEFAULT_POSTGRES = ("127.0.0.1", 5432)
# Where Debian's packages put them when sbin is not on PATH.
PROGRAMS = {"nginx": ("nginx", "/usr/sbin/nginx"), "chromium": ("chromium", "chromium-browser")}


def _redis(url: str) -> str | None:
    import redis

    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        if (host, port) == DEFAULT_REDIS:
            start = SERVICES_SH
        else:
            start = f'redis-server --daemonize yes --bind {host} --port {port} --save "" --appendonly no'
        return f"Redis is not reachable at {host}:{port} ({url}, {_first_line(exc)}): start it with `{start}`"
    return None


def _postgres(database: dict[str, Any]) -> str | None:
    import psycopg

    host, port, user = database["HOST"], int(database["PORT"]), database["USER"]
    try:
        # Django creates and drops the test database from the postgres database.
        psycopg.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=int(TIMEOUT)).close()
    except psycopg.Error as exc:
        if (host, port) == DEFAULT_POSTGRES:
            start = SERVICES_SH
        else:
            start = f"pg_ctlcluster <version> main start  # with port = {port}"
        return f"PostgreSQL is not reachable at {host}:{port} as {user!r} ({_first_line(exc)}): start it with `{start}`"
    return None


def _memcached(address: str) -> str | None:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as conn:
            conn.sendall(b"version\r\n")
            if not conn.recv(64).startswith(b"VERSION"):
                raise OSError("it does not answer like memcached")
    except (OSError, ValueError) as exc:
        return (
            f"Memcached is not reachable at {address} (CACHEKIT_TEST_MEMCACHED, {_first_line(exc)}): "
            "start it there, or unset CACHEKIT_TEST_MEMCACHED and the tests start a private one"
        )
    return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def missing_services(cache: str, database: dict[str, Any], redis_url: str, memcached: str | None) -> str | None:
    """The first service the combination needs that does not answer, as one line; None when all do.

    ``memcached`` is the server's address, or None when the tests start their own (then the
    ``memcached`` program is what must be there)."""
    if cache in ("django-redis", "redis") and (problem := _redis(redis_url)):
        return problem
    if database["ENGINE"] == "django.db.backends.postgresql" and (problem := _postgres(database)):
        return problem
    if cache == "memcached":
        if memcached is not None:
            return _memcached(memcached)
        if shutil.which("memcached") is None:
            return f"Memcached is not installed (no memcached on PATH): install it with `{SERVICES_SH}`"
    return None


def find_program(name: str) -> str | None:
    for candidate in PROGRAMS.get(name, (name,)):
        found = shutil.which(candidate) or (
            candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) else None
        )
        if found:
            return found
    return None


def missing_programs(items: Iterable[Any]) -> str | None:
    """The first program a selected test needs (``@pytest.mark.programs``) that is not installed, as one line."""
    wanted: dict[str, str] = {}
    for item in items:
        if any(mark.args and mark.args[0] is True for mark in item.iter_markers("skipif")):
            continue  # skipped on this combination whatever is installed
        for mark in item.iter_markers("programs"):
            for name in mark.args:
                wanted.setdefault(name, item.nodeid)
    for name, nodeid in wanted.items():
        if find_program(name) is None:
            return f"{name} is not installed (needed by {nodeid}): install it with `{SERVICES_SH}`"
    return None
