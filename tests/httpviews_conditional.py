"""Views for tests/test_conditional_security.py (its ROOT_URLCONF): pages whose validators must
never earn one identity a 304 on another's page, and headers a shared cache must not misread."""

from collections import Counter

from django.http import HttpResponse
from django.urls import path
from django.utils.cache import patch_vary_headers

from django_cachekit.http.decorators import cache_headers, conditional
from tests.testapp.models import Article

RENDERS: Counter = Counter()


def titles():
    return ",".join(Article.objects.order_by("pk").values_list("title", flat=True))


def who(request):
    authorization = request.headers.get("Authorization")
    if authorization:
        return authorization
    return request.user.username if request.user.is_authenticated else "anonymous"


# -- per_user=False pages that turn out personal ------------------------------------------------


@conditional(depends_on=[Article], per_user=False)
def marked_private(request, spelling):
    # Reads the user through the Authorization header or the user id kept in the view: no session access.
    RENDERS["marked_private"] += 1
    response = HttpResponse(f"{who(request)}: {titles()}")
    response.headers["Cache-Control"] = spelling
    return response


@conditional(depends_on=[Article], per_user=False)
def sets_cookie(request):
    RENDERS["sets_cookie"] += 1
    response = HttpResponse(f"{request.headers.get('Authorization', '-')}: {titles()}")
    response.set_cookie("greeting", "hello")
    return response


@conditional(depends_on=[Article], per_user=False)
def padded_vary(request):
    RENDERS["padded_vary"] += 1
    response = HttpResponse(f"{request.headers.get('Authorization', '-')}: {titles()}")
    response.headers["Vary"] = " Authorization , Accept-Language "
    return response


@conditional(depends_on=[Article], per_user=False)
def vary_star(request):
    RENDERS["vary_star"] += 1
    response = HttpResponse(titles())
    response.headers["Vary"] = "*"
    return response


# -- per_user=True pages --------------------------------------------------------------------------


@conditional(depends_on=[Article])
def personal(request):
    RENDERS["personal"] += 1
    return HttpResponse(f"{who(request)}: {titles()}")


@conditional(depends_on=[Article])
def languages(request):
    RENDERS["languages"] += 1
    response = HttpResponse(f"{request.headers.get('Accept-Language', '-')}: {titles()}")
    patch_vary_headers(response, ["Accept-Language"])
    response.headers["Cache-Control"] = "max-age=30"
    return response


@cache_headers(public=True, max_age=60)
@conditional(depends_on=[Article])
def public_personal(request):
    RENDERS["public_personal"] += 1
    return HttpResponse(f"{who(request)}: {titles()}")


# -- cache_headers --------------------------------------------------------------------------------


@cache_headers(public=True, max_age=60)
def public_over_private(request, spelling):
    response = HttpResponse("mine")
    response.headers["Cache-Control"] = spelling
    return response


@cache_headers(public=True, s_maxage=60)
def public_over_vary_star(request):
    response = HttpResponse("each time different")
    response.headers["Vary"] = "*"
    return response


@cache_headers(public=True, max_age=60, vary=["*"])
def public_varying_on_star(request):
    return HttpResponse("each time different")


@cache_headers(max_age=60, vary=["cookie", "Accept-Language", "Accept-Encoding"])
def vary_over_padded(request):
    response = HttpResponse("padded")
    response.headers["Vary"] = " Cookie , accept-language "
    return response


@cache_headers(public=True, max_age=60)
def public_page(request):
    return HttpResponse(f"for {request.headers.get('Authorization', 'everyone')}")


@conditional(depends_on=[Article])
def starts_session(request):
    RENDERS["starts_session"] += 1
    request.session["seen"] = True  # a new session: the middleware sets its cookie after the view
    return HttpResponse(titles())


urlpatterns = [
    path("starts-session/", starts_session),
    path("marked-private/<str:spelling>/", marked_private),
    path("sets-cookie/", sets_cookie),
    path("padded-vary/", padded_vary),
    path("vary-star/", vary_star),
    path("personal/", personal),
    path("languages/", languages),
    path("public-personal/", public_personal),
    path("headers/private/<str:spelling>/", public_over_private),
    path("headers/vary-star/", public_over_vary_star),
    path("headers/vary-on-star/", public_varying_on_star),
    path("headers/padded/", vary_over_padded),
    path("headers/public/", public_page),
]
