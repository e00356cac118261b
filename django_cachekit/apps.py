from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.backends.signals import connection_created
from django.db.models.signals import class_prepared, m2m_changed, post_delete


class CachekitConfig(AppConfig):
    name = "django_cachekit"
    verbose_name = "django-cachekit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import changes, checks, dbhook, meta  # noqa: F401  (checks registers itself)

        connection_created.connect(dbhook.install, dispatch_uid="django_cachekit.install")
        dbhook.install_all()
        class_prepared.connect(_models_changed, dispatch_uid="django_cachekit.models_changed")
        setting_changed.connect(_settings_changed, dispatch_uid="django_cachekit.settings_changed")
        for model in meta.cached_models():
            connect_model(model)


def connect_model(model: Any) -> None:
    from . import changes, meta

    info = meta.info(model)
    if info.watched:
        post_delete.connect(changes.on_delete, sender=model, dispatch_uid=f"django_cachekit.delete.{model._meta.label}")
    related = [*model._meta.many_to_many, *(r for r in model._meta.related_objects if r.many_to_many)]
    for field in related:
        through = getattr(field.remote_field, "through", None) or getattr(field, "through", None)
        if isinstance(through, type):
            m2m_changed.connect(
                changes.on_m2m_changed, sender=through, dispatch_uid=f"django_cachekit.m2m.{through._meta.label}"
            )


def _models_changed(sender: Any, **kwargs: Any) -> None:
    from . import dbhook, meta

    meta.clear_tables()
    dbhook.clear()


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("CACHEKIT", "CACHES", "USE_TZ"):
        from . import backends, core, dbhook, meta, queries

        meta.clear()
        dbhook.clear()
        queries.clear()
        backends.reset()
        core.reset()
