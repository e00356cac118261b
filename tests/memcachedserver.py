"""A private memcached on a free loopback port.

The suite clears its cache around every test, and ``clear()`` on Memcached is
``flush_all`` of the whole server: runs side by side (``tox p``), and anything
else on the machine, must not share one. tests/conftest.py starts one with
``start()`` for a run on Memcached (unless ``CACHEKIT_TEST_MEMCACHED`` names a
server) and stops it by its PID at the end.

``python -m tests.memcachedserver COMMAND ARGS`` runs any other command beside one:
it starts ``memcached``, runs the command with its address in
``CACHEKIT_TEST_MEMCACHED`` (read by tests/settings.py), and stops the server
when the command ends. Exits with the command's status.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Linux: the server gets SIGKILL if this process dies without stopping it (kill -9, OOM).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start(program: str) -> tuple[subprocess.Popen[bytes], int]:
    for _ in range(3):  # another process may take the free port before memcached binds it
        port = free_port()
        argv = [program, "-l", HOST, "-p", str(port), "-U", "0", "-m", "64"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses root without -u; staying root keeps _die_with_parent
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                return proc, port
            except OSError:
                time.sleep(0.02)
        stop(proc)
    raise SystemExit(f"memcachedserver: memcached did not start on {HOST} ({' '.join(argv)})")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    program = shutil.which("memcached")
    if program is None:
        print("memcachedserver: memcached is not installed (scripts/services.sh installs it)", file=sys.stderr)
        return 1
    server, port = start(program)
    try:
        env = {**os.environ, "CACHEKIT_TEST_MEMCACHED": f"{HOST}:{port}"}
        command = subprocess.Popen(argv, env=env)

        def forward(signum: int, frame: object) -> None:
            command.send_signal(signum)

        # tox stops a command with SIGINT, then SIGTERM: the command gets them, and the server is stopped after it.
        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return command.wait()
    finally:
        stop(server)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
