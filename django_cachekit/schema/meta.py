"""What django-cachekit knows about each model: tables, tags, schema, CacheMeta."""

from __future__ import annotations

import functools
import inspect
import logging
import operator
import string
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.base import ModelState
from django.db.models.fields.files import FileDescriptor
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

from django_cachekit.core import arguments, keys
from django_cachekit.core.settings import conf
from django_cachekit.memo import Memo, resettable
from django_cachekit.schema import rows

logger = logging.getLogger("django_cachekit")

ORIGINAL_ATTR = "_cachekit_loaded"
# The tag versions an instance's entry was stamped with: a later save of it
# can write its fresh entry through without reading them again.
VERSIONS_ATTR = "_cachekit_versions"
# The foreign-key values an instance was loaded with (ModelInfo.keyed, in order):
# a save moves the row out of the lists of these values.
KEYED_ATTR = "_cachekit_keyed"
_META_ATTRS = frozenset({"timeout", "tags", "touch", "warm", "refresh_ahead"})
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute, FileDescriptor)


class CacheMetaError(ValueError):
    def __init__(self, message: str, check_id: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.check_id = check_id
        self.hint = hint


@dataclass(frozen=True)
class CacheOptions:
    timeout: int | None
    has_timeout: bool
    tags: tuple[str, ...]
    touch: tuple[str, ...]
    warm: Callable[[], Any] | None
    # attnames the tags and touch read, snapshotted on load to know old values
    watched: tuple[str, ...]
    # warming re-stores valid entries with less than this fraction of their timeout left
    refresh_ahead: float | None = None


def _values_of(attnames: tuple[str, ...]) -> Callable[[models.Model], tuple[Any, ...]]:
    """A function of an instance: the tuple of its ``attnames`` attributes."""
    if len(attnames) > 1:
        return operator.attrgetter(*attnames)
    if attnames:
        get = operator.attrgetter(attnames[0])
        return lambda obj: (get(obj),)
    return lambda obj: ()


def is_cached_model(model: type[models.Model]) -> bool:
    return bool(getattr(model, "_cachekit_cached", False)) and not model._meta.abstract


def cached_models() -> list[type[models.Model]]:
    return [model for model in apps.get_models() if is_cached_model(model)]


def parse_cache_meta(model: type[models.Model]) -> CacheOptions:
    cache_meta = getattr(model, "CacheMeta", None)
    label = model._meta.label
    if cache_meta is not None and not isinstance(cache_meta, type):
        raise CacheMetaError(
            f"{label}.CacheMeta must be a class, not {cache_meta!r}.",
            "django_cachekit.E028",
            hint="Declare it as an inner class: class CacheMeta: timeout = 600.",
        )
    attrs = {} if cache_meta is None else {k: v for k, v in vars(cache_meta).items() if not k.startswith("_")}
    for base in reversed(getattr(cache_meta, "__mro__", ())[1:]):
        if base is not object:
            attrs = {**{k: v for k, v in vars(base).items() if not k.startswith("_")}, **attrs}
    unknown = sorted(set(attrs) - _META_ATTRS)
    if unknown:
        raise CacheMetaError(
            f"{label}.CacheMeta has unknown attribute {unknown[0]!r}.",
            "django_cachekit.E023",
            hint=f"CacheMeta understands {', '.join(sorted(_META_ATTRS))}.",
        )
    has_timeout = "timeout" in attrs
    timeout = attrs.get("timeout")
    if has_timeout and not arguments.is_timeout(timeout):
        raise CacheMetaError(
            f"{label}.CacheMeta.timeout must be a positive integer or None, not {timeout!r}.",
            "django_cachekit.E020",
        )
    opts = model._meta
    attnames = {f.attname for f in opts.concrete_fields} | {"pk"}
    tags = attrs.get("tags", ())
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not all(isinstance(t, str) and t for t in tags):
        raise CacheMetaError(
            f"{label}.CacheMeta.tags must be a tuple of non-empty format strings, not {tags!r}.",
            "django_cachekit.E021",
            hint='For example tags = ("author:{author_id}",).',
        )
    watched: list[str] = []
    for template in tags:
        try:
            parsed = [(name, conversion) for _, name, _, conversion in string.Formatter().parse(template)]
        except ValueError as exc:
            raise CacheMetaError(
                f"{label}.CacheMeta.tags has a malformed format string {template!r}: {exc}.",
                "django_cachekit.E021",
            ) from None
        names = [name for name, _ in parsed if name is not None]
        bad = [conversion for _, conversion in parsed if conversion not in (None, "r", "s", "a")]
        if bad:
            raise CacheMetaError(
                f"{label}.CacheMeta.tags has the conversion {'!' + str(bad[0])!r} in {template!r}; "
                "only !r, !s and !a exist.",
                "django_cachekit.E021",
            )
        for name in names:
            if name not in attnames:
                raise CacheMetaError(
                    f"{label}.CacheMeta.tags refers to {name!r} in {template!r}, which is not a field attname.",
                    "django_cachekit.E021",
                    hint=f"Use one of: {', '.join(sorted(attnames))}.",
                )
            watched.append(opts.pk.attname if name == "pk" else name)
    touch = attrs.get("touch", ())
    if isinstance(touch, str) or not isinstance(touch, Sequence):
        raise CacheMetaError(
            f"{label}.CacheMeta.touch must be a tuple of foreign key names, not {touch!r}.",
            "django_cachekit.E022",
        )
    for name in touch:
        try:
            field = opts.get_field(name)
        except Exception:
            field = None
        if field is None or not (field.many_to_one or field.one_to_one) or not field.concrete:
            raise CacheMetaError(
                f"{label}.CacheMeta.touch names {name!r}, which is not a foreign key of {label}.",
                "django_cachekit.E022",
                hint="touch lists ForeignKey or OneToOneField names whose targets count as changed.",
            )
        watched.append(field.attname)  # type: ignore[union-attr]
    warm = attrs.get("warm")
    if warm is not None and not callable(warm):
        raise CacheMetaError(
            f"{label}.CacheMeta.warm must be callable, not {warm!r}.",
            "django_cachekit.E024",
        )
    if isinstance(warm, (staticmethod, classmethod)):
        warm = warm.__get__(None, model)
    if warm is not None:
        warm = _warm_callable(warm, model, label)
    refresh_ahead = attrs.get("refresh_ahead")
    if refresh_ahead is not None and not (
        isinstance(refresh_ahead, (int, float)) and not isinstance(refresh_ahead, bool) and 0 < refresh_ahead < 1
    ):
        raise CacheMetaError(
            f"{label}.CacheMeta.refresh_ahead must be a fraction between 0 and 1, not {refresh_ahead!r}.",
            "django_cachekit.E026",
            hint="For example refresh_ahead = 0.25 refreshes entries in the last quarter of their timeout.",
        )
    if refresh_ahead is not None and warm is None:
        raise CacheMetaError(
            f"{label}.CacheMeta.refresh_ahead is set but {label}.CacheMeta has no warm.",
            "django_cachekit.E026",
            hint="refresh_ahead applies to the entries a warmer loads: add warm or remove refresh_ahead.",
        )
    return CacheOptions(
        timeout=timeout,
        has_timeout=has_timeout,
        tags=tuple(tags),
        touch=tuple(touch),
        warm=warm,
        watched=tuple(dict.fromkeys(watched)),
        refresh_ahead=None if refresh_ahead is None else float(refresh_ahead),
    )


def _warm_callable(warm: Callable[..., Any], model: type[models.Model], label: str) -> Callable[[], Any]:
    """``CacheMeta.warm`` as a function of no arguments: it may take the model class or nothing."""
    try:
        signature = inspect.signature(warm)
    except (TypeError, ValueError):  # a builtin without a signature: call it as it is
        return warm
    for args in ((model,), ()):
        try:
            signature.bind(*args)
        except TypeError:
            continue
        return functools.partial(warm, *args) if args else warm
    raise CacheMetaError(
        f"{label}.CacheMeta.warm must take no argument or the model class, not {signature}.",
        "django_cachekit.E025",
        hint="For example warm = staticmethod(lambda: Article.objects.order_by('-views')[:100]).",
    )


def _require_installed(model: type[models.Model]) -> None:
    # The app's ready() installs what sees writes: without it every entry would be served however stale.
    # Checked where a model's facts are first worked out, so once per model and settings, not per hit.
    if not apps.is_installed("django_cachekit"):
        raise ImproperlyConfigured(
            f'Add "django_cachekit" to INSTALLED_APPS: without it django-cachekit caches reads of '
            f"{model._meta.label} but sees no writes, so its entries would go stale."
        )


class ModelInfo:
    """Derived, per-model facts, computed once per model and settings."""

    def __init__(self, model: type[models.Model]) -> None:
        _require_installed(model)
        opts = model._meta
        concrete = opts.concrete_model
        assert concrete is not None
        copts = concrete._meta
        self.model = model
        self.label = opts.label_lower
        self.concrete = concrete
        self.table = copts.db_table
        self.tables = (copts.db_table, *(parent._meta.db_table for parent in copts.get_parent_list()))
        self.pk = copts.pk
        self.fields = tuple(copts.concrete_fields)
        self.attnames = tuple(f.attname for f in self.fields)
        # A bad CacheMeta is the model's problem, not the project's: manage.py check reports it
        # (checks.check_models) and the model is read uncached until it is fixed.
        self.problem: CacheMetaError | None = None
        try:
            self.options = parse_cache_meta(model) if is_cached_model(model) else None
        except CacheMetaError as exc:
            self.options = None
            self.problem = exc
            logger.error(
                "django-cachekit: %s %s is read uncached until it is fixed (manage.py check: %s).",
                exc,
                opts.label,
                exc.check_id,
            )
        self.watched = self.options.watched if self.options else ()
        self.watched_idx = tuple(self.attnames.index(name) for name in self.watched)
        # Integer foreign keys of the model's own table, when it has only one: a
        # save reports their old and new values instead of bumping the keyed tag.
        own = keyed_columns(self.table) if len(self.tables) == 1 else {}
        self.keyed = tuple((attname, column) for column, attname in own.items())
        self.keyed_idx = tuple(self.attnames.index(attname) for attname, _ in self.keyed)
        self.keyed_tags = tuple(keys.keyed_tag(t) for t in self.tables if keyed_columns(t))
        self.rows_tags = tuple(keys.rows_tag(t) for t in self.tables)
        self.model_tags = tuple(keys.model_tag(t) for t in self.tables)
        self.schema = keys.digest(
            repr(
                (
                    conf.VERSION,
                    copts.label_lower,
                    self.tables,
                    copts.ordering,
                    [(f.attname, f.column, type(f).__module__, type(f).__qualname__, f.null) for f in self.fields],
                )
            ),
            size=5,
        )
        self.normalizers = rows.normalizers(self.fields)
        self.kept_types = tuple(rows.kept_type(f) for f in self.fields)
        self.watched_values = _values_of(self.watched)
        self.keyed_values = _values_of(tuple(attname for attname, _ in self.keyed))
        self._pk_type = rows.kept_type(self.pk)
        # watched values (and their types) -> the tags they declare
        self.declared_memo: Memo[tuple[Any, ...], list[str]] = Memo()
        self._static: tuple[str, tuple[str, ...], list[str]] | None = None
        self.plain = (
            model.__init__ is models.Model.__init__
            and getattr(model.from_db, "__func__", None) in _stock_from_db()
            and all(isinstance(getattr(model, name, None), _PLAIN_DESCRIPTORS) for name in self.attnames)
        )

    @property
    def timeout(self) -> int | None:
        if self.options is not None and self.options.has_timeout:
            return self.options.timeout
        return conf.TIMEOUT

    def pk_value(self, value: Any) -> Any:
        """The pk as Python sees it after a round trip through the database."""
        return self.pk.to_python(value)

    def pk_of(self, obj: models.Model) -> Any:
        """``pk_value(obj.pk)``."""
        value = getattr(obj, self.pk.attname)
        return value if type(value) is self._pk_type else self.pk.to_python(value)

    def object_lookup(self, db: str, pk: Any) -> tuple[str, tuple[str, ...], list[str]]:
        """The object entry's key, the tags it may carry and their version keys.

        The first ``object_tag_count`` tags are the ones a present row's entry
        carries; the model tags after them only matter to a "does not exist".
        """
        part = keys.safe_part(pk)
        base = keys.prefix()
        own = keys.object_tags_of(self.tables, part)
        static = self._static
        if static is None or static[0] != base:
            tags = (*self.rows_tags, keys.GLOBAL_TAG, *self.model_tags)
            static = self._static = (base, tags, keys.version_keys(tags))
        return (
            keys.entry_key(self.schema, keys.OBJECT, f"{db}:{part}"),
            own + static[1],
            keys.version_keys(own) + static[2],
        )

    @property
    def object_tag_count(self) -> int:
        return 2 * len(self.tables) + 1

    def object_key(self, db: str, pk: Any) -> str:
        return keys.entry_key(self.schema, keys.OBJECT, f"{db}:{keys.safe_part(pk)}")

    def object_tags(self, pk: Any) -> tuple[str, ...]:
        part = keys.safe_part(pk)
        return (*keys.object_tags_of(self.tables, part), *self.rows_tags, keys.GLOBAL_TAG)

    def lookup_tags(self, pk: Any) -> tuple[str, ...]:
        """Tags an object entry may carry: a missing row's entry also carries the
        model tags, since an insert bumps only those."""
        return (*self.object_tags(pk), *self.model_tags)

    def version_tags(self, pk: Any) -> tuple[str, ...]:
        """Tags whose versions make up ``cache_version``: the row and what touches it."""
        part = keys.safe_part(pk)
        return (
            *keys.object_tags_of(self.tables, part),
            *keys.touch_tags_of(self.tables, part),
            *self.rows_tags,
            keys.GLOBAL_TAG,
        )

    def saved_row(self, obj: models.Model) -> tuple[Any, ...] | None:
        if self.normalizers is None:
            return None
        return rows.saved_row(obj, self.attnames, self.normalizers, self.kept_types)

    def build(
        self,
        db: str,
        rows: Iterable[Sequence[Any]],
        model: type[models.Model] | None = None,
        versions: dict[str, int] | None = None,
    ) -> list[Any]:
        """Model instances from full rows, as ``from_db`` would make them."""
        cls = model or self.model
        watched = self.watched_idx
        keyed = self.keyed_idx
        if not self.plain or _init_listeners(cls):
            out = []
            for row in rows:
                obj = cls.from_db(db, None, row)  # type: ignore[arg-type]
                if watched and ORIGINAL_ATTR not in obj.__dict__:
                    obj.__dict__[ORIGINAL_ATTR] = tuple(row[i] for i in watched)
                if keyed and KEYED_ATTR not in obj.__dict__:
                    obj.__dict__[KEYED_ATTR] = tuple(row[i] for i in keyed)
                if versions is not None:
                    obj.__dict__[VERSIONS_ATTR] = versions
                out.append(obj)
            return out
        names = self.attnames
        new = cls.__new__
        out = []
        for row in rows:
            obj = new(cls)
            state = ModelState()
            state.adding = False
            state.db = db
            values = dict(zip(names, row))
            values["_state"] = state
            if watched:
                values[ORIGINAL_ATTR] = tuple(row[i] for i in watched)
            if keyed:
                values[KEYED_ATTR] = tuple(row[i] for i in keyed)
            if versions is not None:
                values[VERSIONS_ATTR] = versions
            obj.__dict__ = values
            out.append(obj)
        return out


def _init_listeners(cls: type[models.Model]) -> bool:
    if not pre_init.receivers and not post_init.receivers:
        return False
    return pre_init.has_listeners(cls) or post_init.has_listeners(cls)


# ``from_db`` implementations that only remember what was loaded: a model using one of them
# may be built from cached rows without calling it. The mixin registers its own.
_stock: list[Any] = [models.Model.from_db.__func__]  # type: ignore[attr-defined]


def stock_from_db(func: Any) -> None:
    """Declare ``func`` (a ``from_db`` function) one that ``ModelInfo.build`` may skip."""
    if func not in _stock:
        _stock.append(func)


def _stock_from_db() -> list[Any]:
    return _stock


_infos: dict[type[models.Model], ModelInfo] = {}
_lock = threading.Lock()


def info(model: type[models.Model]) -> ModelInfo:
    try:
        return _infos[model]
    except KeyError:
        pass
    computed = ModelInfo(model)
    with _lock:
        return _infos.setdefault(model, computed)


@resettable
def clear() -> None:
    global _tables, _registry
    _infos.clear()
    _tables = None
    _registry = None
    _keyed.clear()


_registry: str | None = None


def registry_digest() -> str:
    """A digest of every model's fields and ordering: part of keys built without SQL,
    whose SQL may involve other models (a related model's default ordering)."""
    global _registry
    if _registry is None:
        described = [
            (
                m._meta.label_lower,
                m._meta.db_table,
                m._meta.ordering,
                [(f.attname, f.column) for f in m._meta.concrete_fields],
            )
            for m in apps.get_models(include_auto_created=True)
        ]
        _registry = keys.digest(repr((conf.VERSION, sorted(described, key=lambda d: d[0]))), size=6)
    return _registry


# table name -> the concrete model that owns it (auto-created m2m tables included)
_tables: dict[str, type[models.Model]] | None = None


def table_models() -> dict[str, type[models.Model]]:
    global _tables
    if _tables is None:
        found: dict[str, type[models.Model]] = {}
        for model in apps.get_models(include_auto_created=True):
            if model._meta.proxy:
                continue
            found.setdefault(model._meta.db_table, model)
        _tables = found
    return _tables


def clear_tables() -> None:
    global _tables, _registry
    _tables = None
    _registry = None
    _keyed.clear()


_keyed: dict[str, dict[str, str]] = {}


def keyed_columns(table: str) -> dict[str, str]:
    """``{column: attname}`` of the integer foreign keys stored in ``table``
    (not its primary key): the columns cached queries may be tagged by value."""
    try:
        return _keyed[table]
    except KeyError:
        pass
    found: dict[str, str] = {}
    model = table_models().get(table)
    if model is not None:
        for field in model._meta.local_concrete_fields:
            target = getattr(field, "target_field", None)
            if (
                (field.many_to_one or field.one_to_one)
                and not field.primary_key
                and isinstance(target, models.IntegerField)
                and field.column
            ):
                found[field.column] = field.attname
    _keyed[table] = found
    return found


def keyed_value(value: Any) -> int | None:
    """A foreign-key value as the tags name it; raises ValueError/TypeError for anything but an integer."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(value)
    return int(value)


def model_class(model: Any, what: str) -> type[models.Model]:
    if isinstance(model, type) and issubclass(model, models.Model) and not model._meta.abstract:
        return model
    raise TypeError(f"{what}() takes a concrete model class, not {model!r}.")


def depends_tags(depends_on: Iterable[Any]) -> list[str]:
    tags: list[str] = []
    for dep in depends_on:
        if isinstance(dep, models.Model):
            if dep.pk is None:
                raise ValueError(f"depends_on takes saved instances; {dep!r} has no primary key.")
            found = info(type(dep))
            tags += found.version_tags(found.pk_value(dep.pk))[:-1]
        else:
            found = info(model_class(dep, "cached(depends_on=...)"))
            tags += [*found.model_tags, *found.rows_tags]
    return tags
