"""System checks name the bad value and carry a stable id and a hint."""

import pytest
from django.core import checks
from django.db import models
from django.test.utils import isolate_apps, override_settings

from django_cachekit.checks import check_models, check_settings
from django_cachekit.models import CachedModelMixin


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
