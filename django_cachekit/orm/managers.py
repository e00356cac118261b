"""``CachedQuerySet`` and ``CachedManager``: opt-in caching of reads.

``Model.objects.cache()`` marks a queryset as cached. A pristine
``.get(pk=...)`` and ``in_bulk(ids)`` are served from per-object entries; every
other read (iteration, ``count``, ``exists``, ``aggregate``, ``values``...) from
an entry keyed on its SQL and tagged with every table that SQL reads.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models, transaction
from django.db.models.manager import BaseManager
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    NamedValuesListIterable,
    ValuesIterable,
    ValuesListIterable,
)

from django_cachekit.core import arguments, flow, protocol
from django_cachekit.invalidation import buffers, hook, modeltags
from django_cachekit.orm import fingerprint, queries, replicas
from django_cachekit.orm.queries import DEFAULT, OFF, Spec
from django_cachekit.schema import meta

_M = TypeVar("_M", bound=models.Model)

_KINDS: dict[type, str] = {
    ModelIterable: "model",
    ValuesIterable: "values",
    ValuesListIterable: "values_list",
    FlatValuesListIterable: "flat",
    NamedValuesListIterable: "named",
}
_NOT_HANDLED = object()

# Set while a cached queryset runs its prefetches: related cached querysets follow it.
_inherited: ContextVar[Spec | None] = ContextVar("django_cachekit_prefetch", default=None)


_DEFAULT_SPEC = Spec(DEFAULT, ())


def make_spec(timeout: Any = DEFAULT, tags: Iterable[str] | str = ()) -> Spec:
    if timeout is DEFAULT and not tags:
        return _DEFAULT_SPEC
    return Spec(arguments.timeout(timeout, "cache()"), tuple(arguments.tags(tags, "cache()")))


_fresh: dict[type[models.Model], tuple[Any, ...]] = {}


def _fresh_state(model: type[models.Model]) -> tuple[Any, ...]:
    try:
        return _fresh[model]
    except KeyError:
        found = _fresh[model] = fingerprint.state(models.sql.Query(model))
        return found


_pk_names: dict[type[models.Model], frozenset[str]] = {}


def _pk_lookups(model: type[models.Model]) -> frozenset[str]:
    try:
        return _pk_names[model]
    except KeyError:
        pk = model._meta.pk
        assert pk is not None
        names = {"pk", pk.name, pk.attname}
        found = frozenset(names | {f"{n}__exact" for n in names})
        _pk_names[model] = found
        return found


def _rehomed(objs: list[Any], db: str, skip: frozenset[str] = frozenset()) -> list[Any]:
    """``objs``, and the instances ``select_related`` loaded with them, marked as read through ``db``.

    ``skip`` names the fields_cache entries left alone (the caller's own related objects).
    """
    for obj in objs:
        state = obj._state
        if state.db == db:
            continue  # also ends a cycle (a reverse one-to-one points back)
        state.db = db
        related = [v for name, v in state.fields_cache.items() if name not in skip and isinstance(v, models.Model)]
        if related:
            _rehomed(related, db)
    return objs


class CachedQuerySet(models.QuerySet[_M]):
    _cachekit: Spec | None = None
    # How the query was built (see fingerprint.py); None when unknown.
    _cachekit_chain: tuple[Any, ...] | None = None
    _cachekit_shape: tuple[Any, ...] = ()
    _cachekit_state: tuple[Any, ...] | None = None

    def __init__(self, model: Any = None, query: Any = None, using: str | None = None, hints: Any = None) -> None:
        super().__init__(model, query, using, hints)
        if query is None and model is not None:
            self._cachekit_chain = ()
            self._cachekit_state = _fresh_state(model)

    def _clone(self) -> CachedQuerySet[_M]:
        clone: CachedQuerySet[_M] = super()._clone()  # type: ignore[misc]
        clone._cachekit = self._cachekit
        clone._cachekit_chain = self._cachekit_chain
        clone._cachekit_shape = self._cachekit_shape
        clone._cachekit_state = self._cachekit_state
        return clone

    # -- recording how the query is built ------------------------------------

    def _fingerprint(self) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
        """``(steps, shape)`` if this queryset's SQL is exactly what its recorded steps build."""
        chain = self._cachekit_chain
        if chain is None or fingerprint.state(self.query) != self._cachekit_state:
            return None
        return chain, self._cachekit_shape

    def _recorded(self, result: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not isinstance(result, CachedQuerySet):
            return result
        found = self._fingerprint()
        if found is None:
            result._cachekit_chain = None
            return result
        try:
            exact, shape = fingerprint.step(name, args, kwargs)
        except fingerprint.Unknown:
            result._cachekit_chain = None
            return result
        result._cachekit_chain = (*found[0], exact)
        result._cachekit_shape = (*found[1], shape)
        result._cachekit_state = fingerprint.state(result.query)
        return result

    def filter(self, *args: Any, **kwargs: Any) -> CachedQuerySet[_M]:
        name = "filter!" if self._sticky_filter else "filter"  # type: ignore[attr-defined]
        return self._recorded(super().filter(*args, **kwargs), name, args, kwargs)  # type: ignore[no-any-return]

    def exclude(self, *args: Any, **kwargs: Any) -> CachedQuerySet[_M]:
        name = "exclude!" if self._sticky_filter else "exclude"  # type: ignore[attr-defined]
        return self._recorded(super().exclude(*args, **kwargs), name, args, kwargs)  # type: ignore[no-any-return]

    def order_by(self, *fields: Any) -> CachedQuerySet[_M]:
        return self._recorded(super().order_by(*fields), "order_by", fields, {})  # type: ignore[no-any-return]

    def select_related(self, *fields: Any) -> CachedQuerySet[_M]:
        return self._recorded(super().select_related(*fields), "select_related", fields, {})  # type: ignore[no-any-return]

    def distinct(self, *fields: Any) -> CachedQuerySet[_M]:
        return self._recorded(super().distinct(*fields), "distinct", fields, {})  # type: ignore[no-any-return]

    def reverse(self) -> CachedQuerySet[_M]:
        return self._recorded(super().reverse(), "reverse", (), {})  # type: ignore[no-any-return]

    def only(self, *fields: Any) -> CachedQuerySet[_M]:
        return self._recorded(super().only(*fields), "only", fields, {})  # type: ignore[no-any-return]

    def defer(self, *fields: Any) -> CachedQuerySet[_M]:
        return self._recorded(super().defer(*fields), "defer", fields, {})  # type: ignore[no-any-return]

    def values(self, *fields: Any, **expressions: Any) -> Any:
        return self._recorded(super().values(*fields, **expressions), "values", fields, expressions)

    def values_list(self, *fields: Any, flat: bool = False, named: bool = False) -> Any:
        result = super().values_list(*fields, flat=flat, named=named)
        return self._recorded(result, "values_list", fields, {"flat": flat, "named": named})

    def none(self) -> CachedQuerySet[_M]:
        return self._recorded(super().none(), "none", (), {})  # type: ignore[no-any-return]

    def __getitem__(self, k: Any) -> Any:
        if self._result_cache is None:  # type: ignore[has-type]
            if isinstance(k, slice) and k.step is None:
                return self._recorded(super().__getitem__(k), "slice", (k.start, k.stop), {})
            if isinstance(k, int) and k >= 0 and self._cachekit_chain is not None:
                # As QuerySet does (a one-row slice), but through the recorded slice.
                qs = self[k : k + 1]
                qs._fetch_all()
                return qs._result_cache[0]
        return super().__getitem__(k)

    # -- opting in and out --------------------------------------------------

    def cache(self, timeout: Any = DEFAULT, tags: Iterable[str] | str = ()) -> CachedQuerySet[_M]:
        """This queryset, read through the cache; ``tags`` let ``invalidate_tags`` reach it."""
        clone = self._chain()  # type: ignore[attr-defined]
        clone._cachekit = make_spec(timeout, tags)
        return clone  # type: ignore[no-any-return]

    def nocache(self) -> CachedQuerySet[_M]:
        clone = self._chain()  # type: ignore[attr-defined]
        clone._cachekit = OFF
        return clone  # type: ignore[no-any-return]

    def _spec(self) -> Spec | None:
        spec = self._cachekit
        if spec is None:
            spec = _inherited.get()
        if spec is None or spec is OFF or not protocol.reading():
            return None
        if meta.info(self.model).problem is not None:  # a bad CacheMeta: read uncached (manage.py check says why)
            return None
        return spec

    def _timeout(self, spec: Spec) -> int | None:
        if spec.timeout is DEFAULT:
            return meta.info(self.model).timeout
        return spec.timeout  # type: ignore[no-any-return]

    def _pristine(self) -> bool:
        """No filter, slice, join or shaping: ``get(pk=...)`` means exactly one row by pk."""
        q = self.query
        return (
            not q.where
            and q.low_mark == 0
            and q.high_mark is None
            and not q.select_related
            and q.default_cols
            and not q.annotations
            and not q.extra
            and not q.distinct
            and q.deferred_loading == (frozenset(), True)
            and not q.select_for_update
            and not q.combinator
            and self._iterable_class is ModelIterable
            and not self._prefetch_related_lookups  # type: ignore[attr-defined]
            and not self._known_related_objects  # type: ignore[attr-defined]
            and getattr(self, "_deferred_filter", None) is None
        )

    def _aliases(self) -> tuple[str, str]:
        """``(db, source)``: the alias this read is routed to, and the one its entries come from.

        They differ when ``db`` is a replica: an entry read from a replica that
        has not replayed the latest commit would hold an old row under new
        versions, so what is stored is read from the primary, under its key.
        """
        db = self.db
        return db, replicas.primary(self.model, db, self._db is not None, self._hints)  # type: ignore[attr-defined]

    @contextmanager
    def _reading_from(self, alias: str) -> Iterator[None]:
        routed: str | None = self._db  # type: ignore[has-type]
        self._db = alias
        try:
            yield
        finally:
            self._db = routed  # type: ignore[assignment]

    def _computed_on(self, source: str, db: str, storable: bool) -> AbstractContextManager[None]:
        """Where a miss runs: on ``source`` when its result may be stored, else where the router sends it."""
        return self._reading_from(source) if storable and source != db else nullcontext()

    def _plan(self, source: str, db: str, spec: Spec, kind: str, extra: Any, probe: Any = None) -> queries.Plan | None:
        if source == db:
            return queries.plan(self, spec, kind, extra, probe)
        with self._reading_from(source):
            return queries.plan(self, spec, kind, extra, probe)

    def _rehome(self, objs: list[Any], db: str) -> list[Any]:
        """Instances computed on the primary, as if read through ``db`` like an uncached read."""
        known = self._known_related_objects  # type: ignore[attr-defined]
        return _rehomed(objs, db, frozenset(field.cache_name for field in known) if known else frozenset())

    # -- reads ----------------------------------------------------------------

    def get(self, *args: Any, **kwargs: Any) -> _M:
        if not args and len(kwargs) == 1:
            spec = self._spec()
            if spec is not None and self._pristine():
                ((name, value),) = kwargs.items()
                if name in _pk_lookups(self.model):
                    found = self._get_object(spec, value)
                    if found is not _NOT_HANDLED:
                        return found  # type: ignore[no-any-return]
        return super().get(*args, **kwargs)

    def _does_not_exist(self) -> Exception:
        exc: type[Exception] = self.model.DoesNotExist  # type: ignore[attr-defined]
        return exc(f"{self.model._meta.object_name} matching query does not exist.")

    def _get_object(self, spec: Spec, value: Any) -> Any:
        info = meta.info(self.model)
        try:
            pk = info.pk_value(value)
        except Exception:  # let Django raise its own error for a bad value
            return _NOT_HANDLED
        if pk is None:
            return _NOT_HANDLED
        db, source = self._aliases()
        key, tags, vkeys = info.object_lookup(source, pk)
        required = info.object_tag_count
        inserted = False
        pending = buffers.pending(source)
        if pending:
            if not pending.isdisjoint(tags[:required]):
                return _NOT_HANDLED
            # This transaction inserted rows: a cached "does not exist" may be its own row.
            inserted = not pending.isdisjoint(info.model_tags)
        entry = flow.begin(key, tags, info.label, required=required, vkeys=vkeys, guarded=False)
        hit, payload = entry.hit, entry.value
        if inserted:
            entry.forget()
            hit = hit and payload is not None
        if hit:
            if payload is None:
                raise self._does_not_exist()
            if isinstance(payload, tuple) and len(payload) == len(info.attnames):
                return self._adopt(info.build(db, [payload], self.model, entry.versions))[0]
        if not queries.may_store(source):
            entry.forget()
        qs = self.nocache()
        if entry.versions is not None and source != db:
            qs = qs.using(source)
        rows = list(qs.filter(pk=pk).values_list(*info.attnames))
        if rows:
            entry.store(tuple(rows[0]), self._timeout(spec), tags=tags[:required])
        else:
            entry.store(None, self._timeout(spec))
        if not rows:
            raise self._does_not_exist()
        return self._adopt(info.build(db, rows, self.model, entry.versions))[0]

    def in_bulk(self, id_list: Iterable[Any] | None = None, *, field_name: str = "pk") -> dict[Any, _M]:
        spec = self._spec()
        if spec is None or id_list is None or field_name != "pk" or not self._pristine():
            return super().in_bulk(id_list, field_name=field_name)
        info = meta.info(self.model)
        try:
            pks = list(dict.fromkeys(info.pk_value(v) for v in id_list))
        except Exception:
            return super().in_bulk(id_list, field_name=field_name)
        if not pks:
            return {}
        db, source = self._aliases()
        pending = buffers.pending(source)
        if pending and (
            not pending.isdisjoint(info.model_tags) or any(not pending.isdisjoint(info.object_tags(pk)) for pk in pks)
        ):
            return super().in_bulk(id_list, field_name=field_name)
        namespace = self.model._meta.label_lower
        items = [(info.object_key(source, pk), info.lookup_tags(pk)) for pk in pks]
        found: dict[Any, tuple[Any, ...]] = {}
        missing: list[tuple[Any, flow.Read]] = []
        required = len(info.object_tags(pks[0]))
        for pk, entry in zip(pks, flow.begin_many(items, namespace, required, guarded=False)):
            payload = entry.value
            if entry.hit and (payload is None or (isinstance(payload, tuple) and len(payload) == len(info.attnames))):
                if payload is not None:
                    found[pk] = payload
            else:
                missing.append((pk, entry))
        if missing:
            storable = queries.may_store(source) and any(entry.versions is not None for _, entry in missing)
            qs = self.nocache()
            if storable and source != db:
                qs = qs.using(source)
            pk_index = info.attnames.index(info.pk.attname)
            fetched = {
                row[pk_index]: tuple(row)
                for row in qs.filter(pk__in=[pk for pk, _ in missing]).values_list(*info.attnames)
            }
            found.update(fetched)
            if storable:
                flow.store_many(
                    [
                        (entry, fetched.get(pk), info.object_tags(pk) if pk in fetched else None)
                        for pk, entry in missing
                    ],
                    self._timeout(spec),
                )
        objs = self._adopt(info.build(db, found.values(), self.model))
        return {obj.pk: obj for obj in objs}  # type: ignore[attr-defined]

    def _fetch_all(self) -> None:
        spec = None
        if self._result_cache is None:  # type: ignore[has-type]
            spec = self._spec()
            if spec is not None:
                result = self._fetch_cached(spec)
                if result is not None:
                    self._result_cache = result
        if spec is not None and self._prefetch_related_lookups and not self._prefetch_done:  # type: ignore[attr-defined]
            token = _inherited.set(spec)
            try:
                super()._fetch_all()  # type: ignore[misc]
            finally:
                _inherited.reset(token)
        else:
            super()._fetch_all()  # type: ignore[misc]

    def _fetch_cached(self, spec: Spec) -> list[Any] | None:
        kind = _KINDS.get(self._iterable_class)
        if kind is None or self.query.select_for_update:
            return None
        info = meta.info(self.model)
        rows_mode = kind == "model" and info.plain and self._plain_columns()
        shape = (kind, rows_mode, self._fields if kind == "named" else None)  # type: ignore[attr-defined]
        db, source = self._aliases()
        plan = self._plan(source, db, spec, "list", shape)
        if plan is None:
            return None
        entry = flow.begin(plan.key, plan.tags, plan.namespace, guarded=False)
        payload = entry.value
        if entry.hit and isinstance(payload, list):
            if rows_mode:
                return self._adopt(info.build(db, payload, self.model))
            if kind != "model":
                return payload
            return self._adopt(_rehomed(payload, db) if source != db else payload)
        if not plan.store:
            entry.forget()
        with hook.recording() as seen, self._computed_on(source, db, entry.versions is not None):
            if rows_mode:
                compiler = self.query.get_compiler(using=self.db)
                payload = [tuple(row) for row in compiler.results_iter(tuple_expected=True)]
                result = self._adopt(info.build(db, payload, self.model))
            else:
                result = payload = list(self._iterable_class(self))  # type: ignore[call-overload]
        if entry.versions is not None and queries.verify(plan, seen):
            with self._detached(result if kind == "model" and not rows_mode else []):
                entry.store(payload, self._timeout(spec))
        if kind == "model" and not rows_mode and source != db:
            self._rehome(result, db)
        return result

    def _plain_columns(self) -> bool:
        """Whether rows hold exactly the model's concrete fields, in order."""
        q = self.query
        return bool(
            q.default_cols
            and not q.select_related
            and not q.annotation_select
            and not q.extra_select
            and q.deferred_loading == (frozenset(), True)
            and not q.combinator
        )

    def _adopt(self, objs: list[Any]) -> list[Any]:
        """Finish instances read from the cache as ``ModelIterable`` would."""
        known = self._known_related_objects  # type: ignore[attr-defined]
        if known:
            for field, rel_objs in known.items():
                attnames = [
                    field.attname if from_field == "self" else self.model._meta.get_field(from_field).attname  # type: ignore[union-attr]
                    for from_field in field.from_fields
                ]
                for obj in objs:
                    if any(name not in obj.__dict__ for name in attnames):
                        continue
                    rel_id = tuple(obj.__dict__[n] for n in attnames)
                    rel_obj = rel_objs.get(rel_id[0] if len(rel_id) == 1 else rel_id)
                    if rel_obj is not None:
                        setattr(obj, field.name, rel_obj)
        fetch_mode = getattr(self, "_fetch_mode", None)  # Django 6.1+
        if fetch_mode is not None:
            peers = [weakref.ref(obj) for obj in objs] if fetch_mode.track_peers else None
            for obj in objs:
                obj._state.fetch_mode = fetch_mode
                if peers is not None:
                    obj._state.peers = peers
        return objs

    @contextmanager
    def _detached(self, objs: list[Any]) -> Iterator[None]:
        """Leave out the caller's own related objects while storing (they are set again on a hit)."""
        known = self._known_related_objects  # type: ignore[attr-defined]
        removed = []
        if known:
            for field in known:
                for obj in objs:
                    if field.is_cached(obj):
                        removed.append((obj, field, field.get_cached_value(obj)))
                        field.delete_cached_value(obj)
        try:
            yield
        finally:
            for obj, field, value in removed:
                field.set_cached_value(obj, value)

    def _cached_value(
        self, kind: str, extra: Any, compute: Callable[[], Any], probe: Callable[[], Any] | None = None
    ) -> Any:
        spec = self._spec()
        if spec is None:
            return compute()
        db, source = self._aliases()
        plan = self._plan(source, db, spec, kind, extra, probe)
        if plan is None:
            return compute()
        entry = flow.begin(plan.key, plan.tags, plan.namespace, guarded=False)
        if entry.hit:
            return entry.value
        if not plan.store:
            entry.forget()
        with hook.recording() as seen, self._computed_on(source, db, entry.versions is not None):
            value = compute()
        if entry.versions is not None and queries.verify(plan, seen):
            entry.store(value, self._timeout(spec))
        return value

    def count(self) -> int:
        if self._result_cache is not None:  # type: ignore[has-type]
            return len(self._result_cache)  # type: ignore[has-type]
        return self._cached_value("count", None, super().count)  # type: ignore[no-any-return]

    def exists(self) -> bool:
        if self._result_cache is not None:  # type: ignore[has-type]
            return bool(self._result_cache)  # type: ignore[has-type]
        return self._cached_value("exists", None, super().exists)  # type: ignore[no-any-return]

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        parent = super()
        extra = (args, sorted(kwargs.items()))  # encoded exactly by queries.plan() with the rest of the key
        expressions = [*args, *kwargs.values()]

        def probe() -> Any:
            return self.nocache().annotate(**{f"_cachekit_{i}": e for i, e in enumerate(expressions)})

        def compute() -> Any:
            return parent.aggregate(*args, **kwargs)  # type: ignore[attr-defined]

        return self._cached_value("aggregate", extra, compute, probe)  # type: ignore[no-any-return]

    # -- writes ---------------------------------------------------------------
    # The SQL of every write is seen by the connection hook; these overrides add
    # what SQL cannot tell: declared tags and touched parents of the rows.

    def update(self, **kwargs: Any) -> int:
        info = meta.info(self.model)
        if not info.watched:
            return super().update(**kwargs)
        qs = self.nocache()
        qs._for_write = True  # type: ignore[attr-defined]
        db = qs.db
        with transaction.atomic(using=db, savepoint=False):
            before = list(qs.values_list("pk", *info.watched))
            updated = super().update(**kwargs)
            after = self.model._base_manager.using(db).filter(pk__in=[row[0] for row in before])
            modeltags.rows_changed(
                self.model, db, [r[1:] for r in before], [r[1:] for r in after.values_list("pk", *info.watched)]
            )
        return updated

    def bulk_create(self, objs: Iterable[_M], *args: Any, **kwargs: Any) -> list[_M]:
        info = meta.info(self.model)
        if not info.watched:
            return super().bulk_create(objs, *args, **kwargs)
        self._for_write = True  # type: ignore[attr-defined]  # as Django's bulk_create: the database written to
        db = self.db
        # One transaction with the rows, so their declared and touch tags are marked before its COMMIT.
        with transaction.atomic(using=db, savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            modeltags.instances_changed(self.model, db, [], created)
        return created

    def bulk_update(self, objs: Iterable[_M], fields: Iterable[str], batch_size: int | None = None) -> int:
        objs = list(objs)
        info = meta.info(self.model)
        if not info.watched:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        db = self.db
        with transaction.atomic(using=db, savepoint=False):
            before = modeltags.loaded_values(self.model, db, objs)
            updated = super().bulk_update(objs, fields, batch_size=batch_size)
            modeltags.rows_changed(self.model, db, before, [modeltags.current_values(info, o) for o in objs])
            modeltags.remember(info, objs)
        return updated


class CachedManager(BaseManager.from_queryset(CachedQuerySet)):  # type: ignore[misc]
    """The default manager of ``CachedModelMixin`` models."""

    def cache(self, timeout: Any = DEFAULT, tags: Iterable[str] | str = ()) -> CachedQuerySet[Any]:
        qs: CachedQuerySet[Any] = self.get_queryset()
        if qs._cachekit is None:
            qs._cachekit = make_spec(timeout, tags)
            return qs
        return qs.cache(timeout, tags)


if TYPE_CHECKING:  # pragma: no cover
    _typed: type[models.QuerySet[Any]] = CachedQuerySet
