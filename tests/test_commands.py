"""cachekit_warm, cachekit_invalidate and cachekit_inspect, through call_command and
as real processes: output, exit codes, idempotence, signals, terminal progress."""

import json
import os
import pty
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import override_settings

from django_cachekit import cached, warmer
from django_cachekit.warming import warmers as warming
from tests import settings as test_settings
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
TOP = ("-views", "pk")


@pytest.fixture(autouse=True)
def registry():
    saved = dict(warming._registered)
    yield
    warming._registered.clear()
    warming._registered.update(saved)


@pytest.fixture
def articles():
    made = [ArticleFactory(views=v) for v in (5, 3, 9, 1, 7)]
    caches["default"].clear()  # drop what the factories' saves wrote through
    return made


LOCAL_WARNING = "lives inside this process: this command cannot read or change the entries of the server's processes"


def command(name, *args, **options):
    """stdout and stderr, without the warning that the tests' LocMem cache is process-local."""
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err, **options)
    kept = [line for line in err.getvalue().splitlines(keepends=True) if LOCAL_WARNING not in line]
    return out.getvalue(), "".join(kept)


def top_articles():
    return list(Article.objects.cache().order_by(*TOP)[:100])


# -- cachekit_warm --------------------------------------------------------------------


def test_warm_reports_what_it_stored_and_a_second_run_stores_nothing(articles, queries):
    out, err = command("cachekit_warm")
    assert "testapp.Article: 6 stored, 0 already fresh (" in out
    assert "1 warmer in " in out and ": 6 entries stored, 0 already fresh." in out
    assert err == ""
    with queries(0):
        top_articles()
        for article in articles:
            Article.objects.cache().get(pk=article.pk)
    out, _ = command("cachekit_warm")
    assert "testapp.Article: 0 stored, 6 already fresh" in out
    article = Article.objects.get(pk=articles[0].pk)
    article.views = 100
    article.save()  # its row is written through: only the query entry is stored again
    out, _ = command("cachekit_warm", "testapp.Article")
    assert "testapp.Article: 1 stored, 5 already fresh" in out
    with queries(0):
        assert top_articles()[0].pk == article.pk


def test_warm_verbosity(articles):
    out, err = command("cachekit_warm", verbosity=0)
    assert out == "" and err == ""
    out, _ = command("cachekit_warm", verbosity=2)
    assert "testapp.Article: 0 stored, 6 already fresh" in out
    assert "from testapp.Article.CacheMeta.warm" in out


def test_warm_dry_run_stores_nothing(articles, queries):
    out, _ = command("cachekit_warm", "--dry-run")
    assert "testapp.Article: 6 would be stored, 0 already fresh" in out
    assert "6 entries would store, 0 already fresh (dry run: nothing stored)." in out
    with queries(1):
        top_articles()
    with queries(1):
        Article.objects.cache().get(pk=articles[0].pk)


def test_warm_limit(articles, queries):
    out, _ = command("cachekit_warm", "--limit", "2")
    assert "testapp.Article: 3 stored" in out
    with queries(0):
        Article.objects.cache().get(pk=articles[2].pk)
    with queries(1):
        Article.objects.cache().get(pk=articles[3].pk)


def test_warm_by_name_and_tag(articles, queries):
    names = []
    warmer("names", tags=["front"])(lambda: names.append(1) or Author.objects.order_by("pk"))
    out, _ = command("cachekit_warm", "--tag", "front")
    assert "names: " in out and "testapp.Article" not in out and names == [1]
    out, _ = command("cachekit_warm", "names", "testapp")
    assert "names: 0 stored" in out and "testapp.Article: 6 stored" in out


def test_a_failing_warmer_fails_the_command_after_the_others_ran(articles, queries):
    @warmer("broken")
    def broken():
        raise RuntimeError("boom")

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"1 of 2 warmers failed: broken\."):
        call_command("cachekit_warm", stdout=out, stderr=err)
    assert "broken: failed: RuntimeError: boom" in err.getvalue()
    assert "testapp.Article: 6 stored" in out.getvalue()
    with queries(0):
        top_articles()


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["nosuch"], "'nosuch' is not a warmer name"),
        (["testapp.Nosuch"], "'testapp.Nosuch'"),
        (["testapp.Author"], "testapp.Author has no warmer"),
        (["--tag", "nosuch"], "'nosuch'"),
        (["--cache", "nope"], "--cache 'nope' is not in CACHES"),
        (["--limit", "0"], "'0'"),
        (["--limit", "many"], "'many'"),
        (["--interval", "0"], "'0'"),
        (["--interval", "soon"], "'soon'"),
    ],
)
def test_warm_bad_input_is_a_command_error_naming_it(args, shown):
    with pytest.raises(CommandError) as raised:
        command("cachekit_warm", *args)
    assert shown in str(raised.value)


def test_warm_another_cache_alias(articles, queries):
    other = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "warm-other"}
    with override_settings(CACHES={**settings.CACHES, "other": other}):
        caches["other"].clear()
        out, _ = command("cachekit_warm", "--cache", "other")
        assert "testapp.Article: 6 stored" in out
        with queries(1):
            top_articles()  # the default cache was not warmed
        with override_settings(CACHEKIT={**settings.CACHEKIT, "CACHE_ALIAS": "other"}):
            with queries(0):
                top_articles()
        caches["other"].clear()


def test_warm_with_the_cache_unreachable_fails():
    down = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    with override_settings(CACHES={**settings.CACHES, "down": down}):
        with pytest.raises(CommandError, match="The cache 'down' is unavailable; nothing was warmed."):
            command("cachekit_warm", "--cache", "down")


def test_warm_with_the_cache_off_stores_nothing(articles, queries):
    with override_settings(CACHEKIT={**settings.CACHEKIT, "ENABLED": False}):
        out, err = command("cachekit_warm")
    assert "ENABLED" in err and "stored" not in out
    with queries(1):
        top_articles()


def test_warm_interval_stops_on_sigint_in_process(articles):
    original = signal.getsignal(signal.SIGINT)

    def interrupt():
        deadline = time.monotonic() + 20
        while signal.getsignal(signal.SIGINT) is original and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=interrupt, daemon=True)
    timer.start()
    out, _ = command("cachekit_warm", "--interval", "30")
    timer.join(5)
    assert "Round 1: 1 warmer in " in out and "Next round in " in out
    assert out.rstrip().endswith("Stopped by SIGINT after 1 round.")
    assert signal.getsignal(signal.SIGINT) is original


# -- cachekit_invalidate ---------------------------------------------------------------


def test_invalidate_a_model(articles, queries):
    command("cachekit_warm")
    out, _ = command("cachekit_invalidate", "testapp.Article")
    assert out == "Invalidated in cache 'default': testapp.Article.\n"
    with queries(1):
        top_articles()
    with queries(1):
        Article.objects.cache().get(pk=articles[0].pk)


def test_invalidate_an_app(articles, queries):
    author = articles[0].author
    Author.objects.cache().get(pk=author.pk)
    command("cachekit_warm")
    out, _ = command("cachekit_invalidate", "testapp")
    assert "testapp.Article" in out and "testapp.Author" in out
    with queries(1):
        Author.objects.cache().get(pk=author.pk)
    with queries(1):
        top_articles()


def test_invalidate_tags_and_all(articles, queries):
    list(Article.objects.cache(tags=["front"]).order_by("pk"))
    top_articles()
    out, _ = command("cachekit_invalidate", "--tag", "front")
    assert "tag 'front'" in out
    with queries(1):
        list(Article.objects.cache(tags=["front"]).order_by("pk"))
    with queries(0):
        top_articles()
    out, _ = command("cachekit_invalidate", "--all", verbosity=0)
    assert out == ""
    with queries(1):
        top_articles()


def test_invalidate_pattern():
    calls = []

    @cached(key="report:{year}")
    def report(year):
        calls.append(year)
        return year

    report(2024), report(2024)
    if CACHE in REDIS_CACHES:
        out, _ = command("cachekit_invalidate", "--pattern", "report:*")
        assert "pattern 'report:*' (1 name retired)" in out
        report(2024)
        assert calls == [2024, 2024]
    else:
        with pytest.raises(CommandError, match="--pattern needs a Redis cache"):
            command("cachekit_invalidate", "--pattern", "report:*")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ([], "Say what to invalidate: app labels or app_label.Model, --tag TAG, --pattern GLOB or --all."),
        (["nosuch"], "'nosuch' is not an installed app label"),
        (["testapp.Nosuch"], "'testapp.Nosuch' is not an installed model"),
        (["--tag", "has space"], "'has space'"),
        (["--all", "--cache", "nope"], "'nope'"),
    ],
)
def test_invalidate_bad_input(args, shown):
    with pytest.raises(CommandError) as raised:
        command("cachekit_invalidate", *args)
    assert shown in str(raised.value)


# -- cachekit_inspect -------------------------------------------------------------------


def test_inspect_a_valid_then_a_changed_entry(articles):
    article = articles[0]
    command("cachekit_warm")
    out, _ = command("cachekit_inspect", "testapp.Article", str(article.pk))
    assert f"Object:    testapp.Article pk={article.pk}" in out
    assert "Present:   yes" in out
    assert "Valid:     yes" in out
    assert f"title = {article.title!r}" in out
    assert "Database:  matches" in out
    if CACHE == "memcached":
        assert "TTL:       unknown" in out
    else:
        assert "s left" in out
    Article.objects.filter(pk=article.pk).update(title="Elsewhere")
    out, _ = command("cachekit_inspect", "testapp.Article", str(article.pk))
    assert f"Valid:     no: o:testapp_article:{article.pk} changed since it was stored" in out
    assert "Database:  differs (title)" in out


def test_inspect_json_and_key(articles):
    article = Article.objects.cache().get(pk=articles[1].pk)
    out, _ = command("cachekit_inspect", "--key", article.cache_key, "--json")
    report = json.loads(out)
    assert report["present"] is True and report["valid"] is True
    assert [t["tag"] for t in report["tags"]] == [f"o:testapp_article:{article.pk}", "r:testapp_article", "g"]
    assert all(t["stamped"] == t["current"] for t in report["tags"])
    assert report["value"] == "tuple of 10 items"
    by_model = json.loads(command("cachekit_inspect", "testapp.Article", str(article.pk), "--json")[0])
    assert by_model["key"] == article.cache_key and by_model["value"]["title"] == repr(article.title)
    assert by_model["database_row"] == "matches"
    if CACHE != "memcached":
        assert 0 < by_model["ttl"] <= 600


def test_inspect_an_entry_that_is_not_there(articles):
    out, _ = command("cachekit_inspect", "testapp.Article", str(articles[0].pk))
    assert "Present:   no (a read is a miss)" in out


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        ([], "Give app_label.Model and a primary key"),
        (["testapp.Article"], "Give app_label.Model and a primary key"),
        (["testapp.Article", "1", "--key", "k"], "not both"),
        (["testapp.Nosuch", "1"], "'testapp.Nosuch' is not an installed model"),
        (["testapp.Plain", "1"], "testapp.Plain is not a cached model"),
        (["testapp.Article", "abc"], "'abc' is not a valid primary key for testapp.Article"),
        (["testapp.Article", "1", "--database", "nope"], "--database 'nope'"),
        (["--key", " "], "--key takes a key"),
    ],
)
def test_inspect_bad_input(args, shown):
    with pytest.raises(CommandError) as raised:
        command("cachekit_inspect", *args)
    assert shown in str(raised.value)


# -- as real processes ------------------------------------------------------------------

needs_shared_cache = pytest.mark.skipif(
    CACHE == "locmem", reason="LocMem lives inside one process: the test could not see what the command stored"
)

MANAGE = """
import os
import sys

sys.path.insert(0, {root!r})
from django.conf import settings

from tests import settings as base

options = {{name: getattr(base, name) for name in dir(base) if name.isupper()}}
for database in options["DATABASES"].values():
    database["NAME"] = os.environ["CACHEKIT_COMMAND_DB"]
settings.configure(**options)
import django

django.setup()
from django_cachekit import warmer
{extra}
from django.core.management import execute_from_command_line

execute_from_command_line(["manage.py", *sys.argv[1:]])
"""


def manage(tmp_path, extra=""):
    """A manage script on the test database and the test cache, with extra warmers."""
    script = tmp_path / "manage.py"
    script.write_text(MANAGE.format(root=str(ROOT), extra=extra))
    env = {
        **os.environ,
        "CACHEKIT_TEST_RUN": test_settings.RUN_ID,  # the same cache key prefix
        "CACHEKIT_COMMAND_DB": str(connection.settings_dict["NAME"]),
        "PYTHONUNBUFFERED": "1",
    }
    return [sys.executable, str(script)], env


def run(tmp_path, *args, extra=""):
    argv, env = manage(tmp_path, extra)
    return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=120)


class Lines:
    """Lines of a running process's stdout and stderr, read in threads."""

    def __init__(self, proc):
        self.proc = proc
        self.queue = queue.Queue()
        self.seen = {"out": [], "err": []}
        for name, stream in (("out", proc.stdout), ("err", proc.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name, stream):
        for line in stream:
            self.queue.put((name, line))

    def wait_for(self, text, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                name, line = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen[name].append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed in {timeout} s; got {self.seen}")

    def rest(self):
        while True:
            try:
                name, line = self.queue.get(timeout=1)
            except queue.Empty:
                return {k: "".join(v) for k, v in self.seen.items()}
            self.seen[name].append(line)


@needs_shared_cache
def test_process_warm_is_idempotent_and_reads_are_then_hits(tmp_path, articles, queries):
    first = run(tmp_path, "cachekit_warm")
    assert first.returncode == 0, first.stderr
    assert "testapp.Article: 6 stored, 0 already fresh" in first.stdout
    with queries(0):
        top_articles()
        Article.objects.cache().get(pk=articles[0].pk)
    second = run(tmp_path, "cachekit_warm")
    assert second.returncode == 0 and "testapp.Article: 0 stored, 6 already fresh" in second.stdout
    article = Article.objects.get(pk=articles[3].pk)
    article.views = 50
    article.save()
    third = run(tmp_path, "cachekit_warm", "testapp")
    assert third.returncode == 0 and "testapp.Article: 1 stored, 5 already fresh" in third.stdout
    dry = run(tmp_path, "cachekit_warm", "--dry-run")
    assert dry.returncode == 0 and "0 would be stored, 6 already fresh" in dry.stdout


@needs_shared_cache
def test_process_a_failing_warmer_exits_non_zero_after_the_others(tmp_path, articles, queries):
    extra = """
@warmer("broken")
def broken():
    raise ValueError("no such table")
"""
    done = run(tmp_path, "cachekit_warm", extra=extra)
    assert done.returncode == 1
    assert "broken: failed: ValueError: no such table" in done.stderr
    assert "CommandError: 1 of 2 warmers failed: broken." in done.stderr
    assert "testapp.Article: 6 stored" in done.stdout
    with queries(0):
        top_articles()


@needs_shared_cache
def test_process_bad_input_exits_non_zero_naming_it(tmp_path):
    done = run(tmp_path, "cachekit_warm", "nosuch")
    assert done.returncode == 1 and "'nosuch' is not a warmer name" in done.stderr
    done = run(tmp_path, "cachekit_invalidate")
    assert done.returncode == 1 and "Say what to invalidate" in done.stderr
    done = run(tmp_path, "cachekit_invalidate", "testapp.Article", "--tag", "front")
    assert done.returncode == 0 and "testapp.Article, tag 'front'" in done.stdout


@needs_shared_cache
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_interval_stops_cleanly_on_a_signal(tmp_path, articles, sig):
    argv, env = manage(tmp_path)
    proc = subprocess.Popen(
        [*argv, "cachekit_warm", "--interval", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = Lines(proc)
        assert "6 entries stored" in lines.wait_for("Round 1: ")
        lines.wait_for("Next round in ")
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = lines.rest()
    assert output["out"].rstrip().endswith(f"Stopped by {sig.name} after 1 round.")
    assert "Traceback" not in output["err"]


@needs_shared_cache
def test_process_interval_stops_after_the_running_warmer(tmp_path, articles):
    """A signal during a round lets the running warmer finish and skips the rest."""
    extra = """
import sys
import time

@warmer("slow")
def slow():
    print("slow started", file=sys.stderr, flush=True)
    time.sleep(1.5)

@warmer("after")
def after():
    print("after ran", file=sys.stderr, flush=True)
"""
    argv, env = manage(tmp_path, extra)
    proc = subprocess.Popen(
        [*argv, "cachekit_warm", "--interval", "60"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = Lines(proc)
        lines.wait_for("slow started")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = lines.rest()
    assert "slow: 0 stored" in output["out"]
    assert "after ran" not in output["err"] and "after:" not in output["out"]
    assert "Round 1: 2 warmers in " in output["out"]
    assert output["out"].rstrip().endswith("Stopped by SIGINT after 1 round.")


def read_pty(fd, proc, timeout=60):
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks).decode()


@needs_shared_cache
def test_process_progress_on_a_terminal_only(tmp_path, articles):
    argv, env = manage(tmp_path)
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([*argv, "cachekit_warm"], env=env, stdout=secondary, stderr=subprocess.PIPE)
    os.close(secondary)
    try:
        shown = read_pty(primary, proc)
        assert proc.wait(timeout=20) == 0
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "\r\x1b[K[1/1] warming testapp.Article..." in shown
    assert "testapp.Article: 0 stored" in shown or "testapp.Article: 6 stored" in shown
    piped = run(tmp_path, "cachekit_warm")
    assert piped.returncode == 0
    assert "[1/1]" not in piped.stdout and "\x1b" not in piped.stdout and "\r" not in piped.stdout
    assert "testapp.Article: 0 stored, 6 already fresh" in piped.stdout


@needs_shared_cache
def test_process_inspect_and_invalidate(tmp_path, articles, queries):
    article = Article.objects.cache().get(pk=articles[0].pk)
    done = run(tmp_path, "cachekit_inspect", "testapp.Article", str(article.pk), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["valid"] is True and report["database_row"] == "matches"
    done = run(tmp_path, "cachekit_invalidate", "testapp.Article")
    assert done.returncode == 0
    with queries(1):
        Article.objects.cache().get(pk=article.pk)
    done = run(tmp_path, "cachekit_inspect", "testapp.Article", "nope")
    assert done.returncode == 1 and "'nope' is not a valid primary key" in done.stderr


# -- a process-local cache: every command says it cannot reach the server's entries ---------------


@pytest.mark.parametrize(
    "args",
    [
        ["cachekit_warm"],
        ["cachekit_invalidate", "--all"],
        ["cachekit_inspect", "testapp.Article", "1"],
        ["cachekit_stats"],
        ["cachekit_stats", "--watch", "--count", "1", "--interval", "0.01"],
    ],
)
def test_each_command_warns_on_stderr_when_the_cache_is_process_local(args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    warned = err.getvalue()
    if CACHE == "locmem":
        assert warned.count(LOCAL_WARNING) == 1
        assert "django.core.cache.backends.locmem.LocMemCache" in warned and "'default'" in warned
        assert "--cache ALIAS" in warned and "CACHEKIT['CACHE_ALIAS']" in warned
    else:
        assert LOCAL_WARNING not in warned
    assert LOCAL_WARNING not in out.getvalue()


def test_the_warning_names_the_alias_given_with_cache():
    dummy = {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    with override_settings(CACHES={**settings.CACHES, "dummy": dummy}):
        err = StringIO()
        call_command("cachekit_invalidate", "--all", "--cache", "dummy", stdout=StringIO(), stderr=err)
    assert "the cache 'dummy' is django.core.cache.backends.dummy.DummyCache" in err.getvalue()


@pytest.mark.parametrize(
    ("backend", "local"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", True),
        ("django.core.cache.backends.dummy.DummyCache", True),
        ("django.core.cache.backends.redis.RedisCache", False),
        ("django_redis.cache.RedisCache", False),
        ("django.core.cache.backends.memcached.PyMemcacheCache", False),
    ],
)
def test_warn_if_process_local(backend, local):
    from django_cachekit.management.base import warn_if_process_local

    with override_settings(CACHES={**settings.CACHES, "kit": {"BACKEND": backend, "LOCATION": "127.0.0.1:1"}}):
        err = StringIO()
        assert warn_if_process_local("kit", err) is local
    assert (LOCAL_WARNING in err.getvalue()) is local
    assert warn_if_process_local("not-an-alias", StringIO()) is False


def test_inspect_says_when_the_row_does_not_exist(articles):
    out, _ = command("cachekit_inspect", "testapp.Article", "999999")
    assert "Present:   no (a read is a miss)" in out
    assert "Database:  no row with pk=999999 in the database 'default'" in out
    report = json.loads(command("cachekit_inspect", "testapp.Article", "999999", "--json")[0])
    assert report["present"] is False and report["row_exists"] is False
    out, _ = command("cachekit_inspect", "testapp.Article", str(articles[0].pk))
    assert "no row" not in out
    report = json.loads(command("cachekit_inspect", "testapp.Article", str(articles[0].pk), "--json")[0])
    assert report["row_exists"] is True


def test_invalidate_pattern_without_redis_is_one_sentence():
    if CACHE in REDIS_CACHES:
        pytest.skip("Redis supports --pattern")
    with pytest.raises(CommandError) as raised:
        command("cachekit_invalidate", "--pattern", "report:*")
    message = str(raised.value)
    assert message.count("Redis") == 1 and message.count("needs") == 1
    assert message.startswith("--pattern needs a Redis cache, and the cache 'default' uses ")
    assert "invalidate_pattern()" not in message
