"""Settings, read from ``settings.CACHEKIT``.

Values are read on first use and kept until Django's ``setting_changed``
signal says ``CACHEKIT`` changed (``override_settings`` sends it), so the hot
path does not go through ``LazySettings`` on every read: once read, a setting
is a plain attribute of ``conf``.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, Any] = {
    "CACHE_ALIAS": "default",
    "TIMEOUT": 3600,
    "KEY_PREFIX": "",
    "VERSION": 1,
    "ENABLED": True,
    "TAG_TIMEOUT": 7 * 24 * 3600,
    "COMPRESS_MIN_SIZE": 1024 * 1024,
    "BREAKER_THRESHOLD": 5,
    "BREAKER_COOLDOWN": 10.0,
    "WRITE_MARK_TIMEOUT": 5.0,
    "SOCKET_TIMEOUT": 0.2,
    "STRICT_INVALIDATION": False,
    "PENDING_POLL": 1.0,
    "METRICS": True,
    "METRICS_FLUSH_INTERVAL": 10.0,
    "REPLICAS": {},
}


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
            options = getattr(settings, "CACHEKIT", None)
            values = {**DEFAULTS, **(options if isinstance(options, dict) else {})}
            self._values = values
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
