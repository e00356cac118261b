from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.backends.signals import connection_created
from django.db.models.signals import class_prepared, post_delete, pre_delete


class CachekitConfig(AppConfig):
    name = "django_cachekit"
    verbose_name = "django-cachekit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import changes, checks, core, dbhook, meta, outbox  # noqa: F401  (checks registers itself)

        if outbox.poll not in core.Runtime.repairs:
            core.Runtime.repairs.append(outbox.poll)

        connection_created.connect(dbhook.install, dispatch_uid="django_cachekit.install")
        dbhook.install_all()
        class_prepared.connect(_models_changed, dispatch_uid="django_cachekit.models_changed")
        setting_changed.connect(_settings_changed, dispatch_uid="django_cachekit.settings_changed")
        for model in meta.cached_models():
            connect_model(model)


def connect_model(model: Any) -> None:
    """Receivers for what SQL alone does not tell: the declared tags of changed rows."""
    from . import changes, meta

    label = model._meta.label
    info = meta.info(model)
    if info.watched:
        post_delete.connect(changes.on_delete, sender=model, dispatch_uid=f"django_cachekit.delete.{label}")
    for field in changes.nulling_fields(model):
        watcher = changes.NullingWatcher(model, field)
        uid = f"django_cachekit.nulling.{label}.{field.name}"
        _watchers[uid] = watcher  # receivers are weak references: keep the watcher alive
        pre_delete.connect(watcher.before, sender=field.related_model, dispatch_uid=uid)
        post_delete.connect(watcher.after, sender=field.related_model, dispatch_uid=uid)


_watchers: dict[str, Any] = {}


def _models_changed(sender: Any, **kwargs: Any) -> None:
    from . import dbhook, meta

    meta.clear_tables()
    dbhook.clear()


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("CACHEKIT", "CACHES", "USE_TZ"):
        from . import backends, core, dbhook, meta, queries
        from .conf import conf

        conf.reload()
        meta.clear()
        dbhook.clear()
        queries.clear()
        backends.reset()
        core.reset()
