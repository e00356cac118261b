"""Test settings. The cache and database come from the environment, read here only
(tests/conftest.py and the tests import CACHE and DB from this module):

CACHEKIT_TEST_CACHE: locmem | django-redis | redis | memcached
CACHEKIT_TEST_DB:    sqlite | postgres

tox sets both from the environment's factors (tox.ini), with the servers' places:
CACHEKIT_TEST_REDIS_URL is the Redis server (default redis://127.0.0.1:6379/1) and
CACHEKIT_TEST_REDIS_DB, when set, replaces its database number; CACHEKIT_TEST_MEMCACHED
is the Memcached server (unset, tests/conftest.py starts a private one on a free port
and sets it for the processes the tests start); CACHEKIT_TEST_PGNAME is the
PostgreSQL test database. CACHEKIT_TEST_RUN is the run's id, in its cache key
prefix and SQLite file names (the tests pass it to the processes they start).
"""

import os
import secrets
import urllib.parse
from typing import Any

CACHE = os.environ.get("CACHEKIT_TEST_CACHE", "locmem")
DB = os.environ.get("CACHEKIT_TEST_DB", "sqlite")
REDIS_URL = os.environ.get("CACHEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
if os.environ.get("CACHEKIT_TEST_REDIS_DB"):  # one database per tox environment: their flushes never meet
    REDIS_URL = urllib.parse.urlunsplit(
        urllib.parse.urlsplit(REDIS_URL)._replace(path=f"/{int(os.environ['CACHEKIT_TEST_REDIS_DB'])}")
    )
MEMCACHED = os.environ.get("CACHEKIT_TEST_MEMCACHED") or None
# The PID tells runs on one machine apart, the random part runs in containers sharing a server.
RUN_ID = os.environ.get("CACHEKIT_TEST_RUN") or f"{os.getpid()}-{secrets.token_hex(3)}"

SECRET_KEY = "tests"
USE_TZ = True
TIME_ZONE = "Europe/Paris"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_cachekit",
    "tests.testapp",
]

if DB == "postgres":
    _db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "TEST": {"NAME": os.environ.get("CACHEKIT_TEST_PGNAME", "test_django_cachekit")},
    }
elif DB == "sqlite":
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": f"/tmp/django_cachekit_{RUN_ID}.sqlite3",
        "TEST": {"NAME": f"/tmp/django_cachekit_test_{RUN_ID}.sqlite3"},
        "OPTIONS": {"timeout": 20},
    }
else:
    raise ValueError(f"CACHEKIT_TEST_DB must be sqlite or postgres, not {DB!r}")

DATABASES = {
    "default": _db,
    # The same data through a second alias: a write on one must not leave the other stale.
    "replica": {**_db, "TEST": {"MIRROR": "default"}},
    # A streaming standby of default on PostgreSQL (tests/replica.py gives it its own port); never created.
    "standby": {**_db, "TEST": {"MIRROR": "default"}},
}

_caches: dict[str, dict[str, Any]] = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"tests-{RUN_ID}"},
    "django-redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    },
    "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
    # No address yet: tests/conftest.py fills in its private server's.
    "memcached": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache", "LOCATION": MEMCACHED or ""},
}
if CACHE not in _caches:
    raise ValueError(f"CACHEKIT_TEST_CACHE must be one of {sorted(_caches)}, not {CACHE!r}")

# The run's keys, and only they, are what clear() deletes on Redis (tests/ownkeys.py).
CACHES = {"default": {**_caches[CACHE], "KEY_PREFIX": f"t{RUN_ID}"}}
CACHEKIT = {"CACHE_ALIAS": "default", "TIMEOUT": 600}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_cachekit": {"handlers": ["console"], "level": "WARNING"}},
}
