"""An entry that does not load is a miss, logged and counted, never an error."""

import copyreg
import datetime
import logging
import pickle
from decimal import Decimal

import pytest

from django_cachekit.core import codec
from django_cachekit.core import protocol as core
from django_cachekit.metrics import counters as metrics
from tests.factories import ArticleFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


class Gone:
    """Stands for a class that no longer exists after a deploy."""


def _entry_of_missing_class():
    data = pickle.dumps((("o:x",), (1,), Gone()), protocol=5)
    return bytes((1,)) + data.replace(b"Gone", b"Nope")


def _truncated():
    return codec.encode("k", ("o:x",), (1,), "payload")[len(codec.signed("k", b"")) : -4]


@pytest.mark.parametrize(
    "body",
    [
        b"\x00garbage",
        b"\x01not a pickle",
        b"\x02not zlib",
        b"",
        _truncated(),
        bytes((1,)) + pickle.dumps(("just", "two")),
        _entry_of_missing_class(),
    ],
)
def test_unreadable_entries_are_misses(queries, caplog, body):
    # Signed as this site signs them, so they are read, and fail to load.
    article = ArticleFactory(title="real")
    core.runtime().store.set(article.cache_key, codec.signed(article.cache_key, body), 60)
    metrics.reset()
    with caplog.at_level(logging.WARNING, logger="django_cachekit"), queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "real"
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
    raw = codec.encode("k", ("t",), (1,), "y" * 5000)
    assert raw[0] == 3 and raw[33] == 2 and len(raw) < 500  # signed, then compressed
    assert codec.decode("k", raw)[2] == "y" * 5000


def test_rows_round_trip_with_their_time_zones():
    aware = datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=datetime.UTC)
    other = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    row = (1, "title", aware, other, datetime.datetime(2024, 1, 1), Decimal("1.50"), None)
    tags, stamp, payload = codec.decode("k", codec.encode("k", ("o:x",), (7,), row))
    assert (tags, stamp, payload) == (("o:x",), (7,), row)
    assert payload[2].tzinfo is datetime.UTC
    assert payload[3].utcoffset() == datetime.timedelta(hours=2) and payload[4].tzinfo is None
    # A list of rows too, and an entry pickled the standard way (by an earlier release) still loads.
    assert codec.decode("k", codec.encode("k", ("q",), (1,), [row, row]))[2] == [row, row]
    earlier = bytes((1,)) + pickle.dumps((("o:x",), (7,), row), protocol=5)
    assert codec.decode("k", codec.signed("k", earlier))[2] == row


class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees


def test_rows_use_pickle_reducers_registered_after_import():
    copyreg.pickle(Celsius, lambda c: (Celsius, (c.degrees + 1,)))
    try:
        assert codec.decode("k", codec.encode("k", ("o:x",), (1,), (Celsius(20),)))[2][0].degrees == 21
    finally:
        del copyreg.dispatch_table[Celsius]
    assert codec.decode("k", codec.encode("k", ("o:x",), (1,), (Celsius(20),)))[2][0].degrees == 20
