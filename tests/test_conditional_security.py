"""conditional() and cache_headers() against identities that are not the asker's: a 304 needs a
validator of this identity, a 304 sends what its 200 would, validator records are plain text
and cost at most one per page per second, and headers a shared cache reads are never misread."""

import pickle

import pytest
from django.core.cache import caches
from django.test import Client
from django.utils.http import http_date

from django_cachekit.core import keys
from django_cachekit.core import protocol as core
from django_cachekit.http import responses as httpcache
from tests import httpsetup
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory
from tests.httpsetup import login, use_http_settings
from tests.httpviews_conditional import RENDERS

pytestmark = pytest.mark.django_db(transaction=True)

ADA, BOB = {"HTTP_AUTHORIZATION": "Bearer ada"}, {"HTTP_AUTHORIZATION": "Bearer bob"}

clock = httpsetup.clock


@pytest.fixture(autouse=True)
def http_settings(settings):
    yield from use_http_settings(settings, "tests.httpviews_conditional", RENDERS)


def vary(response):
    return [h.strip().lower() for h in response.get("Vary", "").split(",") if h.strip()]


def directives(response):
    return {d.strip().lower() for d in response.get("Cache-Control", "").split(",") if d.strip()}


def record_keys():
    """The names of the Last-Modified records, claims and highs in the cache."""
    cache = caches["default"]
    if CACHE == "locmem":
        return [k for k in list(cache._cache) if ":h:l" in k]
    if CACHE in REDIS_CACHES:
        client = core.runtime().store.client
        return [k.decode() for k in client.scan_iter(match="*h:l*")]
    pytest.skip("Memcached cannot list its keys")


# -- 1. per_user=False: a page that turns out personal is validated per identity ------------------


@pytest.mark.parametrize("spelling", ["private", "Private", "PRIVATE", "max-age=0, Private"])
def test_a_private_page_under_per_user_false_gets_no_shared_304(client, spelling):
    ArticleFactory()
    url = f"/marked-private/{spelling}/"
    for_ada = client.get(url, **ADA)
    assert for_ada.content.startswith(b"Bearer ada:")
    response = client.get(url, HTTP_IF_NONE_MATCH=for_ada["ETag"], **BOB)
    assert response.status_code == 200
    assert response.content.startswith(b"Bearer bob:")
    assert client.get(url, HTTP_IF_NONE_MATCH=for_ada["ETag"]).status_code == 200  # nor anonymous
    # Ada's own ETag still earns her a 304.
    assert client.get(url, HTTP_IF_NONE_MATCH=for_ada["ETag"], **ADA).status_code == 304


@pytest.mark.parametrize("url", ["/sets-cookie/", "/padded-vary/"])
def test_a_page_setting_a_cookie_or_varying_on_credentials_gets_no_shared_304(client, url):
    ArticleFactory()
    for_ada = client.get(url, **ADA)
    response = client.get(url, HTTP_IF_NONE_MATCH=for_ada["ETag"], **BOB)
    assert response.status_code == 200
    assert response.content.startswith(b"Bearer bob:")
    assert client.get(url, HTTP_IF_NONE_MATCH=for_ada["ETag"], **ADA).status_code == 304


# -- 2. If-Modified-Since earns a 304 only against this identity's own record ---------------------


def test_another_identitys_last_modified_earns_no_304(client, clock):
    ArticleFactory()
    never_came = client.get("/personal/", **ADA)
    assert never_came.has_header("Last-Modified")
    # Bob never received a page: Ada's date (in the very second he asks) earns him nothing.
    response = client.get("/personal/", HTTP_IF_MODIFIED_SINCE=never_came["Last-Modified"], **BOB)
    assert response.status_code == 200
    assert response.content.startswith(b"Bearer bob:")
    clock["now"] += 5
    for_bob = client.get("/personal/", **BOB)
    assert for_bob["Last-Modified"] != never_came["Last-Modified"]
    clock["now"] += 5
    later_for_ada = client.get("/personal/", HTTP_AUTHORIZATION="Bearer ada-2")
    # A date later than his own record is another identity's, not proof he holds his page.
    assert client.get("/personal/", HTTP_IF_MODIFIED_SINCE=later_for_ada["Last-Modified"], **BOB).status_code == 200
    assert client.get("/personal/", HTTP_IF_MODIFIED_SINCE=for_bob["Last-Modified"], **BOB).status_code == 304
    assert client.get("/personal/", HTTP_IF_MODIFIED_SINCE=never_came["Last-Modified"], **ADA).status_code == 304
    # An anonymous request (a shared browser after logout) with a personal date: no 304.
    assert client.get("/personal/", HTTP_IF_MODIFIED_SINCE=for_bob["Last-Modified"]).status_code == 200


def test_a_date_without_any_record_earns_no_304(client, clock):
    ArticleFactory()
    future = http_date(int(clock["now"]) + 3600)
    assert client.get("/personal/", HTTP_IF_MODIFIED_SINCE=future).status_code == 200
    assert client.get("/personal/", HTTP_IF_MODIFIED_SINCE=future, **ADA).status_code == 200


def test_per_user_false_dates_follow_the_identity(client, clock):
    ArticleFactory()
    url = "/marked-private/private/"
    for_ada = client.get(url, **ADA)
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=for_ada["Last-Modified"], **BOB).status_code == 200
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=for_ada["Last-Modified"], **ADA).status_code == 304


# -- 3. a 304 sends the headers its 200 would ------------------------------------------------------


def test_a_304_keeps_the_vary_and_cache_control_of_its_200(client):
    ArticleFactory()
    first = client.get("/languages/", HTTP_ACCEPT_LANGUAGE="fr")
    assert vary(first) == ["accept-language"]
    not_modified = client.get("/languages/", HTTP_ACCEPT_LANGUAGE="fr", HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304
    assert vary(not_modified) == vary(first)
    assert not_modified["Cache-Control"] == first["Cache-Control"] == "max-age=30"
    assert not_modified["ETag"] == first["ETag"]


def test_a_personal_304_keeps_vary_cookie_and_private():
    ArticleFactory()
    ada = login("ada")
    first = ada.get("/personal/")
    assert first.content.startswith(b"ada:")
    assert "cookie" in vary(first)
    not_modified = ada.get("/personal/", HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304
    assert vary(not_modified) == vary(first)
    assert not_modified["Cache-Control"] == first["Cache-Control"] == "private, no-cache"


def test_a_304_by_date_keeps_the_headers_too(client):
    ArticleFactory()
    first = client.get("/languages/")
    not_modified = client.get("/languages/", HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert not_modified.status_code == 304
    assert not_modified["Last-Modified"] == first["Last-Modified"]
    assert vary(not_modified) == ["accept-language"]
    assert not_modified["Cache-Control"] == "max-age=30"


# -- 4. Last-Modified records are plain text; anything else there is no record -------------------


def record_key(response):
    return keys.last_modified_keys("", response["ETag"].strip('"'))[0]


@pytest.mark.parametrize("garbage", [True, -1, 1.5, b"1700000000", ["1700000000"], "17000x", "9" * 40])
def test_a_record_of_another_type_is_no_record(client, clock, garbage):
    ArticleFactory()
    first = client.get("/personal/")
    caches["default"].set(record_key(first), garbage)
    for since in (first["Last-Modified"], http_date(1)):
        response = client.get("/personal/", HTTP_IF_MODIFIED_SINCE=since)
        assert response.status_code == 200
        assert response.get("Last-Modified") != http_date(1)
    assert client.get("/personal/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


UNPICKLED: list[str] = []


def unpickled(what):
    UNPICKLED.append(what)


class Detonator:
    def __reduce__(self):
        return (unpickled, ("a record",))


@pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="reads the Redis record raw")
def test_a_pickle_in_a_record_is_never_loaded(client, clock):
    ArticleFactory()
    first = client.get("/personal/")
    client_ = core.runtime().store.client
    name = caches["default"].make_key(record_key(first))
    assert client_.get(name) == str(int(clock["now"])).encode()  # plain decimal text
    client_.set(name, pickle.dumps(Detonator()))
    UNPICKLED.clear()
    response = client.get("/personal/", HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert response.status_code == 200
    assert not response.has_header("Last-Modified")
    assert UNPICKLED == []


# -- 5. junk identities cost a bounded number of records -------------------------------------------


def test_junk_authorization_headers_store_a_bounded_number_of_records(client, clock):
    ArticleFactory()
    for i in range(300):
        assert client.get("/personal/", HTTP_AUTHORIZATION=f"Bearer junk-{i}").status_code == 200
    # One record, one claim and one high for the page in this second, however many identities ask.
    assert len(record_keys()) <= 3


def test_records_given_to_identities_are_short_lived(client, clock, settings):
    settings.CACHEKIT = {**settings.CACHEKIT, "TIMEOUT": 3600}
    ArticleFactory()
    names = []
    for i in range(20):
        clock["now"] += 1
        response = client.get("/personal/", HTTP_AUTHORIZATION=f"Bearer junk-{i}")
        assert response.has_header("Last-Modified")
        names.append(record_key(response))
    assert len(record_keys()) <= 2 * 20 + 1  # a record and a claim a second, one high
    ttls = core.runtime().store.ttls(names)
    if ttls[0] is not None:
        assert all(0 < t <= httpcache.PERSONAL_TIMEOUT for t in ttls)
    clock["now"] += 1
    anonymous = client.get("/personal/")
    assert anonymous.has_header("Last-Modified")
    ttl = core.runtime().store.ttls([record_key(anonymous)])[0]
    if ttl is not None:
        assert ttl > httpcache.PERSONAL_TIMEOUT


# -- 6. Vary: *, mixed-case Private, padded Vary, Authorization -------------------------------------


def test_a_vary_star_response_gets_no_validators(client):
    ArticleFactory()
    for request in ({}, ADA):
        response = client.get("/vary-star/", **request)
        assert response.status_code == 200
        assert not response.has_header("ETag")
        assert not response.has_header("Last-Modified")
    assert record_keys() == []


@pytest.mark.parametrize("url", ["/headers/vary-star/", "/headers/vary-on-star/"])
def test_cache_headers_never_makes_a_vary_star_response_public(client, url):
    response = client.get(url)
    assert "public" not in directives(response)
    assert "private" in directives(response)
    assert not any(d.startswith("s-maxage") for d in directives(response))
    assert vary(response) == ["*"]


@pytest.mark.parametrize("spelling", ["private", "Private", "PRIVATE"])
def test_cache_headers_never_makes_a_private_page_public(client, spelling):
    response = client.get(f"/headers/private/{spelling}/")
    assert "public" not in directives(response)
    assert "private" in directives(response)


def test_padded_vary_is_read_trimmed_and_case_insensitively(client):
    response = client.get("/headers/padded/")
    assert vary(response) == ["cookie", "accept-language", "accept-encoding"]
    assert httpcache.vary_headers(response) == ("cookie", "accept-language", "accept-encoding")
    assert httpcache.varies_on_credentials(response)


def test_a_page_read_with_authorization_varies_on_it(client):
    ArticleFactory()
    for url in ("/personal/", "/public-personal/", "/headers/public/", "/marked-private/private/"):
        response = client.get(url, **ADA)
        assert "authorization" in vary(response), url
        not_modified = client.get(url, HTTP_IF_NONE_MATCH=response.get("ETag", '"none"'), **ADA)
        if not_modified.status_code == 304:
            assert "authorization" in vary(not_modified), url
    public = client.get("/public-personal/", **ADA)
    assert "public" in directives(public)


# -- the stores' plain records ----------------------------------------------------------------------


def test_plain_records_hold_text_only():
    store = core.runtime().store
    base = keys.prefix()
    assert store.plain_add(f"{base}t:a", "1700000000", 60) is True
    assert store.plain_add(f"{base}t:a", "1700000001", 60) is False
    store.plain_set(f"{base}t:b", "abc", None)
    caches["default"].set(f"{base}t:c", ["not", "text"])
    assert store.plain_get_many([f"{base}t:a", f"{base}t:b", f"{base}t:c", f"{base}t:missing"]) == [
        "1700000000",
        "abc",
        None,
        None,
    ]
    assert store.plain_get_many([]) == []


def test_a_page_that_starts_a_session_is_sent_private():
    """No session cookie in the request, but the view creates a session: the response
    carries its Set-Cookie, so the default Cache-Control must keep shared caches out."""
    ArticleFactory()
    response = Client().get("/starts-session/")
    assert response.status_code == 200
    assert "sessionid" in response.cookies
    assert {"private", "no-cache"} <= directives(response)
