"""Views decorated with django_cachekit.decorators, and their URLs (ROOT_URLCONF for tests/test_decorators.py)."""

from collections import Counter

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.urls import path
from django.utils.cache import patch_vary_headers

from django_cachekit.http.decorators import cache_headers, cache_response, conditional
from tests.testapp.models import Article, Author

RENDERS: Counter = Counter()


def titles():
    return ",".join(Article.objects.order_by("pk").values_list("title", flat=True))


def user_name(request):
    return request.user.username if request.user.is_authenticated else "anonymous"


# -- conditional -------------------------------------------------------------------------


@conditional(Article)
def detail(request, pk):
    RENDERS["detail"] += 1
    try:
        article = Article.objects.get(pk=pk)
    except Article.DoesNotExist:
        raise Http404("no such article") from None
    return HttpResponse(f"{article.title} by {Author.objects.get(pk=article.author_id).name}")


@conditional(Article, depends_on=[Author])
def detail_with_author(request, pk):
    RENDERS["detail_with_author"] += 1
    article = Article.objects.select_related("author").get(pk=pk)
    return HttpResponse(f"{article.title} by {article.author.name}")


@conditional(tags=lambda request, name: [f"feed:{name}"])
def feed(request, name):
    RENDERS["feed"] += 1
    return HttpResponse(f"feed {name}")


@conditional(depends_on=[Article])
def personal(request):
    RENDERS["personal"] += 1
    return HttpResponse(f"{user_name(request)}: {titles()}")


@conditional(depends_on=[Article], per_user=False)
def shared(request):
    RENDERS["shared"] += 1
    return HttpResponse(titles())


@conditional(depends_on=[Article], per_user=False)
def shared_but_personal(request):
    # per_user=False, yet the page reads the user: the session middleware adds Vary: Cookie.
    RENDERS["shared_but_personal"] += 1
    return HttpResponse(f"{user_name(request)}: {titles()}")


@cache_headers(public=True, max_age=60)
@conditional(depends_on=[Article])
def public_conditional(request):
    RENDERS["public_conditional"] += 1
    return HttpResponse(titles())


# -- cache_response ------------------------------------------------------------------------


@cache_headers(public=True, max_age=60)
@cache_response(depends_on=[Article])
@conditional(depends_on=[Article])
def public_cached_conditional(request):
    RENDERS["public_cached_conditional"] += 1
    return HttpResponse(titles())


@cache_response(depends_on=[Article])
def listing(request):
    RENDERS["listing"] += 1
    return HttpResponse(f"{titles()}|{request.GET.urlencode()}")


@cache_response(tags=["listing"])
def tagged_listing(request):
    RENDERS["tagged_listing"] += 1
    return HttpResponse(titles())


@cache_response(depends_on=[Article])
def host(request):
    RENDERS["host"] += 1
    return HttpResponse(request.build_absolute_uri())


@cache_response(depends_on=[Article], vary_on=["Host"])
def host_keyed(request):
    RENDERS["host_keyed"] += 1
    return HttpResponse(request.build_absolute_uri())


@cache_response(depends_on=[Article])
def languages(request):
    RENDERS["languages"] += 1
    response = HttpResponse(f"{request.headers.get('Accept-Language', '-')}:{titles()}")
    patch_vary_headers(response, ["Accept-Language"])
    return response


@cache_response(depends_on=[Article])
def sets_cookie(request):
    RENDERS["sets_cookie"] += 1
    response = HttpResponse(titles())
    response.set_cookie("seen", "1")
    return response


@cache_response(depends_on=[Article])
@cache_headers(private=True)
def private(request):
    RENDERS["private"] += 1
    return HttpResponse(titles())


@cache_response(depends_on=[Article])
@cache_headers(no_store=True)
def no_store(request):
    RENDERS["no_store"] += 1
    return HttpResponse(titles())


@cache_response(depends_on=[Article])
def vary_cookie(request):
    RENDERS["vary_cookie"] += 1
    response = HttpResponse(f"{request.COOKIES.get('theme', 'light')}:{titles()}")
    patch_vary_headers(response, ["Cookie"])
    return response


@cache_response(depends_on=[Article], vary_on=["Cookie"])
def vary_cookie_keyed(request):
    RENDERS["vary_cookie_keyed"] += 1
    response = HttpResponse(f"{request.COOKIES.get('theme', 'light')}:{titles()}")
    patch_vary_headers(response, ["Cookie"])
    return response


@cache_response(depends_on=[Article])
def session_page(request):
    RENDERS["session_page"] += 1
    return HttpResponse(f"{user_name(request)}: {titles()}")


@cache_response(depends_on=[Article], vary_on=["Cookie"])
@conditional(depends_on=[Article])
def whoami(request):
    RENDERS["whoami"] += 1
    return HttpResponse(f"{user_name(request)}: {titles()}")


@cache_response(depends_on=[Article])
def csrf_page(request):
    RENDERS["csrf_page"] += 1
    return HttpResponse(f"<input name=csrfmiddlewaretoken value={get_token(request)}>")


@cache_response(depends_on=[Article])
def with_message(request):
    RENDERS["with_message"] += 1
    messages.info(request, "Saved.")
    return HttpResponse(titles())


@cache_response(depends_on=[Article])
def streaming(request):
    RENDERS["streaming"] += 1
    return StreamingHttpResponse(iter([titles()]))


@cache_response(depends_on=[Article])
def missing(request):
    RENDERS["missing"] += 1
    Article.objects.count()
    return HttpResponse("nothing here", status=404)


@cache_response(depends_on=[Article])
def post_view(request):
    RENDERS["post_view"] += 1
    return HttpResponse(titles())


# -- cache_headers ---------------------------------------------------------------------------


@cache_headers(public=True, max_age=60, s_maxage=300, stale_while_revalidate=30, stale_if_error=600)
def public_page(request):
    return HttpResponse("public")


@cache_headers(max_age=60, vary=["Accept-Language"])
def vary_merge(request):
    response = HttpResponse("merged")
    patch_vary_headers(response, ["Cookie"])
    return response


@cache_headers(public=True, s_maxage=120)
def public_with_cookie(request):
    response = HttpResponse("cookie")
    response.set_cookie("flavour", "oat")
    return response


@cache_headers(public=True, max_age=60)
def public_with_session(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse("session")


@cache_headers(public=True, max_age=60)
def public_error(request):
    return HttpResponse("boom", status=503)


@cache_headers(no_store=True)
def no_store_page(request):
    return HttpResponse("secret")


# -- async -----------------------------------------------------------------------------------


@conditional(Article)
async def async_detail(request, pk):
    RENDERS["async_detail"] += 1
    article = await Article.objects.aget(pk=pk)
    return HttpResponse(article.title)


@cache_response(depends_on=[Article])
async def async_listing(request):
    RENDERS["async_listing"] += 1
    return HttpResponse(",".join([a.title async for a in Article.objects.order_by("pk")]))


@cache_headers(public=True, max_age=30, vary=["Accept-Language"])
async def async_headers(request):
    return HttpResponse("async")


urlpatterns = [
    path("articles/<int:pk>/", detail),
    path("articles/<int:pk>/with-author/", detail_with_author),
    path("feeds/<str:name>/", feed),
    path("personal/", personal),
    path("shared/", shared),
    path("shared-but-personal/", shared_but_personal),
    path("public-conditional/", public_conditional),
    path("listing/", listing),
    path("public-cached-conditional/", public_cached_conditional),
    path("tagged-listing/", tagged_listing),
    path("host/", host),
    path("host-keyed/", host_keyed),
    path("languages/", languages),
    path("sets-cookie/", sets_cookie),
    path("private/", private),
    path("no-store/", no_store),
    path("vary-cookie/", vary_cookie),
    path("vary-cookie-keyed/", vary_cookie_keyed),
    path("session/", session_page),
    path("whoami/", whoami),
    path("csrf/", csrf_page),
    path("streaming/", streaming),
    path("with-message/", with_message),
    path("missing/", missing),
    path("post/", post_view),
    path("headers/public/", public_page),
    path("headers/vary/", vary_merge),
    path("headers/cookie/", public_with_cookie),
    path("headers/session/", public_with_session),
    path("headers/error/", public_error),
    path("headers/no-store/", no_store_page),
    path("async/articles/<int:pk>/", async_detail),
    path("async/listing/", async_listing),
    path("async/headers/", async_headers),
]
