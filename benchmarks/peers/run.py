"""django-cachekit side by side with django-cacheops and django-cachalot, in one command.

Run from the repository root with any Python 3.11+ (standard library only):

    python benchmarks/peers/run.py                 # everything: about 35 minutes on 2 cores
    python benchmarks/peers/run.py --quick         # a smoke run on tiny sizes

The same models (the example project's blog), data and operations run with no
cache, with django-cachekit, with django-cacheops and with django-cachalot. Each
library runs in its own process and its own virtualenv (.venv-peers/, created on
the first run from PyPI), all on the same Django 5.2, the same local Redis and
the same PostgreSQL (and SQLite). Phases:

- core: get by pk, list of 100, count, save and reads after a save, verified
  (a hit runs no SQL, no read after a save is stale) and timed, on each database;
- growth: the time of one save while 1,000, 10,000 and 100,000 distinct cached
  queries of the model exist, and the Redis memory each library keeps to
  invalidate them (PostgreSQL);
- mixed: threads reading (Zipf) and writing for a fixed time: throughput, hit
  rate, SQL per second and stale reads (PostgreSQL).

It prints the tables, the ratios and the targets, saves every number as JSON
under benchmarks/results/ and draws docs/peers.png.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import functools
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from benchmarks.peers import common, report


def say(message: str) -> None:
    sys.stdout.write(message + "\n")  # one write: lines from the threads that build venvs do not interleave
    sys.stdout.flush()


# -- environments ---------------------------------------------------------------------


def venv_root() -> Path:
    return common.VENV_DIR / f"py{sys.version_info.major}{sys.version_info.minor}"


def requirements_of(lib: str) -> list[str]:
    return [*common.BASE_REQUIREMENTS, *common.LIB_REQUIREMENTS[lib]]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Two runs at once (a test and a benchmark) build a virtualenv one after the other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv(name: str, requirements: Sequence[str]) -> Path:
    """The Python of ``.venv-peers/pyXY/<name>``, created (or re-created) when its requirements changed."""
    root = venv_root() / name
    python = root / "bin" / "python"
    marker = root / "peers-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    with locked(venv_root() / f".{name}.lock"):
        if python.exists() and marker.exists() and marker.read_text() == wanted:
            return python
        shutil.rmtree(root, ignore_errors=True)
        say(f"creating {root.relative_to(common.ROOT)}: {' '.join(requirements)}")
        started = time.perf_counter()
        pip_flags = ["install", "--quiet", "--quiet", "--disable-pip-version-check", *requirements]
        if importlib.util.find_spec("pip") is not None:
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
            done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *pip_flags], check=False)
            if done.returncode != 0:  # an older pip without --python: the venv's own pip
                shutil.rmtree(root, ignore_errors=True)
                subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
                subprocess.run([str(python), "-m", "pip", *pip_flags], check=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
            subprocess.run([str(python), "-m", "pip", *pip_flags], check=True)
        marker.write_text(wanted)
        say(f"{root.relative_to(common.ROOT)} ready in {time.perf_counter() - started:.0f} s")
    return python


def python_for(lib: str, env: str) -> Path:
    if env == "current" and lib in ("none", "cachekit"):
        return Path(sys.executable)
    return ensure_venv(lib, requirements_of(lib))


def chart_python() -> Path:
    if importlib.util.find_spec("matplotlib") is not None:
        return Path(sys.executable)
    return ensure_venv("chart", common.CHART_REQUIREMENTS)


def prepare_environments(libs: Sequence[str], env: str, chart: bool) -> None:
    """Build the missing virtualenvs side by side before anything is timed."""
    jobs: list[Callable[[], Path]] = [
        functools.partial(python_for, lib, env)
        for lib in libs
        if not (env == "current" and lib in ("none", "cachekit"))
    ]
    if chart:
        jobs.append(chart_python)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


# -- workers --------------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # each worker configures its own settings
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_worker(
    python: Path, lib: str, db: str, phase: str, run_id: str, tmp: Path, extra: Sequence[str]
) -> dict[str, Any]:
    out = tmp / f"{phase}-{db}-{lib}-{time.monotonic_ns()}.json"
    cmd = [str(python), "-m", "benchmarks.peers.worker", "--lib", lib, "--db", db, "--phase", phase]
    cmd += ["--run-id", run_id, "--out", str(out), *extra]
    done = subprocess.run(cmd, cwd=common.ROOT, env=worker_env(), check=False)
    if out.exists():
        result: dict[str, Any] = json.loads(out.read_text())
        if done.returncode and not result.get("error"):
            result["error"] = f"the worker exited with {done.returncode}"
        return result
    return {"lib": lib, "db": db, "phase": phase, "error": f"the worker exited with {done.returncode}, no results"}


def load_average() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return list(os.getloadavg())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- the run --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--libs", default=",".join(common.LIBS), help="comma-separated: none,cachekit,cacheops,cachalot"
    )
    parser.add_argument("--db", choices=(*common.DBS, "all"), default="all", help="databases of the core phase")
    parser.add_argument("--phases", default=",".join(common.PHASES), help="comma-separated: core,growth,mixed")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every phase in seconds")
    parser.add_argument("--iterations", type=int, default=None, help="timed calls per core operation and library")
    parser.add_argument("--passes", type=int, default=None, help="core runs per library, in alternating order")
    parser.add_argument("--sizes", default=None, help="growth: comma-separated numbers of cached queries")
    parser.add_argument("--samples", type=int, default=None, help="growth: timed saves per size")
    parser.add_argument("--seconds", type=float, default=None, help="mixed: measured seconds per library")
    parser.add_argument("--threads", type=int, default=common.MIXED_THREADS, help="mixed: threads")
    parser.add_argument(
        "--env",
        choices=("venv", "current"),
        default="venv",
        help="current: run no cache and django-cachekit with this Python instead of their virtualenvs",
    )
    parser.add_argument("--out-dir", type=Path, default=common.RESULTS_DIR, help="where the JSON results go")
    parser.add_argument("--chart", type=Path, default=None, help="the PNG chart (docs/peers.png; quick: out-dir)")
    parser.add_argument("--no-chart", action="store_true")
    args = parser.parse_args(argv)
    args.libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    args.phases = [phase.strip() for phase in args.phases.split(",") if phase.strip()]
    for lib in args.libs:
        if lib not in common.LIBS:
            parser.error(f"unknown library {lib!r}: choose from {', '.join(common.LIBS)}")
    for phase in args.phases:
        if phase not in common.PHASES:
            parser.error(f"unknown phase {phase!r}: choose from {', '.join(common.PHASES)}")
    for name in ("iterations", "passes", "samples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be at least 1, not {value!r}")
    if args.seconds is not None and args.seconds <= 0:
        parser.error(f"--seconds must be positive, not {args.seconds!r}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, not {args.threads!r}")
    if args.sizes is not None:
        try:
            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--sizes takes comma-separated integers, not {args.sizes!r}")
        if not sizes or min(sizes) < 1:
            parser.error(f"--sizes takes positive integers, not {args.sizes!r}")
        args.sizes = sizes
    args.dbs = list(common.DBS) if args.db == "all" else [args.db]
    return args


class Runner:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.quick = args.quick
        self.run_id = f"{os.getpid() % 100_000:05d}{int(time.time() * 1000) % 100_000:05d}"
        self.results: dict[str, Any] = {"core": {}, "growth": {}, "mixed": {}}
        self.versions: dict[str, Any] = {}
        self.servers: dict[str, str] = {}
        self.errors: list[str] = []
        self.load: dict[str, list[float]] = {"start": load_average()}

    def worker(self, lib: str, db: str, phase: str, extra: Sequence[str]) -> dict[str, Any] | None:
        python = python_for(lib, self.args.env)
        started = time.perf_counter()
        say(f"-- {phase}: {common.LIB_LABELS[lib]} on {common.DB_LABELS[db]}")
        result = run_worker(python, lib, db, phase, self.run_id, self.tmp, extra)
        if result.get("error"):
            message = f"{common.LIB_LABELS[lib]} {phase} on {common.DB_LABELS[db]}: {result['error']}"
            self.errors.append(message)
            say(f"FAILED {message}")
            return None
        self.versions[lib] = result.get("versions", {})
        self.servers[db] = result.get("db_version", "")
        if result.get("redis_server"):
            self.servers["redis"] = f"Redis {result['redis_server']}"
        say(f"   done in {time.perf_counter() - started:.0f} s")
        return result

    @property
    def rows(self) -> int:
        return common.QUICK_ROWS if self.quick else common.ROWS

    def core(self) -> None:
        passes = self.args.passes or (common.QUICK_PASSES if self.quick else common.PASSES)
        iterations = self.args.iterations or (common.QUICK_ITERATIONS if self.quick else common.ITERATIONS)
        per_pass = max(1, -(-iterations // passes))
        for db in self.args.dbs:
            runs: dict[str, list[dict[str, Any]]] = {lib: [] for lib in self.args.libs}
            for p in range(passes):
                order = self.args.libs if p % 2 == 0 else list(reversed(self.args.libs))
                for lib in order:
                    extra = ["--rows", str(self.rows), "--iterations", str(per_pass)]
                    result = self.worker(lib, db, "core", extra)
                    if result is not None:
                        runs[lib].append(result["result"])
            merged = {lib: report.merge_core(passes_) for lib, passes_ in runs.items() if passes_}
            self.results["core"][db] = merged
            report.print_core(db, merged, [lib for lib in self.args.libs if lib in merged])

    @property
    def heavy_db(self) -> str:
        return "postgres" if "postgres" in self.args.dbs else self.args.dbs[0]

    def growth(self) -> None:
        sizes = self.args.sizes or (common.QUICK_GROWTH_SIZES if self.quick else common.GROWTH_SIZES)
        samples = self.args.samples or (common.QUICK_GROWTH_SAMPLES if self.quick else common.GROWTH_SAMPLES)
        self.load["growth"] = load_average()
        for lib in self.args.libs:
            extra = ["--rows", str(self.rows), "--sizes", ",".join(map(str, sizes)), "--samples", str(samples)]
            result = self.worker(lib, self.heavy_db, "growth", extra)
            if result is not None:
                self.results["growth"][lib] = result["result"]
        report.print_growth(self.results["growth"], self.args.libs, self.heavy_db)

    def mixed(self) -> None:
        seconds = self.args.seconds or (common.QUICK_MIXED_SECONDS if self.quick else common.MIXED_SECONDS)
        warmup = common.QUICK_MIXED_WARMUP_SECONDS if self.quick else common.MIXED_WARMUP_SECONDS
        rows = common.QUICK_MIXED_ROWS if self.quick else common.MIXED_ROWS
        passes = 1 if self.quick else 2
        self.load["mixed"] = load_average()
        runs: dict[str, list[dict[str, Any]]] = {lib: [] for lib in self.args.libs}
        for p in range(passes):
            order = self.args.libs if p % 2 == 0 else list(reversed(self.args.libs))
            for lib in order:
                extra = [
                    "--rows",
                    str(rows),
                    "--threads",
                    str(self.args.threads),
                    "--seconds",
                    str(seconds / passes),
                    "--warmup-seconds",
                    str(warmup),
                    "--seed",
                    str(p + 1),
                ]
                result = self.worker(lib, self.heavy_db, "mixed", extra)
                if result is not None:
                    runs[lib].append(result["result"])
        self.results["mixed"] = {lib: report.merge_mixed(r) for lib, r in runs.items() if r}
        report.print_mixed(self.results["mixed"], self.args.libs)

    def machine(self) -> dict[str, Any]:
        return {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "runner_python": platform.python_version(),
            "servers": self.servers,
            "load_average": self.load,
        }

    def ours_failed(self) -> bool:
        for db_results in self.results["core"].values():
            ours = db_results.get(report.OURS, {})
            if any(op.get("failed") for op in ours.get("operations", {}).values()):
                return True
        mixed = self.results["mixed"].get(report.OURS)
        return bool(mixed and (mixed["stale"] or mixed["errors"]))


def strip_samples(results: dict[str, Any]) -> dict[str, Any]:
    """The JSON keeps medians and percentiles, not every sample."""
    out = json.loads(json.dumps(results))
    for db_results in out.get("core", {}).values():
        for lib_results in db_results.values():
            for op in lib_results.get("operations", {}).values():
                op.pop("samples_ns", None)
    return out


def draw_chart(path: Path, json_path: Path) -> bool:
    python = chart_python()
    cmd = [str(python), str(Path(__file__).with_name("chart.py")), str(json_path), str(path)]
    done = subprocess.run(cmd, cwd=common.ROOT, env=worker_env(), check=False)
    return done.returncode == 0


def print_header(runner: Runner) -> None:
    machine = runner.machine()
    load = machine["load_average"]["start"]
    say(
        f"django-cachekit against django-cacheops and django-cachalot\n"
        f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['platform']}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
        f"libraries: {', '.join(common.LIB_LABELS[lib] for lib in runner.args.libs)}; "
        f"environments: {'this Python for no cache and django-cachekit, ' if runner.args.env == 'current' else ''}"
        f"{venv_root().relative_to(common.ROOT)}/<library> ({common.DJANGO_REQUIREMENT})"
    )


def print_versions(runner: Runner) -> None:
    say("\n== Versions")
    for lib, info in runner.versions.items():
        say(
            f"{common.LIB_LABELS[lib]:<18}{info.get('library', '')}; Python {info.get('python')}, Django "
            f"{info.get('django')}, django-redis {info.get('django_redis')}, redis-py {info.get('redis_py')} "
            f"(hiredis {info.get('hiredis')}), psycopg {info.get('psycopg')}"
        )
    say("servers: " + ", ".join(runner.servers.values()))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cachekit-peers-") as tmp:
        runner = Runner(args, Path(tmp))
        print_header(runner)
        prepare_environments(args.libs, args.env, chart=not args.no_chart)
        for phase in args.phases:
            getattr(runner, phase)()
        runner.load["end"] = load_average()
    print_versions(runner)
    rows = report.targets(runner.results)
    report.print_targets(rows)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    document = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "machine": runner.machine(),
        "versions": runner.versions,
        "results": strip_samples(runner.results),
        "targets": rows,
        "errors": runner.errors,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.out_dir / f"peers-{'quick-' if args.quick else ''}{stamp}.json"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    say(f"\nresults: {json_path}")
    if not args.no_chart:
        chart = args.chart or (args.out_dir / "peers-quick.png" if args.quick else common.CHART_PATH)
        if draw_chart(chart, json_path):
            say(f"chart: {chart}")
        else:
            runner.errors.append("the chart could not be drawn")
            say("FAILED the chart could not be drawn")
    for error in runner.errors:
        say(f"FAILED {error}")
    if runner.errors:
        return 2
    return 1 if runner.ours_failed() else 0


if __name__ == "__main__":
    sys.exit(main())
