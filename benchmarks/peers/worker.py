"""One library, one database, one phase of the peer comparison, in that library's environment.

Run by run.py with the Python of the library's virtualenv, from the repository root:

    python -m benchmarks.peers.worker --lib cacheops --db postgres --phase core --run-id R --out result.json

It configures Django for the library (each of them patches the ORM, so one
process holds one library), creates its own database and Redis key prefix,
loads the same data as every other worker, runs the phase, writes its results
as JSON and removes its database and keys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.harness import QueryCounter as QueryCounter  # the counter growth.py and mixed.py use
from benchmarks.peers import common

_VOCABULARY = (
    "cache version tag stamp entry miss hit redis django model query table row write commit bump "
    "pickle payload invalidate generation latency median server client socket buffer index column "
    "article author title slug rating views published active batch pipeline script expiry eviction"
)
WORDS = _VOCABULARY.split()
BODY_CHARS = 1_200


def say(message: str) -> None:
    print(f"{common.MARK}{message}", flush=True)


# -- settings -------------------------------------------------------------------


def django_settings(lib: str, db: str, database: dict[str, Any], key_prefix: str) -> dict[str, Any]:
    """The settings of one library: only what its documentation asks for, every timeout one hour."""
    apps = ["benchmarks.peers.peerapp"]
    cache = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": common.REDIS_URL,
        "KEY_PREFIX": key_prefix,
        "TIMEOUT": common.TIMEOUT,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
    extra: dict[str, Any] = {}
    if lib == "cachekit":
        apps.insert(0, "django_cachekit")
        extra["CACHEKIT"] = {"CACHE_ALIAS": "default", "TIMEOUT": common.TIMEOUT}
    elif lib == "cacheops":
        apps.insert(0, "cacheops")
        cacheops_prefix = key_prefix + ":"
        extra.update(
            CACHEOPS_REDIS=common.REDIS_URL,
            CACHEOPS={"peerapp.*": {"ops": "all", "timeout": common.TIMEOUT}},
            CACHEOPS_PREFIX=lambda query: cacheops_prefix,
        )
    elif lib == "cachalot":
        apps.insert(0, "cachalot")
        extra["CACHALOT_TIMEOUT"] = common.TIMEOUT
    return {
        "DEBUG": False,
        "SECRET_KEY": "cachekit-peers",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "INSTALLED_APPS": apps,
        "DATABASES": {"default": database},
        "CACHES": {"default": cache},
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        **extra,
    }


def pg_admin() -> Any:
    import psycopg

    errors = []
    for admin in common.PG_ADMIN_DATABASES:
        try:
            return psycopg.connect(
                host=common.PG_HOST, port=common.PG_PORT, user=common.PG_USER, dbname=admin, autocommit=True
            )
        except psycopg.OperationalError as exc:
            errors.append(f"{admin}: {exc}")
    raise RuntimeError(f"cannot reach PostgreSQL on {common.PG_HOST}:{common.PG_PORT}: {'; '.join(errors)}")


def create_pg_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_pg_database(name: str) -> None:
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def configure(lib: str, db: str, run_id: str, phase: str, workdir: Path) -> dict[str, Any]:
    """Set up Django for ``lib``; returns what the report says about the database."""
    os.environ["CACHEKIT_PEERS_LIB"] = lib  # read by peerapp.models: the model base class
    if str(common.ROOT) not in sys.path:
        sys.path.insert(0, str(common.ROOT))
    import django
    from django.conf import settings

    if db == "sqlite":
        path = workdir / "peers.sqlite3"
        database: dict[str, Any] = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
        where = {"where": f"file {path}"}
    else:
        name = common.pg_database(run_id, lib, phase)
        create_pg_database(name)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": common.PG_USER,
            "HOST": common.PG_HOST,
            "PORT": str(common.PG_PORT),
        }
        where = {"where": f"{common.PG_USER}@{common.PG_HOST}:{common.PG_PORT}/{name}", "pg_database": name}
    settings.configure(**django_settings(lib, db, database, common.prefix(run_id, lib, db, phase)))
    django.setup()
    return where


# -- data -------------------------------------------------------------------------


def make_body(rng: random.Random) -> str:
    words: list[str] = []
    size = 0
    while size < BODY_CHARS:
        word = rng.choice(WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)[:BODY_CHARS]


def load_data(rows: int, comments_per_article: int = 2) -> None:
    """Create the tables and fill them; the same seed gives every worker the same rows."""
    from django.db import connection

    from benchmarks.peers.peerapp.models import Article, Author, Category, Comment, Tag

    models = (Author, Category, Tag, Article, Comment)
    with connection.schema_editor() as editor:
        for model in models:
            editor.create_model(model)
    rng = random.Random(20_250_601)
    authors = Author.objects.bulk_create(
        Author(name=f"Author {i}", email=f"author{i}@example.com", bio=make_body(rng)[:300])
        for i in range(common.AUTHORS)
    )
    categories = Category.objects.bulk_create(
        Category(name=f"Category {i}", slug=f"category-{i}") for i in range(common.CATEGORIES)
    )
    tags = Tag.objects.bulk_create(Tag(name=f"tag {i}", slug=f"tag-{i}") for i in range(common.TAGS))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    articles = Article.objects.bulk_create(
        (
            Article(
                title=f"Article {i}: " + " ".join(rng.choice(WORDS) for _ in range(6)),
                slug=f"article-{i}",
                body=make_body(rng),
                author=authors[i % len(authors)],
                category=categories[i % len(categories)],
                published_at=start + timedelta(minutes=37 * i),
                views=rng.randrange(100_000),
            )
            for i in range(rows)
        ),
        batch_size=500,
    )
    through = Article.tags.through
    links = []
    for article in articles:
        for tag in rng.sample(tags, rng.randint(1, 3)):
            links.append(through(article_id=article.pk, tag_id=tag.pk))
    through.objects.bulk_create(links, batch_size=1000)
    Comment.objects.bulk_create(
        (
            Comment(
                article=article,
                author_name=f"Reader {rng.randrange(500)}",
                body=make_body(rng)[:400],
                created_at=article.published_at + timedelta(hours=j + 1),
            )
            for article in articles
            for j in range(rng.randint(0, 2 * comments_per_article))
        ),
        batch_size=1000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# -- the library under test ----------------------------------------------------------


@dataclass
class Context:
    """The library of this process and what every phase needs around it."""

    lib: str
    db: str
    run_id: str
    phase: str
    redis: Any = field(init=False)
    key_prefix: str = field(init=False)

    def __post_init__(self) -> None:
        import redis

        self.redis = redis.Redis(host=common.REDIS_HOST, port=common.REDIS_PORT, db=common.REDIS_DB)
        self.key_prefix = common.prefix(self.run_id, self.lib, self.db, self.phase) + ":"

    @property
    def caches(self) -> bool:
        return self.lib != "none"

    def q(self, model: Any) -> Any:
        """The queryset every read starts from: django-cachekit asks with ``cache()``, the peers cache every read."""
        return model.objects.cache() if self.lib == "cachekit" else model.objects.all()

    def from_db(self, model: Any) -> Any:
        """A queryset that reads the database, whatever the library (evaluate it inside ``uncached()``)."""
        return model.objects.nocache() if self.lib == "cacheops" else model._base_manager.all()

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """django-cachalot caches every query it compiles, unless told not to."""
        if self.lib == "cachalot":
            from cachalot.api import cachalot_disabled

            with cachalot_disabled():
                yield
        else:
            yield

    def check_hooked(self) -> str | None:
        """django-cachekit sees writes through a wrapper on the connection: is it on this thread's connection?"""
        if self.lib != "cachekit":
            return None
        from django.db import connection

        from django_cachekit.invalidation import hook as dbhook

        connection.ensure_connection()
        if dbhook.execute_wrapper not in connection.execute_wrappers:
            return "django-cachekit's statement hook is not on the connection"
        return None

    def keys(self) -> Iterator[bytes]:
        return self.redis.scan_iter(match=self.key_prefix + "*", count=1000)  # type: ignore[no-any-return]

    def clear(self) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self.keys():
            batch.append(key)
            if len(batch) >= 1000:
                removed += self.redis.unlink(*batch)
                batch = []
        if batch:
            removed += self.redis.unlink(*batch)
        return removed

    def finish(self) -> None:
        """Remove every key of this worker, after django-cachekit has written its pending metrics."""
        if self.lib == "cachekit":
            try:
                from django_cachekit.metrics import totals

                totals.flush()
            except Exception:  # metrics are not what this benchmark measures
                pass
        self.clear()

    def bookkeeping_test(self) -> Callable[[bytes], bool]:
        """Tells the keys a library keeps to invalidate (versions, conj sets, table stamps) from cached values."""
        if self.lib == "cachekit":
            return lambda key: b":ck:v:" in key
        if self.lib == "cacheops":
            heads = (self.key_prefix + "conj:").encode(), (self.key_prefix + "schemes:").encode()
            return lambda key: key.startswith(heads)
        if self.lib == "cachalot":
            from cachalot.settings import cachalot_settings
            from django.core.cache import caches
            from django.db import connection

            keygen = cachalot_settings.CACHALOT_TABLE_KEYGEN
            tables = connection.introspection.table_names()
            cache = caches["default"]
            stamps = {cache.make_key(keygen("default", table)).encode() for table in tables}
            return lambda key: key in stamps
        return lambda key: False

    def memory(self) -> dict[str, int]:
        """Keys and bytes (Redis MEMORY USAGE, exact for sets) of the bookkeeping and of the values."""
        is_bookkeeping = self.bookkeeping_test()
        out = {"bookkeeping_keys": 0, "bookkeeping_bytes": 0, "value_keys": 0, "value_bytes": 0}
        batch: list[bytes] = []

        def flush() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in batch:
                pipe.execute_command("MEMORY", "USAGE", key, "SAMPLES", 0)
            for key, used in zip(batch, pipe.execute()):
                kind = "bookkeeping" if is_bookkeeping(key) else "value"
                out[f"{kind}_keys"] += 1
                out[f"{kind}_bytes"] += int(used or 0)
            batch.clear()

        for key in self.keys():
            batch.append(key)
            if len(batch) >= 1000:
                flush()
        if batch:
            flush()
        return out


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(lib: str) -> dict[str, str]:
    import django

    info = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "django_redis": package_version("django-redis"),
        "redis_py": package_version("redis"),
        "hiredis": package_version("hiredis"),
        "psycopg": package_version("psycopg"),
    }
    if lib == "cachekit":
        import django_cachekit

        info["library"] = f"django-cachekit {django_cachekit.__version__} (this checkout)"
    elif lib in common.PEERS:
        info["library"] = f"django-{lib} {package_version('django-' + lib)}"
    else:
        info["library"] = "none"
    return info


def db_version() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0]}"


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start


# -- entry point -------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lib", choices=common.LIBS, required=True)
    parser.add_argument("--db", choices=common.DBS, required=True)
    parser.add_argument("--phase", choices=common.PHASES, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=common.ROWS)
    parser.add_argument("--iterations", type=int, default=common.ITERATIONS)
    parser.add_argument("--sizes", default=",".join(map(str, common.GROWTH_SIZES)))
    parser.add_argument("--samples", type=int, default=common.GROWTH_SAMPLES)
    parser.add_argument("--threads", type=int, default=common.MIXED_THREADS)
    parser.add_argument("--seconds", type=float, default=common.MIXED_SECONDS)
    parser.add_argument("--warmup-seconds", type=float, default=common.MIXED_WARMUP_SECONDS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=Path, default=None, help="mixed: cProfile the first thread into PROFILE.0")
    return parser.parse_args(argv)


def run_phase(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    if args.phase == "core":
        from benchmarks.peers.ops import run_core

        return run_core(ctx, args.iterations)
    if args.phase == "growth":
        from benchmarks.peers.growth import run_growth

        sizes = [int(s) for s in args.sizes.split(",") if s]
        return run_growth(ctx, sizes, args.samples)
    from benchmarks.peers.mixed import run_mixed

    return run_mixed(ctx, args.threads, args.seconds, args.warmup_seconds, args.seed, args.profile)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {"lib": args.lib, "db": args.db, "phase": args.phase, "error": None}
    where: dict[str, Any] = {}
    ctx: Context | None = None
    code = 0
    with tempfile.TemporaryDirectory(prefix="cachekit-peers-") as workdir:
        try:
            where = configure(args.lib, args.db, args.run_id, args.phase, Path(workdir))
            ctx = Context(args.lib, args.db, args.run_id, args.phase)
            ctx.clear()
            report["versions"] = versions(args.lib)
            report["db_version"] = db_version()
            report["redis_server"] = ctx.redis.info("server")["redis_version"]
            report["where"] = where["where"]
            with timer() as elapsed:
                load_data(args.rows)
                ctx.clear()  # every library starts with an empty cache
                say(f"{args.lib}/{args.db}/{args.phase}: {args.rows} articles loaded in {elapsed():.1f} s")
            report["rows"] = args.rows
            problem = ctx.check_hooked()
            if problem:
                raise RuntimeError(problem)
            report["result"] = run_phase(ctx, args)
        except Exception as exc:  # a server down, a library that does not load: say which, fail the worker
            traceback.print_exc()
            report["error"] = f"{type(exc).__name__}: {exc}"
            code = 2
        finally:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:
                pass
            if ctx is not None:
                ctx.finish()
            if "pg_database" in where:
                drop_pg_database(where["pg_database"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, default=str) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
