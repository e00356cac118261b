"""View decorators for HTTP caching.

- ``cache_headers``: Cache-Control and Vary, with contradictions refused when
  the view is decorated.
- ``conditional``: ETag and Last-Modified derived from the cache versions of
  what a page shows, so a conditional request is answered 304 (or 412) without
  running the view or any SQL.
- ``cache_response``: the whole response cached until a write changes what it
  depends on.

Each works on sync and async views and on class-based views through
``method_decorator``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotModified
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.http import http_date, parse_etags, parse_http_date_safe, quote_etag
from django.utils.log import log_response

from django_cachekit.core import arguments, events, flow, keys, protocol
from django_cachekit.core.settings import conf
from django_cachekit.http import responses
from django_cachekit.invalidation import hook
from django_cachekit.orm.queries import DEFAULT
from django_cachekit.schema import meta

__all__ = ["cache_headers", "cache_response", "conditional"]

logger = logging.getLogger("django_cachekit")

V = TypeVar("V", bound=Callable[..., Any])
# A request's handling around its view: it yields once to have the view run,
# receives the view's response, and returns the response to send. Returning
# without yielding answers without running the view.
Flow = Generator[None, HttpResponseBase, HttpResponseBase]

_RUN_VIEW = object()
# Set on a response whose Cache-Control is conditional()'s default, which cache_headers() replaces.
_DEFAULT_CC_ATTR = "_cachekit_default_cache_control"


def _advance(flow: Flow, response: HttpResponseBase | None) -> Any:
    try:
        flow.send(response)  # type: ignore[arg-type]
    except StopIteration as stop:
        return stop.value
    return _RUN_VIEW


def _wrap(view: V, start: Callable[[HttpRequest, tuple[Any, ...], dict[str, Any], bool], Flow]) -> V:
    if iscoroutinefunction(view):
        # The flow's cache round trips are blocking calls: run them off the event loop.
        advance = sync_to_async(_advance)

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            flow = start(request, args, kwargs, False)
            result = await advance(flow, None)
            if result is _RUN_VIEW:
                result = await advance(flow, await view(request, *args, **kwargs))
            return result

        return cast(V, async_wrapper)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        flow = start(request, args, kwargs, True)
        result = _advance(flow, None)
        if result is _RUN_VIEW:
            result = _advance(flow, view(request, *args, **kwargs))
        return result

    return cast(V, wrapper)


def _view_name(view: Callable[..., Any]) -> str:
    return f"{getattr(view, '__module__', '?')}.{getattr(view, '__qualname__', repr(view))}"


def _seconds(name: str, value: Any, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{what} {name} must be a whole number of seconds, zero or more, not {value!r}.")
    return value


def _flag(name: str, value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} {name} must be True or False, not {value!r}.")
    return value


def _tags_argument(tags: Any, what: str) -> tuple[str, ...] | Callable[..., Any]:
    try:
        return arguments.tags_or_callable(tags, what)
    except ValueError as exc:
        raise ValueError(f"{exc} (or a callable of the request and the view's arguments)") from None


def _depends_argument(depends_on: Any, what: str) -> list[Any]:
    if isinstance(depends_on, (str, bytes)) or not isinstance(depends_on, Iterable):
        raise ValueError(f"{what} depends_on must be a list of models and saved instances, not {depends_on!r}.")
    found = list(depends_on)
    for dep in found:
        if isinstance(dep, models.Model):
            if dep.pk is None:
                raise ValueError(f"{what} depends_on takes saved instances; {dep!r} has no primary key.")
        else:
            meta.model_class(dep, f"{what.rstrip('()')}(depends_on=...)")
    return found


def _call_tags(tags: tuple[str, ...] | Callable[..., Any], request: HttpRequest, args: Any, kwargs: Any) -> list[str]:
    if callable(tags):
        return keys.user_tags(tags(request, *args, **kwargs))
    return list(tags)


# -- cache_headers ----------------------------------------------------------------------


def cache_headers(
    max_age: int | None = None,
    s_maxage: int | None = None,
    public: bool = False,
    private: bool = False,
    no_store: bool = False,
    stale_while_revalidate: int | None = None,
    stale_if_error: int | None = None,
    vary: Iterable[str] = (),
) -> Callable[[V], V]:
    """Set Cache-Control directives and add headers to Vary (never replacing it).

    A response that sets a cookie (itself, or through the session or CSRF
    middleware after the view) is never marked ``public``: ``private`` is set
    instead and ``s-maxage`` is dropped. Server errors (5xx) keep their own
    Cache-Control.
    """
    what = "cache_headers()"
    max_age = _seconds("max_age", max_age, what)
    s_maxage = _seconds("s_maxage", s_maxage, what)
    stale_while_revalidate = _seconds("stale_while_revalidate", stale_while_revalidate, what)
    stale_if_error = _seconds("stale_if_error", stale_if_error, what)
    public = _flag("public", public, what)
    private = _flag("private", private, what)
    no_store = _flag("no_store", no_store, what)
    vary_on = responses.header_names(vary, f"{what} vary")
    if public and private:
        raise ValueError("cache_headers() cannot be both public=True and private=True.")
    if private and s_maxage is not None:
        raise ValueError(
            f"cache_headers(private=True) contradicts s_maxage={s_maxage!r}: shared caches never store it."
        )
    if no_store:
        for name, value in (
            ("max_age", max_age),
            ("s_maxage", s_maxage),
            ("stale_while_revalidate", stale_while_revalidate),
            ("stale_if_error", stale_if_error),
        ):
            if value is not None:
                raise ValueError(f"cache_headers(no_store=True) contradicts {name}={value!r}: nothing is stored.")
        if public:
            raise ValueError("cache_headers(no_store=True) contradicts public=True: nothing is stored.")
    directives: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_age", max_age),
            ("s_maxage", s_maxage),
            ("stale_while_revalidate", stale_while_revalidate),
            ("stale_if_error", stale_if_error),
        )
        if value is not None
    }
    directives.update(
        {name: True for name, on in (("public", public), ("private", private), ("no_store", no_store)) if on}
    )
    if not directives and not vary_on:
        raise ValueError("cache_headers() needs at least one directive or a vary header.")
    shared = {k: v for k, v in directives.items() if k not in ("public", "s_maxage")}
    shared["private"] = True

    def apply(request: HttpRequest, response: HttpResponseBase) -> None:
        if directives and response.status_code < 500:
            if getattr(response, _DEFAULT_CC_ATTR, False):
                del response.headers["Cache-Control"]
                setattr(response, _DEFAULT_CC_ATTR, False)
            chosen = directives
            if (public or s_maxage is not None) and _never_shared(request, response, vary_on):
                chosen = shared  # patch_cache_control drops "public" when it adds "private"
            patch_cache_control(response, **chosen)
            if chosen is directives and (public or s_maxage is not None) and request.META.get("HTTP_AUTHORIZATION"):
                # A shared cache may store a public answer to a request with credentials: key it on them.
                responses.add_vary(response, ["Authorization"])
        if vary_on:
            responses.add_vary(response, vary_on)

    def decorator(view: V) -> V:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                response = await view(request, *args, **kwargs)
                apply(request, response)
                return response

            return cast(V, async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            response = view(request, *args, **kwargs)
            apply(request, response)
            return response

        return cast(V, wrapper)

    return decorator


def _never_shared(request: HttpRequest, response: HttpResponseBase, vary_on: tuple[str, ...]) -> bool:
    # A cookie set, a view's own "private" (any case) or a Vary no cache can match keep a response private.
    return (
        responses.sets_cookie(request, response)
        or "private" in responses.cache_control(response)
        or "*" in responses.vary_headers(response)
        or "*" in vary_on
    )


# -- conditional ------------------------------------------------------------------------


def conditional(
    *models_or_objects: Any,
    url_kwarg: str | None = "pk",
    tags: Iterable[str] | Callable[..., Iterable[str]] | None = None,
    depends_on: Iterable[Any] = (),
    per_user: bool | Callable[[HttpRequest], Any] = True,
) -> Callable[[V], V]:
    """ETag and Last-Modified from the cache versions of what the view shows.

    A model class stands for the row whose primary key is the view's
    ``url_kwarg`` argument (its ``cache_version``: the row, its m2m links, the
    children that touch it); an instance for that row; ``depends_on`` takes
    models (any write to them) and instances, like ``cached()``; ``tags`` are
    user tags (``invalidate_tags``), or a callable of the view's arguments
    returning them.

    ``per_user=True`` (the default): a request carrying credentials (a session
    cookie or an Authorization header) gets validators of its own, so one
    user's ETag never earns another user a 304, and the response varies on
    the headers they came from. ``per_user=False``: every request shares the
    validators, except for personal responses (private in any case, setting a
    cookie, varying on Cookie or Authorization, reading the session). A
    callable of the request gives the identity to key on.

    A 304 needs a validator of this identity: its ETag, or an If-Modified-Since
    that is exactly the Last-Modified recorded for that ETag. It carries the
    Vary and Cache-Control of the view's last 200 in this process.
    """
    what = "conditional()"
    rows: list[type[models.Model]] = []
    objects: list[models.Model] = []
    for item in models_or_objects:
        if isinstance(item, models.Model):
            if item.pk is None:
                raise ValueError(f"conditional() takes saved instances; {item!r} has no primary key.")
            objects.append(item)
        elif isinstance(item, type) and issubclass(item, models.Model) and not item._meta.abstract:
            rows.append(item)
        else:
            raise ValueError(f"conditional() takes model classes and saved instances, not {item!r}.")
    if rows and not (isinstance(url_kwarg, str) and url_kwarg):
        raise ValueError(
            f"conditional() needs url_kwarg to name the view argument holding the primary key of "
            f"{', '.join(m._meta.label for m in rows)}, not {url_kwarg!r}; "
            "pass the model in depends_on=[...] to follow every write to it instead."
        )
    user_tags = _tags_argument(tags, what)
    dependencies = _depends_argument(depends_on, what)
    if not (isinstance(per_user, bool) or callable(per_user)):
        raise ValueError(f"conditional() per_user must be True, False or a callable of the request, not {per_user!r}.")
    if not (rows or objects or dependencies or user_tags):
        raise ValueError("conditional() needs models, instances, depends_on or tags to derive validators from.")
    fixed: list[str] | None = None

    def resolve(request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> list[str] | None:
        nonlocal fixed
        if fixed is None:
            found = meta.depends_tags([*objects, *dependencies])
            fixed = list(dict.fromkeys(found))
        tags_: list[str] = []
        if rows:
            if url_kwarg not in kwargs:
                raise ImproperlyConfigured(
                    f"conditional() on {name} reads the primary key from the view argument {url_kwarg!r}, "
                    f"which this URL does not give (it gives {sorted(kwargs)!r})."
                )
            for model in rows:
                info = meta.info(model)
                try:
                    pk = info.pk_value(kwargs[url_kwarg])
                except (ValidationError, TypeError, ValueError):
                    return None  # not a valid key: the view answers as it sees fit
                tags_ += info.version_tags(pk)
        tags_ += fixed
        tags_ += _call_tags(user_tags, request, args, kwargs)
        tags_.append(keys.GLOBAL_TAG)
        return list(dict.fromkeys(tags_))

    def decorator(view: V) -> V:
        name = _view_name(view)
        if rows:
            _check_kwarg(view, cast(str, url_kwarg), name)

        # What this process's last 200 of the view carried besides validators (its own
        # Vary and Cache-Control), by whether its validators were personal: a 304 sends
        # the headers its 200 would have (RFC 9110, section 15.4.5).
        sent: dict[bool, tuple[list[str], str | None]] = {}

        def start(request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any], sync: bool) -> Flow:
            if not protocol.reading():
                return (yield)
            tags_ = resolve(request, args, kwargs, name)
            if tags_ is None:
                return (yield)
            started = responses.now()
            versions = protocol.versions(tags_)
            ended = responses.now()
            if versions is None:  # the cache is unavailable: answer as if there were no validators
                return (yield)
            meta_ = request.META
            carried: tuple[str, ...] = ()  # the request headers an identity's validators depend on
            if callable(per_user):
                value = per_user(request)
                try:
                    credentials = "" if value is None else keys.digest(keys.exact(value))
                except keys.Unencodable:  # an identity we cannot tell from others must not share validators
                    events.record("bypass", name)
                    return (yield)
            else:
                credentials = responses.identity(request)
                carried = responses.credential_headers(request)
            personal = responses.digests(name, tags_, versions, credentials)
            shared = (
                personal if per_user is not False or not credentials else responses.digests(name, tags_, versions, "")
            )
            page = responses.page_scope(name, tags_)
            pairs = [personal] if shared is personal else [personal, shared]
            safe = request.method in ("GET", "HEAD")
            modified_since = (
                _date(meta_, "HTTP_IF_MODIFIED_SINCE") if safe and not meta_.get("HTTP_IF_NONE_MATCH") else None
            )
            unmodified_since = _date(meta_, "HTTP_IF_UNMODIFIED_SINCE") if not meta_.get("HTTP_IF_MATCH") else None
            records: dict[str, int | None] = {}
            if modified_since is not None or unmodified_since is not None:
                records = dict(zip((p[1] for p in pairs), responses.recorded([p[1] for p in pairs])))
            chosen = personal
            if shared is not personal:
                asked = parse_etags(meta_.get("HTTP_IF_NONE_MATCH", "")) + parse_etags(meta_.get("HTTP_IF_MATCH", ""))
                by_etag = quote_etag(personal[1]) in {e.removeprefix("W/") for e in asked}
                by_date = modified_since is not None and records.get(personal[1]) == modified_since
                chosen = personal if by_etag or by_date else shared
            is_personal = bool(credentials) and chosen is personal
            status = _precondition(request, quote_etag(chosen[1]), records.get(chosen[1]), int(started))
            if status == 412:
                failed = HttpResponse(status=412)
                log_response("Precondition Failed: %s", request.path, response=failed, request=request)
                return failed
            if status == 304:
                early = HttpResponseNotModified()
                early.headers["ETag"] = quote_etag(chosen[1])
                lm = records.get(chosen[1])
                if lm:
                    early.headers["Last-Modified"] = http_date(lm)
                vary, control = sent.get(is_personal, ([], None))
                responses.add_vary(early, [*vary, *_credential_vary(request, carried, is_personal)])
                if control is not None:
                    early.headers["Cache-Control"] = control
                else:
                    _default_cache_control(early, is_personal)
                return early
            response = yield
            if request.method in ("GET", "HEAD") and response.status_code == 200:
                if "*" in responses.vary_headers(response):
                    return response  # no cache can match it again: validators would earn nothing
                pair = chosen
                if shared is not personal:
                    pair = personal if responses.personal(request, response) else shared
                is_personal = bool(credentials) and pair is personal
                own_control = None
                if response.has_header("Cache-Control") and not getattr(response, _DEFAULT_CC_ATTR, False):
                    own_control = response.headers["Cache-Control"]
                if not response.has_header("ETag"):
                    response.headers["ETag"] = quote_etag(pair[1])
                if not response.has_header("Last-Modified"):
                    lm = responses.last_modified(page, pair[1], is_personal, started, ended)
                    if lm:
                        response.headers["Last-Modified"] = http_date(lm)
                responses.add_vary(response, _credential_vary(request, carried, is_personal))
                # A response that sets a cookie (a session the view started, too) is nobody else's.
                _default_cache_control(response, is_personal or responses.sets_cookie(request, response))
                vary = responses.vary_tokens(response)
                session = getattr(request, "session", None)
                if getattr(session, "accessed", False):
                    vary.append("Cookie")  # what the session middleware adds after the view
                sent[is_personal] = (vary, own_control)
            return response

        return _wrap(view, start)

    return decorator


def _credential_vary(request: HttpRequest, carried: tuple[str, ...], is_personal: bool) -> list[str]:
    # Validators of an identity vary on the headers it came from; a page read with an
    # Authorization header varies on it whatever the validators.
    found = list(carried) if is_personal else []
    if request.META.get("HTTP_AUTHORIZATION") and "Authorization" not in found:
        found.append("Authorization")
    return found


def _date(meta: dict[str, Any], header: str) -> int | None:
    value = meta.get(header)
    return parse_http_date_safe(value) if value else None


def _precondition(request: HttpRequest, etag: str, record: int | None, read_at: int) -> int | None:
    """412, 304 or None for ``etag``, in the order of RFC 9110, section 13.2.2.

    ``record`` is the Last-Modified recorded for this very ETag: If-Modified-Since
    earns a 304 only when it is that date exactly (each second of a page is one
    digest's, so an earlier or later date may be another identity's), never when
    nothing is recorded. If-Unmodified-Since compares with the record, or with the
    time of the read when there is none.
    """
    meta = request.META
    if_match = parse_etags(meta.get("HTTP_IF_MATCH", ""))
    if if_match:
        if if_match != ["*"] and etag not in if_match:
            return 412
    else:
        since = _date(meta, "HTTP_IF_UNMODIFIED_SINCE")
        if since is not None and (record if record is not None else read_at) > since:
            return 412
    if_none_match = parse_etags(meta.get("HTTP_IF_NONE_MATCH", ""))
    if if_none_match:
        if if_none_match == ["*"] or etag in {e.removeprefix("W/") for e in if_none_match}:
            return 304 if request.method in ("GET", "HEAD") else 412
        return None
    since = _date(meta, "HTTP_IF_MODIFIED_SINCE")
    if since is not None and record == since and request.method in ("GET", "HEAD"):
        return 304
    return None


def _default_cache_control(response: HttpResponseBase, personal: bool) -> None:
    # Validators are for revalidation: without it a browser may reuse the page for
    # a tenth of its age (heuristic freshness) and miss the next write.
    if not response.has_header("Cache-Control") and not response.has_header("Expires"):
        response.headers["Cache-Control"] = "private, no-cache" if personal else "no-cache"
        setattr(response, _DEFAULT_CC_ATTR, True)


def _check_kwarg(view: Callable[..., Any], url_kwarg: str, name: str) -> None:
    try:
        parameters = inspect.signature(view).parameters
    except (TypeError, ValueError):
        return
    if url_kwarg in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    raise ValueError(
        f"conditional(url_kwarg={url_kwarg!r}) on {name}: the view takes no argument {url_kwarg!r} "
        f"(it takes {list(parameters)!r})."
    )


# -- cache_response ---------------------------------------------------------------------

_warned: set[tuple[str, str]] = set()
# Distinct keys (paths, query strings, vary_on values) stored per cache_response view by default.
DEFAULT_MAX_VARIANTS = 1000


def cache_response(
    timeout: Any = DEFAULT,
    tags: Iterable[str] | Callable[..., Iterable[str]] = (),
    depends_on: Iterable[Any] = (),
    vary_on: Iterable[str] = (),
    query_params: Iterable[str] | None = None,
    max_variants: int | None = DEFAULT_MAX_VARIANTS,
) -> Callable[[V], V]:
    """Cache the view's whole response, invalidated by model writes and tags.

    Only GET (HEAD is answered from the GET entry) and status 200 are stored.
    A request carrying credentials (an Authorization header, a session cookie)
    that ``vary_on`` does not name is served by the view, neither read nor
    stored; a response is never stored when it is streamed, sets a cookie (in
    any way), uses a CSRF token or shows messages, is marked no-store, Vary: *,
    or private (unless its key holds the user's credentials), varies on Cookie
    or Authorization, or read the session or a cookie, unless ``vary_on`` names
    them. The key is the view, the scheme and host Django sees, the path, the
    query string (only the ``query_params`` listed, when given: a request with
    another parameter is not cached) and the request's values of the
    ``vary_on`` headers (for Cookie: the session and CSRF cookies, and within
    the entry those the view read). Within an entry, the response's own Vary
    headers choose the variant. At most ``max_variants`` distinct keys are
    stored per view (an approximate count).
    """
    what = "cache_response()"
    arguments.timeout(timeout, what)
    user_tags = _tags_argument(tags, what)
    dependencies = _depends_argument(depends_on, what)
    keyed = responses.header_names(vary_on, f"{what} vary_on")
    if "*" in keyed:
        raise ValueError("cache_response() vary_on cannot hold '*': such a response is never the same twice.")
    if not dependencies and not user_tags:
        raise ValueError(
            "cache_response() needs depends_on or tags: without them no write would ever retire the cached response."
        )
    allowed = _query_params_argument(query_params, what)
    bound = _max_variants_argument(max_variants, what)
    advertised = [h for h in keyed if h.lower() != "host"]
    lowered = tuple(h.lower() for h in keyed)
    fixed: list[str] | None = None
    covered: set[str] | None = None

    def decorator(view: V) -> V:
        name = _view_name(view)
        namespace = f"view:{name}"  # counted apart from @cached functions, which share the naming

        def entry_key(request: HttpRequest) -> str | None:
            """The entry's key, or None when this request must not be cached."""
            try:
                if allowed is None:
                    query: Any = request.META.get("QUERY_STRING", "")
                else:
                    if any(p not in allowed for p in request.GET):
                        return None
                    query = sorted((p, request.GET.getlist(p)) for p in request.GET)
                origin = (request.scheme, request.get_host())
                values = responses.variant(request, lowered)
            except SuspiciousOperation:  # a disallowed host, too many fields: Django answers it, not us
                return None
            described = keys.exact((name, origin, request.path, query, lowered, values))
            schema = keys.digest(f"http:{responses.ENTRY_FORMAT}:{conf.VERSION}", size=5)
            return keys.entry_key(schema, keys.RESPONSE, keys.digest(described))

        def advertise(response: HttpResponseBase) -> HttpResponseBase:
            # Whether or not it was cached, a response chosen by these headers says so to other caches.
            if advertised:
                patch_vary_headers(response, advertised)
            return response

        def start(request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any], sync: bool) -> Flow:
            nonlocal fixed, covered
            if request.method not in ("GET", "HEAD") or not protocol.reading():
                return advertise((yield))
            bypass = responses.unkeyed_credentials(request, lowered)
            if bypass is not None:
                logger.debug("django-cachekit: %s not cached for %s: %s", request.path, name, bypass)
                return advertise((yield))
            key = entry_key(request)
            if key is None:
                return advertise((yield))
            if fixed is None:
                found = meta.depends_tags(dependencies)
                covered = {t.split(":")[1] for t in found if t.count(":") >= 1}
                fixed = list(dict.fromkeys(found))
            entry_tags = tuple(dict.fromkeys([*fixed, *_call_tags(user_tags, request, args, kwargs), keys.GLOBAL_TAG]))
            if not flow.usable(entry_tags):
                return advertise((yield))
            # Checked above (a transaction that wrote one of its tags runs the view untouched) and
            # below (whether the response may be stored): not again by the flow.
            entry = flow.begin(key, entry_tags, namespace, guarded=False)
            hit, payload = entry.hit, entry.value
            if hit:
                try:
                    vary, variants = payload
                    frozen = variants.get(responses.variant(request, vary))
                    if frozen is not None:
                        return responses.thaw(frozen)
                except (TypeError, ValueError, AttributeError) as exc:  # not an entry this code wrote
                    logger.warning("django-cachekit: unreadable response entry for %s treated as a miss: %r", name, exc)
                    hit = False
            if request.method == "HEAD":
                return advertise((yield))
            read: set[str] | None = None
            original, cookies = responses.track_cookies(request)
            if sync and not user_tags:
                with hook.recording() as read:
                    response = _rendered((yield))
            else:
                response = _rendered((yield))
            responses.untrack_cookies(request, original, cookies)
            advertise(response)
            if entry.versions is None or not flow.storable():
                return response
            reason = responses.not_stored_because(request, response, keyed, cookies.read)
            if reason is not None:
                logger.debug("django-cachekit: %s not stored for %s: %s", request.path, name, reason)
                return response
            if read:
                _warn_unlisted(name, read, covered or set())
            vary = responses.vary_headers(response) + responses.cookie_vary(cookies.read, lowered)
            values = responses.variant(request, vary)
            ttl = conf.TIMEOUT if timeout is DEFAULT else cast("int | None", timeout)
            if not hit and not responses.admits_variant(name, key, bound, ttl or conf.TAG_TIMEOUT):
                logger.debug("django-cachekit: %s not stored for %s: over max_variants=%r", request.path, name, bound)
                return response
            frozen = responses.freeze(cast(Any, response), (_DEFAULT_CC_ATTR,))
            if hit and tuple(payload[0]) == vary:
                kept = {k: v for k, v in payload[1].items() if k != values}
                kept[values] = frozen
                variants = dict(list(kept.items())[-responses.MAX_VARIANTS :])
            else:
                variants = {values: frozen}
            entry.store((vary, variants), ttl)
            return response

        return _wrap(view, start)

    return decorator


def _query_params_argument(value: Any, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else value
    try:
        found = list(names)
    except TypeError:
        raise ValueError(f"{what} query_params must be a list of parameter names or None, not {value!r}.") from None
    for name in found:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{what} query_params takes non-empty parameter names, not {name!r}.")
    return frozenset(found)


def _max_variants_argument(value: Any, what: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"{what} max_variants must be a positive whole number or None, not {value!r}.")


def _rendered(response: HttpResponseBase) -> HttpResponseBase:
    # A TemplateResponse is rendered here, not by the handler later: what may be stored
    # depends on what the render read (the session, the user, cookies) and on its content.
    render = getattr(response, "render", None)
    if callable(render) and not getattr(response, "is_rendered", True):
        return cast(HttpResponseBase, render())
    return response


def _warn_unlisted(name: str, read: set[str], covered: set[str]) -> None:
    known = meta.table_models()
    for table in sorted(read - covered):
        if table in known and (name, table) not in _warned:
            _warned.add((name, table))
            logger.warning(
                "django-cachekit: cache_response() on %s read the table %s, which its depends_on does not name: "
                "writes to it will not retire the cached response.",
                name,
                table,
            )
