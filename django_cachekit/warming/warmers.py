"""Cache warming: fill the cache before traffic does.

A warmer is a model's ``CacheMeta.warm`` or a function decorated with
``@warmer``. It returns what to load (querysets, model instances, lists of
them) or fills the cache itself (calling cached functions) and returns None.
Everything is loaded through the ordinary cached paths, so an entry is stamped
with the versions read before its data, like any read: warming never stores
stale data, and an entry that is still valid is left alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.apps import apps
from django.db import models
from django.db.models.query import ModelIterable
from django.utils.module_loading import autodiscover_modules

from django_cachekit.core import keys, protocol
from django_cachekit.core.settings import conf
from django_cachekit.memo import Memo
from django_cachekit.orm import replicas
from django_cachekit.orm.managers import CachedQuerySet
from django_cachekit.orm.queries import DEFAULT, OFF
from django_cachekit.schema import meta

__all__ = ["Result", "Runner", "UnknownLabel", "Warmer", "WarmerError", "select", "unregister", "warmer", "warmers"]

F = TypeVar("F", bound=Callable[..., Any])

_BATCH = 500


class WarmerError(TypeError):
    """A warmer returned something that cannot be warmed."""


class UnknownLabel(LookupError):
    """A label that names no warmer, app or model with a warmer."""


@dataclass(frozen=True)
class Warmer:
    name: str
    func: Callable[[], Any]
    tags: tuple[str, ...] = ()
    model: type[models.Model] | None = None
    refresh_ahead: float | None = None

    @property
    def app_label(self) -> str | None:
        if self.model is not None:
            return self.model._meta.app_label
        config = apps.get_containing_app_config(getattr(self.func, "__module__", "") or "")
        return config.label if config is not None else None

    @property
    def timeout(self) -> int | None:
        """The timeout assumed for an entry this warmer finds but did not store (for refresh-ahead)."""
        if self.model is not None and meta.is_cached_model(self.model):
            return meta.info(self.model).timeout
        return conf.TIMEOUT

    @property
    def source(self) -> str:
        if self.model is not None:
            return f"{self.model._meta.label}.CacheMeta.warm"
        return f"{getattr(self.func, '__module__', '?')}.{getattr(self.func, '__qualname__', repr(self.func))}"


_registered: dict[str, Warmer] = {}
_lock = threading.Lock()
_discovered = False


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"A warmer name must be a non-empty string without spaces, not {name!r}.")
    return name


def _check_refresh_ahead(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"refresh_ahead must be a fraction between 0 and 1, not {value!r}.")
    return float(value)


def warmer(
    name: str | Callable[..., Any] | None = None,
    *,
    tags: Iterable[str] | str = (),
    refresh_ahead: float | None = None,
) -> Any:
    """Register a function that fills the cache, under ``name`` (default: its ``__name__``).

    ``tags`` group warmers (``cachekit_warm --tag T``); ``refresh_ahead`` is the
    fraction of an entry's timeout below which warming extends a valid entry.
    The function is returned unchanged.
    """
    if callable(name):
        return warmer()(name)
    if name is not None:
        _check_name(name)
    tag_list = (tags,) if isinstance(tags, str) else tuple(tags)
    for tag in tag_list:
        if not isinstance(tag, str) or not tag or any(c.isspace() for c in tag):
            raise ValueError(f"A warmer tag must be a non-empty string without spaces, not {tag!r}.")
    fraction = _check_refresh_ahead(refresh_ahead)

    def decorator(func: F) -> F:
        if not callable(func):
            raise TypeError(f"@warmer decorates a function, not {func!r}.")
        warmer_name = _check_name(name if name is not None else getattr(func, "__name__", None))
        entry = Warmer(warmer_name, func, tag_list, None, fraction)
        with _lock:
            existing = _registered.get(warmer_name)
            if existing is not None and existing.source != entry.source:
                raise ValueError(f"A warmer named {warmer_name!r} is already registered: {existing.source}.")
            _registered[warmer_name] = entry
        return func

    return decorator


def unregister(name: str) -> None:
    with _lock:
        _registered.pop(name, None)


def warmers() -> list[Warmer]:
    """Every warmer: models' ``CacheMeta.warm`` first, then ``@warmer`` functions.

    Each installed app's ``warmers`` module is imported the first time.
    """
    global _discovered
    if not _discovered:
        autodiscover_modules("warmers")
        _discovered = True
    found = []
    for model in meta.cached_models():
        if "CacheMeta" not in vars(model):  # inherited by a proxy or child: the parent warms it
            continue
        options = meta.info(model).options
        if options is not None and options.warm is not None:
            found.append(Warmer(model._meta.label, options.warm, (), model, options.refresh_ahead))
    with _lock:
        found.extend(_registered.values())
    return found


def _match(label: str, every: list[Warmer]) -> list[Warmer]:
    named = [w for w in every if w.name == label]
    if named:
        return named
    if label.count(".") == 1:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            raise UnknownLabel(f"{label!r} is not a warmer name nor an app_label.Model.") from None
        found = [w for w in every if w.model is model]
        if not found:
            raise UnknownLabel(f"{model._meta.label} has no warmer: give it a CacheMeta.warm.")
        return found
    try:
        apps.get_app_config(label)
    except LookupError:
        raise UnknownLabel(f"{label!r} is not a warmer name, an app label nor an app_label.Model.") from None
    found = [w for w in every if w.app_label == label]
    if not found:
        raise UnknownLabel(f"The app {label!r} has no warmer.")
    return found


def select(labels: Sequence[str] = (), tags: Sequence[str] = ()) -> list[Warmer]:
    """The warmers named by ``labels`` (warmer names, app labels, ``app_label.Model``) and
    carrying one of ``tags``; every warmer when both are empty. Raises ``UnknownLabel``."""
    every = warmers()
    if not labels and not tags:
        return every
    chosen: set[str] = set()
    for label in labels:
        chosen.update(w.name for w in _match(label, every))
    for tag in tags:
        tagged = [w.name for w in every if tag in w.tags]
        if not tagged:
            raise UnknownLabel(f"No warmer has the tag {tag!r}.")
        chosen.update(tagged)
    return [w for w in every if w.name in chosen]


@dataclass
class Result:
    warmer: Warmer
    stored: int = 0  # entries stored (with dry_run: that would be stored)
    fresh: int = 0  # entries found valid and left alone
    refreshed: int = 0  # valid entries whose timeout was extended (refresh-ahead)
    seconds: float = 0.0
    error: BaseException | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "warmer": self.warmer.name,
            "stored": self.stored,
            "fresh": self.fresh,
            "refreshed": self.refreshed,
            "seconds": round(self.seconds, 6),
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        }


@dataclass
class Runner:
    """Runs warmers. Kept across rounds of a periodic run: it remembers the
    timeout each entry it stored was given, which refresh-ahead measures against."""

    limit: int | None = None
    dry_run: bool = False
    # key -> the timeout this runner stored it with
    timeouts: Memo[str, int | None] = field(default_factory=lambda: Memo(100_000))
    # key -> the timeout of the read that found it valid, in the current run
    _expected: dict[str, int | None] = field(default_factory=dict)

    def cache_available(self) -> bool:
        return protocol.versions([keys.GLOBAL_TAG]) is not None

    def run(self, item: Warmer) -> Result:
        result = Result(item)
        started = time.perf_counter()
        self._expected = {}
        with protocol.tallying(dry=self.dry_run) as tally:
            try:
                self._load(item, item.func(), 0)
            except Exception as exc:  # reported with the warmer's name; the others still run
                result.error = exc
        result.stored = len(tally.stored)
        result.fresh = sum(1 for key in tally.hits if key not in tally.stored)
        if not self.dry_run:
            for key, timeout in tally.stored.items():
                self.timeouts.remember(key, timeout)
        if item.refresh_ahead is not None and result.error is None:
            result.refreshed = self._refresh(item, [key for key in tally.hits if key not in tally.stored])
        result.seconds = time.perf_counter() - started
        return result

    # -- loading ------------------------------------------------------------

    @contextmanager
    def _reading(self, timeout: int | None) -> Iterator[None]:
        """Count the reads of the block in the warmer's tally, noting ``timeout``
        as the timeout of the entries they find valid."""
        outer = protocol._tally.get()
        with protocol.tallying(dry=self.dry_run) as inner:
            try:
                yield
            finally:
                if outer is not None:
                    outer.hits.update(inner.hits)
                    outer.stored.update(inner.stored)
                self._expected.update(dict.fromkeys(inner.hits, timeout))

    def _load(self, item: Warmer, value: Any, depth: int) -> None:
        if value is None:
            return
        if isinstance(value, models.QuerySet):
            self._queryset(item, value)
        elif isinstance(value, models.Model):
            self._instances(item, [value])
        elif isinstance(value, (str, bytes, dict)) or not isinstance(value, Iterable) or depth > 3:
            raise WarmerError(
                f"Warmer {item.name!r} returned {_short(value)}; a warmer returns querysets, "
                "model instances, lists of them, or None."
            )
        else:
            instances: list[models.Model] = []
            for element in value:
                if isinstance(element, models.Model):
                    instances.append(element)
                else:
                    self._load(item, element, depth + 1)
            if instances:
                self._instances(item, instances)

    def _queryset(self, item: Warmer, qs: models.QuerySet[Any]) -> None:
        if not isinstance(qs, CachedQuerySet) or not meta.is_cached_model(qs.model):
            raise WarmerError(
                f"Warmer {item.name!r} returned a queryset of {qs.model._meta.label}, which is not cached "
                "(give the model CachedModelMixin and its CachedManager)."
            )
        cached: CachedQuerySet[Any] = qs.all()  # a clone: never the caller's evaluated queryset
        limit = self.limit
        if limit is not None:
            low, high = cached.query.low_mark, cached.query.high_mark
            if high is None or high - low > limit:
                cached = cached[:limit]
        spec = cached._cachekit
        if spec is None or spec is OFF:
            cached = cached.cache()
            spec = cached._cachekit
        timeout: Any = DEFAULT if spec is None else spec.timeout
        with self._reading(meta.info(cached.model).timeout if timeout is DEFAULT else timeout):
            rows = list(cached)
            if cached._iterable_class is ModelIterable and rows:
                self._objects(cached.model, cached._aliases()[1], [obj.pk for obj in rows], timeout)

    def _instances(self, item: Warmer, objs: list[models.Model]) -> None:
        if self.limit is not None:
            objs = objs[: self.limit]
        groups: dict[tuple[type[models.Model], str], list[Any]] = {}
        for obj in objs:
            model = type(obj)
            if not meta.is_cached_model(model):
                raise WarmerError(
                    f"Warmer {item.name!r} returned a {model._meta.label} instance, which is not a cached model."
                )
            if obj.pk is None:
                raise WarmerError(f"Warmer {item.name!r} returned an unsaved {model._meta.label} instance.")
            groups.setdefault((model, replicas.of_instance(obj)), []).append(obj.pk)
        for (model, db), pks in groups.items():
            with self._reading(meta.info(model).timeout):
                self._objects(model, db, pks, DEFAULT)

    def _objects(self, model: type[models.Model], db: str, pks: list[Any], timeout: Any) -> None:
        # in_bulk reads the versions of the missing entries before it reads their
        # rows, and stores only those: the same guarantee as any cached read.
        qs: CachedQuerySet[Any] = CachedQuerySet(model=model, using=db).cache(timeout)
        unique = list(dict.fromkeys(pks))
        for start in range(0, len(unique), _BATCH):
            qs.in_bulk(unique[start : start + _BATCH])

    # -- refresh-ahead ------------------------------------------------------

    def _refresh(self, item: Warmer, hit_keys: list[str]) -> int:
        """Extend valid entries with less than ``refresh_ahead`` of their timeout left.

        An entry found valid holds what the database holds now (its versions say
        so), so refreshing it is giving it a new timeout: no read, no new data.
        Where the cache cannot tell the time left (Memcached), every one is extended.
        """
        fraction = item.refresh_ahead
        if not hit_keys or fraction is None:
            return 0
        default = item.timeout
        timeouts: dict[str, int] = {}
        for key in hit_keys:
            timeout = self.timeouts[key] if key in self.timeouts else self._expected.get(key, default)
            if timeout:  # None: the entry never expires
                timeouts[key] = timeout
        if not timeouts:
            return 0
        rt = protocol.runtime()
        ok, left = rt.call(rt.store.ttls, list(timeouts))
        if not ok or left is None:
            return 0
        due: dict[str, int | None] = {}
        for (key, timeout), remaining in zip(timeouts.items(), left):
            if remaining is None or 0 < remaining < fraction * timeout:
                due[key] = timeout
        if not due or self.dry_run:
            return len(due)
        ok, touched = rt.call(rt.store.touch_many, due)
        return touched or 0


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def warm(
    labels: Sequence[str] = (), tags: Sequence[str] = (), limit: int | None = None, dry_run: bool = False
) -> list[Result]:
    """Run the selected warmers once (see ``select``); returns one ``Result`` per warmer."""
    runner = Runner(limit=limit, dry_run=dry_run)
    return [runner.run(item) for item in select(labels, tags)]
