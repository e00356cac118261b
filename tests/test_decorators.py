"""HTTP view decorators: headers, 304 and 412 without SQL, whole responses cached
until a write, and personal pages never shared."""

import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.test.utils import override_settings
from django.utils.http import http_date

from django_cachekit import invalidate_tags
from django_cachekit.core import keys
from django_cachekit.core import protocol as core
from django_cachekit.http.decorators import cache_headers, cache_response, conditional
from tests import httpsetup, httpviews
from tests.conftest import CACHE, REDIS_CACHES
from tests.factories import ArticleFactory, AuthorFactory, CommentFactory
from tests.httpsetup import login, use_http_settings
from tests.httpviews import RENDERS
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)


clock = httpsetup.clock


@pytest.fixture(autouse=True)
def http_settings(settings):
    yield from use_http_settings(settings, "tests.httpviews", RENDERS)


# -- cache_headers ------------------------------------------------------------------------


def test_cache_headers_sets_every_directive(client):
    response = client.get("/headers/public/")
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert directives == {"public", "max-age=60", "s-maxage=300", "stale-while-revalidate=30", "stale-if-error=600"}


def test_cache_headers_adds_to_vary_never_replaces(client):
    response = client.get("/headers/vary/")
    assert [h.strip() for h in response["Vary"].split(",")] == ["Cookie", "Accept-Language"]
    assert response["Cache-Control"] == "max-age=60"


def test_public_response_that_sets_a_cookie_is_made_private(client):
    response = client.get("/headers/cookie/")
    directives = {d.strip() for d in response["Cache-Control"].split(",")}
    assert "private" in directives
    assert "public" not in directives
    assert not any(d.startswith("s-maxage") for d in directives)
    assert response.cookies["flavour"].value == "oat"


def test_public_response_whose_session_is_saved_is_made_private(client):
    response = client.get("/headers/session/")
    assert "private" in response["Cache-Control"]
    assert "public" not in response["Cache-Control"]
    assert "sessionid" in response.cookies


def test_server_errors_keep_their_own_cache_control(client):
    response = client.get("/headers/error/")
    assert response.status_code == 503
    assert not response.has_header("Cache-Control")


def test_no_store(client):
    assert client.get("/headers/no-store/")["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public": True, "private": True}, "both public=True and private=True"),
        ({"no_store": True, "max_age": 60}, "no_store=True) contradicts max_age=60"),
        ({"no_store": True, "s_maxage": 5}, "no_store=True) contradicts s_maxage=5"),
        ({"no_store": True, "stale_if_error": 5}, "contradicts stale_if_error=5"),
        ({"no_store": True, "public": True}, "contradicts public=True"),
        ({"private": True, "s_maxage": 60}, "private=True) contradicts s_maxage=60"),
        ({"max_age": -1}, "max_age must be a whole number of seconds, zero or more, not -1"),
        ({"max_age": "60"}, "not '60'"),
        ({"s_maxage": 1.5}, "s_maxage must be a whole number of seconds, zero or more, not 1.5"),
        ({"max_age": True}, "not True"),
        ({"stale_while_revalidate": -5}, "stale_while_revalidate must be"),
        ({"public": "yes"}, "public must be True or False, not 'yes'"),
        ({"vary": ["Accept Language"]}, "HTTP header names, not 'Accept Language'"),
        ({"vary": 3}, "not 3"),
        ({}, "needs at least one directive"),
    ],
)
def test_cache_headers_refuses_bad_arguments_when_decorating(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cache_headers(**kwargs)


def test_cache_headers_on_an_async_view():
    response = async_to_sync(AsyncClient().get)("/async/headers/")
    assert {d.strip() for d in response["Cache-Control"].split(",")} == {"public", "max-age=30"}
    assert response["Vary"] == "Accept-Language"


# -- conditional ----------------------------------------------------------------------------


def test_etag_and_last_modified_then_304_without_sql(client, django_assert_num_queries):
    article = ArticleFactory(title="First")
    url = f"/articles/{article.pk}/"
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == f"First by {article.author.name}".encode()
    etag, modified = response["ETag"], response["Last-Modified"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert response["Cache-Control"] == "no-cache"
    assert RENDERS["detail"] == 1

    with django_assert_num_queries(0):
        not_modified = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == etag
    assert not_modified.content == b""
    with django_assert_num_queries(0):
        by_date = client.get(url, HTTP_IF_MODIFIED_SINCE=modified)
    assert by_date.status_code == 304
    assert by_date["Last-Modified"] == modified
    with django_assert_num_queries(0):
        assert client.head(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert RENDERS["detail"] == 1

    # Stable across requests: the same versions give the same validators.
    again = client.get(url)
    assert (again["ETag"], again["Last-Modified"]) == (etag, modified)


def test_a_list_of_etags_and_a_weak_match(client):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    etag = client.get(url)["ETag"]
    assert client.get(url, HTTP_IF_NONE_MATCH=f'"other", {etag}').status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH=f"W/{etag}").status_code == 304  # If-None-Match compares weakly
    assert client.get(url, HTTP_IF_NONE_MATCH="*").status_code == 304
    assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_412_for_failing_preconditions(client, clock):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    first = client.get(url)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert client.get(url, HTTP_IF_MATCH='"not-it"').status_code == 412
    assert client.post(url, HTTP_IF_MATCH='"not-it"').status_code == 412
    assert client.get(url, HTTP_IF_MATCH=etag).status_code == 200
    earlier = http_date(int(clock["now"]) - 60)
    assert client.get(url, HTTP_IF_UNMODIFIED_SINCE=earlier).status_code == 412
    assert client.get(url, HTTP_IF_UNMODIFIED_SINCE=modified).status_code == 200
    # If-None-Match on an unsafe method that matches: 412, not 304.
    assert client.post(url, HTTP_IF_NONE_MATCH=etag).status_code == 412
    renders = RENDERS["detail"]
    article.title = "Changed"
    article.save()
    # The write changed the ETag: an update conditional on the old one fails.
    assert client.post(url, HTTP_IF_MATCH=etag).status_code == 412
    assert RENDERS["detail"] == renders


def test_a_save_changes_the_etag_and_the_page(client, clock):
    article = ArticleFactory(title="Before")
    url = f"/articles/{article.pk}/"
    first = client.get(url)
    article.title = "After"
    article.save()
    clock["now"] += 5
    response = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert response.status_code == 200
    assert response.content.startswith(b"After")
    assert response["ETag"] != first["ETag"]
    assert response["Last-Modified"] != first["Last-Modified"]
    # The old Last-Modified does not earn a 304 either.
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 200
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=response["Last-Modified"]).status_code == 304


def test_a_touching_child_and_m2m_links_change_the_etag(client):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    etag = client.get(url)["ETag"]
    CommentFactory(article=article)  # Comment.CacheMeta.touch = ("article",)
    second = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert second.status_code == 200
    from tests.factories import TagFactory

    article.tags.add(TagFactory())
    assert client.get(url, HTTP_IF_NONE_MATCH=second["ETag"]).status_code == 200


def test_another_row_keeps_the_etag(client):
    article, other = ArticleFactory(), ArticleFactory()
    url = f"/articles/{article.pk}/"
    etag = client.get(url)["ETag"]
    other.title = "Elsewhere"
    other.save()
    assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_depends_on_models(client):
    article = ArticleFactory()
    plain, with_author = f"/articles/{article.pk}/", f"/articles/{article.pk}/with-author/"
    etags = {url: client.get(url)["ETag"] for url in (plain, with_author)}
    Author.objects.filter(pk=article.author_id).update(name="Renamed")
    assert client.get(plain, HTTP_IF_NONE_MATCH=etags[plain]).status_code == 304
    response = client.get(with_author, HTTP_IF_NONE_MATCH=etags[with_author])
    assert response.status_code == 200
    assert response.content.endswith(b"by Renamed")


def test_tags_callable(client):
    x, y = client.get("/feeds/x/")["ETag"], client.get("/feeds/y/")["ETag"]
    assert x != y
    invalidate_tags("feed:x")
    assert client.get("/feeds/x/", HTTP_IF_NONE_MATCH=x).status_code == 200
    assert client.get("/feeds/y/", HTTP_IF_NONE_MATCH=y).status_code == 304


def test_missing_rows_and_bad_keys_are_left_to_the_view(client):
    assert client.get("/articles/987654/").status_code == 404
    assert not client.get("/articles/987654/").has_header("ETag")


def test_last_modified_is_stable_until_the_versions_change(client, clock):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    first = client.get(url)["Last-Modified"]
    clock["now"] += 100
    assert client.get(url)["Last-Modified"] == first
    article.title = "New"
    article.save()
    clock["now"] += 1
    assert client.get(url)["Last-Modified"] == http_date(int(clock["now"]))


def test_two_changes_in_one_second_never_share_a_last_modified(client, clock):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    first = client.get(url)
    article.title = "Same second"
    article.save()
    second = client.get(url)
    # Its second is taken by the previous versions: no Last-Modified (the ETag still works)...
    assert not second.has_header("Last-Modified")
    assert second["ETag"] != first["ETag"]
    # ...so the old date cannot earn a 304 for the new content.
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 200
    assert client.get(url, HTTP_IF_NONE_MATCH=second["ETag"]).status_code == 304
    clock["now"] += 1
    third = client.get(url)
    assert third["Last-Modified"] == http_date(int(clock["now"]))
    assert third["Last-Modified"] != first["Last-Modified"]


def test_a_lost_last_modified_record_gives_a_later_time(client, clock):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    first = client.get(url)
    digest = first["ETag"].strip('"')
    caches["default"].delete(f"{keys.prefix()}h:lm:{digest}")
    clock["now"] += 30
    later = client.get(url)
    assert later["ETag"] == first["ETag"]
    assert later["Last-Modified"] == http_date(int(clock["now"]))
    # A client holding the earlier date gets the page again: safe, never stale.
    assert client.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 200


def test_each_user_gets_their_own_etag(client, django_assert_num_queries):
    ArticleFactory()
    ada, bob = login("ada"), login("bob")
    for_ada, for_bob = ada.get("/personal/"), bob.get("/personal/")
    assert for_ada.content.startswith(b"ada:") and for_bob.content.startswith(b"bob:")
    assert for_ada["ETag"] != for_bob["ETag"]
    assert for_ada["Cache-Control"] == "private, no-cache"
    # Bob presenting Ada's ETag gets his own page, never a 304 on hers.
    response = bob.get("/personal/", HTTP_IF_NONE_MATCH=for_ada["ETag"])
    assert response.status_code == 200
    assert response.content.startswith(b"bob:")
    with django_assert_num_queries(0):
        assert ada.get("/personal/", HTTP_IF_NONE_MATCH=for_ada["ETag"]).status_code == 304
    # Anonymous visitors share one ETag, which no logged-in user can use.
    anonymous = client.get("/personal/")
    assert anonymous["ETag"] == Client().get("/personal/")["ETag"]
    assert anonymous["Cache-Control"] == "no-cache"
    assert anonymous["ETag"] not in (for_ada["ETag"], for_bob["ETag"])
    assert ada.get("/personal/", HTTP_IF_NONE_MATCH=anonymous["ETag"]).status_code == 200


def test_logging_in_changes_the_etag():
    ArticleFactory()
    browser = Client()
    anonymous = browser.get("/personal/")
    browser.force_login(User.objects.create_user("cy", password="x"))
    response = browser.get("/personal/", HTTP_IF_NONE_MATCH=anonymous["ETag"])
    assert response.status_code == 200
    assert response.content.startswith(b"cy:")


def test_authorization_headers_are_identities(client):
    ArticleFactory()
    one = client.get("/personal/", HTTP_AUTHORIZATION="Bearer one")["ETag"]
    two = client.get("/personal/", HTTP_AUTHORIZATION="Bearer two")["ETag"]
    assert one != two
    assert client.get("/personal/", HTTP_AUTHORIZATION="Bearer two", HTTP_IF_NONE_MATCH=one).status_code == 200
    assert client.get("/personal/", HTTP_AUTHORIZATION="Bearer one", HTTP_IF_NONE_MATCH=one).status_code == 304


def test_per_user_false_shares_etags_unless_the_response_varies(client):
    ArticleFactory()
    ada, bob = login("ada"), login("bob")
    shared = {c.get("/shared/")["ETag"] for c in (client, ada, bob)}
    assert len(shared) == 1
    assert bob.get("/shared/", HTTP_IF_NONE_MATCH=shared.pop()).status_code == 304
    # This page reads the user: the session middleware makes it vary on Cookie.
    for_ada = ada.get("/shared-but-personal/")
    assert "Cookie" in for_ada["Vary"]
    for_bob = bob.get("/shared-but-personal/")
    assert for_ada["ETag"] != for_bob["ETag"]
    response = bob.get("/shared-but-personal/", HTTP_IF_NONE_MATCH=for_ada["ETag"])
    assert response.status_code == 200
    assert response.content.startswith(b"bob:")
    assert ada.get("/shared-but-personal/", HTTP_IF_NONE_MATCH=for_ada["ETag"]).status_code == 304


def test_cache_headers_replace_the_default_revalidation(client):
    ArticleFactory()
    response = client.get("/public-conditional/")
    assert {d.strip() for d in response["Cache-Control"].split(",")} == {"public", "max-age=60"}
    not_modified = client.get("/public-conditional/", HTTP_IF_NONE_MATCH=response["ETag"])
    assert not_modified.status_code == 304
    assert {d.strip() for d in not_modified["Cache-Control"].split(",")} == {"public", "max-age=60"}


def test_missing_url_kwarg_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="'pk'"):
        httpviews.detail(RequestFactory().get("/"), 1)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((42,), {}, "takes model classes and saved instances, not 42"),
        ((Article,), {"url_kwarg": None}, "needs url_kwarg"),
        ((Article(),), {}, "has no primary key"),
        ((), {}, "needs models, instances, depends_on or tags"),
        ((), {"tags": [""]}, "non-empty string"),
        ((), {"tags": 5}, "not 5"),
        ((), {"depends_on": Article}, "depends_on must be a list"),
        ((), {"depends_on": [int]}, "concrete model class, not <class 'int'>"),
        ((Article,), {"per_user": "yes"}, "per_user must be True, False or a callable"),
    ],
)
def test_conditional_refuses_bad_arguments_when_decorating(args, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        conditional(*args, **kwargs)


def test_conditional_checks_the_url_kwarg_against_the_view():
    def view(request, article_id):
        return HttpResponse()

    with pytest.raises(ValueError, match="takes no argument 'pk'"):
        conditional(Article)(view)
    conditional(Article, url_kwarg="article_id")(view)


def test_an_open_breaker_serves_normal_responses(client):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    etag = client.get(url)["ETag"]
    client.get("/listing/")
    core.runtime().breaker.opened_at = time.monotonic()
    response = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert not response.has_header("ETag")
    assert client.get("/listing/").status_code == 200
    assert RENDERS["listing"] == 2


def test_cache_errors_serve_normal_responses(client, monkeypatch):
    article = ArticleFactory()
    url = f"/articles/{article.pk}/"
    etag = client.get(url)["ETag"]

    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    store = core.runtime().store
    monkeypatch.setattr(type(store), "fetch", broken)
    monkeypatch.setattr(type(store), "set", broken)
    for _ in range(2):
        response = client.get(url, HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 200
        assert client.get("/listing/").status_code == 200
    assert RENDERS["listing"] == 2


@pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="points a Redis cache at a closed port")
def test_an_unreachable_redis_serves_normal_responses(client, settings):
    article = ArticleFactory()
    from tests.test_breaker import free_port

    location = f"redis://127.0.0.1:{free_port()}/0"
    options = {"socket_connect_timeout": 0.2} if CACHE == "redis" else {"SOCKET_CONNECT_TIMEOUT": 0.2}
    with override_settings(
        CACHES={"default": {**settings.CACHES["default"], "LOCATION": location, "OPTIONS": options}}
    ):
        for _ in range(2):
            response = client.get(f"/articles/{article.pk}/")
            assert response.status_code == 200
            assert not response.has_header("ETag")
            assert client.get("/listing/").status_code == 200
    assert RENDERS["listing"] == 2


def test_disabled_cache_sets_no_validators(client, settings):
    article = ArticleFactory()
    settings.CACHEKIT = {**settings.CACHEKIT, "ENABLED": False}
    assert not client.get(f"/articles/{article.pk}/").has_header("ETag")


def test_async_conditional_view(django_assert_num_queries):
    article = ArticleFactory(title="Async")
    client = AsyncClient()
    url = f"/async/articles/{article.pk}/"
    first = async_to_sync(client.get)(url)
    assert first.status_code == 200 and first.content == b"Async"
    with django_assert_num_queries(0):
        second = async_to_sync(client.get)(url, headers={"If-None-Match": first["ETag"]})
    assert second.status_code == 304
    assert RENDERS["async_detail"] == 1
    article.title = "Changed"
    article.save()
    third = async_to_sync(client.get)(url, headers={"If-None-Match": first["ETag"]})
    assert third.status_code == 200 and third.content == b"Changed"


# -- cache_response ------------------------------------------------------------------------


def test_a_hit_runs_no_sql_and_a_write_retires_it(client, django_assert_num_queries):
    ArticleFactory(title="One")
    first = client.get("/listing/?page=1")
    assert first.content == b"One|page=1"
    with django_assert_num_queries(0):
        second = client.get("/listing/?page=1")
    assert second.content == first.content
    assert second["Content-Type"] == first["Content-Type"]
    assert RENDERS["listing"] == 1
    ArticleFactory(title="Two")
    assert client.get("/listing/?page=1").content == b"One,Two|page=1"
    assert RENDERS["listing"] == 2
    Article.objects.filter(title="One").update(title="Uno")
    assert client.get("/listing/?page=1").content == b"Uno,Two|page=1"


def test_cache_headers_over_a_cached_conditional_response(client, django_assert_num_queries):
    ArticleFactory(title="One")
    first = client.get("/public-cached-conditional/")
    with django_assert_num_queries(0):
        second = client.get("/public-cached-conditional/")
    assert RENDERS["public_cached_conditional"] == 1
    for response in (first, second):
        assert {d.strip() for d in response["Cache-Control"].split(",")} == {"public", "max-age=60"}
    assert second["ETag"] == first["ETag"]


def test_an_unreadable_response_entry_is_a_miss(client, monkeypatch, caplog):
    ArticleFactory(title="One")
    seen = []
    real = core.lookup

    def spy(key, tags, namespace, *args, **kwargs):
        found = real(key, tags, namespace, *args, **kwargs)
        seen.append((key, tuple(tags), found[2]))
        return found

    monkeypatch.setattr(core, "lookup", spy)
    client.get("/listing/")
    key, tags, versions = seen[-1]
    # A valid stamp around a payload of another shape (as an older release might have stored).
    core.store(key, tags, versions, ((), {(): (200, None, [], b"old shape")}), 60, "test")
    with caplog.at_level("WARNING", logger="django_cachekit"):
        assert client.get("/listing/").content == b"One|"
    assert "unreadable response entry" in caplog.text
    assert RENDERS["listing"] == 2
    assert client.get("/listing/").content == b"One|"
    assert RENDERS["listing"] == 2  # stored again, in the right shape


def test_the_query_string_is_part_of_the_key(client):
    ArticleFactory(title="One")
    assert client.get("/listing/?page=1").content.endswith(b"page=1")
    assert client.get("/listing/?page=2").content.endswith(b"page=2")
    assert client.get("/listing/?page=1").content.endswith(b"page=1")
    assert RENDERS["listing"] == 2


def test_tags_retire_a_response(client):
    ArticleFactory(title="One")
    client.get("/tagged-listing/")
    client.get("/tagged-listing/")
    assert RENDERS["tagged_listing"] == 1
    invalidate_tags("listing")
    client.get("/tagged-listing/")
    assert RENDERS["tagged_listing"] == 2


def test_head_is_answered_from_the_get_entry(client, django_assert_num_queries):
    ArticleFactory(title="One")
    head = client.head("/listing/")
    assert head.status_code == 200 and head.content == b""
    client.get("/listing/")
    assert RENDERS["listing"] == 2  # the HEAD response was not stored
    with django_assert_num_queries(0):
        head = client.head("/listing/")
    assert head.status_code == 200 and head.content == b""
    assert RENDERS["listing"] == 2


def test_a_write_during_the_render_leaves_no_stale_entry(client, monkeypatch):
    article = ArticleFactory(title="Old")
    real = httpviews.titles

    def titles_then_write():
        seen = real()
        Article.objects.filter(pk=article.pk).update(title="New")  # another writer, after the read
        return seen

    monkeypatch.setattr(httpviews, "titles", titles_then_write)
    assert client.get("/listing/").content == b"Old|"
    monkeypatch.setattr(httpviews, "titles", real)
    assert client.get("/listing/").content == b"New|"
    assert RENDERS["listing"] == 2


def test_inside_a_transaction_that_wrote_the_response_is_neither_read_nor_stored(client):
    ArticleFactory(title="One")
    client.get("/listing/")
    with transaction.atomic():
        Article.objects.filter(title="One").update(title="Mine")
        assert client.get("/listing/").content == b"Mine|"
    assert client.get("/listing/").content == b"Mine|"
    assert RENDERS["listing"] == 3


@pytest.mark.parametrize(
    "url",
    [
        "/sets-cookie/",
        "/private/",
        "/no-store/",
        "/vary-cookie/",
        "/csrf/",
        "/streaming/",
        "/missing/",
        "/with-message/",
    ],
)
def test_responses_that_must_not_be_shared_are_not_stored(client, url):
    ArticleFactory()
    for _ in range(3):
        response = client.get(url)
        if not response.streaming:
            response.content  # noqa: B018
    name = {"/csrf/": "csrf_page", "/missing/": "missing"}.get(url, url.strip("/").replace("-", "_"))
    assert RENDERS[name] == 3


def test_post_is_never_answered_from_the_cache(client):
    ArticleFactory()
    client.get("/post/")
    client.post("/post/")
    client.post("/post/")
    assert RENDERS["post_view"] == 3


def test_a_page_that_reads_the_session_is_not_stored():
    ArticleFactory()
    ada, bob = login("ada"), login("bob")
    assert ada.get("/session/").content.startswith(b"ada:")
    assert bob.get("/session/").content.startswith(b"bob:")
    assert ada.get("/session/").content.startswith(b"ada:")
    assert RENDERS["session_page"] == 3


def test_vary_on_cookie_keys_the_entry_by_cookie():
    ArticleFactory(title="T")
    dark, light = Client(), Client()
    dark.cookies["theme"] = "dark"
    for _ in range(2):
        assert dark.get("/vary-cookie-keyed/").content == b"dark:T"
        assert light.get("/vary-cookie-keyed/").content == b"light:T"
    assert RENDERS["vary_cookie_keyed"] == 2
    assert "Cookie" in dark.get("/vary-cookie-keyed/")["Vary"]


def test_the_responses_vary_headers_choose_the_variant(client):
    ArticleFactory(title="T")
    for _ in range(2):
        assert client.get("/languages/", HTTP_ACCEPT_LANGUAGE="fr").content == b"fr:T"
        assert client.get("/languages/", HTTP_ACCEPT_LANGUAGE="en").content == b"en:T"
        assert client.get("/languages/").content == b"-:T"
    assert RENDERS["languages"] == 3
    ArticleFactory(title="U")
    assert client.get("/languages/", HTTP_ACCEPT_LANGUAGE="en").content == b"en:T,U"


def test_an_entry_keeps_the_latest_variants(client, django_assert_num_queries):
    ArticleFactory(title="T")
    languages = [f"l{i}" for i in range(10)]
    for language in languages:
        client.get("/languages/", HTTP_ACCEPT_LANGUAGE=language)
    assert RENDERS["languages"] == 10
    with django_assert_num_queries(0):
        for language in languages[-8:]:
            assert client.get("/languages/", HTTP_ACCEPT_LANGUAGE=language).content == f"{language}:T".encode()
    assert RENDERS["languages"] == 10
    assert client.get("/languages/", HTTP_ACCEPT_LANGUAGE="l0").content == b"l0:T"
    assert RENDERS["languages"] == 11  # the oldest variant made room


def test_x_forwarded_host_is_ignored(client, django_assert_num_queries):
    # Not honoured by Django here (USE_X_FORWARDED_HOST is off), so not part of the key:
    # it neither splits the cache nor poisons it.
    first = client.get("/host/", HTTP_X_FORWARDED_HOST="evil.example")
    assert first.content == b"http://testserver/host/"
    with django_assert_num_queries(0):
        assert client.get("/host/").content == b"http://testserver/host/"
        assert client.get("/host/", HTTP_X_FORWARDED_HOST="other.example").content == b"http://testserver/host/"
    assert RENDERS["host"] == 1


def test_vary_on_host_keys_by_the_host_django_uses(client, settings):
    settings.USE_X_FORWARDED_HOST = True
    settings.ALLOWED_HOSTS = ["testserver", "mirror.example"]
    for _ in range(2):
        assert client.get("/host-keyed/").content == b"http://testserver/host-keyed/"
        response = client.get("/host-keyed/", HTTP_X_FORWARDED_HOST="mirror.example")
        assert response.content == b"http://mirror.example/host-keyed/"
    assert RENDERS["host_keyed"] == 2
    assert client.get("/host-keyed/", HTTP_X_FORWARDED_HOST="evil.example").status_code == 400


def test_two_users_never_see_each_others_page():
    ArticleFactory(title="T")
    users = ["ada", "bob", "cy", "dee"]
    clients = {name: login(name) for name in users}
    clients["anonymous"] = Client()
    errors = []
    start = threading.Barrier(len(clients))

    def browse(name, browser):
        try:
            start.wait()
            etag = None
            for i in range(25):
                headers = {"HTTP_IF_NONE_MATCH": etag} if etag and i % 2 else {}
                response = browser.get("/whoami/", **headers)
                if response.status_code == 200:
                    if not response.content.startswith(f"{name}:".encode()):
                        errors.append((name, response.content))
                    etag = response["ETag"]
                elif response.status_code != 304:
                    errors.append((name, response.status_code))
                for other, other_client in clients.items():
                    if other != name and response.has_header("ETag") and i == 3:
                        # Another user's ETag never earns a 304.
                        stolen = other_client.get("/whoami/", HTTP_IF_NONE_MATCH=response["ETag"])
                        if stolen.status_code != 200 or not stolen.content.startswith(f"{other}:".encode()):
                            errors.append((other, "got", name, stolen.status_code, stolen.content))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append((name, repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=browse, args=item) for item in clients.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    # Cached per user: far fewer renders than requests.
    assert RENDERS["whoami"] < 5 * 25


def test_async_cache_response(django_assert_num_queries):
    ArticleFactory(title="One")
    client = AsyncClient()
    assert async_to_sync(client.get)("/async/listing/").content == b"One"
    with django_assert_num_queries(0):
        assert async_to_sync(client.get)("/async/listing/").content == b"One"
    assert RENDERS["async_listing"] == 1
    ArticleFactory(title="Two")
    assert async_to_sync(client.get)("/async/listing/").content == b"One,Two"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depends_on": [Article], "timeout": 0}, "timeout must be a positive number of seconds or None, not 0"),
        ({"depends_on": [Article], "timeout": "60"}, "not '60'"),
        ({}, "needs depends_on or tags"),
        ({"depends_on": [Article], "vary_on": ["*"]}, "cannot hold"),
        ({"depends_on": [Article], "vary_on": ["Accept Language"]}, "not 'Accept Language'"),
        ({"depends_on": [object]}, "concrete model class"),
        ({"depends_on": Article}, "depends_on must be a list"),
        ({"tags": [""]}, "non-empty string"),
    ],
)
def test_cache_response_refuses_bad_arguments_when_decorating(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        cache_response(**kwargs)


def test_a_cache_response_without_its_tables_in_depends_on_is_reported(client, caplog):
    AuthorFactory(name="Solo")

    @cache_response(depends_on=[Article])
    def authors(request):
        return HttpResponse(",".join(Author.objects.values_list("name", flat=True)))

    with caplog.at_level("WARNING", logger="django_cachekit"):
        authors(RequestFactory().get("/authors/"))
    assert "read the table testapp_author" in caplog.text
