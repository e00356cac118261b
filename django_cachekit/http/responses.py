"""What the HTTP decorators need from the cache: validators derived from tag
versions, Last-Modified times recorded per validator digest (plain text, at
most one per page and second), and responses frozen into cache entries.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
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
# Seconds at most a Last-Modified record given to a request with credentials is kept.
PERSONAL_TIMEOUT = 900
_SECOND = re.compile(r"[0-9]{1,12}")
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
    """The lower-cased header names of the response's Vary, in order, however
    they are spaced or spelled (``" Cookie , accept-language "``)."""
    if not response.has_header("Vary"):
        return ()
    return tuple(dict.fromkeys(h.strip().lower() for h in _COMMA.split(response.headers["Vary"]) if h.strip()))


def varies_on_credentials(response: HttpResponseBase) -> bool:
    return bool({"*", *CREDENTIAL_HEADERS} & set(vary_headers(response)))


def sets_cookie(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether the response will carry a Set-Cookie: its own (``set_cookie`` or a raw
    header), or one from Django's session and CSRF middleware once the view has returned."""
    if response.cookies or response.has_header("Set-Cookie"):
        return True
    session = getattr(request, "session", None)
    if session is not None and saves_session(request, session):
        return True
    return bool(request.META.get("CSRF_COOKIE_NEEDS_UPDATE"))


def cache_control(response: HttpResponseBase) -> set[str]:
    """The lower-cased directive names of the response's Cache-Control."""
    value = response.headers.get("Cache-Control", "")
    return {d.strip().split("=", 1)[0].strip().lower() for d in _COMMA.split(value) if d.strip()}


# -- validators -------------------------------------------------------------------------


def digests(view: str, tags: Sequence[str], versions: protocol.Versions, who: str) -> tuple[str, str]:
    """``(scope, digest)``: the scope names what is validated (the view, the tags
    and who asks); the digest adds the tags' current versions."""
    scope = page_scope(view, tags, who)
    return scope, keys.digest(keys.exact((scope, tuple(versions[t] for t in tags))))


def page_scope(view: str, tags: Sequence[str], who: str = "") -> str:
    """What is validated, for ``who`` (``""``: for requests without credentials,
    and the page itself, whose seconds every identity's Last-Modified shares)."""
    return keys.digest(keys.exact((conf.VERSION, view, tuple(tags), who)))


def recorded(digests_: Sequence[str]) -> list[int | None]:
    """The Last-Modified second recorded for each digest, None where there is none
    (or the cache cannot say). Nothing is recorded here."""
    rt = protocol.runtime()
    if not digests_ or not rt.breaker.allow():
        return [None] * len(digests_)
    ok, found = rt.call(rt.store.plain_get_many, [keys.last_modified_keys("", d)[0] for d in digests_])
    if not ok or found is None:
        return [None] * len(digests_)
    return [_second(value) for value in found]


def last_modified(page: str, digest: str, personal: bool, read_started: float, read_ended: float) -> int | None:
    """Last-Modified, in whole seconds, of the content whose validators hash to ``digest``.

    It is the second in which these versions were first sent to this identity,
    recorded with ``add`` so every process agrees and later reads keep it. Each
    second of a ``page`` is claimed once, whoever asks: two digests of one page
    (other versions, or another identity's) never share a second, so a date
    identifies one digest, and a page gains at most one record per second
    however many identities ask. A digest whose second is taken gets no
    Last-Modified until a request in a later second records one (its ETag
    works meanwhile). The recorded second is the one in which the version read
    was served, so a newer digest never gets an earlier time than an older one.

    Records are plain decimal text: on Redis they are read raw, never through
    the cache's serializer; anything else found there is no record.
    """
    rt = protocol.runtime()
    if not rt.breaker.allow():
        return None
    store = rt.store
    record, high = keys.last_modified_keys(page, digest)
    ok, found = rt.call(store.plain_get_many, [record, high])
    if not ok or found is None:
        return None
    value = _second(found[0])
    if value is not None:
        return value
    second = int(read_started)
    if int(read_ended) != second:
        return None  # the read straddled two seconds: leave it to a later request
    previous = _second(found[1])
    if previous is not None and second <= previous:
        return None  # this second (or a later one) is already another digest's
    # A lost record is recorded again at a later second, which is safe: records
    # live as long as entries (an identity's a short while: it may never come back),
    # claims only as long as clocks may disagree.
    timeout = conf.TIMEOUT or conf.TAG_TIMEOUT
    claim = keys.last_modified_claim(page, second)
    ok, added = rt.call(store.plain_add, claim, digest, CLAIM_TIMEOUT)
    if ok and not added:
        ok, holders = rt.call(store.plain_get_many, [claim])
        added = holders == [digest]
    if not ok or not added:
        return None
    ok, added = rt.call(store.plain_add, record, str(second), min(timeout, PERSONAL_TIMEOUT) if personal else timeout)
    if not ok:
        return None
    if not added:  # recorded meanwhile by another request for the same digest
        ok, again = rt.call(store.plain_get_many, [record])
        return _second(again[0]) if again else None
    rt.call(store.plain_set, high, str(second), timeout)
    return second


def _second(value: str | None) -> int | None:
    if value is None or not _SECOND.fullmatch(value):
        return None
    return int(value)


def now() -> float:
    return time.time()


# -- stored responses -------------------------------------------------------------------


def unkeyed_credentials(request: HttpRequest, keyed: Collection[str]) -> str | None:
    """Why a request must be served by the view alone: it carries credentials (an
    Authorization header, a session cookie) that the key does not hold, or None.

    Decided from the request, never from the response: a middleware may have
    read the credentials before the view, and a decorator outside may mark the
    response private only after it was stored.
    """
    if "authorization" not in keyed and "HTTP_AUTHORIZATION" in request.META:
        return "the request carries an Authorization header"
    if "cookie" not in keyed and dict.__contains__(request.COOKIES, settings.SESSION_COOKIE_NAME):
        return "the request carries a session cookie"
    return None


def keyed_credentials(request: HttpRequest, keyed: Collection[str]) -> bool:
    """Whether the key holds credentials the request carries (so the entry is one user's)."""
    if "authorization" in keyed and request.META.get("HTTP_AUTHORIZATION"):
        return True
    return "cookie" in keyed and bool(cookie(request, settings.SESSION_COOKIE_NAME))


def not_stored_because(
    request: HttpRequest, response: HttpResponseBase, vary_on: Iterable[str], cookies_read: Collection[str] = ()
) -> str | None:
    """Why ``response`` must not be shared with other requests, or None.

    ``cookies_read`` are the names of the cookies the view read (``"*"``: all of them).
    """
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
    if "private" in directives and not keyed_credentials(request, keyed):
        return "Cache-Control: private"
    vary = set(vary_headers(response))
    if "*" in vary:
        return "Vary: *"
    personal = (vary & CREDENTIAL_HEADERS) - keyed
    if personal:
        return f"Vary: {', '.join(sorted(personal))} without vary_on"
    unkeyed = unkeyed_cookies(cookies_read, keyed)
    if unkeyed and "cookie" not in keyed:
        return f"the view read the cookies {', '.join(sorted(unkeyed))} (vary_on does not name Cookie)"
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
    headers = [(k, v) for k, v in response.items() if k.lower() != "set-cookie"]
    return response.status_code, reason, headers, response.content, kept


def thaw(frozen: Frozen) -> HttpResponse:
    status, reason, headers, content, kept = frozen
    response = HttpResponse(content, status=status, reason=reason)
    for name, value in headers:
        response.headers[name] = value
    for name, value in kept.items():
        setattr(response, name, value)
    return response


def variant(request: HttpRequest, vary: Sequence[str]) -> tuple[str | None, ...]:
    """The request's values of the headers a response varies on (and of the
    cookies it read, named ``cookie:<name>``)."""
    return tuple(request_header(request, h) for h in vary)


def request_header(request: HttpRequest, name: str) -> str | None:
    lowered = name.lower()
    if lowered == "host":
        return request.get_host()
    if lowered == "cookie":
        # The cookies that tell one visitor from another, not the whole header:
        # shared cookies (a theme, analytics) neither split the entry nor stand for an identity.
        found = [f"{n}={value}" for n in identifying_cookies() if (value := cookie(request, n)) is not None]
        return "; ".join(found) or None
    if lowered == "cookie:*":
        return request.headers.get("Cookie")
    if lowered.startswith("cookie:"):
        return cookie(request, name[len("cookie:") :])
    return request.headers.get(name)


def cookie(request: HttpRequest, name: str) -> str | None:
    """A cookie of the request, read without counting as the view's read."""
    cookies = request.COOKIES
    if isinstance(cookies, TrackedCookies):
        return cookies.untracked(name)
    return cookies.get(name)


def identifying_cookies() -> tuple[str, ...]:
    """The cookies ``vary_on=["Cookie"]`` keys on before the view runs: the session's and the CSRF token's."""
    names = [settings.SESSION_COOKIE_NAME]
    if not settings.CSRF_USE_SESSIONS:
        names.append(settings.CSRF_COOKIE_NAME)
    return tuple(names)


def unkeyed_cookies(read: Collection[str], keyed: Collection[str]) -> set[str]:
    """The cookies read by the view whose values the key does not hold yet.

    The session cookie never counts: a request carrying it is either keyed on
    it (``vary_on=["Cookie"]``) or not cached at all, so every request sharing
    a key has the same value of it.
    """
    known = set(identifying_cookies()) if "cookie" in keyed else {settings.SESSION_COOKIE_NAME}
    return set(read) - known


def cookie_vary(read: Collection[str], keyed: Collection[str]) -> tuple[str, ...]:
    """The variant selectors for the cookies the view read, for an entry keyed on Cookie."""
    unkeyed = unkeyed_cookies(read, keyed)
    if "*" in unkeyed:
        return ("cookie:*",)
    return tuple(f"cookie:{n}" for n in sorted(unkeyed))


class TrackedCookies(dict[str, str]):
    """``request.COOKIES`` while a view runs, recording which cookies it reads
    (``"*"`` when it looks at all of them)."""

    def __init__(self, cookies: dict[str, str]) -> None:
        super().__init__(dict.items(cookies))  # not cookies.items(): that is a read of all of them
        self.read: set[str] = set()
        self.parent = cookies if isinstance(cookies, TrackedCookies) else None

    def note(self, name: str) -> None:
        self.read.add(name)
        if self.parent is not None:
            self.parent.note(name)

    def untracked(self, name: str) -> str | None:
        return super().get(name)

    def __getitem__(self, name: str) -> str:
        self.note(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self.note(name)
        return super().get(name, default)

    def __contains__(self, name: object) -> bool:
        self.note(str(name))
        return super().__contains__(name)

    def __iter__(self) -> Iterator[str]:
        self.note("*")
        return super().__iter__()

    def __len__(self) -> int:
        self.note("*")
        return super().__len__()

    def __eq__(self, other: object) -> bool:
        self.note("*")
        return super().__eq__(other)

    def keys(self) -> Any:
        self.note("*")
        return super().keys()

    def values(self) -> Any:
        self.note("*")
        return super().values()

    def items(self) -> Any:
        self.note("*")
        return super().items()

    def copy(self) -> dict[str, str]:
        self.note("*")
        return dict(super().items())


def track_cookies(request: HttpRequest) -> tuple[dict[str, str], TrackedCookies]:
    """Put a ``TrackedCookies`` in place of ``request.COOKIES``: ``(original, tracker)``."""
    original = request.COOKIES
    tracker = TrackedCookies(original)
    request.COOKIES = tracker
    return original, tracker


def untrack_cookies(request: HttpRequest, original: dict[str, str], tracker: TrackedCookies) -> None:
    if request.COOKIES is tracker:
        request.COOKIES = original


def saves_session(request: HttpRequest, session: Any) -> bool:
    """Whether the session middleware will send the session cookie (or delete it), by its own rule."""
    modified = bool(getattr(session, "modified", False))
    is_empty = getattr(session, "is_empty", None)
    if not callable(is_empty):
        return modified
    if is_empty():
        # The middleware deletes the cookie of a session emptied by the request.
        return dict.__contains__(request.COOKIES, settings.SESSION_COOKIE_NAME)
    return modified or bool(settings.SESSION_SAVE_EVERY_REQUEST)


# -- bounds -----------------------------------------------------------------------------


def admits_variant(view: str, key: str, bound: int | None, window: int) -> bool:
    """Whether the entry ``key`` of ``view`` may be stored under its bound of distinct entries.

    Approximate: distinct keys are counted with a marker per key and a counter
    per view, both living ``window`` seconds (the entries' timeout) from when
    they were first written; a key already counted is always admitted, so at
    most about twice the bound can be alive when the counter restarts.
    """
    if bound is None:
        return True
    rt = protocol.runtime()
    if not rt.breaker.allow():
        return False
    store = rt.store
    counter = f"{conf.KEY_BASE}h:vc:{keys.digest(view)}"
    marker = f"{conf.KEY_BASE}h:vm:{keys.digest(key)}"
    # Plain records, like the Last-Modified ones: never read through the cache's serializer.
    ok, found = rt.call(store.plain_get_many, [counter, marker])
    if not ok or found is None:
        return False
    if found[1] is not None:
        return True
    count = _count(found[0])
    if count is not None and count >= bound:
        return False
    ok, added = rt.call(store.plain_add, marker, "1", window)
    if not ok:
        return False
    if added:
        rt.call(store.plain_incr, counter, window)
    return True


def _count(value: str | None) -> int | None:
    return int(value) if value is not None and _SECOND.fullmatch(value) else None


# -- conditional's checks ---------------------------------------------------------------


def credential_headers(request: HttpRequest) -> tuple[str, ...]:
    """The request headers ``identity`` read a value from: what a response whose
    validators are this identity's varies on."""
    found: list[str] = []
    if request.COOKIES.get(settings.SESSION_COOKIE_NAME):
        found.append("Cookie")
    if request.META.get("HTTP_AUTHORIZATION"):
        found.append("Authorization")
    return tuple(found)


def personal(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether the response is for the identity that asked: marked private (in any
    case), setting a cookie, varying on Cookie, Authorization or ``*``, or drawn
    from the session."""
    session = getattr(request, "session", None)
    return (
        "private" in cache_control(response)
        or sets_cookie(request, response)
        or varies_on_credentials(response)
        or bool(getattr(session, "accessed", False))
    )


def vary_tokens(response: HttpResponseBase) -> list[str]:
    """The header names of the response's Vary as written, trimmed."""
    return [h.strip() for h in _COMMA.split(response.headers.get("Vary", "")) if h.strip()]


def add_vary(response: HttpResponseBase, names: Iterable[str]) -> None:
    """Add ``names`` to the response's Vary, each once whatever the case and spacing
    of what is there; ``*`` stands alone."""
    present = vary_tokens(response)
    lowered = {h.lower() for h in present}
    if "*" in lowered:
        return
    added: list[str] = []
    for name in names:
        if name.lower() not in lowered:
            added.append(name)
            lowered.add(name.lower())
    if not added:
        return
    if "*" in added:
        response.headers["Vary"] = "*"
        return
    response.headers["Vary"] = ", ".join([*present, *added])
