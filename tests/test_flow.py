"""The one read flow (``core.flow``) and the protocol's event hook, seen from outside."""

import pytest
from django.db import transaction

from django_cachekit import cached
from django_cachekit.core import events, flow
from django_cachekit.core import protocol as core
from tests.factories import ArticleFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


def test_read_through_computes_once_then_hits():
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    assert flow.read_through("k:one", ["u:flow"], "flow", compute, 60) == {"n": 1}
    assert flow.read_through("k:one", ["u:flow"], "flow", compute, 60) == {"n": 1}
    assert len(calls) == 1


def test_a_transaction_that_wrote_a_tag_reads_around_the_cache():
    read = flow.begin("k:two", ["u:flow2"], "flow")
    read.store("old", 60)
    assert flow.begin("k:two", ["u:flow2"], "flow").hit
    with transaction.atomic():
        from django_cachekit import invalidate_tags

        invalidate_tags("flow2")
        inside = flow.begin("k:two", ["u:flow2"], "flow")
        assert not inside.hit and inside.versions is None, "read the cache for a tag this transaction wrote"
        inside.store("new", 60)  # stores nothing
    assert not flow.begin("k:two", ["u:flow2"], "flow").hit


def test_a_registered_guard_keeps_values_from_being_stored(monkeypatch):
    monkeypatch.setattr(flow, "_storable", [*flow._storable, lambda: False])
    calls = []

    @cached(timeout=60)
    def answer():
        calls.append(1)
        return 42

    assert answer() == 42 and answer() == 42
    assert len(calls) == 2, "stored although a guard said values read now may not be shared"


def test_the_protocol_reports_what_it_did_to_subscribers():
    seen = []

    def record(event, namespace, n=1):
        seen.append((event, namespace))

    invalidated = []
    events.subscribe(record=record, invalidated=invalidated.append)
    try:
        article = ArticleFactory()
        Article.objects.cache().filter(pk=article.pk).count()  # a miss, stored
        Article.objects.cache().filter(pk=article.pk).count()  # a hit
        article.views += 1
        article.save()
    finally:
        events.unsubscribe(record=record, invalidated=invalidated.append)
    label = Article._meta.label_lower
    assert ("miss", label) in seen and ("hit", label) in seen and ("store", label) in seen
    assert any(f"m:{Article._meta.db_table}" in tags for tags in invalidated)
    before = len(seen)
    Article.objects.cache().get(pk=article.pk)
    assert len(seen) == before, "an unsubscribed listener was still called"
    assert core.reading()
