"""A PostgreSQL streaming replica of the test server that replays commits late.

``start()`` copies the primary with ``pg_basebackup`` into a temporary
directory owned by the ``postgres`` user and starts it as a hot standby on a
free loopback port, with ``recovery_min_apply_delay`` so a read on it right
after a commit sees the row as it was. ``stop()`` ends it by its PID and
removes the directory and its replication slot.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

BIN = Path(os.environ.get("CACHEKIT_TEST_PGBIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# A hot standby refuses to start with fewer of these than its primary.
_MATCH_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


class Unavailable(Exception):
    """The replica could not be made or started; the message says why."""


@dataclass
class Standby:
    port: int
    directory: Path
    pid: int
    slot: str
    primary: dict[str, Any]  # psycopg connection arguments of the primary

    def conninfo(self, dbname: str = "postgres") -> dict[str, Any]:
        return {**self.primary, "port": self.port, "dbname": dbname}

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Return once the standby has replayed everything the primary has written so far."""
        with psycopg.connect(**self.primary, dbname="postgres", autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(**self.conninfo(), autocommit=True) as conn:
            while True:
                done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
                if done is not None and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby on port {self.port} did not replay up to {target} in {timeout}s")
                time.sleep(0.02)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*command: str) -> list[str]:
    # The server refuses to run as root; as another user the files are already that user's.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


def _run(*command: str, timeout: float) -> None:
    try:
        done = subprocess.run(_as_postgres(*command), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{command[0]} did not run: {exc}") from exc
    if done.returncode != 0:
        raise Unavailable(f"{Path(command[0]).name} failed ({done.returncode}): {done.stderr.strip() or done.stdout}")


def _primary_settings(primary: dict[str, Any]) -> dict[str, str]:
    with psycopg.connect(**primary, dbname="postgres", autocommit=True) as conn:
        rows = conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(_MATCH_PRIMARY),))
        return {name: setting for name, setting in rows.fetchall()}


def _drop_slot(primary: dict[str, Any], slot: str, wait: float = 0.0) -> None:
    """Drop ``slot`` once no standby streams from it (a slot kept would hold WAL on the primary forever)."""
    deadline = time.monotonic() + wait
    with psycopg.connect(**primary, dbname="postgres", autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            if row is None:
                return
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def _write_config(data: Path, port: int, sockets: Path, apply_delay: str, matched: dict[str, str]) -> None:
    lines = [
        f"port = {port}",
        "listen_addresses = '127.0.0.1'",
        f"unix_socket_directories = '{sockets}'",
        "hot_standby = on",
        f"recovery_min_apply_delay = '{apply_delay}'",
        # Replay must not cancel a test's reads on the standby.
        "hot_standby_feedback = on",
        "shared_buffers = '32MB'",
        "fsync = off",
        *(f"{name} = {value}" for name, value in matched.items()),
    ]
    (data / "postgresql.conf").write_text("\n".join(lines) + "\n")
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (data / "pg_ident.conf").write_text("")


def _wait_accepting(conninfo: dict[str, Any], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with psycopg.connect(**conninfo, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise Unavailable(f"the standby does not accept connections: {exc}\n{tail}") from exc
            time.sleep(0.1)


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        for root, dirs, files in os.walk(path):
            for name in [root, *(os.path.join(root, n) for n in (*dirs, *files))]:
                shutil.chown(name, "postgres", "postgres")


def start(primary: dict[str, Any], name: str, apply_delay: str = "500ms") -> Standby:
    """A hot standby of ``primary`` (``host``, ``port``, ``user``), replaying each commit ``apply_delay`` late."""
    if not (BIN / "pg_basebackup").exists():
        raise Unavailable(f"{BIN / 'pg_basebackup'} is not installed")
    slot = "cachekit_" + re.sub(r"\W", "_", name).lower()
    _drop_slot(primary, slot)  # left by a run that was killed
    directory = Path(tempfile.mkdtemp(prefix="cachekit-standby-"))
    data = directory / "data"
    try:
        _chown(directory)
        _run(
            str(BIN / "pg_basebackup"),
            *("-h", str(primary["host"]), "-p", str(primary["port"]), "-U", str(primary["user"])),
            *("-D", str(data), "-X", "stream", "-R", "-C", "-S", slot, "--checkpoint=fast"),
            timeout=300,
        )
        port = _free_port()
        _write_config(data, port, directory, apply_delay, _primary_settings(primary))
        _chown(directory)
        log = directory / "standby.log"
        _run(
            str(BIN / "pg_ctl"),
            *("-D", str(data), "-l", str(log), "-w", "-t", str(int(START_TIMEOUT)), "start"),
            timeout=START_TIMEOUT + 10,
        )
        pid = int((data / "postmaster.pid").read_text().split()[0])
        standby = Standby(port, directory, pid, slot, primary)
        _wait_accepting(standby.conninfo(), log)
    except BaseException:
        _stop_server(data)
        _drop_slot(primary, slot, wait=STOP_TIMEOUT)
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return standby


def _stop_server(data: Path) -> None:
    pidfile = data / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    _stop_pid(pid, pidfile)


def _stop_pid(pid: int, pidfile: Path) -> None:
    try:
        os.kill(pid, signal.SIGINT)  # fast shutdown: ends sessions, no wait for clients
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    # The server removes its pid file as its last step; the process may linger as a zombie of init.
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if pidfile.exists():
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            pass


def stop(standby: Standby) -> None:
    data = standby.directory / "data"
    _stop_pid(standby.pid, data / "postmaster.pid")
    _drop_slot(standby.primary, standby.slot, wait=STOP_TIMEOUT)
    shutil.rmtree(standby.directory, ignore_errors=True)
