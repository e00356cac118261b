import os

import pytest
from django.core.cache import caches

from django_cachekit.metrics import counters as metrics

CACHE = os.environ.get("CACHEKIT_TEST_CACHE", "locmem")
DB = os.environ.get("CACHEKIT_TEST_DB", "sqlite")
REDIS_CACHES = ("django-redis", "redis")


@pytest.fixture(autouse=True)
def _clean_cache():
    from django_cachekit.core import protocol as core

    caches["default"].clear()
    metrics.reset()
    core.reset()  # as a new process: a flushed cache is not a store whose versions moved back
    yield
    caches["default"].clear()


@pytest.fixture
def queries(django_assert_num_queries):
    """``with queries(1): ...`` asserts exactly one SQL query on the default database."""
    return django_assert_num_queries


needs_redis = pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="needs a Redis cache")
needs_postgres = pytest.mark.skipif(DB != "postgres", reason="needs PostgreSQL")
