"""The signals about what the cache did (``django_cachekit.core.signals``), at their documented path."""

from django_cachekit.core.signals import cache_hit, cache_invalidated, cache_miss

__all__ = ["cache_hit", "cache_invalidated", "cache_miss"]
