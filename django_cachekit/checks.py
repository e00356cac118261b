"""System checks for the ``CACHEKIT`` setting and for models' ``CacheMeta``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import DEFAULTS


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


# name -> (check id, predicate, what the value must be)
_SETTING_RULES: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "CACHE_ALIAS": ("django_cachekit.E003", lambda v: isinstance(v, str), "a string"),
    "TIMEOUT": (
        "django_cachekit.E004",
        lambda v: v is None or _positive_int(v),
        "a positive integer of seconds, or None for no expiry",
    ),
    "KEY_PREFIX": (
        "django_cachekit.E005",
        lambda v: isinstance(v, str) and v.isprintable() and " " not in v,
        "a string without spaces or control characters",
    ),
    "VERSION": (
        "django_cachekit.E006",
        lambda v: isinstance(v, str) or _is_int(v),
        "a string or an integer",
    ),
    "ENABLED": ("django_cachekit.E007", lambda v: isinstance(v, bool), "True or False"),
    "TAG_TIMEOUT": ("django_cachekit.E008", _positive_int, "a positive integer of seconds"),
    "COMPRESS_MIN_SIZE": (
        "django_cachekit.E009",
        lambda v: _is_int(v) and v >= 0,
        "an integer number of bytes, 0 to turn compression off",
    ),
    "BREAKER_THRESHOLD": ("django_cachekit.E010", _positive_int, "a positive integer"),
    "BREAKER_COOLDOWN": (
        "django_cachekit.E011",
        lambda v: (_is_int(v) or isinstance(v, float)) and v > 0,
        "a positive number of seconds",
    ),
    "METRICS": ("django_cachekit.E012", lambda v: isinstance(v, bool), "True or False"),
    "METRICS_FLUSH_INTERVAL": (
        "django_cachekit.E013",
        lambda v: (_is_int(v) or isinstance(v, float)) and v > 0,
        "a positive number of seconds",
    ),
}


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
    for name, (check_id, valid, expected) in _SETTING_RULES.items():
        if name in options and not valid(options[name]):
            errors.append(
                Error(
                    f"CACHEKIT[{name!r}] must be {expected}, not {options[name]!r}.",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                    id=check_id,
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
    from .meta import CacheMetaError, cached_models, is_cached_model, parse_cache_meta

    errors: list[CheckMessage] = []
    models: Iterable[Any] = (
        cached_models()
        if app_configs is None
        else [m for config in app_configs for m in config.get_models() if is_cached_model(m)]
    )
    for model in models:
        try:
            parse_cache_meta(model)
        except CacheMetaError as exc:
            errors.append(Error(str(exc), hint=exc.hint, obj=model, id=exc.check_id))
    return errors
