"""The core operations of the peer comparison, verified, then timed in interleaved rounds.

Every library runs the same calls on the same rows; only the queryset they start
from differs (``objects.cache()`` for django-cachekit, ``objects.all()`` for the
peers, which cache every read). Before timing, each operation is verified: a
read that must be a hit runs no SQL, and no read after a save returns old data.
An operation that fails is reported as failed and not timed. Each timed call is
checked again against the values the rows are known to hold.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import harness
from benchmarks.harness import Op
from benchmarks.peers import common
from benchmarks.peers.worker import Context, say

WARM_ROWS = 200  # rows whose entries get-by-pk cycles over
SAVE_ROWS = 50  # rows the write operations cycle over: outside the warm rows and the filtered category


def result_of(timing: harness.Timing[Op]) -> dict[str, Any]:
    """What the worker reports of a timed op: its figures with the samples (the runner merges passes)."""
    out: dict[str, Any] = {"failed": timing.failed, "iterations": len(timing.samples)}
    figures = timing.figures()
    if figures is not None:
        for key in ("median_us", "p99_us", "queries_per_op", "zero_query_ops", "samples_ns"):
            out[key] = figures[key]
    return out


def run_phase(ops: Sequence[Op], iterations: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Time ``ops`` together; a verification that raises makes its op failed, not the worker."""
    timings = harness.run_phase(ops, iterations, warmup, catch_verify_errors=True)
    return {timing.op.key: result_of(timing) for timing in timings}


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


class CoreBench:
    """The operations, their verification and their per-call checks."""

    def __init__(self, ctx: Context) -> None:
        from django.db import connection

        from benchmarks.peers.peerapp.models import Article

        self.ctx = ctx
        self.connection = connection
        self.Article = Article
        self.attnames = tuple(f.attname for f in Article._meta.concrete_fields)
        with ctx.uncached():
            self._load_rows(ctx.from_db(Article))
        self.captured: dict[str, int] = {}  # SQL statements of the verification's measured read

    def _load_rows(self, plain: Any) -> None:
        pks = list(plain.order_by("id").values_list("id", flat=True))
        self.filter_category = plain.order_by("category_id").values_list("category_id", flat=True)[0]
        warm = min(WARM_ROWS, len(pks) // 2)
        self.warm_pks = pks[:warm]
        self.list_size = min(common.LIST_SIZE, len(pks))
        saves = plain.filter(pk__gt=pks[warm - 1]).exclude(category_id=self.filter_category).order_by("id")[:SAVE_ROWS]
        self.save_objs = list(saves)
        # Every row but the saved ones keeps these values for the whole run.
        self.known = {row[0]: tuple(row) for row in plain.values_list(*self.attnames)}
        self.list_rows = [self.known[pk] for pk in pks[: self.list_size]]
        filtered = plain.filter(category_id=self.filter_category).order_by("id")[: common.LIST_SIZE]
        self.filtered_rows = [self.known[pk] for pk in filtered.values_list("id", flat=True)]
        self.count_expected = plain.filter(category_id=self.filter_category).count()

    # the reads, through each library's normal API

    def get(self, pk: Any) -> Any:
        return self.ctx.q(self.Article).get(pk=pk)

    def list100(self, _: Any = None) -> list[Any]:
        return list(self.ctx.q(self.Article).order_by("id")[: self.list_size])

    def count(self, _: Any = None) -> int:
        return self.ctx.q(self.Article).filter(category_id=self.filter_category).count()  # type: ignore[no-any-return]

    def filtered(self, _: Any = None) -> list[Any]:
        qs = self.ctx.q(self.Article).filter(category_id=self.filter_category).order_by("id")
        return list(qs[: common.LIST_SIZE])

    def row(self, obj: Any) -> tuple[Any, ...]:
        return tuple(getattr(obj, name) for name in self.attnames)

    def db_row(self, pk: Any) -> tuple[Any, ...]:
        with self.ctx.uncached():
            return tuple(self.ctx.from_db(self.Article).filter(pk=pk).values_list(*self.attnames).get())

    def sql_of(self, call: Callable[[], Any]) -> tuple[Any, list[str]]:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(self.connection) as ctx:
            value = call()
        return value, [q["sql"] for q in ctx.captured_queries]

    def must_hit(self, what: str, sqls: list[str]) -> str | None:
        if sqls and self.ctx.caches:
            return f"{what} ran SQL ({plural(len(sqls), 'query')}): {sqls[0]}"
        return None

    # the writes

    def save_obj(self, i: int) -> Any:
        obj = self.save_objs[i % len(self.save_objs)]
        obj.views += 1
        return obj

    def save_then_same(self, i: int) -> tuple[Any, int]:
        obj = self.save_obj(i)
        obj.save()
        return obj.pk, obj.views

    def save_then_reread(self, i: int) -> tuple[Any, int]:
        pk, views = self.save_then_same(i)
        self.get(pk)
        return pk, views

    def save_then_other(self, i: int) -> Any:
        self.save_obj(i).save()
        return self.warm_pks[i % len(self.warm_pks)]

    def save_unrelated(self, i: int) -> None:
        self.save_obj(i).save()

    # verifications, before timing

    def verify_get_hit(self) -> str | None:
        for _ in range(2):
            for pk in self.warm_pks:
                self.get(pk)
        pk = self.warm_pks[len(self.warm_pks) // 2]
        obj, sqls = self.sql_of(lambda: self.get(pk))
        return self.must_hit("a warm get", sqls) or (
            None if self.row(obj) == self.db_row(pk) else f"get(pk={pk}) differs from the database row"
        )

    def verify_list_hit(self) -> str | None:
        self.list100()
        objs, sqls = self.sql_of(self.list100)
        return self.must_hit("a warm list", sqls) or (
            None if [self.row(o) for o in objs] == self.list_rows else "the list differs from the database rows"
        )

    def verify_count_hit(self) -> str | None:
        self.count()
        value, sqls = self.sql_of(self.count)
        with self.ctx.uncached():
            expected = self.ctx.from_db(self.Article).filter(category_id=self.filter_category).count()
        return self.must_hit("a warm count", sqls) or (
            None if value == expected else f"count() gave {value}, the database has {expected}"
        )

    def verify_save(self) -> str | None:
        obj = self.save_objs[0]

        def cached_views() -> list[int]:
            return list(self.ctx.q(self.Article).filter(pk=obj.pk).values_list("views", flat=True))

        cached_views()
        obj.views += 1
        obj.save()
        stored = self.db_row(obj.pk)[self.attnames.index("views")]
        if stored != obj.views:
            return f"saved views={obj.views}, the database has {stored}"
        seen = cached_views()
        return None if seen == [obj.views] else f"stale cached query after a save: views {seen}, saved {obj.views}"

    def verify_read_after_save(self) -> str | None:
        obj = self.save_objs[0]
        self.get(obj.pk)
        obj.views += 1
        obj.save()
        read, sqls = self.sql_of(lambda: self.get(obj.pk))
        self.captured["read_after_save"] = len(sqls)
        if read.views != obj.views:
            return f"stale read: saved views={obj.views}, get(pk={obj.pk}) returned {read.views}"
        return None if self.row(read) == self.db_row(obj.pk) else f"get(pk={obj.pk}) differs from the database"

    def verify_reread_after_save(self) -> str | None:
        obj = self.save_objs[1]
        obj.views += 1
        obj.save()
        self.get(obj.pk)
        read, sqls = self.sql_of(lambda: self.get(obj.pk))
        self.captured["reread_after_save"] = len(sqls)
        if read.views != obj.views:
            return f"stale read: saved views={obj.views}, get(pk={obj.pk}) returned {read.views}"
        return self.must_hit("a re-read after a save", sqls)

    def verify_other_get_after_save(self) -> str | None:
        other = self.warm_pks[0]
        self.get(other)
        self.save_unrelated(2)
        read, sqls = self.sql_of(lambda: self.get(other))
        self.captured["other_get_after_save"] = len(sqls)
        return None if self.row(read) == self.db_row(other) else f"get(pk={other}) differs from the database row"

    def verify_filtered_list_after_save(self) -> str | None:
        self.filtered()
        self.save_unrelated(3)
        objs, sqls = self.sql_of(self.filtered)
        self.captured["filtered_list_after_save"] = len(sqls)
        with self.ctx.uncached():
            rows = self.ctx.from_db(self.Article).filter(category_id=self.filter_category).order_by("id")
            expected = [tuple(r) for r in rows[: common.LIST_SIZE].values_list(*self.attnames)]
        return None if [self.row(o) for o in objs] == expected else "the filtered list differs from the database"

    # checks, after each timed call

    def known_row(self, pk: Any, obj: Any) -> str | None:
        return None if self.row(obj) == self.known[pk] else f"get(pk={pk}) returned other values than the row holds"

    def saved_value(self, arg: tuple[Any, int], obj: Any) -> str | None:
        pk, views = arg
        return None if obj.views == views else f"stale read: saved views={views}, got {obj.views} for pk={pk}"

    def rows_are(self, rows: list[tuple[Any, ...]]) -> Callable[[Any, Any], str | None]:
        return lambda _, objs: None if [self.row(o) for o in objs] == rows else "the list differs from the rows"

    def count_is(self, _: Any, value: int) -> str | None:
        return None if value == self.count_expected else f"count() gave {value}, expected {self.count_expected}"

    def phases(self) -> tuple[list[Op], list[Op]]:
        warm = self.warm_pks
        reads = [
            Op("get_hit", self.get, lambda i: warm[i % len(warm)], self.known_row, self.verify_get_hit),
            Op("list_hit", self.list100, check=self.rows_are(self.list_rows), verify=self.verify_list_hit),
            Op("count_hit", self.count, check=self.count_is, verify=self.verify_count_hit),
        ]
        writes = [
            Op("save", lambda obj: obj.save(), self.save_obj, verify=self.verify_save),
            Op(
                "read_after_save",
                lambda arg: self.get(arg[0]),
                self.save_then_same,
                self.saved_value,
                self.verify_read_after_save,
            ),
            Op(
                "reread_after_save",
                lambda arg: self.get(arg[0]),
                self.save_then_reread,
                self.saved_value,
                self.verify_reread_after_save,
            ),
            Op(
                "other_get_after_save", self.get, self.save_then_other, self.known_row, self.verify_other_get_after_save
            ),
            Op(
                "filtered_list_after_save",
                self.filtered,
                self.save_unrelated,
                self.rows_are(self.filtered_rows),
                self.verify_filtered_list_after_save,
            ),
        ]
        return reads, writes


def run_core(ctx: Context, iterations: int) -> dict[str, Any]:
    bench = CoreBench(ctx)
    reads, writes = bench.phases()
    warmup = max(5, iterations // 10)
    gc.collect()
    gc.freeze()  # keep set-up objects out of the collections timed calls trigger
    ops: dict[str, dict[str, Any]] = {}
    for phase in (reads, writes):
        for key, result in run_phase(phase, iterations, warmup).items():
            if result["failed"]:
                say(f"FAILED {ctx.lib}/{ctx.db}: {common.OP_LABELS[key]}: {result['failed']}")
            ops[key] = result
    for key, sqls in bench.captured.items():
        ops[key]["verification_queries"] = sqls
    return {
        "iterations": iterations,
        "warmup": warmup,
        "rounds": harness.rounds_for(iterations),
        "warm_rows": len(bench.warm_pks),
        "save_rows": len(bench.save_objs),
        "list_size": bench.list_size,
        "filtered_list_size": len(bench.filtered_rows),
        "operations": ops,
    }
