"""What a change to a cached model invalidates beyond its SQL.

The connection hook sees every statement and bumps table, rows and object tags.
What it cannot see is added here: the tags a model declares from its fields
(old and new values), the parents it touches, and the fresh entry a save writes
through after commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.signals import post_save

from django_cachekit.core import keys, protocol
from django_cachekit.invalidation import buffers, keyed
from django_cachekit.schema import meta
from django_cachekit.schema.meta import KEYED_ATTR, ORIGINAL_ATTR, VERSIONS_ATTR, ModelInfo

_MAX_TOUCH_DEPTH = 8


def current_values(info: ModelInfo, obj: models.Model) -> tuple[Any, ...]:
    return info.watched_values(obj)


def remember(info: ModelInfo, objs: Iterable[models.Model]) -> None:
    if info.watched:
        for obj in objs:
            obj.__dict__[ORIGINAL_ATTR] = current_values(info, obj)


def loaded_values(model: type[models.Model], db: str, objs: Sequence[models.Model]) -> list[tuple[Any, ...]]:
    """The watched values ``objs`` had in the database: from their load, else read now."""
    info = meta.info(model)
    known = [obj.__dict__.get(ORIGINAL_ATTR) for obj in objs]
    unknown = [obj.pk for obj, values in zip(objs, known) if values is None and obj.pk is not None]
    found: list[tuple[Any, ...]] = [v for v in known if v is not None]
    if unknown:
        rows = model._base_manager.using(db).filter(pk__in=unknown).values_list(*info.watched)
        found.extend(tuple(row) for row in rows)
    return found


def _declared(info: ModelInfo, values: tuple[Any, ...]) -> list[str]:
    assert info.options is not None
    mapping = dict(zip(info.watched, values))
    if "pk" not in mapping and info.pk.attname in mapping:
        mapping["pk"] = mapping[info.pk.attname]
    return [keys.user_tag(template.format(**mapping)) for template in info.options.tags]


def touch_tags(model: type[models.Model], pk: Any, db: str, depth: int = 0) -> list[str]:
    """``t:`` tags of ``model``'s row ``pk`` and of the parents it touches in turn."""
    info = meta.info(model)
    tags = [keys.touch_tag(table, pk) for table in info.tables]
    if info.options is None or not info.options.touch or depth >= _MAX_TOUCH_DEPTH:
        return tags
    fields = [model._meta.get_field(name) for name in info.options.touch]
    row = model._base_manager.using(db).filter(pk=pk).values_list(*(f.attname for f in fields)).first()  # type: ignore[union-attr]
    if row is not None:
        for field, parent_pk in zip(fields, row):
            if parent_pk is not None:
                tags += touch_tags(field.related_model, parent_pk, db, depth + 1)  # type: ignore[arg-type]
    return tags


def _tags(info: ModelInfo, db: str, values: tuple[Any, ...]) -> list[str]:
    options = info.options
    if options is None:
        return []
    tags = _declared(info, values) if options.tags else []
    if options.touch:
        mapping = dict(zip(info.watched, values))
        for name in options.touch:
            field = info.model._meta.get_field(name)
            parent_pk = mapping[field.attname]  # type: ignore[union-attr]
            if parent_pk is not None:
                tags += touch_tags(field.related_model, parent_pk, db, 1)  # type: ignore[arg-type]
    return tags


def rows_changed(
    model: type[models.Model], db: str, before: Iterable[tuple[Any, ...]], after: Iterable[tuple[Any, ...]]
) -> None:
    """Invalidate the declared and touch tags of rows that had ``before`` and now have ``after``."""
    tags = changed_tags(meta.info(model), db, before, after)
    if tags:
        buffers.record(connections[db], tags)


def changed_tags(
    info: ModelInfo, db: str, before: Iterable[tuple[Any, ...]], after: Iterable[tuple[Any, ...]]
) -> list[str]:
    """The declared and touch tags of rows that had ``before`` and now have ``after``."""
    tags: dict[str, None] = {}
    seen: set[tuple[Any, ...]] = set()
    declared = info.declared_memo
    # Declared tags depend on the values alone; touch tags read the parents' rows.
    by_values = info.options is not None and not info.options.touch
    for values in (*before, *after):
        # Rows that kept their tagged values: their tags once (by type too: 1 and
        # True format differently).
        key = (*values, *map(type, values))
        try:
            if key in seen:
                continue
            seen.add(key)
            if by_values:
                found = declared.get(key)
                if found is None:
                    found = declared.remember(key, _tags(info, db, values))
                tags.update(dict.fromkeys(found))
                continue
        except TypeError:  # an unhashable value (a JSON field's dict): no shortcut
            pass
        tags.update(dict.fromkeys(_tags(info, db, values)))
    return list(tags)


def instances_changed(
    model: type[models.Model], db: str, before: Iterable[tuple[Any, ...]], objs: Iterable[models.Model]
) -> None:
    info = meta.info(model)
    objs = list(objs)
    rows_changed(model, db, before, [current_values(info, obj) for obj in objs])
    remember(info, objs)


@dataclass
class SavePlan:
    info: ModelInfo
    before: tuple[Any, ...] | None  # watched values before the save
    versions: protocol.Versions | None  # tag versions read before the save, for write-through
    # (table, pk) of a row whose old foreign-key values are known from its load;
    # the save then reports them instead of bumping the table's keyed tag.
    covered: tuple[str, Any] | None = None
    # The watched values before the UPDATE and the declared and touch tags they
    # change, worked out before the statement so they can be marked first.
    early: tuple[tuple[Any, ...], list[str]] | None = None
    # The old and new foreign-key values and their field tags, likewise.
    early_keyed: tuple[tuple[Any, ...], tuple[Any, ...], list[str] | None] | None = None
    marks: list[str] | None = None  # what the save is expected to bump
    written: Any = None  # the instance as its statement wrote it (a Written, or itself)
    connection: BaseDatabaseWrapper | None = None  # the saving connection
    through: bool = False  # whether the save writes its row's entry through
    # The fresh entry of the row as written, queued right after its statement so
    # that any later statement touching the row (a receiver's) drops it.
    write: buffers.WriteThrough | None = None


class Written:
    """An instance as its save's statement wrote it.

    Its attributes are the instance's at that moment, so a ``post_save``
    receiver that changes the instance (without saving it) changes neither the
    tags the save reports nor the entry it writes through. An attribute it did
    not hold (a deferred field) is read from the instance.
    """

    def __init__(self, obj: models.Model) -> None:
        self.__dict__.update(obj.__dict__)
        self.__dict__[_INSTANCE] = obj

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__[_INSTANCE], name)


_INSTANCE = "_cachekit_instance"


class _Saves(threading.local):
    def __init__(self) -> None:
        self.running: list[tuple[models.Model, SavePlan]] = []


_saves = _Saves()


class saving:
    """The block in which ``obj``'s save runs its statements, under ``plan``."""

    __slots__ = ("entry",)

    def __init__(self, obj: models.Model, plan: SavePlan) -> None:
        self.entry = (obj, plan)

    def __enter__(self) -> None:
        _saves.running.append(self.entry)

    def __exit__(self, *exc_info: object) -> None:
        _saves.running.pop()  # saves nest: the last one begun ends first


def _plan_of(obj: models.Model, table_model: type[models.Model]) -> SavePlan | None:
    """The plan of ``obj``'s running save, if ``table_model`` is the table it writes last (its own)."""
    if table_model is not type(obj)._meta.concrete_model:
        return None
    for saved, plan in reversed(_saves.running):
        if saved is obj:
            return plan
    return None


def before_write(obj: models.Model, table_model: type[models.Model], connection: BaseDatabaseWrapper) -> None:
    """``obj``'s save is about to run the UPDATE or INSERT of ``table_model``'s
    table: if it is the last, mark with that statement the declared, touch and
    foreign-key value tags of the values it writes that the save's first marks
    did not name (a ``pre_save`` receiver or ``auto_now`` changed them, or the
    row is new)."""
    plan = _plan_of(obj, table_model)
    if plan is None:
        return
    info = plan.info
    if info.watched:
        values = info.watched_values(obj)
        if not _same(plan.early[0] if plan.early is not None else None, values):
            before = [plan.before] if plan.before is not None else []
            buffers.mark_with_statement(connection, changed_tags(info, connection.alias, before, [values]))
    early_keyed = plan.early_keyed
    if early_keyed is not None:  # the save reports its foreign-key values' tags itself
        new = info.keyed_values(obj)
        if not _same(early_keyed[1], new):
            found = keyed.changed(info, early_keyed[0], new)
            buffers.mark_with_statement(connection, info.keyed_tags if found is None else found)


def _same(early: tuple[Any, ...] | None, values: tuple[Any, ...]) -> bool:
    """Whether values worked out early are still ``values`` (of the same types)."""
    return early is not None and early == values and tuple(map(type, early)) == tuple(map(type, values))


def table_saved(obj: models.Model, table_model: type[models.Model]) -> None:
    """``obj``'s save has written ``table_model``'s table: if it is the last, note
    what it wrote, for every save of ``obj`` running (one saving it again from a
    receiver has written the row last)."""
    if table_model is not type(obj)._meta.concrete_model:
        return
    # Without a post_save receiver nothing changes the instance before the save
    # ends: it is its own record of what was written.
    written: Any = Written(obj) if post_save.has_listeners(type(obj)) else obj
    first = current = None
    for saved, plan in _saves.running:
        if saved is obj:
            plan.written = written
            first, current = first or plan, plan
    # A save of obj from a receiver of its own save checks its entry against the
    # first save's versions: read before this batch's marks bumped them, as the check expects.
    versions = first.versions if first is not None else None
    if current is not None and current.through and versions is not None and current.connection is not None:
        write = current.write = _write_through(current, obj, current.connection.alias, written, versions)
        buffer = buffers.current(current.connection)
        if write is not None and buffer is not None:
            buffer.add_write(write)


def _write_through(
    plan: SavePlan, obj: models.Model, using: str, written: Any, versions: protocol.Versions
) -> buffers.WriteThrough | None:
    """The fresh entry of the row ``written``, checked against ``versions`` (None: its values are not all known)."""
    info = plan.info
    row = info.saved_row(written)
    if row is None:
        return None
    pk = info.pk_of(written)
    object_tags = info.object_tags(pk)
    return buffers.WriteThrough(
        key=info.object_key(using, pk),
        tags=object_tags,
        before=tuple([versions.get(t) for t in object_tags]),
        payload=row,
        timeout=info.timeout,
        target=obj,
    )


def refreshed(obj: models.Model, fields: Iterable[str] | None) -> None:
    """``obj`` was read again from the database (``refresh_from_db``): its old
    values are the ones just read, not its first load's; after a refresh of
    some fields they are forgotten, and its next save reads them."""
    info = meta.info(type(obj))
    loaded = obj.__dict__
    keyed_names = tuple(attname for attname, _ in info.keyed)
    if fields is not None:
        names = set(fields)
        get_field = info.model._meta.get_field
        if not any(a in names or get_field(a).name in names for a in (*info.watched, *keyed_names)):
            return
    # The versions it was first loaded with are older than the row.
    loaded.pop(VERSIONS_ATTR, None)
    for attr, attnames, values in (
        (ORIGINAL_ATTR, info.watched, info.watched_values),
        (KEYED_ATTR, keyed_names, info.keyed_values),
    ):
        if fields is None and attnames and all(name in loaded for name in attnames):
            loaded[attr] = values(obj)  # every one just read
        else:
            loaded.pop(attr, None)


def before_save(
    obj: models.Model, connection: BaseDatabaseWrapper, update_fields: Iterable[str] | None, force_insert: Any
) -> SavePlan:
    model = type(obj)
    info = meta.info(model)
    loaded = obj.__dict__
    old = None
    if info.watched:
        old = loaded.get(ORIGINAL_ATTR)
        if old is None and obj.pk is not None and not force_insert:
            row = model._base_manager.using(connection.alias).filter(pk=obj.pk).values_list(*info.watched).first()
            old = tuple(row) if row is not None else None
    versions = None
    covered = None
    known = loaded.pop(VERSIONS_ATTR, None)
    through = protocol.reading() and info.normalizers is not None and _writes_every_column(info, update_fields)
    # A save of obj from a receiver of its own save uses the first save's versions (see table_saved).
    if through and not (_saves.running and any(saved is obj for saved, _ in _saves.running)):
        if obj._state.adding or obj.pk is None:
            # An insert: the row's own tags must not exist yet; the others are read now.
            versions = protocol.versions((*info.rows_tags, keys.GLOBAL_TAG))
        else:
            pk = info.pk_of(obj)
            tags = info.object_tags(pk)
            # Versions from the read that loaded obj are as good as fresh ones: if
            # anything bumped them since, the write-through's check fails.
            reuse = known is not None and known.keys() >= set(tags)
            versions = known if reuse else protocol.versions(tags)
            # The foreign-key values obj was loaded with are the row's old values
            # if no write reached the row between that load and this save's flush,
            # which is what the write-through's check proves (and, when it fails,
            # the flush bumps the keyed tag instead).
            if reuse and info.keyed and KEYED_ATTR in loaded and not force_insert:
                covered = (info.table, pk)
    plan = SavePlan(info, old, versions, covered, connection=connection, through=through)
    if obj.pk is not None and not obj._state.adding and not force_insert:
        plan.marks = _expected_tags(plan, obj, connection.alias)
    return plan


def _expected_tags(plan: SavePlan, obj: models.Model, db: str) -> list[str]:
    """What saving an existing row will bump, as far as it is known before its UPDATE."""
    info = plan.info
    pk = info.pk_of(obj)
    tags = [*info.model_tags, *(keys.object_tag(table, pk) for table in info.tables)]
    if info.keyed:
        old = obj.__dict__.get(KEYED_ATTR)
        found = None
        if plan.covered is not None and old is not None:
            new = info.keyed_values(obj)
            found = keyed.changed(info, old, new)
            plan.early_keyed = (old, new, found)
        tags += info.keyed_tags if found is None else found
    if info.watched:
        values = info.watched_values(obj)
        plan.early = (values, changed_tags(info, db, [plan.before] if plan.before is not None else [], [values]))
        tags += plan.early[1]
    return tags


def _row_after(
    info: ModelInfo, before: tuple[Any, ...] | None, values: tuple[Any, ...], update_fields: Iterable[str]
) -> tuple[Any, ...] | None:
    """The watched values of the row after a save of ``update_fields`` only: the
    instance's for the fields it wrote, the row's old ones for the others (None if unknown)."""
    if before is None:
        return None
    named = set(update_fields)
    get_field = info.model._meta.get_field
    return tuple(
        value if attname in named or get_field(attname).name in named else old
        for attname, value, old in zip(info.watched, values, before)
    )


def _writes_every_column(info: ModelInfo, update_fields: Iterable[str] | None) -> bool:
    if update_fields is None:
        return True
    named = set(update_fields)
    return all(f.primary_key or f.name in named or f.attname in named for f in info.fields)


def after_save(
    obj: models.Model, connection: BaseDatabaseWrapper, plan: SavePlan, update_fields: Iterable[str] | None = None
) -> None:
    info = plan.info
    using = connection.alias
    loaded = obj.__dict__
    written: Any = plan.written if plan.written is not None else obj
    tags: list[str] = []
    if info.watched:
        new: tuple[Any, ...] | None = info.watched_values(written)
        if update_fields is not None and not _writes_every_column(info, update_fields):
            new = _row_after(info, plan.before, new, update_fields)  # type: ignore[arg-type]
        early = plan.early
        if new is None:  # a save of some fields of a row whose other values are unknown
            tags = changed_tags(info, using, [], [info.watched_values(written)])
            loaded.pop(ORIGINAL_ATTR, None)
        elif early is not None and early[0] == new and tuple(map(type, early[0])) == tuple(map(type, new)):
            tags = list(early[1])
            loaded[ORIGINAL_ATTR] = new
        else:  # the save changed a watched value (pre_save, auto_now...), or wrote some fields only
            tags = changed_tags(info, using, [plan.before] if plan.before is not None else [], [new])
            loaded[ORIGINAL_ATTR] = new
    write = plan.write
    buffer = buffers.current(connection)
    if write is not None and buffer is not None and buffer.writes.get(write.key) is not write:
        write = None  # a later statement touched the row (a receiver's): its entry is not this one
    otherwise: tuple[str, ...] = ()
    if info.keyed:
        old = loaded.pop(KEYED_ATTR, None)
        new_keyed = info.keyed_values(written)
        if _writes_every_column(info, update_fields):
            loaded[KEYED_ATTR] = new_keyed
        if plan.covered is not None:
            # The UPDATE left the keyed tag alone: report the old and new values,
            # which hold only if the write-through's check does; else bump it.
            early_keyed = plan.early_keyed
            if old is None or write is None:
                found = None
            elif (
                early_keyed is not None
                and early_keyed[0] is old
                and early_keyed[1] == new_keyed
                and tuple(map(type, early_keyed[1])) == tuple(map(type, new_keyed))
            ):
                found = early_keyed[2]
            else:
                found = keyed.changed(info, old, new_keyed)
            if found is None:
                tags += info.keyed_tags
            else:
                tags += found
                otherwise = info.keyed_tags
    if tags:
        buffers.record(connection, tags)
    if write is None:
        return
    write.otherwise = otherwise
    if buffer is None:
        protocol.bump([], [write.as_write(set())])


def on_delete(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
    info = meta.info(sender)
    if not info.watched:
        return
    old = instance.__dict__.get(ORIGINAL_ATTR)
    rows_changed(sender, using, [old] if old is not None else [], [current_values(info, instance)])


class NullingWatcher:
    """Declared tags of rows whose foreign key the database or Django rewrites when
    the target is deleted (``SET_NULL``, ``SET_DEFAULT``, ``SET()``, ``DB_SET_NULL``...):
    no signal names those rows, so they are read before and after the delete."""

    def __init__(self, model: type[models.Model], field: models.ForeignKey[Any, Any]) -> None:
        self.model = model
        self.field = field
        self._pending: dict[tuple[int, str], list[tuple[Any, ...]]] = {}

    def before(self, sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        info = meta.info(self.model)
        rows = self.model._base_manager.using(using).filter(**{self.field.attname: instance.pk})
        found = [tuple(r) for r in rows.values_list("pk", *info.watched)]
        if found:
            self._pending[(id(instance), using)] = found

    def after(self, sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        found = self._pending.pop((id(instance), using), None)
        if not found:
            return
        info = meta.info(self.model)
        now = self.model._base_manager.using(using).filter(pk__in=[r[0] for r in found])
        rows_changed(self.model, using, [r[1:] for r in found], [tuple(r) for r in now.values_list(*info.watched)])


def nulling_fields(model: type[models.Model]) -> list[models.ForeignKey[Any, Any]]:
    """Foreign keys of ``model`` that a delete of their target rewrites without a signal."""
    info = meta.info(model)
    found = []
    for field in model._meta.concrete_fields:
        if not field.many_to_one or field.attname not in info.watched:
            continue
        on_delete = field.remote_field.on_delete  # type: ignore[union-attr]
        name = getattr(on_delete, "__name__", "") or getattr(on_delete, "name", "")
        deconstructed = getattr(on_delete, "deconstruct", None)
        if name in ("SET_NULL", "SET_DEFAULT", "DB_SET_NULL", "DB_SET_DEFAULT") or (
            deconstructed is not None and deconstructed()[0] == "django.db.models.SET"
        ):
            found.append(field)
    return found  # type: ignore[return-value]
