"""Invalidations a writer cannot deliver are recorded with its write (django_cachekit_pending)."""

import shutil

import pytest
from django.db import transaction

from django_cachekit import InvalidationUnavailable
from django_cachekit.core import keys
from django_cachekit.core import protocol as core
from django_cachekit.invalidation import outbox
from django_cachekit.models import PendingInvalidation
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory
from tests.faultserver import cache_on, dead_location
from tests.testapp.models import Article

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="points django-cachekit at a Redis where nothing listens"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def recorded():
    return [tag for row in PendingInvalidation.objects.all() for tag in row.tags.split("\n")]


def test_a_write_in_a_transaction_is_recorded_with_it_and_a_rollback_records_nothing():
    article = ArticleFactory(title="before")
    with cache_on(dead_location()):
        with pytest.raises(RuntimeError), transaction.atomic():
            Article.objects.filter(pk=article.pk).update(title="rolled back")
            raise RuntimeError
        assert recorded() == []
        with transaction.atomic():
            Article.objects.filter(pk=article.pk).update(title="after")
        assert "m:testapp_article" in recorded()
        # This process owes them too, and does not trust the cache until they are delivered.
        assert "m:testapp_article" in core.runtime().owed
    assert Article.objects.get(pk=article.pk).title == "after"


def test_an_autocommit_save_is_recorded():
    article = ArticleFactory(title="before")
    with cache_on(dead_location()):
        article.title = "after"
        article.save()
        assert f"o:testapp_article:{article.pk}" in recorded()


def test_a_process_that_reaches_the_cache_delivers_the_record_and_deletes_it():
    article = ArticleFactory(title="before")
    with cache_on(dead_location()):
        Article.objects.filter(pk=article.pk).update(title="after")
    assert recorded()
    core.reset()  # another process: it owes nothing itself
    rt = core.runtime()
    rt.store.delete_many([keys.prefix() + "pending"])  # its turn to poll has come
    assert outbox.poll(rt)
    assert recorded() == []


def test_strict_refuses_the_commit_and_records_nothing():
    article = ArticleFactory(title="before")
    with cache_on(dead_location(), STRICT_INVALIDATION=True):
        with pytest.raises(InvalidationUnavailable, match="m:testapp_article"), transaction.atomic():
            Article.objects.filter(pk=article.pk).update(title="refused")
    assert Article.objects.get(pk=article.pk).title == "before"
    assert recorded() == []


def test_a_database_without_the_table_still_takes_the_write(monkeypatch):
    article = ArticleFactory(title="before")
    monkeypatch.setattr(outbox, "TABLE", "django_cachekit_not_migrated")
    monkeypatch.setattr(outbox, "_no_table", set())
    with cache_on(dead_location()):
        with transaction.atomic():  # the failed INSERT is rolled back to its savepoint, not the write
            Article.objects.filter(pk=article.pk).update(title="after")
        assert outbox._no_table == {"default"}  # not tried again in this process
        assert "m:testapp_article" in core.runtime().owed  # which still owes the tags itself
    assert Article.objects.get(pk=article.pk).title == "after"
