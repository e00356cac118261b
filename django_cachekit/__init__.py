"""Model and queryset caching for Django that never serves stale data."""

from __future__ import annotations

from .api import (
    PatternUnsupported,
    cache_disabled,
    cached,
    invalidate_all,
    invalidate_model,
    invalidate_object,
    invalidate_pattern,
    invalidate_tags,
)
from .outbox import InvalidationUnavailable
from .warming import warmer

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
