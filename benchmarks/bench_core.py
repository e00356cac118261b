"""Core benchmark of django-cachekit: cached reads and writes against stock Django and a raw Redis floor.

Run from the repository root:

    python benchmarks/bench_core.py [--db sqlite|postgres|all] [--iterations N] [--quick] [--json PATH]

Each database runs in its own process (Django is configured once per process).
Every cached operation is verified before it is timed: hits run no SQL and a
read after a save returns the saved value. A failed verification prints a
FAILED line, skips that timing and makes the exit code 1; missed targets do not
(this is a report).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import platform
import random
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness

REDIS_HOST, REDIS_DB = "127.0.0.1", 9  # db 9 belongs to this benchmark: it is flushed
REDIS_PORT = int(os.environ.get("CACHEKIT_BENCH_REDIS_PORT", "6379"))
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
PG_HOST, PG_PORT, PG_USER, PG_NAME = "127.0.0.1", 5432, "postgres", "cachekit_bench"
PG_ADMIN_DATABASES = ("postgres", "test")
FLOOR_KEY = "cachekit-bench:floor"

ROWS, QUICK_ROWS = 1_000, 200
ITERATIONS, QUICK_ITERATIONS = 2_000, 20
WARM_ROWS = 200  # rows whose entries get-by-pk cycles over
SAVE_ROWS = 50  # rows the write operations cycle over, disjoint from the warm ones
LIST_SIZE = 100
BODY_CHARS = 1_200

_VOCABULARY = (
    "cache version tag stamp entry miss hit redis django model query table row write commit bump "
    "pickle payload invalidate generation latency median server client socket buffer index column "
    "article author title slug rating views published active batch pipeline script expiry eviction"
)
WORDS = _VOCABULARY.split()


# -- timing -------------------------------------------------------------------


@dataclass(kw_only=True)
class Op(harness.Op):
    """An operation of this benchmark: the harness's, with its label in the report."""

    label: str
    stock: bool = False  # timed without django-cachekit's statement hook: plain Django
    unsigned: bool = False  # timed with SIGN_ENTRIES off, over entries stored unsigned


@dataclass
class Result:
    key: str
    label: str
    iterations: int = 0
    median_us: float | None = None
    p99_us: float | None = None
    mean_us: float | None = None
    min_us: float | None = None
    queries_per_op: float | None = None
    zero_query_ops: int | None = None  # timed calls that ran no SQL (served by the cache)
    failed: str | None = None


def result_of(timing: harness.Timing[Op]) -> Result:
    """What the report keeps of a timed op: its figures without the samples, or why it failed."""
    op, figures = timing.op, timing.figures()
    if figures is None:
        return Result(op.key, op.label, failed=timing.failed)
    del figures["samples_ns"]
    return Result(op.key, op.label, **figures)


def run_phase(ops: Sequence[Op], iterations: int, warmup: int) -> list[Result]:
    """Time ``ops`` together; a verification that raises stops the benchmark of this database."""
    timings = harness.run_phase(ops, iterations, warmup, precondition=hook_problem, context=hook_state)
    return [result_of(timing) for timing in timings]


# -- setup --------------------------------------------------------------------


def ensure_pg_database() -> None:
    import psycopg

    errors = []
    for admin in PG_ADMIN_DATABASES:
        try:
            conn = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=admin, autocommit=True)
        except psycopg.OperationalError as exc:
            errors.append(f"{admin}: {exc}")
            continue
        with conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_NAME,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{PG_NAME}"')
        return
    raise RuntimeError(f"cannot reach PostgreSQL to create {PG_NAME!r}: {'; '.join(errors)}")


def configure(db: str, workdir: Path) -> str:
    """Configure and set up Django for ``db``; returns where the data lives."""
    import django
    from django.conf import settings

    if db == "sqlite":
        path = workdir / "bench.sqlite3"
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
        where = f"file {path}"
    else:
        ensure_pg_database()
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": PG_NAME,
            "USER": PG_USER,
            "HOST": PG_HOST,
            "PORT": str(PG_PORT),
        }
        where = f"{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_NAME}"
    settings.configure(
        DEBUG=False,
        SECRET_KEY="cachekit-bench",
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=["django_cachekit", "benchmarks.benchapp"],
        DATABASES={"default": database},
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": REDIS_URL,
                "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
            }
        },
        CACHEKIT={"CACHE_ALIAS": "default", "TIMEOUT": 3600},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    return where


def make_body(rng: random.Random) -> str:
    words: list[str] = []
    size = 0
    while size < BODY_CHARS:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:BODY_CHARS]


def load_data(rows: int) -> None:
    """(Re)create the tables with the schema editor and fill both article tables alike."""
    from django.db import connection

    from benchmarks.benchapp.models import BenchArticle, BenchArticlePlain, BenchAuthor
    from django_cachekit.models import PendingInvalidation

    existing = set(connection.introspection.table_names())
    with connection.schema_editor() as editor:
        for model in (BenchArticle, BenchArticlePlain, BenchAuthor):
            if model._meta.db_table in existing:
                editor.delete_model(model)
        for model in (BenchAuthor, BenchArticle, BenchArticlePlain):
            editor.create_model(model)
        if PendingInvalidation._meta.db_table not in existing:
            editor.create_model(PendingInvalidation)  # as `migrate` makes it: polled by every process
    authors = BenchAuthor.objects.bulk_create(BenchAuthor(name=f"Author {i}") for i in range(20))
    rng = random.Random(20_240_601)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    values = []
    for i in range(rows):
        title = f"Article {i}: " + " ".join(rng.choice(WORDS) for _ in range(6))
        values.append(
            {
                "title": title,
                "slug": f"article-{i}",
                "body": make_body(rng),
                "author": authors[i % len(authors)],
                "views": rng.randrange(100_000),
                "rating": Decimal(rng.randrange(100, 500)) / 100,
                "published": start + timedelta(minutes=37 * i),
                "active": i % 10 != 0,
            }
        )
    BenchArticle.objects.bulk_create((BenchArticle(**v) for v in values), batch_size=250)
    BenchArticlePlain.objects.bulk_create((BenchArticlePlain(**v) for v in values), batch_size=250)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# -- the benchmark of one database ---------------------------------------------


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def save(obj: Any) -> None:
    obj.save()


def row_of(obj: Any, attnames: Sequence[str]) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name in attnames)


def cachekit_hook_installed() -> bool:
    from django.db import connection

    from django_cachekit.invalidation import hook as dbhook

    return dbhook.execute_wrapper in connection.execute_wrappers


@contextmanager
def cachekit_hook_detached() -> Iterator[None]:
    """Stock Django: without django-cachekit's statement hook on the connection."""
    from django.db import connection

    from django_cachekit.invalidation import hook as dbhook

    wrappers = connection.execute_wrappers
    index = wrappers.index(dbhook.execute_wrapper) if dbhook.execute_wrapper in wrappers else None
    if index is not None:
        del wrappers[index]
    try:
        yield
    finally:
        if index is not None:
            # Back in its place: execute_wrapper() context managers pop the last wrapper on exit.
            wrappers.insert(index, dbhook.execute_wrapper)


def hook_problem(op: Op) -> str | None:
    """Before each batch of calls: an op timed with django-cachekit needs its statement hook in place."""
    if op.stock or cachekit_hook_installed():
        return None
    return "django-cachekit's statement hook is not on the connection"


def hook_state(op: Op) -> AbstractContextManager[None]:
    """Around each batch of calls: a stock op runs with the statement hook detached, an unsigned
    one with SIGN_ENTRIES off."""
    if op.unsigned:
        return signing_off()
    return cachekit_hook_detached() if op.stock else nullcontext()


@contextmanager
def signing_off() -> Iterator[None]:
    # Set on the settings object itself: override_settings would reset the stores' connections.
    from django_cachekit.core.settings import conf

    was = conf.SIGN_ENTRIES
    conf.__dict__["SIGN_ENTRIES"] = False
    try:
        yield
    finally:
        conf.__dict__["SIGN_ENTRIES"] = was


class DatabaseBench:
    """The operations on one database, their verification and their timing."""

    def __init__(self, db: str, rows: int, iterations: int, warmup: int) -> None:
        import redis
        from django.db import connection

        from benchmarks.benchapp.models import BenchArticle, BenchArticlePlain

        self.db = db
        self.rows = rows
        self.iterations = iterations
        self.warmup = warmup
        self.connection = connection
        self.Article = BenchArticle
        self.Plain = BenchArticlePlain
        self.attnames = tuple(f.attname for f in BenchArticle._meta.concrete_fields)
        self.redis = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
        pks = list(BenchArticle.objects.order_by("id").values_list("id", flat=True))
        plain_pks = list(BenchArticlePlain.objects.order_by("id").values_list("id", flat=True))
        warm = min(WARM_ROWS, len(pks) - SAVE_ROWS)
        self.warm_pks = pks[:warm]
        # Rows whose entries are stored unsigned, for the signed/unsigned get hit: apart from the others.
        spare = pks[warm + SAVE_ROWS :]
        if len(spare) >= warm:
            self.unsigned_pks = spare[:warm]
        else:  # --quick: too few rows, the warm ones are shared out
            self.warm_pks, self.unsigned_pks = self.warm_pks[: warm // 2], self.warm_pks[warm // 2 :]
        self.plain_warm_pks = plain_pks[:warm]
        self.save_objs = list(BenchArticle.objects.filter(pk__in=pks[warm : warm + SAVE_ROWS]).order_by("id"))
        self.plain_save_objs = list(
            BenchArticlePlain.objects.filter(pk__in=plain_pks[warm : warm + SAVE_ROWS]).order_by("id")
        )
        self.results: list[Result] = []
        self.sizes: dict[str, int] = {}
        self.captured: dict[str, int] = {}  # SQL queries CaptureQueriesContext saw in a verification

    # reads through the public API, exactly as the brief words them

    def cached_get(self, pk: Any) -> Any:
        return self.Article.objects.cache().get(pk=pk)

    def cached_list(self, _: Any = None) -> list[Any]:
        return list(self.Article.objects.cache().filter(active=True).order_by("id")[:LIST_SIZE])

    def cached_count(self, _: Any = None) -> int:
        return self.Article.objects.cache().filter(active=True).count()  # type: ignore[no-any-return]

    def plain_get(self, pk: Any) -> Any:
        return self.Plain.objects.get(pk=pk)

    def plain_list(self, _: Any = None) -> list[Any]:
        return list(self.Plain.objects.filter(active=True).order_by("id")[:LIST_SIZE])

    def plain_count(self, _: Any = None) -> int:
        return self.Plain.objects.filter(active=True).count()

    def db_row(self, pk: Any) -> tuple[Any, ...]:
        return tuple(self.Article.objects.filter(pk=pk).values_list(*self.attnames).get())

    # helpers for the ops

    def cycle(self, items: Sequence[Any]) -> Callable[[int], Any]:
        return lambda i: items[i % len(items)]

    def bump_views(self, objs: Sequence[Any], save: bool) -> Callable[[int], Any]:
        def prepare(i: int) -> Any:
            obj = objs[i % len(objs)]
            obj.views += 1
            if save:
                obj.save()
            return obj

        return prepare

    def save_then_same(self, i: int) -> tuple[Any, int]:
        """Save a row (untimed); the timed call reads it back: ``(pk, views it was saved with)``."""
        obj = self.save_objs[i % len(self.save_objs)]
        obj.views += 1
        obj.save()
        return obj.pk, obj.views

    def save_then_other(self, i: int) -> Any:
        """Save a row (untimed); the timed call reads a warm row that the save did not change."""
        obj = self.save_objs[i % len(self.save_objs)]
        obj.views += 1
        obj.save()
        return self.warm_pks[i % len(self.warm_pks)]

    def zero_queries(self, call: Callable[[], Any]) -> tuple[Any, list[str]]:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(self.connection) as ctx:
            value = call()
        return value, [q["sql"] for q in ctx.captured_queries]

    # verifications (before timing)

    def verify_get_hit(self, pks: Sequence[Any] | None = None) -> str | None:
        pks = self.warm_pks if pks is None else pks
        for _ in range(2):
            for pk in pks:
                self.cached_get(pk)
        pk = pks[len(pks) // 2]
        obj, sqls = self.zero_queries(lambda: self.cached_get(pk))
        if sqls:
            return f"a warm get ran SQL ({plural(len(sqls), 'query')}): {sqls[0]}"
        if row_of(obj, self.attnames) != self.db_row(pk):
            return f"get(pk={pk}) returned values that differ from the database row"
        return None

    def verify_get_hit_unsigned(self) -> str | None:
        from django.core.cache import caches

        with signing_off():
            problem = self.verify_get_hit(self.unsigned_pks)
        key = caches["default"].make_key(self.Article.objects.get(pk=self.unsigned_pks[0]).cache_key)
        raw = self.redis.get(key)
        if problem is None and (raw is None or raw[:1] != b"\x01"):
            return "the unsigned rows' entries are not stored unsigned"
        return problem

    def verify_list_hit(self) -> str | None:
        self.cached_list()
        objs, sqls = self.zero_queries(self.cached_list)
        if sqls:
            return f"a warm list ran SQL ({plural(len(sqls), 'query')}): {sqls[0]}"
        expected = list(self.Article.objects.filter(active=True).order_by("id")[:LIST_SIZE].values_list(*self.attnames))
        if [row_of(o, self.attnames) for o in objs] != [tuple(r) for r in expected]:
            return "the cached list differs from the database rows"
        return None

    def verify_count_hit(self) -> str | None:
        self.cached_count()
        value, sqls = self.zero_queries(self.cached_count)
        if sqls:
            return f"a warm count ran SQL ({plural(len(sqls), 'query')}): {sqls[0]}"
        expected = self.Article.objects.filter(active=True).count()
        return None if value == expected else f"count() gave {value}, the database has {expected}"

    def verify_save(self) -> str | None:
        """The save reaches the database and invalidates a cached query on the row (write-through aside)."""
        obj = self.save_objs[0]

        def cached_views() -> list[int]:
            return list(self.Article.objects.cache().filter(pk=obj.pk).values_list("views", flat=True))

        cached_views()
        obj.views += 1
        obj.save()
        stored = self.Article.objects.filter(pk=obj.pk).values_list("views", flat=True).get()
        if stored != obj.views:
            return f"saved views={obj.views}, the database has {stored}"
        seen = cached_views()
        return None if seen == [obj.views] else f"stale cached query after a save: views {seen}, saved {obj.views}"

    def verify_read_after_save(self) -> str | None:
        obj = self.save_objs[0]
        self.cached_get(obj.pk)
        obj.views += 1
        obj.save()
        read, sqls = self.zero_queries(lambda: self.cached_get(obj.pk))
        self.captured["read_after_save"] = len(sqls)
        if read.views != obj.views:
            return f"stale read: saved views={obj.views}, get(pk={obj.pk}) returned {read.views}"
        if row_of(read, self.attnames) != self.db_row(obj.pk):
            return f"get(pk={obj.pk}) after a save differs from the database row"
        return None

    def verify_other_get_after_save(self) -> str | None:
        other = self.warm_pks[0]
        self.cached_get(other)
        obj = self.save_objs[1]
        obj.views += 1
        obj.save()
        read, sqls = self.zero_queries(lambda: self.cached_get(other))
        self.captured["other_get_after_save"] = len(sqls)
        if row_of(read, self.attnames) != self.db_row(other):
            return f"get(pk={other}) after another row's save differs from the database row"
        return None

    # checks (after each timed call)

    def same_pk(self, pk: Any, obj: Any) -> str | None:
        return None if obj.pk == pk else f"asked for pk={pk}, got pk={obj.pk}"

    def saved_value_read(self, arg: tuple[Any, int], obj: Any) -> str | None:
        pk, views = arg
        return None if obj.views == views else f"stale read: saved views={views}, got {obj.views} for pk={pk}"

    def list_of(self, size: int = LIST_SIZE) -> Callable[[Any, Any], str | None]:
        return lambda _, objs: None if len(objs) == size else f"got {len(objs)} rows, expected {size}"

    # the run

    def floor_ops(self) -> list[Op]:
        """A Redis round trip, and raw redis-py GET + pickle.loads of the same instance and the same 100 instances."""
        instance = self.Article.objects.get(pk=self.warm_pks[0])
        instances = list(self.Article.objects.filter(active=True).order_by("id")[:LIST_SIZE])
        one, many = f"{FLOOR_KEY}:article", f"{FLOOR_KEY}:list"
        self.redis.set(one, pickle.dumps(instance, pickle.HIGHEST_PROTOCOL))
        self.redis.set(many, pickle.dumps(instances, pickle.HIGHEST_PROTOCOL))
        self.sizes["pickled_instance_bytes"] = int(self.redis.strlen(one))
        self.sizes["pickled_list_bytes"] = int(self.redis.strlen(many))
        get = self.redis.get
        return [
            Op("redis_ping", lambda _: self.redis.ping(), label="reference: redis-py PING round trip"),
            Op(
                "floor_get", lambda _: pickle.loads(cast(bytes, get(one))), label="floor: redis GET + unpickle instance"
            ),
            Op(
                "floor_list",
                lambda _: pickle.loads(cast(bytes, get(many))),
                label="floor: redis GET + unpickle 100",
                check=self.list_of(),
            ),
        ]

    def entry_size(self) -> None:
        from django.core.cache import caches

        obj = self.Article.objects.get(pk=self.warm_pks[0])
        key = caches["default"].make_key(obj.cache_key)
        self.sizes["cachekit_object_entry_bytes"] = int(self.redis.strlen(key))

    def phases(self) -> tuple[list[Op], list[Op]]:
        """The read ops and the write ops, each list timed together, in report order."""
        warm, plain_warm = self.warm_pks, self.plain_warm_pks
        saves, plain_saves = self.save_objs, self.plain_save_objs
        reads = [
            Op(
                "get_hit", self.cached_get, self.cycle(warm), self.same_pk, self.verify_get_hit, label="get by pk (hit)"
            ),
            Op(
                "list_hit",
                self.cached_list,
                label="list of 100 (hit)",
                check=self.list_of(),
                verify=self.verify_list_hit,
            ),
            Op("count_hit", self.cached_count, label="count (hit)", verify=self.verify_count_hit),
            *self.floor_ops(),
            Op(
                "uncached_get",
                self.plain_get,
                self.cycle(plain_warm),
                self.same_pk,
                label="uncached get by pk",
                stock=True,
            ),
            Op("uncached_list", self.plain_list, label="uncached list of 100", check=self.list_of(), stock=True),
            Op("uncached_count", self.plain_count, label="uncached count", stock=True),
            Op("plain_get_hooked", self.plain_get, self.cycle(plain_warm), label="plain-model get, cachekit hook on"),
        ]
        writes = [
            Op("save", save, self.bump_views(saves, save=False), label="save", verify=self.verify_save),
            Op(
                "read_after_save",
                lambda arg: self.cached_get(arg[0]),
                self.save_then_same,
                label="first read after a save",
                check=self.saved_value_read,
                verify=self.verify_read_after_save,
            ),
            Op(
                "other_get_after_save",
                self.cached_get,
                self.save_then_other,
                label="another row's get after a save",
                check=self.same_pk,
                verify=self.verify_other_get_after_save,
            ),
            Op("uncached_save", save, self.bump_views(plain_saves, save=False), label="uncached save", stock=True),
            Op(
                "uncached_read_after_save",
                lambda obj: self.plain_get(obj.pk),
                self.bump_views(plain_saves, save=True),
                label="uncached read after a save",
                stock=True,
            ),
            Op(
                "plain_save_hooked",
                save,
                self.bump_views(plain_saves, save=False),
                label="plain-model save, cachekit hook on",
            ),
        ]
        return reads, writes

    def time_signing(self) -> list[Result]:
        """Get hits with signed and with unsigned entries, one call of each in turn (and each
        first in turn); a signed entry read again is recognised by its bytes, so a third op
        forgets it first, to time the hit that checks its MAC. In ``run_phase``'s rounds the first
        op of a round pays for what ran before it, more than a MAC costs: a ratio of two ops there
        measures their places."""
        from django.db import connection

        from django_cachekit.core import signing

        cache_keys = {pk: self.Article(pk=pk).cache_key for pk in self.warm_pks}
        rows = self.cycle(self.warm_pks)

        def unverified(i: int) -> Any:
            pk = rows(i)
            signing.forget_verified(cache_keys[pk])  # as on the first read of an entry's bytes
            return pk

        ops = [
            Op(
                "get_hit_signed_unverified",
                self.cached_get,
                unverified,
                self.same_pk,
                self.verify_get_hit,
                label="get hit, signed, MAC checked (alternating)",
            ),
            Op(
                "get_hit_signed",
                self.cached_get,
                self.cycle(self.warm_pks),
                self.same_pk,
                self.verify_get_hit,
                label="get hit, signed (alternating)",
            ),
            Op(
                "get_hit_unsigned",
                self.cached_get,
                self.cycle(self.unsigned_pks),
                self.same_pk,
                self.verify_get_hit_unsigned,
                label="get hit, unsigned (alternating)",
                unsigned=True,
            ),
        ]
        timings = [harness.Timing(op, precondition=hook_problem, context=hook_state) for op in ops]
        for timing in timings:
            timing.verify()
        counter = harness.QueryCounter()
        gc.collect()
        with connection.execute_wrapper(counter):
            for i in range(self.warmup + self.iterations):
                for timing in timings[i % 3 :] + timings[: i % 3]:  # each op first in turn
                    timing.run(1, counter, record=i >= self.warmup)
        return [result_of(timing) for timing in timings]

    def run(self) -> list[Result]:
        reads, writes = self.phases()
        gc.collect()
        gc.freeze()  # keep set-up objects out of the collections timed calls trigger
        # Reads first: every save invalidates the cached list and count.
        for phase in (reads, writes):
            results = run_phase(phase, self.iterations, self.warmup)
            if phase is reads:
                results += self.time_signing()
            for result in results:
                if result.failed:
                    print(f"FAILED {self.db}: {result.label}: {result.failed}", flush=True)
                self.results.append(result)
        self.redis.delete(f"{FLOOR_KEY}:article", f"{FLOOR_KEY}:list")
        self.entry_size()
        return self.results


# -- report -------------------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    key: str
    label: str
    numerator: str
    denominator: str
    target: float | None


RATIOS = (
    Ratio("get_hit_vs_floor", "get-by-pk hit / its floor", "get_hit", "floor_get", 1.4),
    Ratio("list_hit_vs_floor", "list-of-100 hit / its floor", "list_hit", "floor_list", 1.3),
    Ratio("save_vs_uncached", "save / uncached save", "save", "uncached_save", 1.35),  # two round trips: mark, bump
    Ratio("read_after_save_vs_get", "read after save / uncached get", "read_after_save", "uncached_get", 1.5),
    Ratio("signing_cost", "get-by-pk hit, signed / unsigned", "get_hit_signed", "get_hit_unsigned", 1.05),
    Ratio(
        "signing_cost_unverified",
        "get-by-pk hit, MAC checked / unsigned",
        "get_hit_signed_unverified",
        "get_hit_unsigned",
        None,
    ),
    Ratio("get_hit_vs_uncached", "cached get hit / uncached get", "get_hit", "uncached_get", None),
    Ratio("list_hit_vs_uncached", "list hit / uncached list", "list_hit", "uncached_list", None),
    Ratio("count_hit_vs_uncached", "count hit / uncached count", "count_hit", "uncached_count", None),
    Ratio("plain_save_hook_cost", "plain-model save, hook on / stock save", "plain_save_hooked", "uncached_save", None),
)


def ratios(results: Sequence[Result]) -> list[dict[str, Any]]:
    by_key = {r.key: r for r in results}
    out = []
    for ratio in RATIOS:
        num, den = by_key.get(ratio.numerator), by_key.get(ratio.denominator)
        value = None
        if num and den and num.median_us is not None and den.median_us:
            value = num.median_us / den.median_us
        met = None if value is None or ratio.target is None else value <= ratio.target
        out.append({**asdict(ratio), "value": value, "met": met})
    return out


def hit_or_miss(result: Result | None, captured: int | None) -> str:
    if result is None or result.failed or result.zero_query_ops is None:
        return "n/a (verification failed)"
    verdict = "hit" if captured == 0 and result.zero_query_ops == result.iterations else "miss"
    return (
        f"{verdict} (CaptureQueriesContext: {plural(captured or 0, 'query')}; "
        f"{result.zero_query_ops}/{result.iterations} timed reads ran no SQL)"
    )


def fmt(value: float | None, spec: str = "10.1f") -> str:
    return format(value, spec) if value is not None else format("n/a", ">" + spec.split(".")[0])


def print_report(report: dict[str, Any], results: Sequence[Result]) -> None:
    print(
        f"\n== {report['db']} ({report['db_version']}, {report['where']})\n   {report['rows']} articles, "
        f"{report['iterations']} iterations in {report['rounds']} interleaved rounds after {report['warmup']} warm-up"
    )
    sizes = report["sizes"]
    print(
        f"   pickled instance {sizes.get('pickled_instance_bytes')} B, pickled list of 100 "
        f"{sizes.get('pickled_list_bytes')} B, cachekit object entry {sizes.get('cachekit_object_entry_bytes')} B"
    )
    print(f"{'operation':<40} {'median µs':>10} {'p99 µs':>10} {'SQL/op':>7}")
    for r in results:
        line = f"{r.label:<40} {fmt(r.median_us)} {fmt(r.p99_us)} {fmt(r.queries_per_op, '7.2f')}"
        print(line + ("  FAILED" if r.failed else ""))
    print(
        "   uncached = the plain twin model with django-cachekit's statement hook detached (stock Django);\n"
        "   hook on = the same plain model as an app using django-cachekit runs it (its writes still bump tags)"
    )
    print(f"\n{'ratio of medians':<40} {'value':>10} {'target':>10}")
    for ratio in report["ratios"]:
        target = f"≤ {ratio['target']:.2f}" if ratio["target"] is not None else ""
        verdict = {True: "met", False: "MISSED", None: ""}[ratio["met"]]
        print(f"{ratio['label']:<40} {fmt(ratio['value'], '10.2f')} {target:>10}  {verdict}")
    by_key = {r.key: r for r in results}
    captured = report["captured_queries"]
    for key, label in (
        ("other_get_after_save", "another row's get after a save"),
        ("read_after_save", "first read after a save"),
    ):
        print(f"{label + ':':<32}{hit_or_miss(by_key.get(key), captured.get(key))}")
    for r in results:
        if r.failed:
            print(f"FAILED {report['db']}: {r.label}: {r.failed}")


def db_version() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0]}"


def bench_database(db: str, rows: int, iterations: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cachekit-bench-") as workdir:
        where = configure(db, Path(workdir))
        import redis

        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB).flushdb()
        load_data(rows)
        bench = DatabaseBench(db, rows, iterations, warmup)
        results = bench.run()
        report = {
            "db": db,
            "db_version": db_version(),
            "where": where,
            "rows": rows,
            "iterations": iterations,
            "warmup": warmup,
            "rounds": harness.rounds_for(iterations),
            "sizes": bench.sizes,
            "captured_queries": bench.captured,
            "operations": {r.key: asdict(r) for r in results},
            "ratios": ratios(results),
        }
        print_report(report, results)
        from django.db import connection

        connection.close()
    return report


# -- machine ------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": package_version("django"),
        "django_redis": package_version("django-redis"),
        "redis_py": package_version("redis"),
        "hiredis": package_version("hiredis"),
        "psycopg": package_version("psycopg"),
    }
    try:
        import redis

        info["redis_server"] = redis.Redis(host=REDIS_HOST, port=REDIS_PORT).info("server")["redis_version"]
    except Exception as exc:
        info["redis_server"] = f"unavailable ({exc})"
    try:
        import psycopg

        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    except Exception as exc:
        info["postgresql"] = f"unavailable ({exc})"
    return info


def print_machine(info: dict[str, Any]) -> None:
    print("django-cachekit core benchmark")
    print(f"machine:  {info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), {info['platform']}")
    print(
        f"software: Python {info['python']}, Django {info['django']}, django-redis {info['django_redis']}, "
        f"redis-py {info['redis_py']} (hiredis {info['hiredis']}), psycopg {info['psycopg']}"
    )
    print(f"servers:  Redis {info['redis_server']} ({REDIS_URL}), PostgreSQL {info['postgresql']}", flush=True)


# -- entry point --------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres", "all"), default="sqlite")
    parser.add_argument("--iterations", type=int, default=None, help=f"timed calls per operation ({ITERATIONS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ITERATIONS} iterations on {QUICK_ROWS} rows")
    parser.add_argument("--json", type=Path, default=None, help="write every number to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # run by --db all
    args = parser.parse_args(argv)
    if args.iterations is not None and args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def run_all(args: argparse.Namespace, info: dict[str, Any]) -> int:
    """One child process per database (settings are configured once per process)."""
    reports, code = [], 0
    with tempfile.TemporaryDirectory(prefix="cachekit-bench-") as tmp:
        for db in ("sqlite", "postgres"):
            out = Path(tmp) / f"{db}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--db", db, "--child", "--json", str(out)]
            if args.quick:
                cmd.append("--quick")
            if args.iterations is not None:
                cmd += ["--iterations", str(args.iterations)]
            returncode = subprocess.run(cmd, check=False).returncode
            code = max(code, returncode)
            if out.exists():
                reports.extend(json.loads(out.read_text())["databases"])
            else:
                print(f"FAILED {db}: the benchmark process exited with {returncode} and wrote no results")
    if args.json is not None:
        write_json(args.json, info, reports)
    return code


def write_json(path: Path, info: dict[str, Any] | None, reports: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "databases": reports}, indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = None if args.child else machine()
    if info is not None:
        print_machine(info)
    if args.db == "all":
        assert info is not None
        return run_all(args, info)
    rows = QUICK_ROWS if args.quick else ROWS
    iterations = args.iterations or (QUICK_ITERATIONS if args.quick else ITERATIONS)
    warmup = max(5, iterations // 10)
    try:
        report = bench_database(args.db, rows, iterations, warmup)
    except Exception as exc:  # a server down or a setup error: say which, fail the run
        traceback.print_exc()
        print(f"FAILED {args.db}: could not run the benchmark: {type(exc).__name__}: {exc}")
        return 2
    if args.json is not None:
        write_json(args.json, info, [report])
    failed = any(op["failed"] for op in report["operations"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
