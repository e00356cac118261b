"""Model and queryset caching for Django that never serves stale data."""

from __future__ import annotations

from django_cachekit.api import (
    PatternUnsupported,
    cache_disabled,
    cached,
    invalidate_all,
    invalidate_model,
    invalidate_object,
    invalidate_pattern,
    invalidate_tags,
)
from django_cachekit.invalidation.outbox import InvalidationUnavailable
from django_cachekit.warming.warmers import warmer

__version__ = "0.1.0"

__all__ = [
    "InvalidationUnavailable",
    "PatternUnsupported",
    "cache_disabled",
    "cached",
    "invalidate_all",
    "invalidate_model",
    "invalidate_object",
    "invalidate_pattern",
    "invalidate_tags",
    "warmer",
]
