"""Throwaway redis-server processes to break, and a cache alias on them.

``RedisServer`` runs a private ``redis-server`` on a free loopback port, with
its own directory, and breaks it the ways a production cache breaks:

- ``pause()`` / ``resume()``: SIGSTOP / SIGCONT. The kernel still accepts
  connections and buffers what clients send, but nothing answers: a client
  without a timeout of its own waits forever. Data is kept.
- ``kill()``: SIGKILL. Connections are reset and new ones refused.
- ``restart()``: start again on the same port and directory. The server loads
  ``dump.rdb`` if ``snapshot()`` wrote one (its data goes back in time), else
  comes back empty.
- ``client()``: a plain ``redis.Redis`` to write garbage, fill memory or flush.

``cache_on(server, **options)`` points django-cachekit at it through
``override_settings``: a cache alias ``"faulty"`` (django-redis or Django's
``RedisCache``, as ``CACHEKIT_TEST_CACHE`` says) with no socket timeouts, so
the library has to bound its waits itself. ``cache_config`` gives the same
alias to a child process (tests/failsafe_reader.py).

Every server is stopped by its PID (resumed first, so SIGKILL is delivered at
once) by ``stop()``, which is always safe to call; ``RedisServer`` is a context
manager and ``running()`` wraps one for fixtures.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from django.conf import settings
from django.test.utils import override_settings

from django_cachekit.core import protocol as core
from tests.settings import CACHE

ALIAS = "faulty"
HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on (at the time of the call)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cache_config(location: str) -> dict[str, Any]:
    """The cache alias for ``location`` under the suite's ``CACHEKIT_TEST_CACHE``, without socket timeouts."""
    if CACHE == "django-redis":
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": location}


def dead_location() -> str:
    """A Redis URL where nothing listens: every command fails with a refused connection."""
    return f"redis://{HOST}:{free_port()}/0"


class RedisServer:
    """One private redis-server; see the module's docstring."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="ck-redis-")
        self.dbfilename = "dump.rdb"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config: dict[str, Any] = {}
        self._clients: list[redis.Redis] = []

    def __repr__(self) -> str:
        state = "running" if self.running else "down"
        return f"<RedisServer :{self.port} {state} pid={self.proc.pid if self.proc else None}>"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def dump(self) -> str:
        return os.path.join(self.dir, self.dbfilename)

    def _argv(self) -> list[str]:
        options: dict[str, Any] = {
            "port": self.port,
            "bind": HOST,
            "dir": self.dir,
            "dbfilename": self.dbfilename,
            "save": "",
            "appendonly": "no",
            "daemonize": "no",
            "logfile": os.path.join(self.dir, "redis.log"),
        }
        # maxmemory_policy="noeviction" -> --maxmemory-policy noeviction
        options.update({name.replace("_", "-"): value for name, value in self.config.items()})
        argv = ["redis-server"]
        for name, value in options.items():
            argv += [f"--{name}", str(value)]
        return argv

    def start(self, **config: Any) -> RedisServer:
        """Start (again) with extra ``redis-server`` options; the ones given last time are kept."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.config.update(config)
        if "dir" in config:
            self.dir = str(config["dir"])
        if "dbfilename" in config:
            self.dbfilename = str(config["dbfilename"])
        self.proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        probe = redis.Redis(host=HOST, port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log()}")
                try:
                    if probe.ping():  # LOADING (an RDB being read) is an error: wait for it
                        return self
                except redis.RedisError:
                    time.sleep(0.02)
        finally:
            probe.close()
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer in 10 s: {self.log()}")

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def _signal(self, sig: int) -> None:
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        """Stop answering, keep the data and the open connections (SIGSTOP)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """Die without saving (SIGKILL), and wait for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self) -> RedisServer:
        """Start again on the same port and directory: the last ``snapshot()`` is loaded, if any."""
        self.kill()
        return self.start()

    def snapshot(self) -> None:
        """``SAVE``: dump.rdb holds the data as it is now."""
        with self.client() as client:
            client.save()
        assert os.path.exists(self.dump)

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client with timeouts of its own (the library's client has none)."""
        options = {"socket_timeout": 5, "socket_connect_timeout": 5, **kwargs}
        client = redis.Redis(host=HOST, port=self.port, **options)
        self._clients.append(client)
        return client

    def stop(self) -> None:
        """Kill the server (resumed first) and remove its directory; safe to call at any time, more than once."""
        try:
            for client in self._clients:
                client.close()
            self._clients.clear()
            self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def running(**config: Any) -> Iterator[RedisServer]:
    """A started ``RedisServer`` (``config`` as for ``start``), stopped on exit."""
    server = RedisServer()
    try:
        server.start(**config)
        yield server
    finally:
        server.stop()


@contextmanager
def cache_on(server: RedisServer | str, **options: Any) -> Iterator[str]:
    """django-cachekit on ``server`` (or a Redis URL) through the alias ``"faulty"``.

    ``options`` are the ``CACHEKIT`` settings besides ``CACHE_ALIAS``. The other
    cache aliases are kept. Yields the alias.
    """
    location = server.url if isinstance(server, RedisServer) else server
    caches = {**settings.CACHES, ALIAS: cache_config(location)}
    core.reset()
    try:
        with override_settings(CACHES=caches, CACHEKIT={"CACHE_ALIAS": ALIAS, **options}):
            core.reset()
            try:
                yield ALIAS
            finally:
                core.reset()
    finally:
        core.reset()
