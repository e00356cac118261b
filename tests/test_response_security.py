"""cache_response never shares a personal page, never replays a cookie, never keys
on less than Django would (scheme and host), and stays bounded."""

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.utils.cache import patch_vary_headers

from django_cachekit import cache_disabled
from django_cachekit.http import responses
from django_cachekit.http.decorators import DEFAULT_MAX_VARIANTS, cache_headers, cache_response
from tests import httpsetup
from tests.factories import ArticleFactory
from tests.httpsetup import login
from tests.httpviews_security import HEADER_CASES, RENDERS, TEMPLATES
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)

MIDDLEWARE = [*httpsetup.MIDDLEWARE, "tests.httpviews_security.TokenMiddleware"]


@pytest.fixture(autouse=True)
def http_settings(settings):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", TEMPLATES)]},
        }
    ]
    yield from httpsetup.use_http_settings(settings, "tests.httpviews_security", RENDERS, MIDDLEWARE)


# -- credentials in the request ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["/account/settings/", "/account/x.css", "/private-outside/"])
def test_a_request_with_authorization_is_neither_stored_nor_served_a_shared_page(client, url):
    ArticleFactory()
    assert client.get(url, HTTP_AUTHORIZATION="Token ada").content == b"account of ada"
    assert client.get(url).content == b"account of anonymous"
    assert client.get(url, HTTP_AUTHORIZATION="Token bob").content == b"account of bob"
    assert client.get(url).content == b"account of anonymous"
    assert RENDERS[url.split("/")[1].replace("-", "_")] == 3  # the anonymous page was stored once


def test_vary_on_authorization_keys_on_it_and_says_so(client):
    ArticleFactory()
    for _ in range(2):
        for token in ("ada", "bob"):
            response = client.get("/token-keyed/", HTTP_AUTHORIZATION=f"Token {token}")
            assert response.content == f"account of {token}".encode()
            assert "Authorization" in response["Vary"]
    assert RENDERS["token_keyed"] == 2


def test_vary_authorization_is_sent_even_when_the_cache_is_not_used(client):
    ArticleFactory()
    with cache_disabled():
        response = client.get("/token-keyed/", HTTP_AUTHORIZATION="Token ada")
    assert response.content == b"account of ada"
    assert "Authorization" in response["Vary"]
    assert "Authorization" in client.head("/token-keyed/", HTTP_AUTHORIZATION="Token ada")["Vary"]


def test_a_request_with_a_session_cookie_is_not_stored_for_others():
    ArticleFactory()
    ada = login("ada")
    ada.get("/plain/")
    ada.get("/plain/")
    assert RENDERS["plain"] == 2
    anonymous = Client()
    anonymous.get("/plain/")
    anonymous.get("/plain/")
    assert RENDERS["plain"] == 3


def test_a_cookie_read_by_the_view_keeps_the_page_from_others(client):
    ArticleFactory()
    client.cookies["token"] = "ada"
    assert client.get("/cookie-reader/").content == b"hello ada"
    assert Client().get("/cookie-reader/").content == b"hello anonymous"
    assert Client().get("/cookie-reader/").content == b"hello anonymous"
    assert RENDERS["cookie_reader"] == 3  # a read of a cookie a request lacks is a read too


def test_a_view_looking_at_every_cookie_is_not_stored(client):
    ArticleFactory()
    client.cookies["token"] = "ada"
    assert b"ada" in client.get("/cookie-lister/").content
    assert b"ada" not in Client().get("/cookie-lister/").content
    assert RENDERS["cookie_lister"] == 2


def test_tracked_cookies_record_every_kind_of_read():
    cookies = responses.TrackedCookies({"a": "1", "b": "2"})
    assert cookies.get("a") == "1" and cookies["b"] == "2" and "c" not in cookies
    assert cookies.read == {"a", "b", "c"}
    assert cookies.untracked("a") == "1" and cookies.read == {"a", "b", "c"}
    for read_all in (list, len, dict, lambda c: c.items(), lambda c: c.copy(), lambda c: c == {}):
        fresh = responses.TrackedCookies({"a": "1"})
        read_all(fresh)
        assert "*" in fresh.read, read_all
    inner = responses.TrackedCookies(cookies)
    assert inner.read == set()  # wrapping is not reading
    inner.get("z")
    assert "z" in cookies.read  # and an outer cache_response sees what an inner view read


# -- vary_on=["Cookie"] keys on the cookies that identify --------------------------------------


def test_vary_on_cookie_ignores_cookies_that_identify_no_one():
    ArticleFactory()
    for value in ("GA1.1", "GA1.2", "GA1.3"):
        browser = Client()
        browser.cookies["_ga"] = value
        browser.get("/cookie-keyed-plain/")
    assert RENDERS["cookie_keyed_plain"] == 1


def test_vary_on_cookie_keys_on_the_session_and_the_cookies_the_view_read():
    ArticleFactory()
    ada, bob = login("ada"), login("bob")
    for browser in (ada, bob):
        browser.cookies["_ga"] = "shared"
    dark = Client()
    dark.cookies["theme"] = "dark"
    for _ in range(2):
        assert ada.get("/cookie-keyed/").content == b"ada light"
        assert bob.get("/cookie-keyed/").content == b"bob light"
        assert dark.get("/cookie-keyed/").content == b"anonymous dark"
    assert RENDERS["cookie_keyed"] == 3
    assert Client().get("/cookie-keyed/").content == b"anonymous light"
    assert RENDERS["cookie_keyed"] == 4
    light = Client()
    light.cookies["_ga"] = "other"
    assert light.get("/cookie-keyed/").content == b"anonymous light"
    assert RENDERS["cookie_keyed"] == 4  # another anonymous visitor without a theme: the same variant
    response = dark.get("/cookie-keyed/")
    assert "Cookie" in response["Vary"]


def test_a_private_page_is_kept_only_for_a_request_whose_key_holds_its_credentials():
    ArticleFactory()

    @cache_response(depends_on=[Article], vary_on=["Cookie"])
    def page(request):
        RENDERS["page"] += 1
        response = HttpResponse(request.COOKIES.get("theme"))
        response.headers["Cache-Control"] = "private"
        return response

    for _ in range(2):
        page(RequestFactory().get("/page/", HTTP_COOKIE="theme=dark"))
    assert RENDERS["page"] == 2  # no session cookie in the key: nobody's page to keep
    session = "sessionid=abc; theme=dark"
    for _ in range(2):
        assert page(RequestFactory().get("/page/", HTTP_COOKIE=session)).content == b"dark"
    assert RENDERS["page"] == 3  # kept for the one session in its key


# -- Set-Cookie --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/raw-cookie/", "/raw-cookie-no-cache/"])
def test_a_raw_set_cookie_header_is_never_stored(client, url):
    ArticleFactory()
    assert "sid=secret" in client.get(url)["Set-Cookie"]
    second = Client().get(url)
    assert RENDERS[url.strip("/").replace("-", "_")] == 2
    assert "sid=secret" in second["Set-Cookie"]  # the view's own, sent again by the view


def test_a_stored_response_holds_no_set_cookie_header():
    response = HttpResponse("x")
    response.headers["Set-Cookie"] = "sid=secret"
    response.headers["X-Kept"] = "yes"
    assert [h for h, _ in responses.freeze(response)[2]] == ["Content-Type", "X-Kept"]


def test_a_raw_set_cookie_header_is_never_marked_public():
    @cache_headers(public=True, s_maxage=60)
    def page(request):
        response = HttpResponse()
        response.headers["set-cookie"] = "sid=secret"
        return response

    directives = {d.strip() for d in page(RequestFactory().get("/")).headers["Cache-Control"].split(",")}
    assert "private" in directives and "public" not in directives and "s-maxage=60" not in directives


def test_a_session_saved_on_every_request_is_neither_public_nor_stored(settings):
    settings.SESSION_SAVE_EVERY_REQUEST = True
    ArticleFactory()
    ada = login("ada")
    for _ in range(2):
        response = ada.get("/public-per-user/")
        assert settings.SESSION_COOKIE_NAME in response.cookies
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert "private" in directives and "public" not in directives
        assert not any(d.startswith("s-maxage") for d in directives)
    assert RENDERS["public_per_user"] == 2


def test_sets_cookie_follows_the_session_middlewares_rule(settings):
    request = RequestFactory().get("/")
    request.COOKIES = {}

    class Session(dict):
        modified = False
        accessed = True

        def is_empty(self):
            return not self

    request.session = Session(user="1")
    response = HttpResponse()
    assert not responses.sets_cookie(request, response)
    settings.SESSION_SAVE_EVERY_REQUEST = True
    assert responses.sets_cookie(request, response)
    request.session = Session()  # empty: nothing saved, and no cookie to delete
    assert not responses.sets_cookie(request, response)
    request.COOKIES = {settings.SESSION_COOKIE_NAME: "old"}  # emptied: the cookie is deleted
    assert responses.sets_cookie(request, response)


# -- scheme and host in the key ---------------------------------------------------------------


def test_x_forwarded_host_cannot_poison_the_entry(client, settings):
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = ["*"]
    ArticleFactory()
    assert client.get("/absolute/", HTTP_X_FORWARDED_HOST="evil.example").content == b"http://evil.example/next/"
    assert client.get("/absolute/").content == b"http://testserver/next/"
    assert client.get("/absolute/").content == b"http://testserver/next/"
    assert RENDERS["absolute"] == 2


def test_each_allowed_host_has_its_own_entry(client, settings):
    settings.ALLOWED_HOSTS = ["a.example", "b.example"]
    ArticleFactory()
    for _ in range(2):
        assert client.get("/absolute/", HTTP_HOST="a.example").content == b"http://a.example/next/"
        assert client.get("/absolute/", HTTP_HOST="b.example").content == b"http://b.example/next/"
    assert RENDERS["absolute"] == 2


def test_https_and_http_have_their_own_entries(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    ArticleFactory()
    for _ in range(2):
        assert client.get("/absolute/", HTTP_X_FORWARDED_PROTO="https").content.startswith(b"https://testserver")
        assert client.get("/absolute/").content == b"http://testserver/next/"
    assert RENDERS["absolute"] == 2


def test_a_disallowed_host_is_not_cached_and_left_to_django(client, settings):
    settings.ALLOWED_HOSTS = ["testserver"]
    ArticleFactory(title="T")
    for _ in range(2):
        assert client.get("/plain/", HTTP_HOST="evil.example").content == b"T"
    assert RENDERS["plain"] == 2
    assert client.get("/absolute/", HTTP_HOST="evil.example").status_code == 400  # Django's answer


# -- bounds ------------------------------------------------------------------------------------


def test_query_params_key_on_the_listed_parameters_in_any_order(client):
    ArticleFactory(title="T")
    assert client.get("/search/?q=a&page=2").content == b"a:2:T"
    assert client.get("/search/?page=2&q=a").content == b"a:2:T"
    assert client.get("/search/?q=b").content == b"b:None:T"
    assert client.get("/search/?q=b").content == b"b:None:T"
    assert RENDERS["search"] == 2


def test_a_parameter_not_listed_is_neither_read_nor_stored(client):
    ArticleFactory(title="T")
    client.get("/search/?q=a")
    for _ in range(2):
        assert client.get("/search/?q=a&utm_source=x").content == b"a:None:T"
    assert RENDERS["search"] == 3


def test_max_variants_stops_storing_new_variants(client):
    ArticleFactory(title="T")
    for _ in range(2):
        for i in range(5):
            assert client.get(f"/bounded/?n={i}").content == f"n={i}:T".encode()
    assert RENDERS["bounded"] == 5 + 2  # n=3 and n=4 were never stored
    ArticleFactory(title="U")
    for _ in range(2):
        assert client.get("/bounded/?n=0").content == b"n=0:T,U"  # a counted variant is stored again
    assert RENDERS["bounded"] == 8


def test_the_default_bound():
    assert DEFAULT_MAX_VARIANTS == 1000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_params": 5}, "query_params must be a list of parameter names or None, not 5"),
        ({"query_params": ["q", ""]}, "query_params takes non-empty parameter names, not ''"),
        ({"query_params": [None]}, "not None"),
        ({"max_variants": 0}, "max_variants must be a positive whole number or None, not 0"),
        ({"max_variants": -1}, "not -1"),
        ({"max_variants": True}, "not True"),
        ({"max_variants": "100"}, "not '100'"),
    ],
)
def test_bounds_refuse_bad_arguments_when_decorating(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cache_response(depends_on=[Article], **kwargs)


# -- template responses ------------------------------------------------------------------------


def test_a_template_view_is_rendered_then_stored(client, django_assert_num_queries):
    ArticleFactory(title="T")
    assert client.get("/titles-view/").content == b"T"
    with django_assert_num_queries(0):
        assert client.get("/titles-view/").content == b"T"
    assert RENDERS["titles_view"] == 1
    ArticleFactory(title="U")
    assert client.get("/titles-view/").content == b"TU"


def test_a_template_that_reads_the_user_while_rendering_is_not_stored(client):
    for _ in range(2):
        assert client.get("/greeting-view/").content == b"hello anonymous"
    assert RENDERS["greeting_view"] == 2


# -- headers in any case and spacing -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEADER_CASES))
def test_responses_marked_in_any_case_are_never_stored(client, name):
    ArticleFactory()
    for _ in range(2):
        client.get(f"/headers/{name}/")
    assert RENDERS[name] == 2


def test_a_padded_vary_is_read_name_by_name():
    response = HttpResponse()
    response.headers["Vary"] = " Cookie ,accept-language"
    assert responses.vary_headers(response) == ("cookie", "accept-language")
    patch_vary_headers(response, ["Accept-Language"])
    assert responses.vary_headers(response) == ("cookie", "accept-language")


def test_a_padded_vary_chooses_the_variant(client):
    for _ in range(2):
        assert client.get("/vary-padded/", HTTP_ACCEPT_LANGUAGE="fr", HTTP_X_VARIANT="1").content == b"fr:1"
        assert client.get("/vary-padded/", HTTP_ACCEPT_LANGUAGE="fr", HTTP_X_VARIANT="2").content == b"fr:2"
        assert client.get("/vary-padded/", HTTP_ACCEPT_LANGUAGE="en").content == b"en:-"
    assert RENDERS["vary_padded"] == 3
