import pytest
from django.core.cache import caches

from django_cachekit import metrics


@pytest.fixture(autouse=True)
def _clean_cache():
    caches["default"].clear()
    metrics.reset()
    yield
    caches["default"].clear()
