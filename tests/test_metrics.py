"""Metrics: counts per namespace across threads and processes, the shared totals,
the largest entries, signals and the cachekit_stats command."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import override_settings

from django_cachekit import cached, invalidate_all, invalidate_tags
from django_cachekit.checks import check_settings
from django_cachekit.core import signals
from django_cachekit.metrics import counters as metrics
from django_cachekit.metrics import series, totals
from django_cachekit.stores.base import Store
from tests.conftest import CACHE, needs_redis
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article, Author
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
needs_shared_cache = pytest.mark.skipif(
    CACHE == "locmem", reason="LocMem lives inside one process: other processes cannot add to its totals"
)


@pytest.fixture(autouse=True)
def _fresh_totals():
    totals.reset()
    yield
    totals.reset()


def fresh_cache():
    """An empty cache and no counts: saves wrote their rows through, so reads would hit."""
    caches["default"].clear()
    totals.reset()


def cachekit(**options):
    return override_settings(CACHEKIT={**settings.CACHEKIT, **options})


def stats_json(*args):
    out = _call("--json", *args)
    return json.loads(out)


def _call(*args):
    from io import StringIO

    out = StringIO()
    call_command("cachekit_stats", *args, stdout=out)
    return out.getvalue()


def row(report, namespace):
    return next(r for r in report["namespaces"] if r["namespace"] == namespace)


def child_env(**extra):
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CACHEKIT_TEST_RUN": settings.RUN_ID,
        "CK_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def run_manage(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "django", "cachekit_stats", *args],
        cwd=ROOT,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- counting -------------------------------------------------------------------------


def test_hit_rate_equals_the_mix_of_hits_and_misses():
    authors = AuthorFactory.create_batch(2)
    fresh_cache()
    for author in authors:  # 2 misses, then 8 hits
        for _ in range(5):
            Author.objects.cache().get(pk=author.pk)

    local = metrics.snapshot()["testapp.author"]
    assert (local["hit"], local["miss"], local["store"]) == (8, 2, 2)
    report = stats_json()
    author = row(report, "testapp.author")
    assert (author["hit"], author["miss"], author["lookups"], author["hit_rate"]) == (8, 2, 10, 80.0)
    assert author["kind"] == "model"
    assert report["shared"] is True

    # Flushing moves the counts to the shared totals without counting them twice.
    assert totals.flush() is True
    assert metrics.pending()[1] == {}
    assert row(stats_json(), "testapp.author")["hit"] == 8
    Author.objects.cache().get(pk=authors[0].pk)
    assert row(stats_json(), "testapp.author")["hit"] == 9
    assert totals.flush() is True
    assert row(stats_json(), "testapp.author")["hit_rate"] == pytest.approx(81.8)


def test_counts_of_real_threads_add_up():
    @cached(timeout=60)
    def square(n):
        return n

    barrier = threading.Barrier(6)

    def work(k):
        barrier.wait()
        for i in range(40):
            square((k, i % 4))  # 4 misses, then 36 hits in each thread

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    # A flush while the threads count must neither lose nor double anything.
    for _ in range(5):
        totals.flush()
    for t in threads:
        t.join()

    name = f"{square.__module__}.{square.__qualname__}"
    assert metrics.snapshot()[name]["hit"] == 6 * 36
    result = row(stats_json(), name)
    assert (result["hit"], result["miss"], result["store"], result["hit_rate"]) == (216, 24, 24, 90.0)
    assert result["kind"] == "function"


def test_invalidations_stale_entries_and_kinds_are_counted():
    article = ArticleFactory()
    fresh_cache()
    Article.objects.cache().get(pk=article.pk)
    Article.objects.filter(pk=article.pk).update(title="changed")  # bumps the row's tags
    Article.objects.cache().get(pk=article.pk)  # finds the entry, stamped with older versions
    article.refresh_from_db()
    article.save()  # one save bumps several tags of testapp.article: counted once

    @cached(timeout=60)
    def report(n):
        return n

    report(1)
    report.invalidate(1)
    before = metrics.snapshot()
    invalidate_tags("team:1", "team:2")  # two tags, one invalidation
    invalidate_all()

    counts = metrics.snapshot()
    assert counts["testapp.article"]["stale"] == 1
    assert counts["testapp.article"]["invalidation"] == 2  # the update and the save
    assert counts[f"{report.__module__}.{report.__qualname__}"]["invalidation"] == 1
    assert counts["tags"]["invalidation"] == before["tags"]["invalidation"] + 1
    assert counts["global"]["invalidation"] == 1
    result = stats_json()
    assert {r["namespace"]: r["kind"] for r in result["namespaces"]}["tags"] == "tags"
    assert row(result, "testapp.article")["hit_rate"] == 0.0


def test_the_largest_entries_are_remembered_per_namespace():
    @cached(timeout=60)
    def blob(n):
        return "x" * n

    sizes = [100, 5000, 300, 20000, 40, 7000, 900, 60000]
    for n in sizes:
        blob(n)
    name = f"{blob.__module__}.{blob.__qualname__}"
    kept = metrics.biggest()[name]
    assert len(kept) == metrics.BIGGEST_KEPT
    assert [n for n, _ in kept] == sorted((n for n, _ in kept), reverse=True)
    assert kept[0][0] > 60000 > kept[1][0] > 20000  # the payload plus the entry's tags and stamp
    assert {k for _, k in kept} == {blob.cache_key(n) for n in (60000, 20000, 7000, 5000, 900)}

    totals.flush()
    shared = row(stats_json(), name)["biggest"]
    assert [(b["bytes"], b["key"]) for b in shared] == kept
    table = _call(name)
    assert "Largest entries stored" in table
    assert blob.cache_key(60000) in table


# -- the shared totals ------------------------------------------------------------------


def _count_round_trips(monkeypatch):
    """Round trips made by this thread: socket sends (Redis, Memcached) or outer LocMem calls."""
    me = threading.get_ident()
    calls = []
    depth = [0]

    def wrap(owner, name):
        original = getattr(owner, name)

        def counted(self, *args, **kwargs):
            if threading.get_ident() != me:
                return original(self, *args, **kwargs)
            if not depth[0]:
                calls.append(name)
            depth[0] += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(owner, name, counted)

    wrap(socket.socket, "sendall")
    wrap(socket.socket, "send")
    for name in ("get", "get_many", "set", "set_many", "add", "incr", "delete", "delete_many"):
        wrap(LocMemCache, name)
    wrap(Store, "read_many")  # LocMem read from its dict, without unpickling classes: one call
    return calls


def test_counting_adds_no_round_trip_to_a_hit(monkeypatch, queries):
    author = AuthorFactory()
    seen = {}
    for enabled in (False, True):
        with cachekit(METRICS=enabled, METRICS_FLUSH_INTERVAL=0.001):
            Author.objects.cache().get(pk=author.pk)
            calls = _count_round_trips(monkeypatch)
            with queries(0):
                for _ in range(50):
                    totals.wake()  # flushes run in the background while the hits are served
                    Author.objects.cache().get(pk=author.pk)
            seen[enabled] = list(calls)
            monkeypatch.undo()
            if enabled:

                def flushed():
                    totals.wake()
                    return metrics.pending()[1] == {}

                wait_until(flushed, 30, "the background thread flushed nothing")
    assert seen[True] == seen[False]
    assert len(seen[True]) == 50  # one round trip per hit
    with cachekit(METRICS_FLUSH_INTERVAL=0.001):
        assert row(stats_json(), "testapp.author")["hit"] >= 50


@needs_redis
def test_a_flush_is_one_round_trip_on_redis(monkeypatch):
    for i in range(20):
        metrics.record("hit", f"ns{i}", i + 1)
        metrics.record_size(f"ns{i}", f"key{i}", 1000 + i)
    import redis

    calls = []
    for owner, name in ((redis.Redis, "execute_command"), (redis.client.Pipeline, "execute")):
        original = getattr(owner, name)
        monkeypatch.setattr(
            owner, name, lambda self, *a, _o=original, _n=name, **kw: calls.append(_n) or _o(self, *a, **kw)
        )
    assert totals.flush() is True
    monkeypatch.undo()
    assert calls == ["execute"]  # one pipeline: 20 counters, 20 sorted sets and their expiry
    store = totals.protocol.runtime().store
    ttl = store.client.ttl(str(store._make_key("ck:metrics:counts")))
    assert 0 < ttl <= totals.conf.TAG_TIMEOUT  # abandoned totals expire
    report = stats_json()
    assert row(report, "ns19")["hit"] == 20
    assert row(report, "ns19")["biggest"] == [{"bytes": 1019, "key": "key19"}]


@needs_shared_cache
def test_processes_add_up_in_the_shared_totals():
    authors = AuthorFactory.create_batch(3)
    fresh_cache()
    script = textwrap.dedent(
        """
        import os, sys
        from django.conf import settings
        settings.DATABASES["default"]["NAME"] = os.environ["CK_DB_NAME"]
        import django
        django.setup()
        from django_cachekit import cached
        from tests.testapp.models import Author

        @cached(timeout=60)
        def work(k, i):
            return (k, i)

        k, pk = int(sys.argv[1]), int(sys.argv[2])
        for i in range(10):
            work(k, i % 2)                      # 2 misses, 8 hits
        for _ in range(5):
            Author.objects.cache().get(pk=pk)   # 1 miss, 4 hits
        # exits without flushing by hand: the exit flush adds the counts
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(k), str(a.pk)], cwd=ROOT, env=child_env())
        for k, a in enumerate(authors)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]

    report = stats_json()
    work = row(report, "__main__.work")
    assert (work["hit"], work["miss"], work["hit_rate"]) == (24, 6, 80.0)
    author = row(report, "testapp.author")
    assert (author["hit"], author["miss"], author["hit_rate"]) == (12, 3, 80.0)

    # The command in another process sees the same totals, as JSON and as a table.
    done = run_manage("--json")
    assert done.returncode == 0, done.stderr
    other = json.loads(done.stdout)
    assert row(other, "__main__.work")["hit"] == 24
    assert row(other, "testapp.author")["hit_rate"] == 80.0
    done = run_manage("testapp.Author")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    author_line = next(line for line in lines if line.startswith("testapp.author"))
    assert author_line.split()[:8] == ["testapp.author", "model", "12", "3", "0", "80.0%", "0", "3"]
    assert "__main__.work" not in done.stdout

    done = run_manage("--reset")
    assert done.returncode == 0, done.stderr
    assert "The totals were reset." in done.stdout
    assert stats_json()["namespaces"] == []


@needs_shared_cache
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_counts_from_zero():
    metrics.record("hit", "forked", 5)
    pid = os.fork()
    if pid == 0:  # the child: its parent's 5 hits are not its own
        code = 1
        try:
            metrics.record("hit", "forked", 2)
            code = 0 if totals.flush() and metrics.snapshot()["forked"]["hit"] == 2 else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert totals.flush() is True
    assert row(stats_json(), "forked")["hit"] == 7


def test_metrics_off_keeps_counts_in_this_process():
    with cachekit(METRICS=False):
        metrics.record("hit", "alone", 3)
        assert totals.flush() is False
        report = stats_json()
        assert report["shared"] is False
        assert row(report, "alone")["hit"] == 3
        assert "this process only" in _call()
        metrics.reset()
    assert stats_json()["namespaces"] == []  # nothing was written to the cache


# -- cachekit_stats ---------------------------------------------------------------------


def test_stats_table_is_aligned_and_filtered():
    metrics.record("hit", "testapp.article", 1234)
    metrics.record("miss", "testapp.article", 66)
    metrics.record("stale", "testapp.article", 4)
    metrics.record("invalidation", "testapp.article", 17)
    metrics.record("hit", "tests.reports.monthly", 99)
    metrics.record("miss", "tests.reports.monthly", 1)
    out = _call()
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("namespace"))
    article = next(line for line in lines if line.startswith("testapp.article"))
    total = next(line for line in lines if line.startswith("total"))
    assert header.index("hit rate") + len("hit rate") == article.index("94.6%") + len("94.6%")
    assert article.split()[:8] == ["testapp.article", "model", "1234", "66", "4", "94.6%", "17", "0"]
    assert total.split()[:6] == ["total", "1333", "67", "4", "94.9%", "17"]
    assert lines.index(article) < next(i for i, line in enumerate(lines) if line.startswith("tests.reports"))

    only = _call("testapp")
    assert "testapp.article" in only and "tests.reports.monthly" not in only
    assert "tests.reports.monthly" in _call("tests.reports.monthly")
    assert "testapp.comment" in _call("testapp.Comment")  # an installed model without counts: a row of zeros
    metrics.record("hit", "fragment:sidebar", 1)
    kinds = {r["namespace"]: r["kind"] for r in stats_json()["namespaces"]}
    assert kinds == {"testapp.article": "model", "tests.reports.monthly": "function", "fragment:sidebar": "fragment"}
    metrics.record("hit", "fragment:sidebar", -1)
    rows = stats_json("--sort", "rate")["namespaces"]
    assert [r["namespace"] for r in rows] == ["tests.reports.monthly", "testapp.article"]


def test_stats_reset_clears_every_count():
    metrics.record("hit", "testapp.article", 3)
    totals.flush()
    metrics.record("hit", "testapp.article", 2)
    report = stats_json("--reset")
    assert report["reset"] is True
    assert row(report, "testapp.article")["hit"] == 5
    assert stats_json()["namespaces"] == []
    assert "Nothing counted yet." in _call()


def test_stats_bad_input_is_named():
    with pytest.raises(CommandError, match="'nosuchapp.Thing' is neither"):
        _call("nosuchapp.Thing")
    done = run_manage("--sort", "speed")
    assert done.returncode == 2
    assert "invalid choice: 'speed'" in done.stderr


def test_stats_report_an_unreachable_cache():
    dead = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(CACHES={**settings.CACHES, "dead": dead}), cachekit(CACHE_ALIAS="dead"):
        with pytest.raises(CommandError, match="Could not read the metrics from the cache 'dead'"):
            _call()
    done = run_manage(CACHEKIT_TEST_REDIS_URL="redis://127.0.0.1:1/0", CACHEKIT_TEST_CACHE="django-redis")
    assert done.returncode == 1
    assert "Could not read the metrics from the cache 'default'" in done.stderr


def test_metrics_settings_are_checked():
    with cachekit(METRICS="yes", METRICS_FLUSH_INTERVAL=0):
        errors = {e.id: e.msg for e in check_settings()}
    assert errors["django_cachekit.E012"] == "CACHEKIT['METRICS'] must be True or False, not 'yes'."
    assert "not 0" in errors["django_cachekit.E013"]


# -- signals ----------------------------------------------------------------------------


def test_signals_name_the_model_and_the_entry():
    article = ArticleFactory()
    fresh_cache()
    got = []

    def receiver(signal, sender, **kwargs):
        got.append((signal, sender, kwargs))

    for signal in (signals.cache_hit, signals.cache_miss, signals.cache_invalidated):
        signal.connect(receiver)
    try:
        Article.objects.cache().get(pk=article.pk)
        Article.objects.cache().get(pk=article.pk)
        Article.objects.filter(pk=article.pk).update(views=3)
        Article.objects.cache().get(pk=article.pk)

        @cached(timeout=60)
        def double(n):
            return 2 * n

        double(1)
        double.invalidate(1)
    finally:
        for signal in (signals.cache_hit, signals.cache_miss, signals.cache_invalidated):
            signal.disconnect(receiver)

    key = Article.objects.filter(pk=article.pk)[0].cache_key
    name = f"{double.__module__}.{double.__qualname__}"
    # The update also bumped the declared tag author:<id>, sent for the namespace "tags".
    tagged = [kwargs for s, sender, kwargs in got if sender == "tags"]
    assert [t["tags"] for t in tagged] == [(f"u:author:{article.author_id}",)]
    got = [g for g in got if g[1] != "tags"]
    assert [(s, sender) for s, sender, _ in got] == [
        (signals.cache_miss, Article),
        (signals.cache_hit, Article),
        (signals.cache_invalidated, Article),
        (signals.cache_miss, Article),
        (signals.cache_miss, name),
        (signals.cache_invalidated, name),
    ]
    assert got[0][2] == {"namespace": "testapp.article", "key": key, "reason": "miss"}
    assert got[1][2] == {"namespace": "testapp.article", "key": key}
    assert f"o:testapp_article:{article.pk}" in got[2][2]["tags"]
    assert got[3][2]["reason"] == "stale"
    assert got[5][2] == {"namespace": name, "tags": (), "key": double.cache_key(1)}


def test_no_signal_is_built_without_receivers(monkeypatch):
    article = ArticleFactory()
    fresh_cache()

    def boom(*args, **kwargs):
        raise AssertionError("a signal was sent without receivers")

    for name in ("hit", "miss", "invalidated"):
        monkeypatch.setattr(signals, name, boom)
    Article.objects.cache().get(pk=article.pk)
    Article.objects.cache().get(pk=article.pk)
    article.save()
    assert metrics.snapshot()["testapp.article"]["hit"] == 1


def test_stats_reads_another_cache_alias():
    metrics.record("hit", "testapp.article", 3)
    totals.flush()  # into the default cache's totals
    other = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "stats-other"}
    with override_settings(CACHES={**settings.CACHES, "other": other}):
        caches["other"].clear()
        report = stats_json("--cache", "other")
        assert (report["cache"], report["namespaces"]) == ("other", [])
        assert "totals in the cache 'other'" in _call("--cache", "other")
        with cachekit(CACHE_ALIAS="other"):
            metrics.record("miss", "testapp.author", 2)
            totals.flush()
        assert row(stats_json("--cache", "other"), "testapp.author")["miss"] == 2
        assert [r["namespace"] for r in stats_json()["namespaces"]] == ["testapp.article"]
        caches["other"].clear()
    with pytest.raises(CommandError, match="--cache 'nope' is not in CACHES"):
        _call("--cache", "nope")


def test_stats_help_names_every_sort_key():
    from io import StringIO

    from django_cachekit.management.commands.cachekit_stats import SORTS, Command

    out = StringIO()
    Command().create_parser("manage.py", "cachekit_stats").print_help(out)
    text = " ".join(out.getvalue().split())
    described = text.split("--sort", 2)[2]
    for key in SORTS:
        assert key in described.split("--watch")[0]
    assert "--cache ALIAS" in text and "--watch" in text and "--interval SECONDS" in text


def test_a_cached_view_is_counted_as_a_view(client):
    ArticleFactory()
    fresh_cache()
    with override_settings(ROOT_URLCONF="tests.httpviews"):
        for _ in range(3):
            assert client.get("/listing/").status_code == 200
    report = stats_json()
    view = row(report, "view:tests.httpviews.listing")
    assert (view["kind"], view["hit"], view["miss"], view["store"]) == ("view", 2, 1, 1)
    assert "tests.httpviews.listing" not in {r["namespace"] for r in report["namespaces"]}
    # The app label or the module names it, as it names a function.
    assert [r["namespace"] for r in stats_json("tests.httpviews")["namespaces"]] == ["view:tests.httpviews.listing"]


# -- cachekit_stats --watch: rates over intervals -----------------------------------------


def reading(at, **counts):
    return series.Reading(at, {ns: {**dict.fromkeys(metrics.EVENTS, 0), **c} for ns, c in counts.items()})


def test_rates_are_the_differences_between_two_readings():
    before = reading(100.0, **{"testapp.author": {"hit": 10, "miss": 5}, "tests.f": {"hit": 1}})
    after = reading(
        104.0,
        **{"testapp.author": {"hit": 16, "miss": 7}, "tests.f": {"hit": 1}, "fragment:x": {"miss": 4, "store": 4}},
    )
    interval = series.rates(before, after)
    assert interval["seconds"] == 4.0
    rows = {r["namespace"]: r for r in interval["namespaces"]}
    assert set(rows) == {"testapp.author", "fragment:x"}  # tests.f did nothing in between
    author = rows["testapp.author"]
    assert (author["hit"], author["miss"], author["lookups"], author["hit_rate"]) == (6, 2, 8, 75.0)
    assert (author["lookups_per_second"], author["kind"]) == (2.0, "model")
    assert (rows["fragment:x"]["hit_rate"], rows["fragment:x"]["lookups_per_second"]) == (0.0, 1.0)
    assert interval["total"]["lookups"] == 12 and interval["total"]["hit_rate"] == 50.0
    assert [r["namespace"] for r in interval["namespaces"]] == ["testapp.author", "fragment:x"]
    # Totals reset in between: the namespace counts from zero.
    reset = series.rates(after, reading(106.0, **{"testapp.author": {"hit": 3}}))
    assert [(r["namespace"], r["hit"], r["lookups"]) for r in reset["namespaces"]] == [("testapp.author", 3, 3)]
    only = series.rates(before, after, lambda ns: ns.startswith("fragment:"))
    assert [r["namespace"] for r in only["namespaces"]] == ["fragment:x"] and only["total"]["lookups"] == 4


@pytest.fixture
def traffic(monkeypatch):
    """Lookups made while ``cachekit_stats --watch`` waits: ``(hits, misses)`` per interval, in order."""
    from django_cachekit.management.commands import cachekit_stats

    # The counts stay in this process: a flush by the background thread would put them in the
    # cache, where the clear() below that makes a miss would wipe them between two readings.
    monkeypatch.setattr(totals, "flush", lambda: False)
    author = AuthorFactory()
    fresh_cache()
    Author.objects.cache().get(pk=author.pk)  # stored before the first reading: the next read hits
    plan: list[tuple[int, int]] = []
    real_sleep = cachekit_stats.sleep

    def sleep(seconds):
        real_sleep(seconds)
        hits, misses = plan.pop(0)
        for _ in range(misses):
            caches["default"].clear()  # the entry and its versions: the next read misses
            Author.objects.cache().get(pk=author.pk)
        for _ in range(hits):
            Author.objects.cache().get(pk=author.pk)

    monkeypatch.setattr(cachekit_stats, "sleep", sleep)
    return plan


def test_watch_prints_each_intervals_hit_rate_and_lookups(traffic):
    traffic.extend([(3, 1), (0, 2)])
    lines = _call("--watch", "--count", "2", "--interval", "0.1").splitlines()
    assert len(lines) == 2
    first, second = ([cell.split() for cell in line.split("  |  ")] for line in lines)
    # "12:00:02  total 75.0% of 4 (3.9/s)  |  testapp.author 75.0% of 4 (3.9/s)"
    assert first[0][1:5] == ["total", "75.0%", "of", "4"]
    assert first[1][:4] == ["testapp.author", "75.0%", "of", "4"]
    assert second[1][:4] == ["testapp.author", "0.0%", "of", "2"]
    assert first[1][4].startswith("(") and first[1][4].endswith("/s)")
    assert not traffic


def test_watch_json_lines_give_every_count(traffic):
    traffic.extend([(5, 0), (1, 1), (0, 0)])
    out = _call("--watch", "--json", "--count", "3", "--interval", "0.1", "testapp.Author")
    intervals = [json.loads(line) for line in out.splitlines()]
    assert len(intervals) == 3
    author = [{r["namespace"]: r for r in i["namespaces"]}.get("testapp.author") for i in intervals]
    assert (author[0]["hit"], author[0]["miss"], author[0]["hit_rate"]) == (5, 0, 100.0)
    assert (author[1]["hit"], author[1]["miss"], author[1]["store"], author[1]["hit_rate"]) == (1, 1, 1, 50.0)
    assert author[2] is None and intervals[2]["total"]["lookups"] == 0
    for interval in intervals[:2]:
        assert interval["seconds"] >= 0.1
        assert interval["total"]["lookups_per_second"] == round(interval["total"]["lookups"] / interval["seconds"], 2)
        assert {r["namespace"] for r in interval["namespaces"]} == {"testapp.author"}


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--watch", "--interval", "0"], "--interval: must be a positive number of seconds, not '0'"),
        (["--watch", "--interval", "soon"], "not 'soon'"),
        (["--watch", "--count", "-1"], "--count: must be a positive integer, not '-1'"),
        (["--count", "2"], "--count is for --watch"),
        (["--watch", "--reset"], "--reset cannot be combined with --watch"),
        (["--watch", "--count", "1", "nosuch.Model"], "'nosuch.Model' is neither"),
    ],
)
def test_watch_bad_input_is_named(args, shown):
    with pytest.raises(CommandError) as raised:
        _call(*args)
    assert shown in str(raised.value)


def test_watch_goes_on_when_the_cache_cannot_be_read_for_a_while(traffic, monkeypatch):
    from io import StringIO

    real = totals.collect
    calls = []

    def collect():
        calls.append(None)
        if len(calls) == 2:  # the first interval's reading
            raise ConnectionError("cache down")
        return real()

    monkeypatch.setattr(totals, "collect", collect)
    traffic.extend([(2, 0), (1, 0)])
    out, err = StringIO(), StringIO()
    call_command("cachekit_stats", "--watch", "--count", "2", "--interval", "0.1", stdout=out, stderr=err)
    assert "could not read the metrics from the cache 'default': cache down" in err.getvalue()
    (line,) = out.getvalue().splitlines()
    assert "testapp.author 100.0% of 3 " in line  # the second interval counts from the last good reading


def test_watch_waits_the_flush_interval_by_default(monkeypatch):
    from io import StringIO

    from django_cachekit.management.commands import cachekit_stats

    waited = []
    monkeypatch.setattr(cachekit_stats, "sleep", waited.append)
    with cachekit(METRICS_FLUSH_INTERVAL=7.5):
        err = StringIO()
        # verbosity 0: without the process-local cache warning, stderr would hold a note on the interval only
        call_command("cachekit_stats", "--watch", "--count", "2", "--verbosity", "0", stdout=StringIO(), stderr=err)
        assert waited == [7.5, 7.5] and err.getvalue() == ""
        call_command("cachekit_stats", "--watch", "--count", "1", "--interval", "1", stdout=StringIO(), stderr=err)
    assert waited[2:] == [1.0]
    assert "Other processes add their counts every 7.5 s" in err.getvalue()
