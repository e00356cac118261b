"""The services a combination needs are checked before the first test (tests/services.py)."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import services
from tests.test_breaker import free_port

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(**env):
    """pytest on one small test file, in a subprocess, with the combination in ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_TEST_")}
    base.update({"CACHEKIT_TEST_DB": "sqlite", "PYTHONDONTWRITEBYTECODE": "1", **env})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "tests/test_readme.py"],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_stopped_before_any_test(done, *shown):
    assert done.returncode == services.EXIT_STATUS, (done.stdout, done.stderr)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    for text in shown:
        assert text in lines[0]
    assert "test_readme" not in lines[0] and "passed" not in lines[0]


@pytest.mark.parametrize("cache", ["django-redis", "redis"])
def test_a_redis_combination_with_redis_down_stops_with_one_line(cache):
    port = free_port()
    done = run_pytest(CACHEKIT_TEST_CACHE=cache, CACHEKIT_TEST_REDIS_URL=f"redis://127.0.0.1:{port}/1")
    assert_stopped_before_any_test(done, "Redis is not reachable", f"127.0.0.1:{port}", "redis-server --daemonize yes")


def test_memcached_down_at_the_given_address_stops_with_one_line():
    port = free_port()
    done = run_pytest(CACHEKIT_TEST_CACHE="memcached", CACHEKIT_TEST_MEMCACHED=f"127.0.0.1:{port}")
    assert_stopped_before_any_test(done, "Memcached is not reachable", f"127.0.0.1:{port}", "CACHEKIT_TEST_MEMCACHED")


def test_postgres_down_stops_with_one_line():
    port = free_port()
    done = run_pytest(CACHEKIT_TEST_CACHE="locmem", CACHEKIT_TEST_DB="postgres", PGPORT=str(port))
    assert_stopped_before_any_test(done, "PostgreSQL is not reachable", f"127.0.0.1:{port}", "'postgres'")


def test_the_combination_up_runs_the_tests():
    done = run_pytest(CACHEKIT_TEST_CACHE="locmem")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "test_contents_lists_every_section_in_order PASSED" in done.stdout


def test_the_default_addresses_name_scripts_services_sh(monkeypatch):
    port = free_port()
    monkeypatch.setattr(services, "DEFAULT_REDIS", ("127.0.0.1", port))
    monkeypatch.setattr(services, "DEFAULT_POSTGRES", ("127.0.0.1", port))
    database = {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": str(port), "USER": "postgres"}
    redis_down = services.missing_services("redis", database, f"redis://127.0.0.1:{port}/1", None)
    assert redis_down.startswith(f"Redis is not reachable at 127.0.0.1:{port} ")
    assert redis_down.endswith("start it with `bash scripts/services.sh`")
    postgres_down = services.missing_services("locmem", database, "redis://unused", None)
    assert postgres_down.startswith(f"PostgreSQL is not reachable at 127.0.0.1:{port} ")
    assert postgres_down.endswith("start it with `bash scripts/services.sh`")


def test_locmem_and_sqlite_need_nothing():
    sqlite = {"ENGINE": "django.db.backends.sqlite3"}
    assert services.missing_services("locmem", sqlite, f"redis://127.0.0.1:{free_port()}/1", None) is None


def test_memcached_without_its_program_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(services.shutil, "which", lambda name: None)
    problem = services.missing_services("memcached", {"ENGINE": "django.db.backends.sqlite3"}, "", None)
    assert problem == "Memcached is not installed (no memcached on PATH): install it with `bash scripts/services.sh`"


def item(nodeid, *marks):
    return SimpleNamespace(nodeid=nodeid, iter_markers=lambda name: [m for m in marks if m.name == name])


def test_a_selected_test_needing_a_missing_program_is_named(monkeypatch):
    monkeypatch.setattr(services, "find_program", lambda name: None if name == "chromium" else f"/usr/bin/{name}")
    nginx, chromium = pytest.mark.programs("nginx").mark, pytest.mark.programs("chromium").mark
    assert services.missing_programs([item("tests/test_nginx.py::a", nginx)]) is None
    assert services.missing_programs([item("tests/test_plain.py::a")]) is None
    problem = services.missing_programs(
        [item("tests/test_nginx.py::a", nginx), item("tests/test_monitor_page.py::b", chromium)]
    )
    assert problem == (
        "chromium is not installed (needed by tests/test_monitor_page.py::b): install it with `bash scripts/services.sh`"
    )


def test_a_test_skipped_on_this_combination_needs_nothing(monkeypatch):
    monkeypatch.setattr(services, "find_program", lambda name: None)
    skipped = item(
        "tests/test_nginx.py::a", pytest.mark.programs("nginx").mark, pytest.mark.skipif(True, reason="").mark
    )
    assert services.missing_programs([skipped]) is None
