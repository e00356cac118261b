"""A circuit breaker around cache calls.

After ``BREAKER_THRESHOLD`` failures in a row to reach the cache, the breaker
opens: cache calls are skipped for ``BREAKER_COOLDOWN`` seconds and reads go
straight to the database without touching a socket. Then one call, and only
one, is let through as a probe: its success closes the breaker, its failure
opens it for another cooldown, and every other caller keeps skipping the cache
meanwhile. Errors that are not the cache being unreachable (a refused key or
value) are not counted here.
"""

from __future__ import annotations

import logging
import threading
import time

from django_cachekit.core.settings import conf

logger = logging.getLogger("django_cachekit")


class Breaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0
        self.opened_at: float | None = None
        self.probing_since: float | None = None

    @property
    def is_open(self) -> bool:
        """Open or waiting for its probe's answer (asking does not take the probe)."""
        return self.opened_at is not None

    def allow(self) -> bool:
        opened_at = self.opened_at
        if opened_at is None:
            return True
        now = time.monotonic()
        if now - opened_at < conf.BREAKER_COOLDOWN:
            return False
        with self._lock:
            probing = self.probing_since
            # A probe that never reported (its caller made no call) gives way after a while.
            if probing is not None and now - probing < max(1.0, 4 * conf.SOCKET_TIMEOUT):
                return False
            if self.opened_at is None:
                return True
            self.probing_since = now
            return True

    def success(self) -> None:
        if self.failures or self.opened_at is not None:
            with self._lock:
                if self.opened_at is not None:
                    logger.warning("django-cachekit: cache reachable again, circuit closed")
                self.failures = 0
                self.opened_at = None
                self.probing_since = None

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self.probing_since = None
            if self.failures >= conf.BREAKER_THRESHOLD:
                if self.opened_at is None:
                    logger.error(
                        "django-cachekit: circuit opened after %d cache errors (last: %r)",
                        self.failures,
                        exc,
                    )
                self.opened_at = time.monotonic()
            else:
                logger.warning("django-cachekit: cache error: %r", exc)

    def reset(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self.probing_since = None
