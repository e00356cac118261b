"""``CachedModelMixin``: the abstract model that makes a model cacheable (``django_cachekit.models``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.db import connections, models, router

from django_cachekit.core import protocol
from django_cachekit.invalidation import buffers, keyed, modeltags, rowupdate
from django_cachekit.orm import replicas
from django_cachekit.orm.managers import CachedManager
from django_cachekit.schema import meta


class CachedModelMixin(models.Model):
    """Gives ``objects = CachedManager()``, ``cache_key`` and ``cache_version``.

    An inner ``class CacheMeta`` may set ``timeout``, ``tags`` (format strings
    over field attnames, bumped with old and new values on every change) and
    ``touch`` (foreign keys whose targets count as changed when this row does).
    """

    _cachekit_cached: ClassVar[bool] = True

    objects = CachedManager()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Any:
        obj = super().from_db(db, field_names, values, **kwargs)
        info = meta.info(cls)
        loaded = obj.__dict__
        if info.watched and all(name in loaded for name in info.watched):
            loaded[meta.ORIGINAL_ATTR] = tuple(loaded[name] for name in info.watched)
        if info.keyed and all(name in loaded for name, _ in info.keyed):
            loaded[meta.KEYED_ATTR] = tuple(loaded[name] for name, _ in info.keyed)
        return obj

    def refresh_from_db(self, using: str | None = None, fields: Any = None, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(using, fields, *args, **kwargs)
        modeltags.refreshed(self, fields)

    def save_base(
        self,
        raw: bool = False,
        force_insert: Any = False,
        force_update: bool = False,
        using: str | None = None,
        update_fields: Iterable[str] | None = None,
    ) -> None:
        using = using or router.db_for_write(self.__class__, instance=self)
        connection = connections[using]
        with buffers.batch(connection):
            plan = modeltags.before_save(self, connection, update_fields, force_insert)
            if plan.marks:
                buffers.mark_soon(connection, plan.marks)
            try:
                with keyed.covering(plan.covered), modeltags.saving(self, plan):
                    super().save_base(
                        raw=raw,
                        force_insert=force_insert,
                        force_update=force_update,
                        using=using,
                        update_fields=update_fields,
                    )
            except BaseException:
                if plan.covered is not None:  # the UPDATE may have run: its values go unreported
                    keyed.unknown(self, using)
                raise
            modeltags.after_save(self, connection, plan, update_fields)

    def _save_table(self, raw: bool = False, cls: Any = None, *args: Any, **kwargs: Any) -> Any:
        updated = super()._save_table(raw, cls, *args, **kwargs)  # type: ignore[misc]
        modeltags.table_saved(self, cls)
        return updated

    def _do_insert(self, manager: Any, using: str, *args: Any, **kwargs: Any) -> Any:
        modeltags.before_write(self, manager.model, connections[using])
        return super()._do_insert(manager, using, *args, **kwargs)  # type: ignore[misc]

    def _do_update(  # type: ignore[override]
        self,
        base_qs: models.QuerySet[Any],
        using: str,
        pk_val: Any,
        values: Any,
        update_fields: Any,
        forced_update: Any,
        *returning: Any,  # Django 6.0+: the fields to read back from the UPDATE
    ) -> Any:
        """Django's, with the statement made once per model and set of fields (see ``saves``)."""
        connection = connections[using]
        modeltags.before_write(self, base_qs.model, connection)
        statement = None
        if not (returning and returning[0]) and not self._meta.select_on_save and not base_qs.query.where:
            statement = rowupdate.update_statement(base_qs.model, pk_val, values, connection)
        if statement is None:
            return super()._do_update(  # type: ignore[misc]
                base_qs, using, pk_val, values, update_fields, forced_update, *returning
            )
        with connection.cursor() as cursor:
            cursor.execute(*statement)
            count = cursor.rowcount
        # What Django returns: the rows updated (6.0+, nothing read back), or whether there were any.
        return [()] * count if returning else count > 0

    @property
    def cache_key(self) -> str:
        """The key of this row's object entry (``objects.cache().get(pk=...)``)."""
        info = meta.info(type(self))
        return info.object_key(replicas.of_instance(self), info.pk_value(self.pk))

    @property
    def cache_version(self) -> str:
        """A string that changes whenever this row or anything that touches it changes."""
        return cache_versions([self])[0]


def cache_versions(objs: Iterable[models.Model]) -> list[str]:
    """``cache_version`` of several instances in one round trip.

    Without a reachable cache the version is unique to the call, so nothing
    keyed on it is ever reused.
    """
    objs = list(objs)
    tagged = []
    for obj in objs:
        info = meta.info(type(obj))
        tagged.append((info, info.version_tags(info.pk_value(obj.pk))))
    all_tags = list(dict.fromkeys(tag for _, tags in tagged for tag in tags))
    found = protocol.versions(all_tags) if all_tags else {}
    out = []
    for info, tags in tagged:
        if found is None:
            from django_cachekit.stores.base import fresh_version

            out.append(f"{info.schema}-x{fresh_version():x}")
        else:
            out.append(f"{info.schema}-" + "-".join(f"{found[t]:x}" for t in tags))
    return out


meta.stock_from_db(CachedModelMixin.from_db.__func__)  # type: ignore[attr-defined]
