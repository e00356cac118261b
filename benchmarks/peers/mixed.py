"""A mixed workload on the example blog: Zipf-distributed reads (95%) and writes (5%) from several threads.

Reads: an article by pk, its comments, its tags, a category's page, a tag's
page (list and count), the front page. Writes: an article saved with a new
``views`` value, a new comment, a tag added to an article. Articles, categories
and tags are drawn from Zipf distributions (a few are hot), so the cache sees
the same keys often and the writes hit the hot rows too.

Every read is checked against what was committed before it started: the
workload only makes values grow (each save gives an article a ``views`` value
higher than any before it, comments and tags are only added), and after each
commit it records the new value. A read that returns less than what was
recorded before the read began is stale.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.peers import common
from benchmarks.peers.worker import Context, QueryCounter, say

ZIPF_S = 1.0
# (kind, weight in percent)
READS = (("detail", 40.0), ("comments", 15.0), ("article_tags", 10.0), ("category_page", 15.0))
READS += (("tag_page", 10.0), ("front_page", 5.0))
WRITES = (("save_article", 3.0), ("add_comment", 1.5), ("tag_article", 0.5))
MAX_EXAMPLES = 5


class Zipf:
    """Draws from ``items`` with probability proportional to 1 / rank ** s, ranks in a shuffled order."""

    def __init__(self, items: Sequence[Any], rng: random.Random, s: float = ZIPF_S) -> None:
        self.items = list(items)
        rng.shuffle(self.items)
        total, self.cumulative = 0.0, []
        for rank in range(1, len(self.items) + 1):
            total += 1.0 / rank**s
            self.cumulative.append(total)
        self.total = total

    def draw(self, rng: random.Random) -> Any:
        return self.items[min(bisect.bisect(self.cumulative, rng.random() * self.total), len(self.items) - 1)]


@dataclass
class Truth:
    """What was committed, recorded right after each commit (so it never runs ahead of the database)."""

    views: dict[int, int]
    comments: dict[int, int]
    article_tags: dict[int, set[int]]
    tag_count: dict[int, int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    row_locks: dict[int, threading.Lock] = field(default_factory=dict)
    version: Any = None

    def __post_init__(self) -> None:
        self.version = itertools.count(max(self.views.values(), default=0) + 1)
        self.row_locks = {pk: threading.Lock() for pk in self.views}


@dataclass
class Tally:
    ops: int = 0
    reads: int = 0
    writes: int = 0
    hits: int = 0
    queries: int = 0
    stale: int = 0
    errors: int = 0
    stale_examples: list[str] = field(default_factory=list)
    error_examples: list[str] = field(default_factory=list)
    # kind -> [count, hits, wall ns, this thread's CPU ns]
    by_kind: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))


class Workload:
    def __init__(self, ctx: Context, seed: int, profile: Path | None = None) -> None:
        from benchmarks.peers.peerapp.models import Article, Comment, Tag

        self.ctx = ctx
        self.profile = profile  # cProfile the first thread into <profile>.0
        self.Article, self.Comment, self.Tag = Article, Comment, Tag
        with ctx.uncached():
            views = dict(ctx.from_db(Article).values_list("id", "views"))
            comments = dict.fromkeys(views, 0)
            for article_id in ctx.from_db(Comment).values_list("article_id", flat=True):
                comments[article_id] += 1
            article_tags: dict[int, set[int]] = {pk: set() for pk in views}
            tag_count: dict[int, int] = dict.fromkeys(ctx.from_db(Tag).values_list("id", flat=True), 0)
            for article_id, tag_id in ctx.from_db(Article.tags.through).values_list("article_id", "tag_id"):
                article_tags[article_id].add(tag_id)
                tag_count[tag_id] += 1
            categories = sorted(set(ctx.from_db(Article).values_list("category_id", flat=True)))
        self.truth = Truth(views, comments, article_tags, tag_count)
        rng = random.Random(seed)
        self.articles = Zipf(sorted(views), rng)
        self.categories = Zipf(categories, rng)
        self.tags = Zipf(sorted(tag_count), rng)
        kinds = (*READS, *WRITES)
        self.kinds = [kind for kind, _ in kinds]
        self.cumulative = list(itertools.accumulate(weight for _, weight in kinds))
        self.reads = {kind for kind, _ in READS}
        self.measuring = threading.Event()
        self.stop = threading.Event()

    # reads: each returns a problem when the result is older than what was committed before it began

    def detail(self, pk: int) -> str | None:
        floor = self.truth.views[pk]
        obj = self.ctx.q(self.Article).get(pk=pk)
        return f"article {pk}: views {obj.views}, {floor} was committed" if obj.views < floor else None

    def comments(self, pk: int) -> str | None:
        floor = self.truth.comments[pk]
        count = len(list(self.ctx.q(self.Comment).filter(article_id=pk)))
        return f"comments of article {pk}: {count}, {floor} were committed" if count < floor else None

    def article_tags(self, pk: int) -> str | None:
        floor = len(self.truth.article_tags[pk])
        count = len(list(self.ctx.q(self.Tag).filter(articles=pk)))
        return f"tags of article {pk}: {count}, {floor} were committed" if count < floor else None

    def page(self, what: str, qs: Any, floors: dict[int, int]) -> str | None:
        for obj in list(qs[: common.PAGE_SIZE]):
            if obj.views < floors[obj.pk]:
                return f"{what}: article {obj.pk} with views {obj.views}, {floors[obj.pk]} was committed"
        return None

    def category_page(self, category: int) -> str | None:
        floors = self.truth.views.copy()
        return self.page(f"category {category}", self.ctx.q(self.Article).filter(category_id=category), floors)

    def tag_page(self, tag: int) -> str | None:
        floors = self.truth.views.copy()
        floor = self.truth.tag_count[tag]
        problem = self.page(f"tag {tag}", self.ctx.q(self.Article).filter(tags=tag), floors)
        count = self.ctx.q(self.Article).filter(tags=tag).count()
        return problem or (f"tag {tag}: {count} articles, {floor} were committed" if count < floor else None)

    def front_page(self, _: Any = None) -> str | None:
        return self.page("front page", self.ctx.q(self.Article).all(), self.truth.views.copy())

    # writes: values only grow, and each is recorded after its commit

    def save_article(self, pk: int, rng: random.Random) -> None:
        with self.truth.row_locks[pk]:
            obj = self.ctx.q(self.Article).get(pk=pk)
            with self.truth.lock:
                obj.views = next(self.truth.version)
            obj.save()
            self.truth.views[pk] = obj.views

    def add_comment(self, pk: int, rng: random.Random) -> None:
        with self.truth.row_locks[pk]:
            self.Comment.objects.create(article_id=pk, author_name="Reader", body="A comment from the workload.")
            self.truth.comments[pk] += 1

    def tag_article(self, pk: int, rng: random.Random) -> None:
        with self.truth.row_locks[pk]:
            missing = sorted(set(self.truth.tag_count) - self.truth.article_tags[pk])
            if not missing:
                return
            tag = rng.choice(missing)
            self.Article(pk=pk).tags.add(tag)
            with self.truth.lock:
                self.truth.article_tags[pk].add(tag)
                self.truth.tag_count[tag] += 1

    def prewarm(self) -> None:
        """Every key the workload reads, read once: the measured seconds see a warm cache, not a cold start."""
        for pk in self.articles.items:
            self.detail(pk)
            self.comments(pk)
            self.article_tags(pk)
        for category in self.categories.items:
            self.category_page(category)
        for tag in self.tags.items:
            self.tag_page(tag)
        self.front_page()

    def call(self, kind: str, rng: random.Random) -> str | None:
        if kind == "category_page":
            return self.category_page(self.categories.draw(rng))
        if kind == "tag_page":
            return self.tag_page(self.tags.draw(rng))
        if kind == "front_page":
            return self.front_page()
        pk = self.articles.draw(rng)
        if kind in self.reads:
            return getattr(self, kind)(pk)  # type: ignore[no-any-return]
        getattr(self, kind)(pk, rng)
        return None

    # threads

    def thread(self, index: int, seed: int, tally: Tally) -> None:
        if self.profile is None or index:  # one profiler at a time: the first thread's
            self.work(index, seed, tally)
            return
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(self.work, index, seed, tally)
        profiler.dump_stats(self.profile.with_name(f"{self.profile.name}.{index}"))

    def work(self, index: int, seed: int, tally: Tally) -> None:
        from django.db import connection

        rng = random.Random(seed * 1000 + index)
        counter = QueryCounter()
        total = self.cumulative[-1]
        try:
            problem = self.ctx.check_hooked()
            if problem:
                raise RuntimeError(problem)
            with connection.execute_wrapper(counter):
                while not self.stop.is_set():
                    kind = self.kinds[bisect.bisect(self.cumulative, rng.random() * total)]
                    measured = self.measuring.is_set()
                    before = counter.count
                    wall, cpu = time.perf_counter_ns(), time.thread_time_ns()
                    try:
                        problem = self.call(kind, rng)
                    except Exception as exc:
                        tally.errors += measured
                        if measured and len(tally.error_examples) < MAX_EXAMPLES:
                            tally.error_examples.append(f"{kind}: {type(exc).__name__}: {exc}")
                        continue
                    if not measured:
                        continue
                    ran = counter.count - before
                    wall, cpu = time.perf_counter_ns() - wall, time.thread_time_ns() - cpu
                    tally.ops += 1
                    tally.queries += ran
                    stats = tally.by_kind[kind]
                    stats[0] += 1
                    stats[2] += wall
                    stats[3] += cpu
                    if kind in self.reads:
                        tally.reads += 1
                        tally.hits += ran == 0
                        stats[1] += ran == 0
                        if problem:
                            tally.stale += 1
                            if len(tally.stale_examples) < MAX_EXAMPLES:
                                tally.stale_examples.append(f"{kind}: {problem}")
                    else:
                        tally.writes += 1
        except Exception as exc:
            tally.errors += 1
            tally.error_examples.append(f"thread {index}: {type(exc).__name__}: {exc}")
        finally:
            connection.close()


def run_mixed(
    ctx: Context, threads: int, seconds: float, warmup: float, seed: int, profile: Path | None = None
) -> dict[str, Any]:
    from benchmarks.peers.peerapp.models import Article

    workload = Workload(ctx, seed, profile)
    started = time.perf_counter()
    workload.prewarm()
    prewarm_seconds = time.perf_counter() - started
    tallies = [Tally() for _ in range(threads)]
    workers = [
        threading.Thread(target=workload.thread, args=(i, seed, tallies[i]), name=f"mixed-{i}") for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    time.sleep(warmup)
    workload.measuring.set()
    started, cpu = time.perf_counter(), time.process_time()
    time.sleep(seconds)
    workload.stop.set()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    for worker in workers:
        worker.join()
    out: dict[str, Any] = {
        "threads": threads,
        "seconds": elapsed,
        "warmup_seconds": warmup,
        "prewarm_seconds": prewarm_seconds,
        "cpu_seconds": cpu,  # this process (the threads' Python), not PostgreSQL's or Redis's
    }
    with ctx.uncached():
        out["rows"] = ctx.from_db(Article).count()
    for name in ("ops", "reads", "writes", "hits", "queries", "stale", "errors"):
        out[name] = sum(getattr(t, name) for t in tallies)
    out["stale_examples"] = [e for t in tallies for e in t.stale_examples][:MAX_EXAMPLES]
    out["error_examples"] = [e for t in tallies for e in t.error_examples][:MAX_EXAMPLES]
    by_kind: dict[str, dict[str, int]] = {}
    for t in tallies:
        for kind, (count, hits, wall, cpu) in t.by_kind.items():
            into = by_kind.setdefault(kind, {"count": 0, "hits": 0, "wall_ns": 0, "cpu_ns": 0})
            into["count"] += count
            into["hits"] += hits
            into["wall_ns"] += wall
            into["cpu_ns"] += cpu
    out["by_kind"] = by_kind
    say(
        f"{ctx.lib}: {out['ops'] / elapsed:,.0f} ops/s, {out['reads']:,} reads ({out['hits']:,} hits), "
        f"{out['writes']:,} writes, {out['queries'] / elapsed:,.0f} SQL/s, {out['stale']} stale, {out['errors']} errors"
    )
    return out
