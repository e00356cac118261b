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
        from django_cachekit import checks, metrics  # noqa: F401  (importing checks registers them)
        from django_cachekit.core import flow, protocol
        from django_cachekit.invalidation import buffers, hook, outbox
        from django_cachekit.orm import queries
        from django_cachekit.schema import meta

        metrics.install()
        flow.guard(written=buffers.written_here, storable=queries.may_store_here)
        if outbox.poll not in protocol.Runtime.repairs:
            protocol.Runtime.repairs.append(outbox.poll)

        connection_created.connect(hook.install, dispatch_uid="django_cachekit.install")
        hook.install_all()
        class_prepared.connect(_models_changed, dispatch_uid="django_cachekit.models_changed")
        setting_changed.connect(_settings_changed, dispatch_uid="django_cachekit.settings_changed")
        for model in meta.cached_models():
            connect_model(model)


def connect_model(model: Any) -> None:
    """Receivers for what SQL alone does not tell: the declared tags of changed rows."""
    from django_cachekit.invalidation import modeltags
    from django_cachekit.schema import meta

    label = model._meta.label
    info = meta.info(model)
    if info.watched:
        post_delete.connect(modeltags.on_delete, sender=model, dispatch_uid=f"django_cachekit.delete.{label}")
    for field in modeltags.nulling_fields(model):
        watcher = modeltags.NullingWatcher(model, field)
        uid = f"django_cachekit.nulling.{label}.{field.name}"
        _watchers[uid] = watcher  # receivers are weak references: keep the watcher alive
        pre_delete.connect(watcher.before, sender=field.related_model, dispatch_uid=uid)
        post_delete.connect(watcher.after, sender=field.related_model, dispatch_uid=uid)


_watchers: dict[str, Any] = {}


def _models_changed(sender: Any, **kwargs: Any) -> None:
    from django_cachekit.invalidation import hook
    from django_cachekit.schema import meta

    meta.clear_tables()
    hook.clear()


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("CACHEKIT", "CACHES", "USE_TZ"):
        from django_cachekit import memo

        memo.reset_all()
    elif setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        from django_cachekit.core import signing

        signing.reset()  # entries are signed with keys derived from them
