"""The Prometheus collector and view, and the django-debug-toolbar panel.

This module is also the URLconf of its tests.
"""

import re
import threading

import pytest
from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpResponse
from django.test import Client
from django.test.utils import override_settings
from django.urls import path
from prometheus_client import generate_latest
from prometheus_client.registry import REGISTRY, CollectorRegistry

from django_cachekit.contrib.prometheus import CachekitCollector, metrics_view, register
from django_cachekit.core import signals
from django_cachekit.metrics import counters as metrics
from django_cachekit.metrics import totals
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)

_barrier: list[threading.Barrier] = []


def article_view(request, pk):
    Article.objects.cache().get(pk=pk)  # a miss on an empty cache
    article = Article.objects.cache().get(pk=pk)  # a hit
    article.save()  # invalidates the article (and its author:<id> tag)
    return HttpResponse("<html><body><h1>article</h1></body></html>")


def author_view(request, pk):
    Author.objects.cache().get(pk=pk)
    if _barrier:
        _barrier[0].wait(timeout=30)  # both requests are in their views at once
    return HttpResponse("<html><body><h1>author</h1></body></html>")


def article_wait_view(request, pk):
    Article.objects.cache().get(pk=pk)
    if _barrier:
        _barrier[0].wait(timeout=30)
    return HttpResponse("<html><body><h1>article</h1></body></html>")


_patterns = [
    path("article/<int:pk>/", article_view),
    path("author/<int:pk>/", author_view),
    path("article-wait/<int:pk>/", article_wait_view),
    path("metrics/", metrics_view),
]


def __getattr__(name):
    # The toolbar's URLs import its models, which exist only while it is installed.
    if name == "urlpatterns":
        if apps.is_installed("debug_toolbar"):
            from debug_toolbar.toolbar import debug_toolbar_urls

            return [*_patterns, *debug_toolbar_urls()]
        return _patterns
    raise AttributeError(name)


@pytest.fixture(autouse=True)
def _fresh():
    totals.reset()
    yield
    totals.reset()


def fresh_cache():
    caches["default"].clear()
    totals.reset()


# -- Prometheus ---------------------------------------------------------------------------


def test_collector_exports_counters_per_namespace_and_event():
    authors = AuthorFactory.create_batch(2)
    fresh_cache()
    for author in authors:
        for _ in range(5):
            Author.objects.cache().get(pk=author.pk)  # 2 misses, 8 hits
    totals.flush()
    Author.objects.filter(pk=authors[0].pk).update(name="renamed")

    registry = CollectorRegistry()
    registry.register(CachekitCollector())
    text = generate_latest(registry).decode()
    assert 'cachekit_events_total{event="hit",kind="model",namespace="testapp.author"} 8.0' in text
    assert 'cachekit_events_total{event="miss",kind="model",namespace="testapp.author"} 2.0' in text
    assert 'cachekit_events_total{event="invalidation",kind="model",namespace="testapp.author"} 1.0' in text
    assert 'cachekit_hit_ratio{namespace="testapp.author"} 0.8' in text
    largest = re.search(r'cachekit_largest_entry_bytes\{namespace="testapp.author"\} (\d+)\.0', text)
    assert largest and int(largest.group(1)) == metrics.biggest()["testapp.author"][0][0]
    assert "cachekit_metrics_shared 1.0" in text
    assert "# TYPE cachekit_events_total counter" in text


def test_collector_falls_back_to_this_process_when_the_cache_is_down():
    metrics.record("hit", "testapp.author", 3)
    dead = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(
        CACHES={**settings.CACHES, "dead": dead}, CACHEKIT={**settings.CACHEKIT, "CACHE_ALIAS": "dead"}
    ):
        registry = CollectorRegistry()
        registry.register(CachekitCollector())
        text = generate_latest(registry).decode()
    assert 'cachekit_events_total{event="hit",kind="model",namespace="testapp.author"} 3.0' in text
    assert "cachekit_metrics_shared 0.0" in text


@override_settings(ROOT_URLCONF="tests.test_contrib")
def test_metrics_view_and_default_registry():
    metrics.record("hit", "reports.daily", 4)
    response = Client().get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'cachekit_events_total{event="hit",kind="function",namespace="reports.daily"} 4.0' in response.text

    collector = register()
    assert register() is collector  # once
    assert 'namespace="reports.daily"' in generate_latest(REGISTRY).decode()


# -- django-debug-toolbar ------------------------------------------------------------------

TOOLBAR = {
    "INSTALLED_APPS": [*settings.INSTALLED_APPS, "debug_toolbar"],
    "MIDDLEWARE": ["debug_toolbar.middleware.DebugToolbarMiddleware"],
    "ROOT_URLCONF": "tests.test_contrib",
    "DEBUG": True,
    "DEBUG_TOOLBAR_PANELS": ["django_cachekit.contrib.debug_toolbar.CachekitPanel"],
    "DEBUG_TOOLBAR_CONFIG": {
        "SHOW_TOOLBAR_CALLBACK": lambda request: True,
        "IS_RUNNING_TESTS": False,
        "RENDER_PANELS": True,
    },
}


def panel_html(response):
    text = response.content.decode()
    assert response.status_code == 200
    assert 'id="djDebug"' in text, "the toolbar was not rendered"
    assert 'id="CachekitPanel"' in text
    return text


@override_settings(STATIC_URL="/static/")  # before the toolbar's ready() reads it
@override_settings(**TOOLBAR)
def test_toolbar_panel_lists_the_hits_misses_and_invalidations_of_a_request():
    article = ArticleFactory()
    fresh_cache()
    html = panel_html(Client().get(f"/article/{article.pk}/"))
    assert "1 hits, 1 misses, 2 invalidations" in html
    rows = re.findall(r'<tr class="djdt-cachekit-(\w+)">.*?<code>([^<]+)</code>', html, re.S)
    assert rows == [
        ("miss", "testapp.article"),
        ("hit", "testapp.article"),
        ("invalidated", "testapp.article"),
        ("invalidated", "tags"),
    ]
    assert article.cache_key in html
    assert "50.0%" in html
    # Outside an instrumented request nothing listens: hits send no signal.
    assert not signals.cache_hit.receivers and not signals.cache_invalidated.receivers


@override_settings(STATIC_URL="/static/")  # before the toolbar's ready() reads it
@override_settings(**TOOLBAR)
def test_toolbar_panels_of_concurrent_requests_stay_apart():
    article, author = ArticleFactory(), AuthorFactory()
    fresh_cache()
    _barrier.append(threading.Barrier(2))
    pages = {}

    def get(url):
        try:
            pages[url] = panel_html(Client().get(url))
        finally:
            connections.close_all()

    try:
        threads = [
            threading.Thread(target=get, args=(url,))
            for url in (f"/author/{author.pk}/", f"/article-wait/{article.pk}/")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        _barrier.clear()
    author_page, article_page = pages[f"/author/{author.pk}/"], pages[f"/article-wait/{article.pk}/"]
    assert "testapp.author" in author_page and "testapp.article" not in author_page
    assert "testapp.article" in article_page and "testapp.author" not in article_page
    assert "0 hits, 1 misses, 0 invalidations" in author_page
