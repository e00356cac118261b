"""Invalidation cost as the cache grows: one save while N distinct cached queries of the model exist.

The i-th query lists the first ten articles of author ``i % AUTHORS`` with at
least ``i // AUTHORS`` views (``filter(author_id=a, views__gte=v)``): an
equality on a field and a range, as list pages and searches are. Each size is
filled by reading queries 0..N-1 through the library, then Redis is measured,
then saves are timed one by one. Each timed save is of an article of another
author; after it, that author's N / AUTHORS queries are read again (untimed),
so every timed save finds N cached queries. The re-reads that miss run SQL,
and a burst of SELECTs slows the writes that follow it, a plain ``UPDATE`` on
another connection as much as a save (500 uncached SELECTs before each save
took an uncached save from 600 to 1,080 µs). So the SELECTs the re-reads ran
are topped up with reads straight from the database (no library) until every
timed save, at every size and with every library, follows the same number of
SELECTs: the largest size's N / AUTHORS. Right before each timed save,
three untimed saves of categories (a table none of these queries reads) run:
a save straight after a burst of reads costs up to twice one that follows
other writes (cold CPU caches, idle server processes).
Each save's CPU time in the worker's thread is kept beside its wall time. On a
shared machine the same save moves by a fifth or more from one block of saves
to the next (blocks of identical uncached saves, seconds apart), more than a
size changes a flat library's save. So each timed save is paired with a
reference: the same ``UPDATE`` of a category row through a plain psycopg
connection of its own (no library sees it), timed right before or right after
the save in turn. A save's time over its pair's is the drift-corrected figure;
the median of those ratios is reported beside the raw median. Before the first
size, one block of the same writes runs (its median is kept as "warm-up", not
a size): the first block of these writes after the data is loaded runs about a
sixth faster than every later one (eight blocks of identical uncached saves in
a row: 525 µs, then 590 to 640 µs), so without it the first and smallest size
was always timed on a faster server than the others.

What each library does on such a save:
- django-cachekit bumps a fixed set of version keys, whatever N is;
- django-cacheops files each query under the conj set of its equality
  conditions (here ``author_id=a``) and deletes the members of the sets the
  saved row matches: N / AUTHORS keys;
- django-cachalot bumps the table's invalidation stamp, whatever N is.

The memory a library keeps to invalidate (its bookkeeping, not the cached
values) is the sum of Redis ``MEMORY USAGE key SAMPLES 0`` over its keys that
are not values: django-cachekit's ``ck:v:`` version keys, django-cacheops'
``conj:`` and ``schemes:`` sets, django-cachalot's table stamps.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.peers.worker import Context, QueryCounter, say

QUERY_ROWS = 10
PRELUDE_SAVES = 3


def _reference(connection: Any, table: str, row_id: int) -> tuple[Callable[[int], int], Any]:
    """A timer of one plain ``UPDATE`` and its commit, on a connection of its own that no library hooks."""
    raw = connection.get_new_connection(connection.get_connection_params())
    if connection.vendor == "sqlite":  # sqlite3: autocommit, and its own placeholder
        raw.isolation_level = None
        mark = "?"
    else:
        raw.autocommit = True
        mark = "%s"
    cursor = raw.cursor()
    sql = f"UPDATE {connection.ops.quote_name(table)} SET name = {mark} WHERE id = {mark}"

    def timed(k: int) -> int:
        start = time.perf_counter_ns()
        cursor.execute(sql, (f"Reference {k}", row_id))
        return time.perf_counter_ns() - start

    return timed, raw


def run_growth(ctx: Context, sizes: list[int], samples: int) -> dict[str, Any]:
    from django.db import connection

    from benchmarks.peers.peerapp.models import Article, Category

    with ctx.uncached():
        categories = list(ctx.from_db(Category).order_by("id"))
        authors = sorted({a for a in ctx.from_db(Article).values_list("author_id", flat=True)})
        # One article per author, saved in turn: the k-th timed save belongs to author k.
        savers = [ctx.from_db(Article).filter(author_id=a).order_by("id").first() for a in authors]

    def query(i: int) -> list[tuple[int, int]]:
        qs = ctx.q(Article).filter(author_id=authors[i % len(authors)], views__gte=i // len(authors))
        return list(qs.order_by("id").values_list("id", "views")[:QUERY_ROWS])

    def truth(i: int) -> list[tuple[int, int]]:
        with ctx.uncached():
            qs = ctx.from_db(Article).filter(author_id=authors[i % len(authors)], views__gte=i // len(authors))
            return list(qs.order_by("id").values_list("id", "views")[:QUERY_ROWS])

    burst = max(sizes)  # an author's queries below it are the SELECTs that precede each of its timed saves
    per_save = len(range(0, burst, len(authors)))
    counter = QueryCounter()
    out: dict[str, Any] = {
        "query": f"filter(author_id=a, views__gte=v).order_by('id').values_list('id', 'views')[:{QUERY_ROWS}]",
        "authors": len(authors),
        "samples": samples,
        "selects_before_each_save": per_save,
        "sizes": [],
        "failed": None,
    }
    for obj in savers:  # every timed save is a row's second save or later, as in the core operations
        obj.views += 1
        obj.save()
    reference, reference_connection = _reference(connection, Category._meta.db_table, categories[-1].pk)

    def timed_save(obj: Any, size: int, k: int) -> tuple[int, int, int, int]:
        """The category prelude, then one save of ``obj``: its wall and thread CPU ns, its reference, its SQL."""
        obj.views += 1
        for category in categories[:PRELUDE_SAVES]:
            category.name = f"Category {category.pk} ({size}, {k})"
            category.save()
        if k % 2:
            paired = reference(k)
        before = counter.count
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        obj.save()
        wall, thread = time.perf_counter_ns() - start, time.thread_time_ns() - start_cpu
        if not k % 2:
            paired = reference(k)
        return wall, thread, paired, counter.count - before

    # A block that brings the server to the state every size is timed in; not a size, its median is kept to compare.
    warmup = [timed_save(savers[k % len(authors)], 0, k)[0] for k in range(samples)]
    out["warmup_median_us"] = statistics.median(warmup) / 1000
    with connection.execute_wrapper(counter):
        for size in sizes:
            entry: dict[str, Any] = {"queries": size}
            if ctx.caches:
                before, started = counter.count, time.perf_counter()
                for i in range(size):
                    query(i)
                entry["fill_seconds"] = time.perf_counter() - started
                entry["fill_sql"] = counter.count - before
                entry["memory"] = ctx.memory()
                # A cached query that runs no SQL when read again: the entries exist and are used.
                before = counter.count
                query(size - 1)
                if counter.count != before:
                    out["failed"] = f"the last of {size} queries was not served from the cache when read again"
            times: list[int] = []
            cpu: list[int] = []
            references: list[int] = []
            sql = selects = 0
            gc.collect()
            for k in range(samples):
                author = k % len(authors)
                obj = savers[author]
                wall, thread, paired, statements = timed_save(obj, size, k)
                sql += statements
                times.append(wall)
                cpu.append(thread)
                references.append(paired)
                if ctx.q(Article).get(pk=obj.pk).views != obj.views or query(author) != truth(author):
                    out["failed"] = f"a read after the save of article {obj.pk} returned old data"
                before = counter.count
                if ctx.caches:  # that author's queries are cached again before the next timed save
                    for i in range(author, size, len(authors)):
                        query(i)
                # The same number of SELECTs before every timed save, whatever N is (see the docstring): the
                # re-reads that missed ran some, reads straight from the database run the rest.
                more = itertools.cycle(range(author, burst, len(authors)))
                while counter.count - before < per_save:
                    truth(next(more))
                selects += counter.count - before
            entry["reference_median_us"] = statistics.median(references) / 1000
            entry["save_per_reference"] = statistics.median(t / r for t, r in zip(times, references, strict=True))
            times.sort()
            entry["save_median_us"] = statistics.median(times) / 1000
            entry["save_min_us"] = times[0] / 1000
            entry["save_max_us"] = times[-1] / 1000
            entry["save_samples_us"] = [t / 1000 for t in times]
            entry["save_cpu_median_us"] = statistics.median(cpu) / 1000
            entry["queries_per_save"] = sql / samples
            entry["selects_after_each_save"] = selects / samples
            memory = entry.get("memory") or {}
            say(
                f"{ctx.lib}: {size:,} cached queries: save {entry['save_median_us']:.0f} µs, bookkeeping "
                f"{memory.get('bookkeeping_keys', 0):,} keys {memory.get('bookkeeping_bytes', 0) / 1024:,.1f} KiB"
            )
            out["sizes"].append(entry)
    reference_connection.close()
    if out["failed"]:
        say(f"FAILED {ctx.lib} growth: {out['failed']}")
    return out
