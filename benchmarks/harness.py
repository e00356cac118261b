"""The timing harness of the core benchmark (bench_core.py) and of the peer comparison (peers/ops.py).

The operations of a phase are verified once, warmed up, then timed in rounds
that alternate between them, so a noisy neighbour slows them all alike. Each
timed call is checked after the clock stops, and the SQL statements it ran are
counted. What the two benchmarks do differently is passed to ``run_phase``.

Standard library only until a phase runs: the peer workers import it in each
library's virtualenv, from the repository root.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

ROUNDS = 100  # each op's samples are taken in this many blocks, alternating with the other ops


@dataclass
class Op:
    """One timed operation: ``prepare(i)`` runs untimed, then ``timed(arg)`` is measured."""

    key: str
    timed: Callable[[Any], Any]
    prepare: Callable[[int], Any] = lambda i: i
    check: Callable[[Any, Any], str | None] | None = None  # (arg, result) -> problem, after each call
    verify: Callable[[], str | None] | None = None  # before timing: a problem makes the op failed


OpT = TypeVar("OpT", bound=Op)


class QueryCounter:
    """A database execute wrapper that only counts statements."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted samples."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def rounds_for(iterations: int) -> int:
    """How many rounds the timed calls of each op are split into."""
    return min(ROUNDS, iterations)


class Timing(Generic[OpT]):
    """The samples of one op, and why it failed if it did.

    ``catch_verify_errors``: an exception raised by the op's verification marks
    the op failed instead of propagating. ``precondition(op)``, before each batch
    of calls: a problem it returns marks the op failed. ``context(op)``: entered
    around each batch of calls, outside the timed region.
    """

    def __init__(
        self,
        op: OpT,
        *,
        catch_verify_errors: bool = False,
        precondition: Callable[[OpT], str | None] | None = None,
        context: Callable[[OpT], AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.op = op
        self.catch_verify_errors = catch_verify_errors
        self.precondition = precondition
        self.context = context
        self.calls = 0
        self.samples: list[int] = []
        self.queries = 0
        self.zero_query_ops = 0
        self.failed: str | None = None

    def verify(self) -> None:
        """Run the op's verification, if it has one; a problem it finds marks the op failed."""
        try:
            problem = self.op.verify() if self.op.verify is not None else None
        except Exception as exc:
            if not self.catch_verify_errors:
                raise
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            self.failed = f"verification: {problem}"

    def run(self, count: int, counter: QueryCounter, record: bool) -> None:
        """Make ``count`` calls, checking each; with ``record``, keep their times and SQL counts."""
        if self.failed:
            return
        if self.precondition is not None:
            problem = self.precondition(self.op)
            if problem:
                self.failed = problem
                return
        op, clock = self.op, time.perf_counter_ns
        with self.context(op) if self.context is not None else nullcontext():
            for _ in range(count):
                i = self.calls
                self.calls += 1
                arg = op.prepare(i)
                before = counter.count
                start = clock()
                value = op.timed(arg)
                elapsed = clock() - start
                ran = counter.count - before
                if op.check is not None:
                    problem = op.check(arg, value)
                    if problem:
                        self.failed = f"call {i}: {problem}"
                        return
                del value  # free the result outside the timed region
                if record:
                    self.samples.append(elapsed)
                    self.queries += ran
                    self.zero_query_ops += ran == 0

    def figures(self) -> dict[str, Any] | None:
        """The recorded calls summed up (times in µs, the sorted samples in ns); None if the op failed or has none."""
        samples = sorted(self.samples)
        if self.failed or not samples:
            return None
        return {
            "iterations": len(samples),
            "median_us": statistics.median(samples) / 1000,
            "p99_us": percentile(samples, 0.99) / 1000,
            "mean_us": statistics.fmean(samples) / 1000,
            "min_us": samples[0] / 1000,
            "queries_per_op": self.queries / len(samples),
            "zero_query_ops": self.zero_query_ops,
            "samples_ns": samples,
        }


def run_phase(
    ops: Sequence[OpT],
    iterations: int,
    warmup: int,
    *,
    catch_verify_errors: bool = False,
    precondition: Callable[[OpT], str | None] | None = None,
    context: Callable[[OpT], AbstractContextManager[Any]] | None = None,
) -> list[Timing[OpT]]:
    """Verify, warm up, then time ``ops`` round-robin; the keywords are those of ``Timing``."""
    from django.db import connection

    timings = [
        Timing(op, catch_verify_errors=catch_verify_errors, precondition=precondition, context=context) for op in ops
    ]
    for timing in timings:
        timing.verify()
    counter = QueryCounter()
    rounds = rounds_for(iterations)
    gc.collect()
    with connection.execute_wrapper(counter):
        for timing in timings:
            timing.run(warmup, counter, record=False)
        for r in range(rounds):
            for timing in timings:
                timing.run(iterations // rounds + (r < iterations % rounds), counter, record=True)
    return timings
