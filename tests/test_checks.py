"""System checks name the bad value and carry a stable id and a hint."""

import io

import pytest
from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps, override_settings

from django_cachekit.checks import check_cache_backend, check_models, check_settings
from django_cachekit.models import CachedModelMixin
from django_cachekit.schema import meta
from tests.factories import AuthorFactory
from tests.testapp.models import Author


def ids(messages):
    return [m.id for m in messages]


def test_default_settings_pass():
    assert check_settings() == []


@pytest.mark.parametrize(
    ("options", "check_id", "shown"),
    [
        ({"CACHE_ALIAS": "missing"}, "django_cachekit.E002", "'missing'"),
        ({"CACHE_ALIAS": 3}, "django_cachekit.E003", "3"),
        ({"TIMEOUT": -5}, "django_cachekit.E004", "-5"),
        ({"TIMEOUT": "60"}, "django_cachekit.E004", "'60'"),
        ({"TIMEOUT": True}, "django_cachekit.E004", "True"),
        ({"KEY_PREFIX": "has space"}, "django_cachekit.E005", "'has space'"),
        ({"VERSION": 1.5}, "django_cachekit.E006", "1.5"),
        ({"ENABLED": "yes"}, "django_cachekit.E007", "'yes'"),
        ({"TAG_TIMEOUT": 0}, "django_cachekit.E008", "0"),
        ({"COMPRESS_MIN_SIZE": -1}, "django_cachekit.E009", "-1"),
        ({"BREAKER_THRESHOLD": 0}, "django_cachekit.E010", "0"),
        ({"BREAKER_COOLDOWN": "10"}, "django_cachekit.E011", "'10'"),
        ({"SOCKET_TIMEOUT": 0}, "django_cachekit.E031", "0"),
        ({"SOCKET_TIMEOUT": "0.5"}, "django_cachekit.E031", "'0.5'"),
        ({"STRICT_INVALIDATION": 1}, "django_cachekit.E032", "1"),
        ({"PENDING_POLL": -1}, "django_cachekit.E033", "-1"),
        ({"TIMOUT": 5}, "django_cachekit.W001", "'TIMOUT'"),
    ],
)
def test_bad_setting(options, check_id, shown):
    with override_settings(CACHEKIT=options):
        messages = check_settings()
    assert ids(messages) == [check_id]
    assert shown in messages[0].msg
    assert messages[0].hint


def test_setting_not_a_dict():
    with override_settings(CACHEKIT=["CACHE_ALIAS"]):
        messages = check_settings()
    assert ids(messages) == ["django_cachekit.E001"]
    assert "['CACHE_ALIAS']" in messages[0].msg


def test_checks_run_through_django():
    with override_settings(CACHEKIT={"CACHE_ALIAS": "nope"}):
        found = checks.run_checks(tags=[checks.Tags.caches])
    assert "django_cachekit.E002" in ids(found)


@isolate_apps("tests.testapp")
@pytest.mark.parametrize(
    ("cache_meta", "check_id", "shown"),
    [
        ({"timeout": 0}, "django_cachekit.E020", "0"),
        ({"tags": "author:{author_id}"}, "django_cachekit.E021", "'author:{author_id}'"),
        ({"tags": ("owner:{owner}",)}, "django_cachekit.E021", "'owner'"),
        ({"tags": ("bad:{",)}, "django_cachekit.E021", "'bad:{'"),
        ({"touch": ("name",)}, "django_cachekit.E022", "'name'"),
        ({"touch": ("nothing",)}, "django_cachekit.E022", "'nothing'"),
        ({"warm": 5}, "django_cachekit.E024", "5"),
        ({"timout": 5}, "django_cachekit.E023", "'timout'"),
    ],
)
def test_bad_cache_meta(cache_meta, check_id, shown):
    meta = type("CacheMeta", (), cache_meta)
    model = type(
        "Broken",
        (CachedModelMixin, models.Model),
        {"__module__": "tests.testapp.models", "name": models.CharField(max_length=5), "CacheMeta": meta},
    )
    messages = check_models([model._meta.apps.get_app_config("testapp")])
    assert ids([m for m in messages if m.obj is model]) == [check_id]
    assert shown in next(m for m in messages if m.obj is model).msg


def test_project_models_pass():
    assert check_models() == []


# -- the cache django-cachekit uses, and the app being installed ----------------------------------

KIT = {"CACHE_ALIAS": "kit"}


def kit_cache(backend, location=""):
    return {**settings.CACHES, "kit": {"BACKEND": backend, "LOCATION": location}}


@pytest.mark.parametrize(
    ("backend", "location"),
    [
        ("django.core.cache.backends.db.DatabaseCache", "cachekit_table"),
        ("django.core.cache.backends.filebased.FileBasedCache", "/tmp/cachekit-check-files"),
    ],
)
def test_a_cache_whose_incr_is_a_get_then_a_set_is_an_error(backend, location):
    with override_settings(CACHES=kit_cache(backend, location), CACHEKIT=KIT):
        messages = check_cache_backend()
        found = checks.run_checks(tags=[checks.Tags.caches])
    assert ids(messages) == ["django_cachekit.E030"]
    assert "'kit'" in messages[0].msg and backend in messages[0].msg
    assert "Redis" in messages[0].hint and "Memcached" in messages[0].hint
    assert "django_cachekit.E030" in ids(found)


def test_locmem_without_debug_is_a_warning():
    locmem = kit_cache("django.core.cache.backends.locmem.LocMemCache", "kit")
    with override_settings(CACHES=locmem, CACHEKIT=KIT, DEBUG=False):
        messages = check_cache_backend()
    assert ids(messages) == ["django_cachekit.W002"]
    assert "'kit'" in messages[0].msg
    assert "Redis" in messages[0].hint
    with override_settings(CACHES=locmem, CACHEKIT=KIT, DEBUG=True):
        assert check_cache_backend() == []


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.redis.RedisCache",
        "django_redis.cache.RedisCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "django.core.cache.backends.dummy.DummyCache",
    ],
)
def test_shared_caches_pass(backend):
    with override_settings(CACHES=kit_cache(backend, "127.0.0.1:1"), CACHEKIT=KIT, DEBUG=False):
        assert check_cache_backend() == []


def test_cache_backend_check_leaves_a_missing_alias_to_e002():
    with override_settings(CACHEKIT={"CACHE_ALIAS": "nope"}):
        assert check_cache_backend() == []


@pytest.mark.django_db(databases="__all__")  # model checks ask each database what it supports
def test_the_test_settings_pass_manage_py_check():
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)  # a warning (LocMem without DEBUG) does not fail it
    assert "django_cachekit.E" not in err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_cached_read_without_the_app_installed_is_improperly_configured():
    author = AuthorFactory()
    without = [app for app in settings.INSTALLED_APPS if app != "django_cachekit"]
    meta.clear()
    try:
        with override_settings(INSTALLED_APPS=without):
            with pytest.raises(ImproperlyConfigured, match=r'Add "django_cachekit" to INSTALLED_APPS'):
                Author.objects.cache().get(pk=author.pk)
    finally:
        meta.clear()
    assert Author.objects.cache().get(pk=author.pk) == author


@pytest.mark.django_db(transaction=True)
def test_the_installed_app_is_checked_once_not_per_hit(monkeypatch, queries):
    author = AuthorFactory()
    asked = []
    is_installed = apps.is_installed
    monkeypatch.setattr(apps, "is_installed", lambda name: asked.append(name) or is_installed(name))
    meta.clear()
    caches["default"].clear()  # the save wrote the row's entry through
    with queries(1):
        Author.objects.cache().get(pk=author.pk)
    for _ in range(3):
        with queries(0):
            Author.objects.cache().get(pk=author.pk)
    assert asked.count("django_cachekit") == 1


# -- CACHEKIT["REPLICAS"] ---------------------------------------------------------


def check_replicas_with(replicas):
    from django_cachekit.checks import check_replicas

    with override_settings(CACHEKIT={"REPLICAS": replicas}):
        return check_replicas()


def test_replicas_of_known_aliases_pass():
    assert check_replicas_with({"replica": "default"}) == []
    assert check_replicas_with({}) == []
    with override_settings(CACHEKIT={"REPLICAS": {"replica": "default"}}):
        assert check_settings() == []


@pytest.mark.parametrize(
    ("replicas", "check_id", "shown"),
    [
        (["replica"], "django_cachekit.E014", "['replica']"),
        ({"elsewhere": "default"}, "django_cachekit.E015", "'elsewhere'"),
        ({3: "default"}, "django_cachekit.E015", "3"),
        ({"replica": "primary"}, "django_cachekit.E016", "'primary'"),
        ({"replica": None}, "django_cachekit.E016", "None"),
        ({"replica": "replica"}, "django_cachekit.E017", "'replica'"),
        ({"replica": "default", "default": "replica"}, "django_cachekit.E018", "'default'"),
    ],
)
def test_bad_replicas(replicas, check_id, shown):
    messages = check_replicas_with(replicas)
    assert check_id in ids(messages)
    found = next(m for m in messages if m.id == check_id)
    assert shown in found.msg
    assert found.hint


def test_a_replica_of_another_engine_is_an_error():
    from django_cachekit.checks import _replica_errors

    databases = {**settings.DATABASES, "other": {"ENGINE": "django.db.backends.dummy", "NAME": "other"}}
    messages = _replica_errors({"other": "default"}, databases)
    assert ids(messages) == ["django_cachekit.E019"]
    assert "'other'" in messages[0].msg and repr(settings.DATABASES["default"]["ENGINE"]) in messages[0].msg


def test_replicas_is_a_known_key_and_a_registered_check():
    with override_settings(CACHEKIT={"REPLICAS": {"replica": "missing"}}):
        assert "django_cachekit.W001" not in ids(check_settings())
        assert "django_cachekit.E016" in ids(checks.run_checks(tags=[checks.Tags.caches]))


def test_replicas_that_are_not_a_dict_fail_when_read():
    from django_cachekit.core.settings import conf

    with override_settings(CACHEKIT={"REPLICAS": ["replica"]}):
        with pytest.raises(ImproperlyConfigured, match=r"\['replica'\]"):
            conf.REPLICAS


@pytest.mark.django_db
def test_the_apps_migrations_match_its_models():
    from django.core.management import call_command

    call_command("makemigrations", "django_cachekit", "--check", "--dry-run", verbosity=0)  # exits 1 if not
