"""Settings, read from ``settings.CACHEKIT``.

Values are read on first use and kept until Django's ``setting_changed``
signal says ``CACHEKIT`` changed (``override_settings`` sends it), so the hot
path does not go through ``LazySettings`` on every read.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

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
    "METRICS": True,
    "METRICS_FLUSH_INTERVAL": 10.0,
}


class Settings:
    """Typed view over the ``CACHEKIT`` dict."""

    def __init__(self) -> None:
        self._values: dict[str, Any] | None = None

    def reload(self) -> None:
        self._values = None

    def _get(self, name: str) -> Any:
        values = self._values
        if values is None:
            options = getattr(settings, "CACHEKIT", None)
            values = {**DEFAULTS, **(options if isinstance(options, dict) else {})}
            self._values = values
        return values[name]

    @property
    def CACHE_ALIAS(self) -> str:
        return str(self._get("CACHE_ALIAS"))

    @property
    def TIMEOUT(self) -> int | None:
        value: int | None = self._get("TIMEOUT")
        return value

    @property
    def KEY_PREFIX(self) -> str:
        return str(self._get("KEY_PREFIX"))

    @property
    def VERSION(self) -> str:
        return str(self._get("VERSION"))

    @property
    def ENABLED(self) -> bool:
        return bool(self._get("ENABLED"))

    @property
    def TAG_TIMEOUT(self) -> int:
        tag_timeout = int(self._get("TAG_TIMEOUT"))
        timeout = self.TIMEOUT
        # A tag version must outlive the entries stamped with it, or they miss early.
        return max(tag_timeout, 2 * timeout) if timeout else tag_timeout

    @property
    def COMPRESS_MIN_SIZE(self) -> int:
        return int(self._get("COMPRESS_MIN_SIZE"))

    @property
    def BREAKER_THRESHOLD(self) -> int:
        return int(self._get("BREAKER_THRESHOLD"))

    @property
    def BREAKER_COOLDOWN(self) -> float:
        return float(self._get("BREAKER_COOLDOWN"))

    @property
    def METRICS(self) -> bool:
        return bool(self._get("METRICS"))

    @property
    def METRICS_FLUSH_INTERVAL(self) -> float:
        return float(self._get("METRICS_FLUSH_INTERVAL"))


conf = Settings()
