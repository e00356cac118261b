"""System checks for the ``CACHEKIT`` setting and for models' ``CacheMeta``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import models

from django_cachekit.core.settings import DEFAULTS, SETTINGS


@register(Tags.caches, Tags.compatibility)
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    options = getattr(settings, "CACHEKIT", {})
    if not isinstance(options, dict):
        return [
            Error(
                f"The CACHEKIT setting must be a dict, not {options!r}.",
                hint="Set CACHEKIT = {'CACHE_ALIAS': 'default', ...} or remove it.",
                id="django_cachekit.E001",
            )
        ]
    errors: list[CheckMessage] = []
    for name in options:
        if name not in DEFAULTS:
            errors.append(
                Warning(
                    f"CACHEKIT has an unknown key {name!r}.",
                    hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                    id="django_cachekit.W001",
                )
            )
    for name, setting in SETTINGS.items():
        if setting.check_id and name in options and not setting.valid(options[name]):
            errors.append(
                Error(
                    f"CACHEKIT[{name!r}] must be {setting.expected}, not {options[name]!r}.",
                    hint=f"The default is {setting.default!r}.",
                    id=setting.check_id,
                )
            )
    alias = options.get("CACHE_ALIAS", DEFAULTS["CACHE_ALIAS"])
    if isinstance(alias, str) and alias not in settings.CACHES:
        errors.append(
            Error(
                f"CACHEKIT['CACHE_ALIAS'] is {alias!r}, which is not in CACHES.",
                hint=f"Use one of {sorted(settings.CACHES)!r} or add {alias!r} to CACHES.",
                id="django_cachekit.E002",
            )
        )
    return errors


@register(Tags.models)
def check_models(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    from django_cachekit.schema.meta import CacheMetaError, cached_models, is_cached_model, parse_cache_meta

    errors: list[CheckMessage] = []
    found: Iterable[Any] = (
        cached_models()
        if app_configs is None
        else [m for config in app_configs for m in config.get_models() if is_cached_model(m)]
    )
    for model in found:
        try:
            options = parse_cache_meta(model)
        except CacheMetaError as exc:
            errors.append(Error(str(exc), hint=exc.hint, obj=model, id=exc.check_id))
            continue
        for name in options.touch:
            parent = model._meta.get_field(name).related_model
            if isinstance(parent, type) and issubclass(parent, models.Model) and not is_cached_model(parent):
                label = model._meta.label
                errors.append(
                    Warning(
                        f"{label}.CacheMeta.touch names {name!r}, whose model {parent._meta.label} does not use "
                        "CachedModelMixin: it has no cache_version for the touch to change.",
                        hint=f"Add CachedModelMixin to {parent._meta.label}, or remove {name!r} from touch.",
                        obj=model,
                        id="django_cachekit.W003",
                    )
                )
    return errors


def _replica_errors(replicas: dict[Any, Any], databases: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    known = sorted(databases)
    for replica, primary in replicas.items():
        if not isinstance(replica, str) or replica not in databases:
            errors.append(
                Error(
                    f"CACHEKIT['REPLICAS'] names the replica {replica!r}, which is not in DATABASES.",
                    hint=f"Use one of {known!r}.",
                    id="django_cachekit.E015",
                )
            )
            continue
        if not isinstance(primary, str) or primary not in databases:
            errors.append(
                Error(
                    f"CACHEKIT['REPLICAS'][{replica!r}] is {primary!r}, which is not in DATABASES.",
                    hint=f"Map each replica to its primary's alias, one of {known!r}.",
                    id="django_cachekit.E016",
                )
            )
        elif primary == replica:
            errors.append(
                Error(
                    f"CACHEKIT['REPLICAS'] maps {replica!r} to itself.",
                    hint="Remove it: an alias that is its own primary is not a replica.",
                    id="django_cachekit.E017",
                )
            )
        elif primary in replicas:
            errors.append(
                Error(
                    f"CACHEKIT['REPLICAS'][{replica!r}] is {primary!r}, which is itself listed as a replica.",
                    hint=f"Map {replica!r} to the primary that {primary!r} replicates.",
                    id="django_cachekit.E018",
                )
            )
        elif databases[replica].get("ENGINE") != databases[primary].get("ENGINE"):
            errors.append(
                Error(
                    f"CACHEKIT['REPLICAS'] maps {replica!r} (ENGINE {databases[replica].get('ENGINE')!r}) to "
                    f"{primary!r} (ENGINE {databases[primary].get('ENGINE')!r}).",
                    hint="A replica is a copy of its primary: both aliases must use the same database engine.",
                    id="django_cachekit.E019",
                )
            )
    return errors


@register(Tags.caches)
def check_replicas(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """``CACHEKIT["REPLICAS"]``: replica aliases mapped to their primary's, all in ``DATABASES``."""
    options = getattr(settings, "CACHEKIT", {})
    if not isinstance(options, dict) or "REPLICAS" not in options:
        return []
    replicas = options["REPLICAS"]
    if not isinstance(replicas, dict):
        return [
            Error(
                f"CACHEKIT['REPLICAS'] must be a dict of replica alias to primary alias, not {replicas!r}.",
                hint="For example {'replica': 'default'}.",
                id="django_cachekit.E014",
            )
        ]
    return _replica_errors(replicas, settings.DATABASES)


def _cache_backend(alias: str) -> type[Any] | None:
    """The backend class of the cache ``alias``; None when Django's own checks will say what is wrong."""
    from django.utils.module_loading import import_string

    try:
        backend = import_string(settings.CACHES[alias]["BACKEND"])
    except (ImportError, KeyError, TypeError):
        return None
    return backend if isinstance(backend, type) else None


@register(Tags.caches)
def check_cache_backend(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """The cache django-cachekit uses must see every process's invalidations, atomically."""
    from django.core.cache.backends.db import BaseDatabaseCache
    from django.core.cache.backends.filebased import FileBasedCache
    from django.core.cache.backends.locmem import LocMemCache

    options = getattr(settings, "CACHEKIT", {})
    alias = options.get("CACHE_ALIAS", DEFAULTS["CACHE_ALIAS"]) if isinstance(options, dict) else None
    if not isinstance(alias, str) or alias not in settings.CACHES:
        return []  # E001-E003 say why
    backend = _cache_backend(alias)
    if backend is None:
        return []
    name = f"{backend.__module__}.{backend.__qualname__}"
    if issubclass(backend, (BaseDatabaseCache, FileBasedCache)):
        return [
            Error(
                f"The cache {alias!r} (CACHEKIT['CACHE_ALIAS']) uses {name}, whose incr() is a get then a set: "
                "concurrent invalidations are lost and stale entries stay valid.",
                hint="Give django-cachekit a Redis cache (django-redis, or django.core.cache.backends.redis."
                "RedisCache) or a Memcached one.",
                id="django_cachekit.E030",
            )
        ]
    if issubclass(backend, LocMemCache) and not settings.DEBUG:
        return [
            Warning(
                f"The cache {alias!r} (CACHEKIT['CACHE_ALIAS']) uses {name}, which lives inside one process: "
                "writes made by another process (another server worker, a management command, a task) never "
                "invalidate its entries.",
                hint="Use Redis or Memcached where more than one process writes; LocMem suits development and "
                "tests run in one process.",
                id="django_cachekit.W002",
            )
        ]
    return []
