"""Settings, read from ``settings.CACHEKIT``.

Values are read on first use and kept until Django's ``setting_changed``
signal says ``CACHEKIT`` changed (``override_settings`` sends it), so the hot
path does not go through ``LazySettings`` on every read: once read, a setting
is a plain attribute of ``conf``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_cachekit.memo import resettable

logger = logging.getLogger("django_cachekit")


@dataclass(frozen=True)
class Setting:
    """One key of ``CACHEKIT``: its default and, for the system checks, its check id,
    the test a value must pass and what it must be, in words."""

    default: Any
    check_id: str = ""
    valid: Callable[[Any], bool] = lambda value: True
    expected: str = ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


# Every key of ``CACHEKIT``: ``conf`` reads the defaults, ``checks`` the rules.
SETTINGS: dict[str, Setting] = {
    "CACHE_ALIAS": Setting("default", "django_cachekit.E003", lambda v: isinstance(v, str), "a string"),
    "TIMEOUT": Setting(
        3600,
        "django_cachekit.E004",
        lambda v: v is None or _positive_int(v),
        "a positive integer of seconds, or None for no expiry",
    ),
    "KEY_PREFIX": Setting(
        "",
        "django_cachekit.E005",
        lambda v: isinstance(v, str) and v.isprintable() and " " not in v,
        "a string without spaces or control characters",
    ),
    "VERSION": Setting(1, "django_cachekit.E006", lambda v: isinstance(v, str) or _is_int(v), "a string or an integer"),
    "ENABLED": Setting(True, "django_cachekit.E007", lambda v: isinstance(v, bool), "True or False"),
    "TAG_TIMEOUT": Setting(7 * 24 * 3600, "django_cachekit.E008", _positive_int, "a positive integer of seconds"),
    "COMPRESS_MIN_SIZE": Setting(
        1024 * 1024,
        "django_cachekit.E009",
        lambda v: _is_int(v) and v >= 0,
        "an integer number of bytes, 0 to turn compression off",
    ),
    "BREAKER_THRESHOLD": Setting(5, "django_cachekit.E010", _positive_int, "a positive integer"),
    "BREAKER_COOLDOWN": Setting(
        10.0,
        "django_cachekit.E011",
        lambda v: (_is_int(v) or isinstance(v, float)) and v > 0,
        "a positive number of seconds",
    ),
    "WRITE_MARK_TIMEOUT": Setting(
        5.0,
        "django_cachekit.E027",
        lambda v: (_is_int(v) or isinstance(v, float)) and 0 < v <= 600,
        "a positive number of seconds, at most 600",
    ),
    "SOCKET_TIMEOUT": Setting(
        0.2,
        "django_cachekit.E031",
        lambda v: (_is_int(v) or isinstance(v, float)) and 0 < v <= 60,
        "a positive number of seconds, at most 60",
    ),
    "STRICT_INVALIDATION": Setting(False, "django_cachekit.E032", lambda v: isinstance(v, bool), "True or False"),
    "PENDING_POLL": Setting(
        1.0,
        "django_cachekit.E033",
        lambda v: (_is_int(v) or isinstance(v, float)) and 0 < v <= 3600,
        "a positive number of seconds, at most 3600",
    ),
    "SIGN_ENTRIES": Setting(True, "django_cachekit.E034", lambda v: isinstance(v, bool), "True or False"),
    "METRICS": Setting(True, "django_cachekit.E012", lambda v: isinstance(v, bool), "True or False"),
    "METRICS_FLUSH_INTERVAL": Setting(
        10.0,
        "django_cachekit.E013",
        lambda v: (_is_int(v) or isinstance(v, float)) and v > 0,
        "a positive number of seconds",
    ),
    "REPLICAS": Setting({}),  # checked on its own (see checks.py)
}
DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}


def _read() -> dict[str, Any]:
    """``CACHEKIT`` over the defaults; a bad value is replaced by its default and logged once per read
    of the settings, so a request never fails on it (``manage.py check`` reports it as an Error)."""
    options = getattr(settings, "CACHEKIT", None)
    if options is None:
        return dict(DEFAULTS)
    if not isinstance(options, dict):
        logger.error(
            "django-cachekit: the CACHEKIT setting must be a dict, not %r; using the defaults "
            "(manage.py check: django_cachekit.E001).",
            options,
        )
        return dict(DEFAULTS)
    values = {**DEFAULTS, **options}
    for name, setting in SETTINGS.items():
        if setting.check_id and name in options and not setting.valid(options[name]):
            logger.error(
                "django-cachekit: CACHEKIT[%r] must be %s, not %r; using the default %r (manage.py check: %s).",
                name,
                setting.expected,
                options[name],
                setting.default,
                setting.check_id,
            )
            values[name] = setting.default
    if values["CACHE_ALIAS"] not in getattr(settings, "CACHES", {}):
        logger.error(
            "django-cachekit: CACHEKIT['CACHE_ALIAS'] is %r, which is not in CACHES; using %r "
            "(manage.py check: django_cachekit.E002).",
            values["CACHE_ALIAS"],
            DEFAULTS["CACHE_ALIAS"],
        )
        values["CACHE_ALIAS"] = DEFAULTS["CACHE_ALIAS"]
    return values


class Settings:
    """Typed view over the ``CACHEKIT`` dict."""

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None

    def reload(self) -> None:
        self._values = None
        for name in [n for n in vars(self) if n != "_values"]:
            self.__dict__.pop(name, None)  # a cached property: read again on next use

    def _get(self, name: str) -> Any:
        values = self._values
        if values is None:
            values = self._values = _read()
        return values[name]

    @cached_property
    def CACHE_ALIAS(self) -> str:
        return str(self._get("CACHE_ALIAS"))

    @cached_property
    def TIMEOUT(self) -> int | None:
        value: int | None = self._get("TIMEOUT")
        return value

    @cached_property
    def KEY_PREFIX(self) -> str:
        return str(self._get("KEY_PREFIX"))

    @cached_property
    def KEY_BASE(self) -> str:
        """What every key of django-cachekit starts with."""
        key_prefix = self.KEY_PREFIX
        return f"{key_prefix}:ck:" if key_prefix else "ck:"

    @cached_property
    def VERSION(self) -> str:
        return str(self._get("VERSION"))

    @cached_property
    def ENABLED(self) -> bool:
        return bool(self._get("ENABLED"))

    @cached_property
    def TAG_TIMEOUT(self) -> int:
        tag_timeout = int(self._get("TAG_TIMEOUT"))
        timeout = self.TIMEOUT
        # A tag version must outlive the entries stamped with it, or they miss early.
        return max(tag_timeout, 2 * timeout) if timeout else tag_timeout

    @cached_property
    def COMPRESS_MIN_SIZE(self) -> int:
        return int(self._get("COMPRESS_MIN_SIZE"))

    @cached_property
    def BREAKER_THRESHOLD(self) -> int:
        return int(self._get("BREAKER_THRESHOLD"))

    @cached_property
    def BREAKER_COOLDOWN(self) -> float:
        return float(self._get("BREAKER_COOLDOWN"))

    @cached_property
    def WRITE_MARK_TIMEOUT(self) -> float:
        return float(self._get("WRITE_MARK_TIMEOUT"))

    @cached_property
    def SOCKET_TIMEOUT(self) -> float:
        return float(self._get("SOCKET_TIMEOUT"))

    @cached_property
    def STRICT_INVALIDATION(self) -> bool:
        return bool(self._get("STRICT_INVALIDATION"))

    @cached_property
    def PENDING_POLL(self) -> float:
        return float(self._get("PENDING_POLL"))

    @cached_property
    def SIGN_ENTRIES(self) -> bool:
        return bool(self._get("SIGN_ENTRIES"))

    @cached_property
    def METRICS(self) -> bool:
        return bool(self._get("METRICS"))

    @cached_property
    def METRICS_FLUSH_INTERVAL(self) -> float:
        return float(self._get("METRICS_FLUSH_INTERVAL"))

    @cached_property
    def REPLICAS(self) -> dict[str, str]:
        """Database alias of each replica -> alias of its primary."""
        value = self._get("REPLICAS")
        if not isinstance(value, dict):
            raise ImproperlyConfigured(
                f"CACHEKIT['REPLICAS'] must be a dict of replica alias to primary alias, not {value!r}."
            )
        return {str(replica): str(primary) for replica, primary in value.items()}


conf = Settings()
resettable(conf.reload)  # first: what the others forget is worked out again from the new settings
