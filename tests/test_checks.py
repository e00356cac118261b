"""System checks name the bad value and carry a stable id and a hint."""

import io
import subprocess
import sys
from pathlib import Path

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
from django_cachekit.core.settings import SETTINGS, conf
from django_cachekit.models import CachedModelMixin
from django_cachekit.schema import meta
from tests.factories import AuthorFactory
from tests.testapp.models import Author, Plain


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
        ({"tags": ("bad:{name!x}",)}, "django_cachekit.E021", "'!x'"),
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


# -- registered at start-up; a bad CacheMeta is the model's problem, not django.setup()'s ----------

ROOT = Path(__file__).resolve().parent.parent

BROKEN_MODELS = """
from django.db import models

from django_cachekit.core.settings import SETTINGS, conf
from django_cachekit.models import CachedModelMixin


class Late(CachedModelMixin, models.Model):
    class CacheMeta:
        timeout = "soon"


class Loose(CachedModelMixin, models.Model):
    class CacheMeta:
        tags = (5,)


class Touchy(CachedModelMixin, models.Model):
    name = models.CharField(max_length=5)

    class CacheMeta:
        touch = ("name",)


class Odd(CachedModelMixin, models.Model):
    class CacheMeta:
        timout = 5


class Flat(CachedModelMixin, models.Model):
    CacheMeta = {"timeout": 5}
"""

SETUP = """
import sys

sys.path[:0] = [{app_dir!r}, {root!r}]
from django.conf import settings

settings.configure(
    DEBUG=True,
    INSTALLED_APPS=["django_cachekit", "brokenapp"],
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}},
    CACHES={{"default": {{"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}}},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
)
import django

django.setup()
{then}
"""


def run_setup(tmp_path, then, models_text=""):
    app = tmp_path / "apps" / "brokenapp"
    app.mkdir(parents=True, exist_ok=True)
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(models_text)
    script = tmp_path / "run.py"
    db = str(tmp_path / "db.sqlite3")
    script.write_text(SETUP.format(app_dir=str(app.parent), root=str(ROOT), db=db, then=then))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def test_the_apps_ready_registers_the_checks(tmp_path):
    done = run_setup(
        tmp_path,
        "from django.core.checks.registry import registry\n"
        "print(*(c.__name__ for c in registry.get_checks() if c.__module__ == 'django_cachekit.checks'))",
    )
    assert done.returncode == 0, done.stderr
    registered = set(done.stdout.split())
    assert registered >= {"check_cache_backend", "check_models", "check_replicas", "check_settings"}


def test_a_bad_cache_meta_in_an_installed_app_is_reported_by_check_not_raised_by_setup(tmp_path):
    done = run_setup(
        tmp_path,
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'check'])",
        BROKEN_MODELS,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    for label, check_id, shown in [
        ("Late", "E020", "'soon'"),
        ("Loose", "E021", "(5,)"),
        ("Touchy", "E022", "'name'"),
        ("Odd", "E023", "'timout'"),
        ("Flat", "E028", "{'timeout': 5}"),
    ]:
        line = next(
            line for line in done.stderr.splitlines() if f"brokenapp.{label}: (django_cachekit.{check_id})" in line
        )
        assert shown in line
    assert "SystemCheckError" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_a_model_with_a_bad_cache_meta_is_read_uncached_with_one_logged_error(monkeypatch, queries, caplog):
    from django_cachekit.apps import connect_model

    author = AuthorFactory()
    monkeypatch.setattr(Author, "CacheMeta", type("CacheMeta", (), {"timeout": "soon"}))
    meta.clear()
    try:
        with caplog.at_level("ERROR", logger="django_cachekit"):
            connect_model(Author)
            for _ in range(3):
                with queries(1):
                    assert Author.objects.cache().get(pk=author.pk) == author
        logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(logged) == 1
        assert "'soon'" in logged[0] and "read uncached" in logged[0] and "django_cachekit.E020" in logged[0]
    finally:
        monkeypatch.undo()
        meta.clear()
    Author.objects.cache().get(pk=author.pk)
    with queries(0):
        Author.objects.cache().get(pk=author.pk)


# -- touch naming a model without the mixin ---------------------------------------------------------


@isolate_apps("tests.testapp")
def test_touch_naming_a_model_without_the_mixin_is_a_warning():
    def model(name, parent):
        return type(
            name,
            (CachedModelMixin, models.Model),
            {
                "__module__": "tests.testapp.models",
                "parent": models.ForeignKey(parent, on_delete=models.CASCADE),
                "CacheMeta": type("CacheMeta", (), {"touch": ("parent",)}),
            },
        )

    uncached = model("TouchesPlain", Plain)
    cached = model("TouchesAuthor", Author)
    messages = check_models([uncached._meta.apps.get_app_config("testapp")])
    assert ids([m for m in messages if m.obj is uncached]) == ["django_cachekit.W003"]
    found = next(m for m in messages if m.obj is uncached)
    assert isinstance(found, checks.Warning)
    assert "'parent'" in found.msg and "testapp.Plain" in found.msg and "CachedModelMixin" in found.hint
    assert [m for m in messages if m.obj is cached] == []


# -- every setting: an Error from the checks, its default at runtime -------------------------------

BAD_VALUES = {"TIMEOUT": "abc", "CACHE_ALIAS": 3, "KEY_PREFIX": "has space", "ENABLED": "yes", "VERSION": 1.5}
CHECKED = [name for name, setting in SETTINGS.items() if setting.check_id]


def bad_value(name):
    return BAD_VALUES.get(name, ["bad"])  # a list is no valid value of any checked setting


@pytest.mark.parametrize("name", CHECKED)
def test_every_setting_is_checked(name):
    bad = bad_value(name)
    with override_settings(CACHEKIT={name: bad}):
        messages = check_settings()
    assert ids(messages) == [SETTINGS[name].check_id]
    assert repr(name) in messages[0].msg and repr(bad) in messages[0].msg


@pytest.mark.parametrize("name", CHECKED)
def test_a_bad_setting_falls_back_to_its_default_with_one_logged_error(name, caplog):
    with override_settings(CACHEKIT={}):
        expected = getattr(conf, name)
    bad = bad_value(name)
    with caplog.at_level("ERROR", logger="django_cachekit"), override_settings(CACHEKIT={name: bad}):
        assert getattr(conf, name) == expected
        for other in CHECKED:
            getattr(conf, other)
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1
    assert f"CACHEKIT[{name!r}]" in logged[0] and repr(bad) in logged[0] and SETTINGS[name].check_id in logged[0]


def test_a_setting_that_is_not_a_dict_falls_back_to_the_defaults(caplog):
    with caplog.at_level("ERROR", logger="django_cachekit"), override_settings(CACHEKIT=["TIMEOUT"]):
        assert conf.TIMEOUT == SETTINGS["TIMEOUT"].default
    assert any("['TIMEOUT']" in r.getMessage() and "E001" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=True)
def test_a_bad_timeout_does_not_fail_a_request(queries):
    author = AuthorFactory()
    caches["default"].clear()
    with override_settings(CACHEKIT={**settings.CACHEKIT, "TIMEOUT": "abc"}):
        with queries(1):
            assert list(Author.objects.cache().filter(pk=author.pk)) == [author]
        with queries(0):
            assert list(Author.objects.cache().filter(pk=author.pk)) == [author]


@pytest.mark.django_db(transaction=True)
def test_a_cache_alias_not_in_caches_falls_back_to_the_default_cache(queries, caplog):
    author = AuthorFactory()
    caches["default"].clear()
    with caplog.at_level("ERROR", logger="django_cachekit"), override_settings(CACHEKIT={"CACHE_ALIAS": "nope"}):
        with queries(1):
            assert Author.objects.cache().get(pk=author.pk) == author
        with queries(0):
            assert Author.objects.cache().get(pk=author.pk) == author
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1 and "'nope'" in logged[0] and "django_cachekit.E002" in logged[0]
