"""An entry that does not load is a miss, logged and counted, never an error."""

import logging
import pickle

import pytest

from django_cachekit import codec, core, metrics
from tests.factories import ArticleFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


class Gone:
    """Stands for a class that no longer exists after a deploy."""


def _entry_of_missing_class():
    data = pickle.dumps((("o:x",), (1,), Gone()), protocol=5)
    return bytes((1,)) + data.replace(b"Gone", b"Nope")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00garbage",
        b"\x01not a pickle",
        b"\x02not zlib",
        b"",
        "a string, not bytes",
        12345,
        codec.encode(("o:x",), (1,), "payload")[:-4],  # truncated
        bytes((1,)) + pickle.dumps(("just", "two")),
        _entry_of_missing_class(),
    ],
)
def test_unreadable_entries_are_misses(queries, caplog, raw):
    article = ArticleFactory(title="real")
    core.runtime().store.set(article.cache_key, raw if isinstance(raw, bytes) else raw, 60)
    metrics.reset()
    with caplog.at_level(logging.WARNING, logger="django_cachekit"), queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "real"
    if isinstance(raw, bytes):
        assert metrics.snapshot()["testapp.article"]["corrupt"] == 1
        assert "unreadable entry" in caplog.text
    with queries(0):  # the miss stored a good entry over the bad one
        assert Article.objects.cache().get(pk=article.pk).title == "real"


def test_payload_of_another_shape_is_a_miss(queries):
    article = ArticleFactory(title="real")
    with queries(0):
        Article.objects.cache().get(pk=article.pk)
    info_tags = (f"o:testapp_article:{article.pk}", "r:testapp_article", "g")
    versions = core.versions(info_tags)
    # Stamped correctly but holding a row of another length (an older model).
    core.store(article.cache_key, info_tags, versions, ("too", "short"), 60, "test")
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "real"


def test_large_entries_are_compressed(queries, settings):
    settings.CACHEKIT = {**settings.CACHEKIT, "COMPRESS_MIN_SIZE": 1000}
    ArticleFactory.create_batch(5, body="x" * 2000)
    with queries(1):
        first = [a.body for a in Article.objects.cache().all()]
    with queries(0):
        assert [a.body for a in Article.objects.cache().all()] == first
    raw = codec.encode(("t",), (1,), "y" * 5000)
    assert raw[0] == 2 and len(raw) < 500
    assert codec.decode(raw)[2] == "y" * 5000
