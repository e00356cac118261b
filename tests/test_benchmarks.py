"""The benchmark scripts still run: each is started on tiny sizes and must print its tables.

No timing is asserted (the figures come from real runs, see README): these tests
only keep the scripts from rotting. They start PostgreSQL and Redis clients in
subprocesses and, for the peers, virtualenvs under .venv-peers/ (built once,
then reused), so they are marked ``slow`` and run once per run, in tox's ``slow``
environment (django-redis + postgres), not once per Python and combination.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CACHE, DB

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds: a hung server must fail the test, not the CI run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        (CACHE, DB) != ("django-redis", "postgres"),
        reason="the benchmark scripts use their own Redis databases and PostgreSQL: run once, "
        "in tox's slow environment (django-redis + postgres)",
    ),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "FAILED" not in done.stdout, done.stdout[-4000:]
    return done


def results_of(out_dir: Path) -> dict:
    (path,) = out_dir.glob("peers-quick-*.json")
    return json.loads(path.read_text())


def test_core_benchmark_runs():
    out = run("benchmarks/bench_core.py", "--quick", "--db", "all").stdout
    for db in ("== sqlite", "== postgres"):
        assert db in out
    assert out.count("get by pk (hit)") == 2
    assert out.count("another row's get after a save: hit") == 2


def test_peer_runner_with_no_cache_and_cachekit(tmp_path):
    out = run(
        "benchmarks/peers/run.py",
        "--quick",
        "--libs",
        "none,cachekit",
        "--env",
        "current",
        "--no-chart",
        "--out-dir",
        str(tmp_path),
    ).stdout
    assert "== PostgreSQL: median µs" in out
    assert "== SQLite: median µs" in out
    assert "== Invalidation cost as the cache grows" in out
    assert "== Mixed workload" in out
    assert "ratio of medians, cachekit / ..." in out
    document = results_of(tmp_path)
    for db in ("postgres", "sqlite"):
        ours = document["results"]["core"][db]["cachekit"]["operations"]
        assert not [op for op, r in ours.items() if r["failed"]], ours
        # Hits ran no SQL, a save's write-through made the next get a hit, another row's entry survived.
        for op in ("get_hit", "list_hit", "count_hit", "read_after_save", "other_get_after_save"):
            assert ours[op]["zero_query_ops"] == ours[op]["iterations"] > 0, (db, op)
        none = document["results"]["core"][db]["none"]["operations"]
        assert none["get_hit"]["queries_per_op"] == 1
    growth = document["results"]["growth"]["cachekit"]
    assert growth["failed"] is None
    assert [s["queries"] for s in growth["sizes"]] == [50, 200]
    assert growth["sizes"][-1]["memory"]["value_keys"] >= 200
    # A block of saves ran before the first size; every timed save was paired with a timed reference UPDATE,
    # and the SQL counted per save is the save's own UPDATE, not the category prelude's or the reference's.
    assert growth["warmup_median_us"] > 0
    for size in growth["sizes"]:
        assert size["reference_median_us"] > 0 and size["save_per_reference"] > 0, size
        assert size["queries_per_save"] == 1, size
        # After each save, the re-reads of the retired queries and the reads straight from the database ran as
        # many SELECTs at 50 cached queries as at 200: the largest size's queries of one author.
        assert size["selects_after_each_save"] == growth["selects_before_each_save"] == 10, size
    mixed = document["results"]["mixed"]["cachekit"]
    assert mixed["ops"] > 0 and mixed["hits"] > 0
    assert mixed["stale"] == 0 and mixed["errors"] == 0
    targets = {t["target"]: t for t in document["targets"]}
    assert targets["another row's get after a save is a hit"]["met"] is True
    assert targets["mixed workload: zero stale reads"]["met"] is True


def test_peer_growth_on_sqlite(tmp_path):
    # The growth phase runs on the first database given; its reference UPDATE speaks SQLite's dialect too.
    out = run(
        "benchmarks/peers/run.py",
        "--quick",
        "--phases",
        "growth",
        "--libs",
        "none,cachekit",
        "--db",
        "sqlite",
        "--env",
        "current",
        "--no-chart",
        "--out-dir",
        str(tmp_path),
    ).stdout
    assert "== Invalidation cost as the cache grows (SQLite)" in out
    for lib in ("none", "cachekit"):
        growth = results_of(tmp_path)["results"]["growth"][lib]
        assert growth["failed"] is None
        for size in growth["sizes"]:
            assert size["reference_median_us"] > 0 and size["queries_per_save"] == 1, (lib, size)


def test_peer_runner_with_cacheops_and_cachalot(tmp_path):
    chart = tmp_path / "peers.png"
    out = run(
        "benchmarks/peers/run.py",
        "--quick",
        "--libs",
        "cacheops,cachalot",
        "--db",
        "postgres",
        "--out-dir",
        str(tmp_path),
        "--chart",
        str(chart),
    ).stdout
    assert "django-cacheops 7.2" in out and "django-cachalot 2.9.1" in out
    assert "Django 5.2" in out
    document = results_of(tmp_path)
    core = document["results"]["core"]["postgres"]
    for lib in ("cacheops", "cachalot"):
        ops = core[lib]["operations"]
        assert not [op for op, r in ops.items() if r["failed"]], (lib, ops)
        assert ops["get_hit"]["zero_query_ops"] == ops["get_hit"]["iterations"] > 0
        assert document["results"]["growth"][lib]["failed"] is None
        assert document["results"]["mixed"][lib]["ops"] > 0
    # django-cachalot invalidates the whole table on a save; django-cacheops only what the row matches.
    assert core["cachalot"]["operations"]["other_get_after_save"]["zero_query_ops"] == 0
    assert core["cacheops"]["operations"]["other_get_after_save"]["zero_query_ops"] > 0
    # django-cacheops keeps a conj set per author: its bookkeeping grows with the cached queries.
    sizes = document["results"]["growth"]["cacheops"]["sizes"]
    assert sizes[-1]["memory"]["bookkeeping_bytes"] > sizes[0]["memory"]["bookkeeping_bytes"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
