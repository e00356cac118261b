"""HTTP benchmark of django-cachekit's view decorators, on the example blog.

Run from the repository root (PostgreSQL on 127.0.0.1:5432 and Redis on
127.0.0.1:6379; ``wrk`` and ``gunicorn`` for the server part):

    python benchmarks/bench_http.py [--quick] [--duration SECONDS] [--no-server]

It compares, on the example project with its seeded data (500 articles):

- an article page answered 304 by ``conditional`` (the browser's revalidation)
  with the same page rendered in full without any cache;
- the article list served by ``cache_response`` with the list rendered in full
  without any cache;

first through Django's test client in this process (median and p99 of
interleaved samples), then through a real gunicorn server under ``wrk``
(loopback, 2 connections, a few seconds per page). Without a cache means inside
``cache_disabled()``: every query runs and nothing is stored or validated.
Before timing, it checks that the 304 and the cached list run no SQL.

Redis database 10 under the key prefix ``ck-bench-http`` and the PostgreSQL
database ``cachekit_bench_http`` belong to this benchmark.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
PG_NAME = "cachekit_bench_http"
ENV = {
    "DATABASE": "postgres",
    "PGDATABASE": PG_NAME,
    "REDIS_URL": "redis://127.0.0.1:6379/10",
    "CACHE_KEY_PREFIX": "ck-bench-http",
    "DEBUG": "0",
    "SECRET_KEY": "bench-http",
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}
TARGET_304 = 10.0  # the 304 path at least this many times faster than a full uncached render
TARGET_LIST = 5.0  # the cached list at least this many times the requests per second of the uncached one


def uncached_application(environ: dict[str, Any], start_response: Any) -> Any:
    """The example's WSGI application with django-cachekit switched off for every request."""
    from config.wsgi import application

    from django_cachekit import cache_disabled

    with cache_disabled():
        return application(environ, start_response)


# -- setup -------------------------------------------------------------------------------


def setup_django() -> None:
    os.environ.update(ENV)
    sys.path.insert(0, str(EXAMPLE))
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_NAME]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{PG_NAME}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_blog", seed=1, verbosity=0)


def machine() -> str:
    import django

    cores = os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Python {platform.python_version()}, Django {django.__version__}, {cores} cores, "
        f"{platform.system()} {platform.release()}, load average {load}"
    )


# -- in process: Django's test client ---------------------------------------------------------


def sample(ops: dict[str, Callable[[], Any]], rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per call of each op, taken in interleaved rounds so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            for _ in range(per_round):
                start = time.perf_counter()
                op()
                times[name].append(time.perf_counter() - start)
    return times


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bench_client(rounds: int, per_round: int) -> dict[str, dict[str, float]]:
    from blog.models import Article
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_cachekit import cache_disabled

    article = Article.objects.order_by("pk").first()
    assert article is not None, "the example database has no articles"
    detail = article.get_absolute_url()
    client = Client()
    etag = client.get(detail)["ETag"]
    client.get("/")

    with CaptureQueriesContext(connection) as queries:
        assert client.get(detail, HTTP_IF_NONE_MATCH=etag).status_code == 304
        assert client.get("/").status_code == 200
    if len(queries):
        raise SystemExit(f"FAILED: the 304 and the cached list ran {len(queries)} queries: {queries.captured_queries}")
    with cache_disabled(), CaptureQueriesContext(connection) as queries:
        uncached = client.get(detail)
        assert uncached.status_code == 200 and not uncached.has_header("ETag")
    assert len(queries) > 0

    def not_modified() -> None:
        client.get(detail, HTTP_IF_NONE_MATCH=etag)

    def detail_uncached() -> None:
        with cache_disabled():
            client.get(detail)

    def list_cached() -> None:
        client.get("/")

    def list_uncached() -> None:
        with cache_disabled():
            client.get("/")

    ops = {
        "detail 304 (conditional)": not_modified,
        "detail, full render, no cache": detail_uncached,
        "list (cache_response hit)": list_cached,
        "list, full render, no cache": list_uncached,
    }
    sample(ops, 2, max(5, per_round // 5))  # warm up
    times = sample(ops, rounds, per_round)
    return {
        name: {
            "median_us": statistics.median(values) * 1e6,
            "p99_us": p99(values) * 1e6,
            "rps": len(values) / sum(values),
        }
        for name, values in times.items()
    }


# -- a real server: gunicorn under wrk -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_gunicorn(app: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **ENV, "PYTHONPATH": f"{EXAMPLE}{os.pathsep}{ROOT / 'benchmarks'}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    proc = subprocess.Popen([*cmd, "--chdir", str(EXAMPLE)], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"FAILED: gunicorn {app} exited:\n{log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"FAILED: gunicorn {app} did not listen on {port}")


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def wrk(port: int, path: str, duration: int, headers: dict[str, str] | None = None) -> dict[str, float]:
    cmd = ["wrk", "-t2", "-c2", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=duration + 30
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if rps is None or errors is not None:
        raise SystemExit(f"FAILED: wrk on {path}:\n{out}")
    found = {}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match is not None, out
        found[pct] = float(match.group(1)) * _UNITS[match.group(2)]
    return {"median_us": found["50"], "p99_us": found["99"], "rps": float(rps.group(1))}


def bench_server(duration: int, tmp: Path) -> dict[str, dict[str, float]]:
    from blog.models import Article

    article = Article.objects.order_by("pk").first()
    assert article is not None
    detail = article.get_absolute_url()
    cached_port, uncached_port = free_port(), free_port()
    procs = [
        start_gunicorn("config.wsgi:application", cached_port, tmp / "cached.log"),
        start_gunicorn("bench_http:uncached_application", uncached_port, tmp / "uncached.log"),
    ]
    try:
        status, headers, _ = fetch(cached_port, detail)
        etag = headers["ETag"]
        assert status == 200
        assert fetch(cached_port, detail, {"If-None-Match": etag})[0] == 304
        assert "ETag" not in fetch(uncached_port, detail)[1], "the uncached server still validates"
        fetch(cached_port, "/")
        results = {}
        results["detail 304 (conditional)"] = wrk(cached_port, detail, duration, {"If-None-Match": etag})
        results["detail, full render, no cache"] = wrk(uncached_port, detail, duration)
        results["list (cache_response hit)"] = wrk(cached_port, "/", duration)
        results["list, full render, no cache"] = wrk(uncached_port, "/", duration)
        return results
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


# -- report ----------------------------------------------------------------------------------


def report(title: str, results: dict[str, dict[str, float]]) -> dict[str, float]:
    print(f"\n{title}")
    print(f"  {'page':34} {'median µs':>10} {'p99 µs':>10} {'req/s':>9}")
    for name, r in results.items():
        print(f"  {name:34} {r['median_us']:10.0f} {r['p99_us']:10.0f} {r['rps']:9.0f}")
    ratios = {
        "304": results["detail, full render, no cache"]["median_us"] / results["detail 304 (conditional)"]["median_us"],
        "list": results["list (cache_response hit)"]["rps"] / results["list, full render, no cache"]["rps"],
    }
    print(f"  304 vs full render (median):      {ratios['304']:5.1f}x faster  (target >= {TARGET_304:.0f}x)")
    print(f"  cached vs uncached list (req/s):  {ratios['list']:5.1f}x          (target >= {TARGET_LIST:.0f}x)")
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few samples, 1 s per wrk run")
    parser.add_argument("--duration", type=int, default=5, help="seconds of each wrk run (default 5)")
    parser.add_argument("--no-server", action="store_true", help="only the test client part")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 60:
        parser.error(f"--duration must be 1 to 60 seconds, not {args.duration}")
    setup_django()
    print(machine())
    rounds, per_round = (3, 10) if args.quick else (20, 50)
    report("Django test client (in process)", bench_client(rounds, per_round))
    if args.no_server:
        return 0
    missing = [p for p in ("wrk",) if shutil.which(p) is None]
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        missing.append("gunicorn")
    if missing:
        print(
            f"\nSkipped the server part: {', '.join(missing)} not installed (apt-get install wrk; pip install gunicorn)"
        )
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cachekit-bench-http-") as tmp:
        duration = 1 if args.quick else args.duration
        report(
            f"gunicorn (2 sync workers) under wrk (2 connections, {duration} s each)", bench_server(duration, Path(tmp))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
