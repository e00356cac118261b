"""What the runner (run.py, any Python) and the workers (worker.py, in each library's venv) share.

Standard library only: the runner imports it before any virtualenv exists.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 8  # db 8 belongs to the peer benchmarks
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_ADMIN_DATABASES = ("postgres", "test")
PG_DATABASE_PREFIX = "cachekit_peers_"  # each worker creates cachekit_peers_<run>_<lib>_<phase> and drops it

LIBS = ("none", "cachekit", "cacheops", "cachalot")
PEERS = ("cacheops", "cachalot")
CACHING_LIBS = ("cachekit", "cacheops", "cachalot")
LIB_LABELS = {
    "none": "no cache",
    "cachekit": "django-cachekit",
    "cacheops": "django-cacheops",
    "cachalot": "django-cachalot",
}
DB_LABELS = {"postgres": "PostgreSQL", "sqlite": "SQLite"}
DBS = ("postgres", "sqlite")
PHASES = ("core", "growth", "mixed")

# Every library runs on the same Django: django-cacheops 7.2 declares Django 5.2 at most,
# so the comparison runs on the newest Django they all support.
DJANGO_REQUIREMENT = "Django>=5.2,<5.3"
BASE_REQUIREMENTS = (DJANGO_REQUIREMENT, "django-redis>=5.4", "redis>=5", "hiredis>=2", "psycopg[binary]>=3.1")
LIB_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "cachekit": (),  # django-cachekit itself is imported from this checkout
    "cacheops": ("django-cacheops==7.2",),
    "cachalot": ("django-cachalot==2.9.1",),
}
CHART_REQUIREMENTS = ("matplotlib>=3.8",)
VENV_DIR = ROOT / ".venv-peers"
RESULTS_DIR = ROOT / "benchmarks" / "results"
CHART_PATH = ROOT / "docs" / "peers.png"

MARK = "@@peers "  # a worker's progress lines start with this

# (key, label, phase): reads are timed together, then writes (every save invalidates lists).
CORE_OPS: tuple[tuple[str, str, str], ...] = (
    ("get_hit", "get by pk (hit)", "reads"),
    ("list_hit", "list of 100 (hit)", "reads"),
    ("count_hit", "count (hit)", "reads"),
    ("save", "save", "writes"),
    ("read_after_save", "first read after a save", "writes"),
    ("reread_after_save", "re-read after a save", "writes"),
    ("other_get_after_save", "another row's get after a save", "writes"),
    ("filtered_list_after_save", "filtered list after an unrelated save", "writes"),
)
OP_LABELS = {key: label for key, label, _ in CORE_OPS}
# Ops whose timed call must be served by the cache (zero SQL) for a caching library.
MUST_HIT = ("get_hit", "list_hit", "count_hit", "reread_after_save")
# Ops reported as hit or miss per library (a miss is not a failure).
HIT_OR_MISS = ("read_after_save", "other_get_after_save", "filtered_list_after_save")

AUTHORS, CATEGORIES, TAGS = 20, 10, 30
LIST_SIZE = 100  # list of 100 and the filtered list
PAGE_SIZE = 20  # the mixed workload's lists
TIMEOUT = 3600  # every library's entry timeout, seconds

ROWS, QUICK_ROWS = 1_000, 300
ITERATIONS, QUICK_ITERATIONS = 2_000, 20
PASSES, QUICK_PASSES = 2, 1  # core runs per library, in alternating library order
GROWTH_SIZES, QUICK_GROWTH_SIZES = (1_000, 10_000, 100_000), (50, 200)
GROWTH_SAMPLES, QUICK_GROWTH_SAMPLES = 31, 2  # timed saves per size: the median of 31 steadies a shared machine
MIXED_ROWS, QUICK_MIXED_ROWS = 2_000, 300
MIXED_THREADS = 4
MIXED_SECONDS, QUICK_MIXED_SECONDS = 10.0, 1.0  # per library, split over the passes
MIXED_WARMUP_SECONDS, QUICK_MIXED_WARMUP_SECONDS = 2.0, 0.3


def prefix(run_id: str, lib: str, db: str, phase: str) -> str:
    """Every Redis key of one worker starts with this and a colon (Django's KEY_PREFIX, CACHEOPS_PREFIX)."""
    return f"peers-{run_id}-{lib}-{db}-{phase}"


def pg_database(run_id: str, lib: str, phase: str) -> str:
    return f"{PG_DATABASE_PREFIX}{run_id}_{lib}_{phase}".lower()
