"""Settings of the django-cachekit example project.

Everything has a working default (SQLite and an in-process LocMem cache); the
environment switches the services:

- ``DEBUG``: ``1``/``0`` (default ``1``).
- ``SECRET_KEY``: required when ``DEBUG`` is off.
- ``ALLOWED_HOSTS``: comma-separated, used when ``DEBUG`` is off.
- ``REDIS_URL``: e.g. ``redis://127.0.0.1:6379/0``; the cache becomes django-redis.
- ``DATABASE=postgres``: PostgreSQL on 127.0.0.1:5432 as user ``postgres``
  (trust auth), database ``PGDATABASE`` (default ``cachekit_example``).
- ``CACHE_KEY_PREFIX``: the cache key prefix (default ``cachekit-example``), to
  share a Redis database with other programs.

LocMem lives inside one process: a write made by another process (a second
server worker, ``manage.py seed_blog --reset`` while the server runs) cannot
invalidate it, and the management commands (``cachekit_warm``, ``cachekit_stats``,
``cachekit_inspect``, ``cachekit_invalidate``) each get an empty cache of their
own, so they warn. Use ``REDIS_URL`` as soon as more than one process writes or
a command should reach the server's entries, for the server and the commands
alike. ``runserver`` prints which cache is in use when it starts.
"""

import os
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# ``manage.py test``: give this run its own cache namespace, so tests never see
# (nor clear) the entries of a running server or of another test run.
TESTING = len(sys.argv) > 1 and sys.argv[1] == "test"


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be 1/0, true/false, yes/no or on/off, not {value!r}.")


DEBUG = env_flag("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY in the environment when DEBUG is off.")
    SECRET_KEY = "django-insecure-cachekit-example-only-for-local-development"

if DEBUG:
    ALLOWED_HOSTS = ["*"]
else:
    ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_cachekit",
    "blog",
    "monitor",
    "config.apps.ExampleConfig",  # says at runserver start-up which cache is in use
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# -- database -------------------------------------------------------------------

DATABASE = os.environ.get("DATABASE", "sqlite").strip().lower() or "sqlite"
if DATABASE == "postgres":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "USER": "postgres",
            "PASSWORD": "",
            "NAME": os.environ.get("PGDATABASE") or "cachekit_example",
        }
    }
elif DATABASE == "sqlite":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
        }
    }
else:
    raise ImproperlyConfigured(f"DATABASE must be 'sqlite' (the default) or 'postgres', not {DATABASE!r}.")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# -- cache ----------------------------------------------------------------------

CACHE_PREFIX = os.environ.get("CACHE_KEY_PREFIX") or (
    f"cachekit-example-test-{os.getpid()}" if TESTING else "cachekit-example"
)
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_PREFIX,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": CACHE_PREFIX,
            "KEY_PREFIX": CACHE_PREFIX,
            # The default of 300 entries is too small even for the demo data: culling
            # would throw away tag versions and entries all the time.
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        }
    }

CACHEKIT = {"CACHE_ALIAS": "default", "TIMEOUT": 600}
if TESTING and not REDIS_URL:
    # The test runner turns DEBUG off, and the tests run in one process: LocMem is right for them.
    SILENCED_SYSTEM_CHECKS = ["django_cachekit.W002"]

# Sessions read from the cache (written through to the database): the dashboard's
# revalidation reads the session and runs no SQL.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
LOGIN_URL = "blog:login"

# -- the rest -------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_cachekit": {"handlers": ["console"], "level": os.environ.get("CACHEKIT_LOG_LEVEL", "WARNING")},
    },
}
