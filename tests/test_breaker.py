"""When the cache fails, requests go to the database; nothing fails and nothing stale is served.

A throwaway redis-server on another port is paused (SIGSTOP: sockets time out,
data kept), killed and restarted.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
from django.test.utils import override_settings

from django_cachekit.core import protocol as core
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory
from tests.testapp.models import Article
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="runs against a throwaway Redis"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self):
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.resume()
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def flaky():
    server = Server()
    server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    if CACHE == "django-redis":
        cache = {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"SOCKET_TIMEOUT": 0.2, "SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    else:
        cache = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_timeout": 0.2, "socket_connect_timeout": 0.2},
        }
    from django.conf import settings

    caches = {**settings.CACHES, "flaky": cache}
    options = {"CACHE_ALIAS": "flaky", "BREAKER_THRESHOLD": 2, "BREAKER_COOLDOWN": 1, "TIMEOUT": 600}
    with override_settings(CACHES=caches, CACHEKIT=options):
        yield server
    server.stop()


def test_reads_and_writes_survive_a_dead_cache(queries, flaky):
    article = ArticleFactory(title="before")
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "before"
    flaky.stop()
    breaker = core.runtime().breaker
    for title in ("during", "again"):
        article.title = title
        article.save()  # must not raise
        with queries(1):
            assert Article.objects.cache().get(pk=article.pk).title == title
        with queries(1):
            assert Article.objects.cache().filter(title=title).count() == 1
    assert breaker.is_open
    errors = breaker.failures
    started = time.monotonic()
    for _ in range(20):
        Article.objects.cache().get(pk=article.pk)
    assert breaker.failures == errors  # open: no call reached the dead server
    assert time.monotonic() - started < 2


def test_invalidations_lost_while_paused_are_delivered_before_the_cache_is_trusted(queries, flaky):
    article = ArticleFactory(title="before")
    with queries(1):
        assert Article.objects.cache().filter(title="before").count() == 1
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "before"
    flaky.pause()  # the server keeps its data but stops answering
    try:
        article.title = "during"
        article.save()
        Article.objects.filter(pk=article.pk).update(views=5)
        with queries(1):
            assert Article.objects.cache().get(pk=article.pk).title == "during"
        assert core.runtime().lost_invalidations
    finally:
        flaky.resume()
    breaker = core.runtime().breaker  # the cooldown (1 s, see flaky) passes; the next call is the probe
    wait_until(lambda: breaker.opened_at is None or time.monotonic() - breaker.opened_at > 1, 5, "no cooldown")
    with queries(1):  # the entry from before the pause is never served
        fresh = Article.objects.cache().get(pk=article.pk)
    assert (fresh.title, fresh.views) == ("during", 5)
    with queries(1):
        assert Article.objects.cache().filter(title="before").count() == 0
    assert not core.runtime().breaker.is_open
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "during"


def test_cache_comes_back_empty_after_restart(queries, flaky):
    article = ArticleFactory(title="before")
    flaky.stop()
    article.title = "during"
    article.save()
    flaky.start()
    breaker = core.runtime().breaker
    wait_until(lambda: breaker.opened_at is None or time.monotonic() - breaker.opened_at > 1, 5, "no cooldown")
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "during"
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "during"
