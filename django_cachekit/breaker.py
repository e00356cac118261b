"""A circuit breaker around cache calls.

After ``BREAKER_THRESHOLD`` failures in a row the breaker opens: cache calls are
skipped for ``BREAKER_COOLDOWN`` seconds and reads go straight to the database.
Then one call is let through as a probe. Invalidations that could not be sent
are lost, so before the cache is trusted again the global generation is bumped,
which makes every older entry a miss.
"""

from __future__ import annotations

import logging
import threading
import time

from .conf import conf

logger = logging.getLogger("django_cachekit")


class Breaker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0
        self.opened_at: float | None = None
        self.lost_invalidations = False

    @property
    def is_open(self) -> bool:
        return not self.allow()

    def allow(self) -> bool:
        opened_at = self.opened_at
        return opened_at is None or time.monotonic() - opened_at >= conf.BREAKER_COOLDOWN

    def success(self) -> None:
        if self.failures or self.opened_at is not None:
            with self._lock:
                if self.opened_at is not None:
                    logger.warning("django-cachekit: cache reachable again, circuit closed")
                self.failures = 0
                self.opened_at = None

    def failure(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
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
            self.lost_invalidations = False
