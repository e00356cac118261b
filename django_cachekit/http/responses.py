"""What the HTTP decorators need from the cache: validators derived from tag
versions, Last-Modified times recorded per version digest, and responses
frozen into cache entries.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import has_vary_header
from django.utils.crypto import salted_hmac

from django_cachekit.core import keys, protocol
from django_cachekit.core.settings import conf

logger = logging.getLogger("django_cachekit")

# Request headers that carry who is asking: a response that varies on them is personal.
CREDENTIAL_HEADERS = frozenset({"cookie", "authorization"})
_COMMA = re.compile(r"\s*,\s*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Variants kept in one response entry (one per combination of the values of the
# headers the response varies on), newest last.
MAX_VARIANTS = 8
# Seconds a claim on a second (see last_modified) is kept.
CLAIM_TIMEOUT = 300
# Part of every response entry's key: bump it when the shape of an entry changes.
ENTRY_FORMAT = 1


def header_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise ValueError(f"{what} takes HTTP header names, not {value!r}.")
    return value


def header_names(values: Any, what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = (values,)
    try:
        items = list(values)
    except TypeError:
        raise ValueError(f"{what} takes a list of HTTP header names, not {values!r}.") from None
    return tuple(dict.fromkeys(header_name(v, what) for v in items))


def identity(request: HttpRequest) -> str:
    """A keyed digest of the credentials a request carries (its session cookie and
    Authorization header), or ``""`` for a request that carries none."""
    session = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    authorization = request.META.get("HTTP_AUTHORIZATION")
    if not session and not authorization:
        return ""
    material = f"{session or ''}\n{authorization or ''}"
    return salted_hmac("django_cachekit.identity", material, algorithm="sha256").hexdigest()[:32]


def vary_headers(response: HttpResponseBase) -> tuple[str, ...]:
    """The lower-cased header names of the response's Vary, in order."""
    if not response.has_header("Vary"):
        return ()
    return tuple(dict.fromkeys(h.strip().lower() for h in _COMMA.split(response.headers["Vary"]) if h.strip()))


def varies_on_credentials(response: HttpResponseBase) -> bool:
    return any(has_vary_header(response, h) for h in ("Cookie", "Authorization", "*"))


def sets_cookie(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether the response will carry a Set-Cookie, from the view or from
    Django's session and CSRF middleware once the view has returned."""
    if response.cookies:
        return True
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "modified", False):
        return True
    return bool(request.META.get("CSRF_COOKIE_NEEDS_UPDATE"))


def cache_control(response: HttpResponseBase) -> set[str]:
    value = response.headers.get("Cache-Control", "")
    return {d.strip().split("=", 1)[0].strip().lower() for d in _COMMA.split(value) if d.strip()}


# -- validators -------------------------------------------------------------------------


def digests(view: str, tags: Sequence[str], versions: protocol.Versions, who: str) -> tuple[str, str]:
    """``(scope, digest)``: the scope names what is validated (the view, the tags
    and who asks); the digest adds the tags' current versions."""
    scope = keys.digest(keys.exact((conf.VERSION, view, tuple(tags), who)))
    return scope, keys.digest(keys.exact((scope, tuple(versions[t] for t in tags))))


def last_modified(scope: str, digest: str, read_started: float, read_ended: float) -> int | None:
    """Last-Modified, in whole seconds, of the content whose versions hash to ``digest``.

    It is the second in which these versions were first read, recorded with
    ``add`` so every process agrees and later reads keep it. Two digests of one
    scope never share a second: each second is claimed once per scope, and a
    digest whose second is taken gets no Last-Modified until a request in a
    later second records one (its ETag works meanwhile). The recorded second is
    the one in which the version read was served, so a newer digest never gets
    an earlier time than an older one.
    """
    rt = protocol.runtime()
    if not rt.breaker.allow():
        return None
    cache = rt.store.cache
    record, high = keys.last_modified_keys(scope, digest)
    ok, found = rt.call(cache.get_many, [record, high])
    if not ok or found is None:
        return None
    value = found.get(record)
    if isinstance(value, int):
        return value
    second = int(read_started)
    if int(read_ended) != second:
        return None  # the read straddled two seconds: leave it to a later request
    previous = found.get(high)
    if isinstance(previous, int) and second <= previous:
        return None  # this second (or a later one) is already another digest's
    # A lost record is recorded again at a later second, which is safe: records
    # live as long as entries, claims only as long as clocks may disagree.
    timeout = conf.TIMEOUT or conf.TAG_TIMEOUT
    claim = keys.last_modified_claim(scope, second)
    ok, added = rt.call(cache.add, claim, digest, CLAIM_TIMEOUT)
    if ok and not added:
        ok, holder = rt.call(cache.get, claim)
        added = holder == digest
    if not ok or not added:
        return None
    ok, added = rt.call(cache.add, record, second, timeout)
    if not ok:
        return None
    if not added:  # recorded meanwhile by another request for the same digest
        ok, value = rt.call(cache.get, record)
        return value if ok and isinstance(value, int) else None
    rt.call(cache.set, high, second, timeout)
    return second


def now() -> float:
    return time.time()


# -- stored responses -------------------------------------------------------------------


def not_stored_because(request: HttpRequest, response: HttpResponseBase, vary_on: Iterable[str]) -> str | None:
    """Why ``response`` must not be shared with other requests, or None."""
    keyed = {h.lower() for h in vary_on}
    if response.status_code != 200:
        return f"status {response.status_code}"
    if response.streaming:
        return "a streaming response"
    if not isinstance(response, HttpResponse):
        return f"a {type(response).__name__}"
    if sets_cookie(request, response):
        return "it sets a cookie"
    directives = cache_control(response)
    if "no-store" in directives:
        return "Cache-Control: no-store"
    # A private response may be kept for the one user whose credentials are in its key.
    credentials = keyed & CREDENTIAL_HEADERS
    if "private" in directives and not any(request.headers.get(h) for h in credentials):
        return "Cache-Control: private"
    vary = set(vary_headers(response))
    if "*" in vary:
        return "Vary: *"
    personal = (vary & CREDENTIAL_HEADERS) - keyed
    if personal:
        return f"Vary: {', '.join(sorted(personal))} without vary_on"
    session = getattr(request, "session", None)
    if session is not None and getattr(session, "accessed", False) and "cookie" not in keyed:
        return "the view read the session (the response varies on Cookie)"
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return "the view used a CSRF token"
    storage = getattr(request, "_messages", None)
    if storage is not None and (
        getattr(storage, "added_new", False) or (getattr(storage, "used", False) and len(storage))
    ):
        return "the view showed messages"
    return None


Frozen = tuple[int, "str | None", list[tuple[str, str]], bytes, dict[str, Any]]


def freeze(response: HttpResponse, marks: Sequence[str] = ()) -> Frozen:
    """A response as a cache entry holds it; ``marks`` are attributes to keep."""
    reason = response.reason_phrase if response._reason_phrase is not None else None  # type: ignore[attr-defined]
    kept = {name: getattr(response, name) for name in marks if hasattr(response, name)}
    return response.status_code, reason, list(response.items()), response.content, kept


def thaw(frozen: Frozen) -> HttpResponse:
    status, reason, headers, content, kept = frozen
    response = HttpResponse(content, status=status, reason=reason)
    for name, value in headers:
        response.headers[name] = value
    for name, value in kept.items():
        setattr(response, name, value)
    return response


def variant(request: HttpRequest, vary: Sequence[str]) -> tuple[str | None, ...]:
    """The request's values of the headers a response varies on."""
    return tuple(request_header(request, h) for h in vary)


def request_header(request: HttpRequest, name: str) -> str | None:
    if name.lower() == "host":
        return request.get_host()
    return request.headers.get(name)
