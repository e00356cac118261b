"""The HTTP view decorators (``django_cachekit.http.decorators``), at their documented path."""

from django_cachekit.http.decorators import cache_headers, cache_response, conditional

__all__ = ["cache_headers", "cache_response", "conditional"]
