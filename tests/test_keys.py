"""Keys: a schema fingerprint per model, safe characters, the alias and the prefix."""

import pytest
from django.db import models
from django.test.utils import isolate_apps

from django_cachekit.core import keys
from django_cachekit.models import CachedModelMixin
from django_cachekit.schema import meta
from tests.factories import ArticleFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


def test_version_setting_retires_every_entry(queries, settings):
    article = ArticleFactory()
    with queries(0):
        Article.objects.cache().get(pk=article.pk)
    old_key = article.cache_key
    settings.CACHEKIT = {**settings.CACHEKIT, "VERSION": "2"}
    assert article.cache_key != old_key
    with queries(1):
        Article.objects.cache().get(pk=article.pk)
    with queries(1):
        Article.objects.cache().count()


def test_schema_changes_with_fields_and_ordering():
    def schema(**fields):
        with isolate_apps("tests.testapp"):
            options = {"db_table": "same_table", "app_label": "testapp", **fields.pop("meta", {})}
            model = type(
                "Variant",
                (CachedModelMixin, models.Model),
                {"__module__": "tests.testapp.models", "Meta": type("Meta", (), options), **fields},
            )
            return meta.ModelInfo(model).schema

    base = schema(title=models.CharField(max_length=10))
    assert base == schema(title=models.CharField(max_length=10))
    assert base != schema(title=models.CharField(max_length=10), extra=models.IntegerField(default=0))
    assert base != schema(title=models.TextField())
    assert base != schema(title=models.CharField(max_length=10, null=True))
    assert base != schema(title=models.CharField(max_length=10), meta={"ordering": ["title"]})


def test_keys_are_short_and_safe_for_memcached():
    for value in ("plain", 12, "with space", "x" * 500, "ünïcode", "a:b/c", "\n"):
        part = keys.safe_part(value)
        assert len(part) <= 80 and part.isprintable() and " " not in part
    assert keys.safe_part(42) == "42"
    assert keys.safe_part("with space") != keys.safe_part("with_space")
    for tag in ("user:42", "has space", "x" * 300):
        internal = keys.user_tag(tag)
        assert len(keys.version_key(internal)) < 250 and " " not in internal


def test_alias_and_prefix_are_in_the_key(settings):
    info = meta.info(Article)
    assert ":o:default:7" in info.object_key("default", 7)
    assert info.object_key("default", 7) != info.object_key("replica", 7)
    settings.CACHEKIT = {**settings.CACHEKIT, "KEY_PREFIX": "site1"}
    assert meta.info(Article).object_key("default", 7).startswith("site1:ck:")
