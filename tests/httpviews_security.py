"""cache_response views for tests/test_response_security.py, and their URLs (its ROOT_URLCONF):
pages that must not be stored or shared, and keys that must not be poisoned."""

from collections import Counter

from django.contrib.auth.models import User
from django.http import HttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views.generic import TemplateView

from django_cachekit.http.decorators import cache_headers, cache_response
from tests.testapp.models import Article

RENDERS: Counter = Counter()

# Templates for the TemplateView pages, through the locmem loader (see the tests' settings fixture).
TEMPLATES = {
    "titles.html": "{% for a in articles %}{{ a.title }}{% endfor %}",
    "greeting.html": "hello {{ user.username|default:'anonymous' }}",
}


class TokenMiddleware:
    """Reads an API token from the Authorization header before the view, as token auth does."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        request.token_user = header.removeprefix("Token ") if header.startswith("Token ") else None
        return self.get_response(request)


def titles():
    return ",".join(Article.objects.order_by("pk").values_list("title", flat=True))


# -- credentials ---------------------------------------------------------------------------


@cache_response(depends_on=[Article])
def account(request, rest):
    RENDERS["account"] += 1
    return HttpResponse(f"account of {request.token_user or 'anonymous'}")


@cache_headers(private=True)  # the README's order: marked private after cache_response stored it
@cache_response(depends_on=[Article])
def private_outside(request):
    RENDERS["private_outside"] += 1
    return HttpResponse(f"account of {request.token_user or 'anonymous'}")


@cache_response(depends_on=[Article], vary_on=["Authorization"])
def token_keyed(request):
    RENDERS["token_keyed"] += 1
    return HttpResponse(f"account of {request.token_user or 'anonymous'}")


@cache_response(depends_on=[Article])
def plain(request):
    RENDERS["plain"] += 1
    return HttpResponse(titles())


@cache_response(depends_on=[Article])
def cookie_reader(request):
    RENDERS["cookie_reader"] += 1
    return HttpResponse(f"hello {request.COOKIES.get('token', 'anonymous')}")


@cache_response(depends_on=[Article])
def cookie_lister(request):
    RENDERS["cookie_lister"] += 1
    return HttpResponse(f"cookies {sorted(request.COOKIES.items())}")


@cache_response(depends_on=[Article, User], vary_on=["Cookie"])
def cookie_keyed(request):
    RENDERS["cookie_keyed"] += 1
    user = request.user.username if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"{user} {request.COOKIES.get('theme', 'light')}")


@cache_response(depends_on=[Article], vary_on=["Cookie"])
def cookie_keyed_plain(request):
    RENDERS["cookie_keyed_plain"] += 1
    return HttpResponse(titles())


@cache_headers(public=True, s_maxage=60)
@cache_response(depends_on=[Article], vary_on=["Cookie"])
def public_per_user(request):
    RENDERS["public_per_user"] += 1
    return HttpResponse(titles())


# -- Set-Cookie ----------------------------------------------------------------------------


@cache_response(depends_on=[Article])
def raw_cookie(request):
    RENDERS["raw_cookie"] += 1
    response = HttpResponse(titles())
    response.headers["Set-Cookie"] = "sid=secret; Path=/"
    return response


@cache_response(depends_on=[Article])
def raw_cookie_no_cache(request):
    RENDERS["raw_cookie_no_cache"] += 1
    response = HttpResponse(titles())
    response.headers["Cache-Control"] = 'no-cache="Set-Cookie"'
    response.headers["set-cookie"] = "sid=secret; Path=/"
    return response


# -- poisoning -----------------------------------------------------------------------------


@cache_response(depends_on=[Article])
def absolute(request):
    RENDERS["absolute"] += 1
    return HttpResponse(request.build_absolute_uri("/next/"))


# -- bounds --------------------------------------------------------------------------------


@cache_response(depends_on=[Article], query_params=["q", "page"])
def search(request):
    RENDERS["search"] += 1
    return HttpResponse(f"{request.GET.get('q')}:{request.GET.get('page')}:{titles()}")


@cache_response(depends_on=[Article], max_variants=3)
def bounded(request):
    RENDERS["bounded"] += 1
    return HttpResponse(f"{request.GET.urlencode()}:{titles()}")


# -- rendering -----------------------------------------------------------------------------


@method_decorator(cache_response(depends_on=[Article]), name="dispatch")
class TitlesView(TemplateView):
    template_name = "titles.html"

    def get_context_data(self, **kwargs):
        RENDERS["titles_view"] += 1
        return {**super().get_context_data(**kwargs), "articles": Article.objects.order_by("pk")}


@method_decorator(cache_response(depends_on=[Article]), name="dispatch")
class GreetingView(TemplateView):
    template_name = "greeting.html"  # reads the user while rendering, after the view returned

    def get_context_data(self, **kwargs):
        RENDERS["greeting_view"] += 1
        return {**super().get_context_data(**kwargs), "user": self.request.user}


# -- headers Django's cache got wrong ------------------------------------------------------


def _with_headers(name, headers):
    @cache_response(depends_on=[Article])
    def view(request):
        RENDERS[name] += 1
        response = HttpResponse(titles())
        for header, value in headers.items():
            response.headers[header] = value
        return response

    view.__name__ = view.__qualname__ = name
    return view


HEADER_CASES = {
    "vary_star": {"Vary": "*"},
    "vary_star_padded": {"Vary": " Accept-Language , * "},
    "private_title": {"Cache-Control": "Private"},
    "private_upper": {"Cache-Control": "PRIVATE, max-age=60"},
    "no_store_upper": {"Cache-Control": "max-age=60, NO-STORE"},
    "no_store_mixed": {"Cache-Control": "No-Store"},
    "vary_cookie_padded": {"Vary": " Cookie ,accept-language"},
}
HEADER_VIEWS = {name: _with_headers(name, headers) for name, headers in HEADER_CASES.items()}


@cache_response(depends_on=[Article])
def vary_padded(request):
    RENDERS["vary_padded"] += 1
    response = HttpResponse(f"{request.headers.get('Accept-Language', '-')}:{request.headers.get('X-Variant', '-')}")
    response.headers["Vary"] = " ACCEPT-LANGUAGE ,x-variant"
    return response


urlpatterns = [
    path("account/<path:rest>", account),
    path("private-outside/", private_outside),
    path("token-keyed/", token_keyed),
    path("plain/", plain),
    path("cookie-reader/", cookie_reader),
    path("cookie-lister/", cookie_lister),
    path("cookie-keyed/", cookie_keyed),
    path("cookie-keyed-plain/", cookie_keyed_plain),
    path("public-per-user/", public_per_user),
    path("raw-cookie/", raw_cookie),
    path("raw-cookie-no-cache/", raw_cookie_no_cache),
    path("absolute/", absolute),
    path("search/", search),
    path("bounded/", bounded),
    path("titles-view/", TitlesView.as_view()),
    path("greeting-view/", GreetingView.as_view()),
    path("vary-padded/", vary_padded),
    *(path(f"headers/{name}/", view) for name, view in HEADER_VIEWS.items()),
]
