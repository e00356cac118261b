"""Signed entries: whoever can write to the cache server runs no code in the web processes.

Each test writes a malicious pickle straight into the backend, under the real
key of a real entry or record, the way an attacker with access to the cache
port would: as the library's own bytes (``entry``: format byte, then a pickle),
compressed, or as a value the backend's own serializer unpickles (``backend``).
Reading through django-cachekit must then run none of it, be a miss (one SQL
query, the right value), count the entry as rejected and log it.
"""

import logging
import pickle
import sys
import threading
import time
import zlib

import pytest
from django.core.cache import caches
from django.http import HttpResponse
from django.template import Context, Template
from django.urls import path

from django_cachekit import cached
from django_cachekit.checks import check_settings
from django_cachekit.core import codec, keys, signing
from django_cachekit.core import protocol as core
from django_cachekit.core.settings import conf
from django_cachekit.http.decorators import cache_headers, cache_response, conditional
from django_cachekit.metrics import counters as metrics
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

RAN: list[str] = []


def _ran(what):
    RAN.append(what)


class Evil:
    """What an attacker pickles: unpickling it calls ``_ran``."""

    def __reduce__(self):
        return (_ran, ("code from the cache ran",))


EVIL = pickle.dumps(Evil(), protocol=5)
PAYLOADS = {
    "entry": bytes((1,)) + EVIL,  # an unsigned entry as the library stored them before signing
    "compressed": bytes((2,)) + zlib.compress(EVIL),
    "backend": EVIL,  # a value the cache backend's own serializer would unpickle
}


def plant(key, kind):
    """Write the payload ``kind`` under ``key`` straight into the backend, bypassing django-cachekit."""
    cache = caches["default"]
    made = cache.make_key(key)
    data = PAYLOADS[kind]
    if CACHE in REDIS_CACHES:
        core.runtime().store.client.set(made, data)  # type: ignore[attr-defined]
    elif CACHE == "locmem":
        stored = data if kind == "backend" else pickle.dumps(data)  # LocMem pickles every value
        with cache._lock:
            cache._cache[made] = stored
            cache._expire_info[made] = time.time() + 600
    elif CACHE == "memcached":
        from pymemcache.serde import FLAG_BYTES, FLAG_PICKLE

        cache._cache.set(made, data, 600, flags=FLAG_PICKLE if kind == "backend" else FLAG_BYTES)
    else:  # pragma: no cover
        raise AssertionError(CACHE)


@pytest.fixture(autouse=True)
def _clean():
    RAN.clear()
    yield
    RAN.clear()


@pytest.fixture
def written(monkeypatch):
    """The keys django-cachekit writes entries (``entries``) and plain records (``records``) under."""
    found = {"entries": [], "records": []}
    store = core.runtime().store
    set_, set_many, bump = store.set, store.set_many, store.bump

    def spy_set(key, *args, **kwargs):
        found["entries"].append(key)
        return set_(key, *args, **kwargs)

    def spy_set_many(items, *args, **kwargs):
        found["entries"].extend(items)
        return set_many(items, *args, **kwargs)

    def spy_bump(version_keys, timeout, writes=(), *args, **kwargs):
        found["entries"].extend(write.key for write in writes)  # write-through
        return bump(version_keys, timeout, writes, *args, **kwargs)

    monkeypatch.setattr(store, "set", spy_set)
    monkeypatch.setattr(store, "set_many", spy_set_many)
    monkeypatch.setattr(store, "bump", spy_bump)
    for name in ("plain_add", "plain_set", "plain_incr"):
        original = getattr(store, name, None)
        if original is None:
            continue

        def recorded(key, *args, _original=original):
            found["records"].append(key)
            return _original(key, *args)

        monkeypatch.setattr(store, name, recorded)
    return found


def rejected():
    return sum(row["rejected"] for row in metrics.snapshot().values())


# -- the entry kinds -----------------------------------------------------------------------------


@cached(depends_on=[Article])
def all_titles():
    return sorted(Article.objects.values_list("title", flat=True))


FRAGMENT = Template(
    '{% load cachekit %}{% cachefragment "signed" article %}'
    "{{ article.title }}:{{ article.comments.count }}{% endcachefragment %}"
)


def read_object(client, article):
    return Article.objects.cache().get(pk=article.pk).title


def read_query(client, article):
    return [a.title for a in Article.objects.filter(title=article.title).cache()]


def read_cached(client, article):
    return all_titles()


def read_response(client, article):
    return client.get("/page/").content.decode()


def read_fragment(client, article):
    return FRAGMENT.render(Context({"article": article}))


READS = {
    "object": (read_object, "real"),
    "query": (read_query, ["real"]),
    "cached": (read_cached, ["real"]),
    "response": (read_response, "real"),
    "fragment": (read_fragment, "real:0"),
}


@cache_response(depends_on=[Article])
def page(request):
    return HttpResponse(",".join(Article.objects.values_list("title", flat=True)))


@cache_response(depends_on=[Article], max_variants=3)
def bounded(request):
    return HttpResponse(f"{request.GET.urlencode()}:" + ",".join(Article.objects.values_list("title", flat=True)))


@cache_headers(public=True, max_age=60)
@conditional(depends_on=[Article])
def dated(request):
    return HttpResponse(",".join(Article.objects.values_list("title", flat=True)))


urlpatterns = [path("page/", page), path("bounded/", bounded), path("dated/", dated)]


@pytest.fixture
def http(settings):
    settings.ROOT_URLCONF = "tests.test_signing"
    settings.MIDDLEWARE = []


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("kind", sorted(READS))
def test_a_planted_pickle_never_runs_and_is_a_rejected_miss(http, client, queries, caplog, written, kind, payload):
    read, expected = READS[kind]
    article = ArticleFactory(title="real")  # its save writes its object entry through
    assert read(client, article) == expected
    entry_keys = list(dict.fromkeys(written["entries"]))
    assert entry_keys, "nothing was stored"
    for key in entry_keys:
        plant(key, payload)
    metrics.reset()
    with caplog.at_level(logging.WARNING, logger="django_cachekit"), queries(1):
        assert read(client, article) == expected
    assert RAN == []
    assert rejected() >= 1
    warnings = [r.getMessage() for r in caplog.records if "rejected the entry" in r.getMessage()]
    assert len(warnings) == 1 and any(key in warnings[0] for key in entry_keys)
    with queries(0):  # the miss stored a signed entry over the planted one
        assert read(client, article) == expected


def test_rejections_are_logged_at_most_once_a_minute(queries, caplog):
    articles = ArticleFactory.create_batch(3)
    for article in articles:
        Article.objects.cache().get(pk=article.pk)
        plant(article.cache_key, "entry")
    with caplog.at_level(logging.WARNING, logger="django_cachekit"):
        for article in articles:
            Article.objects.cache().get(pk=article.pk)
    assert sum("rejected the entry" in r.getMessage() for r in caplog.records) == 1
    assert metrics.snapshot()["testapp.article"]["rejected"] == 3
    assert RAN == []


def test_a_planted_last_modified_record_never_runs(http, client, written):
    ArticleFactory(title="real")
    for _ in range(3):  # a read that straddles two seconds records nothing: try again
        first = client.get("/dated/")
        if first.has_header("Last-Modified"):
            break
    assert first.has_header("Last-Modified")
    assert written["records"]
    for key in set(written["records"]):
        plant(key, "backend")
    again = client.get("/dated/")
    assert RAN == []
    assert again.status_code == 200 and again.content == b"real"
    # What it read there is no record: conditional gives no date rather than run or trust it.
    assert again.get("Last-Modified") in (None, first["Last-Modified"])


def test_a_planted_variant_counter_never_runs(http, client, queries):
    ArticleFactory(title="real")
    with queries(1):
        assert client.get("/bounded/?n=1").content == b"n=1:real"
    view = f"{bounded.__module__}.{bounded.__qualname__}"
    plant(f"{conf.KEY_BASE}h:vc:{keys.digest(view)}", "backend")
    with queries(1):
        assert client.get("/bounded/?n=2").content == b"n=2:real"
    assert RAN == []
    with queries(0):  # a counter that is no count bounds nothing: the new variant was stored
        assert client.get("/bounded/?n=2").content == b"n=2:real"


# -- keys, rotation, the setting -------------------------------------------------------------------


def test_an_entry_signed_with_a_fallback_key_is_accepted(settings, queries):
    article = ArticleFactory(title="real")
    settings.SECRET_KEY = "the old key"
    core.runtime().store.delete_many([article.cache_key])
    with queries(1):
        Article.objects.cache().get(pk=article.pk)
    settings.SECRET_KEY = "the new key"
    settings.SECRET_KEY_FALLBACKS = ["the old key"]
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "real"
    settings.SECRET_KEY_FALLBACKS = []
    metrics.reset()
    with queries(1):  # signed with a key that is no longer the site's
        assert Article.objects.cache().get(pk=article.pk).title == "real"
    assert metrics.snapshot()["testapp.article"]["rejected"] == 1


def test_a_good_entry_copied_under_another_key_is_rejected(queries):
    a, b = ArticleFactory(title="a"), ArticleFactory(title="b")
    for article in (a, b):
        Article.objects.cache().get(pk=article.pk)
    store = core.runtime().store
    raw = store.fetch([a.cache_key], [])[0][0]
    store.set(b.cache_key, raw, 60)
    metrics.reset()
    with queries(1):
        assert Article.objects.cache().get(pk=b.pk).title == "b"
    assert metrics.snapshot()["testapp.article"]["rejected"] == 1


def test_an_entry_changed_in_the_cache_after_a_hit_is_rejected(queries):
    article = ArticleFactory(title="real")
    Article.objects.cache().get(pk=article.pk)
    with queries(0):  # a hit: the entry this process stored is remembered
        Article.objects.cache().get(pk=article.pk)
    store = core.runtime().store
    raw = bytearray(store.fetch([article.cache_key], [])[0][0])
    raw[-3] ^= 1  # one byte of the pickle, the MAC left as it was
    store.set(article.cache_key, bytes(raw), 60)
    metrics.reset()
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "real"
    assert metrics.snapshot()["testapp.article"]["rejected"] == 1
    with queries(0):  # the read stored a good entry over it
        Article.objects.cache().get(pk=article.pk)


def test_a_tampered_body_is_rejected():
    raw = bytearray(codec.encode("k", ("t",), (1,), "payload"))
    raw[-2] ^= 1
    with pytest.raises(codec.RejectedEntry):
        codec.decode("k", bytes(raw))
    with pytest.raises(codec.RejectedEntry):  # the key is in the MAC
        codec.decode("other", codec.encode("k", ("t",), (1,), "payload"))


@pytest.fixture
def macs(monkeypatch):
    """The MACs ``signing.verify`` works out, as the keys they were for."""
    checked = []
    verify = signing.verify

    def counting(key, mac, body):
        checked.append(key)
        return verify(key, mac, body)

    monkeypatch.setattr(signing, "verify", counting)
    signing.reset()
    return checked


def test_an_entry_verified_once_is_recognised_by_its_key_and_bytes(macs):
    raw = codec.encode("k", ("t",), (1,), "payload")
    signing.forget_verified("k")  # as if another process had signed it
    assert codec.decode("k", raw)[2] == "payload"
    assert codec.decode("k", bytes(raw))[2] == "payload"  # equal bytes, another object: no MAC
    assert macs == ["k"]
    with pytest.raises(codec.RejectedEntry):  # the same bytes under another key
        codec.decode("other", raw)
    tampered = bytearray(raw)
    tampered[-2] ^= 1
    with pytest.raises(codec.RejectedEntry):  # one byte changed
        codec.decode("k", bytes(tampered))
    assert macs == ["k", "other", "k"]


def test_an_entry_this_process_signed_is_read_back_without_a_mac(macs):
    raw = codec.encode("k", ("t",), (1,), "payload")
    assert codec.decode("k", raw)[2] == "payload"
    assert macs == []
    with pytest.raises(codec.RejectedEntry):
        codec.decode("other", raw)
    assert macs == ["other"]


def test_the_verified_entries_are_forgotten_with_the_secret_key(settings, macs):
    raw = codec.encode("k", ("t",), (1,), "payload")
    codec.decode("k", raw)
    settings.SECRET_KEY = "another key"  # the old one is not a fallback: its entries are not the site's
    with pytest.raises(codec.RejectedEntry):
        codec.decode("k", raw)
    assert macs == ["k"]


def test_the_verified_entries_stay_within_their_bytes(monkeypatch, macs):
    monkeypatch.setattr(signing, "VERIFIED_BYTES", 10_000)
    monkeypatch.setattr(signing, "VERIFIED_LARGEST", 2_000)
    for version in (1, 2):  # a key's newer entry takes its older one's place
        for i in range(50):
            codec.decode(f"k{i}", codec.encode(f"k{i}", ("t",), (version,), "x" * 500))
            assert sum(map(len, signing._verified.values())) == signing._verified_size <= 10_000
    assert 0 < len(signing._verified) < 50
    large = codec.encode("large", ("t",), (1,), "y" * 3_000)
    codec.decode("large", large)
    codec.decode("large", large)  # over VERIFIED_LARGEST: not kept, checked each time
    assert macs.count("large") == 2


def test_the_verified_bytes_stay_exact_under_threads(monkeypatch, macs):
    monkeypatch.setattr(signing, "VERIFIED_BYTES", 20_000)
    entries = [(f"k{i}", codec.encode(f"k{i}", ("t",), (i,), "x" * (100 * (i % 7)))) for i in range(40)]
    barrier = threading.Barrier(8)

    def churn(seed):
        barrier.wait(10)
        for n in range(3_000):
            key, raw = entries[(seed * 7 + n) % len(entries)]
            if n % 5 == 0:
                signing.forget_verified(key)
            else:
                signing.remember(key, raw)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert signing._verified_size == sum(map(len, signing._verified.values())) <= 20_000


def test_without_signing_unsigned_entries_are_read(settings, queries):
    settings.CACHEKIT = {**settings.CACHEKIT, "SIGN_ENTRIES": False}
    article = ArticleFactory(title="real")
    Article.objects.cache().get(pk=article.pk)
    raw = core.runtime().store.fetch([article.cache_key], [])[0][0]
    assert bytes(raw)[0] == 1  # as entries were stored before signing
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "real"
    settings.CACHEKIT = {**settings.CACHEKIT, "SIGN_ENTRIES": True}
    with queries(1):  # turned on again, the unsigned entry is a miss
        assert Article.objects.cache().get(pk=article.pk).title == "real"
    with queries(0):
        Article.objects.cache().get(pk=article.pk)


def test_a_bad_sign_entries_value_is_an_error(settings):
    settings.CACHEKIT = {**settings.CACHEKIT, "SIGN_ENTRIES": "yes"}
    errors = check_settings()
    assert [e.id for e in errors] == ["django_cachekit.E034"]
    assert "SIGN_ENTRIES" in errors[0].msg and "'yes'" in errors[0].msg
