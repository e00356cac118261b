import os
import shutil

import pytest
from django.core.cache import caches

from django_cachekit.metrics import counters as metrics
from tests import memcachedserver, ownkeys, services
from tests.settings import CACHE, DB  # the combination is read there, once

REDIS_CACHES = ("django-redis", "redis")


def _delete_instead_of_truncate(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """After every transactional test pytest-django empties the database with Django's flush: on PostgreSQL
    one TRUNCATE of every table, about 130 ms for this app's 22 (new files for each table and index) where
    DELETE takes 5 ms. Django's foreign keys are DEFERRABLE INITIALLY DEFERRED and the flush runs in one
    transaction, so the order of the DELETEs does not matter."""
    if reset_sequences or allow_cascade:
        return _truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
    return [f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(table))};" for table in tables]


if DB == "postgres":
    from django.db.backends.postgresql.operations import DatabaseOperations

    _truncate = DatabaseOperations.sql_flush
    DatabaseOperations.sql_flush = _delete_instead_of_truncate


_memcached = []


def pytest_configure(config):
    if config.option.help or config.option.version:
        return
    from django.conf import settings

    from tests import settings as test_settings

    problem = services.missing_services(
        CACHE, settings.DATABASES["default"], test_settings.REDIS_URL, test_settings.MEMCACHED
    )
    if problem:
        pytest.exit(problem, returncode=services.EXIT_STATUS)
    if CACHE == "memcached" and test_settings.MEMCACHED is None:
        # clear() on Memcached is flush_all of the whole server: the run gets a server of its own, and the
        # processes its tests start find it in CACHEKIT_TEST_MEMCACHED.
        server, port = memcachedserver.start(shutil.which("memcached"))
        _memcached.append(server)
        address = f"{memcachedserver.HOST}:{port}"
        os.environ["CACHEKIT_TEST_MEMCACHED"] = test_settings.MEMCACHED = address
        settings.CACHES["default"]["LOCATION"] = address
    ownkeys.install()


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config, items):
    if os.environ.get("CI") or os.environ.get("CACHEKIT_TEST_REQUIRE_SERVICES"):
        if problem := services.missing_programs(items):
            pytest.exit(problem, returncode=services.EXIT_STATUS)


def pytest_unconfigure(config):
    metrics.reset()  # nothing left for the flush at exit to write, into a server about to stop or a shared one
    while _memcached:
        memcachedserver.stop(_memcached.pop())


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
