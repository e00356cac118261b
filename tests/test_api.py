"""cached(), invalidation by tag, model, object and pattern, cache_disabled()."""

import functools

import pytest
from django.core.cache import caches
from django.test.utils import override_settings

from django_cachekit import (
    PatternUnsupported,
    cache_disabled,
    cached,
    invalidate_all,
    invalidate_model,
    invalidate_object,
    invalidate_pattern,
    invalidate_tags,
)
from tests.conftest import CACHE, REDIS_CACHES, needs_redis
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)


def counting(func):
    """``func``, recording each call's arguments in ``.calls``."""
    calls = []

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        calls.append((args, kwargs))
        return func(*args, **kwargs)

    wrapper.calls = calls
    return wrapper


def test_cached_function_runs_once_per_arguments():
    @cached(timeout=60)
    @counting
    def add(a, b=1):
        return {"sum": a + b}

    assert add(1) == {"sum": 2}
    assert add(1) == {"sum": 2}
    assert add(1, b=1) == {"sum": 2}  # the same call spelled differently
    assert add(2) == {"sum": 3}
    assert len(add.__wrapped__.calls) == 2


def test_cached_without_parentheses_and_none_results():
    @cached
    @counting
    def nothing():
        return None

    assert nothing() is None
    assert nothing() is None
    assert len(nothing.__wrapped__.calls) == 1


def test_depends_on_model_and_instance():
    article = ArticleFactory(title="one")
    other = ArticleFactory(title="two")

    @cached(depends_on=[Author])
    @counting
    def author_names():
        return sorted(Author.objects.values_list("name", flat=True))

    @cached(depends_on=[article])
    @counting
    def title_of_first():
        return Article.objects.get(pk=article.pk).title

    author_names(), author_names()
    title_of_first(), title_of_first()
    assert len(author_names.__wrapped__.calls) == 1 and len(title_of_first.__wrapped__.calls) == 1
    other.title = "changed"
    other.save()
    title_of_first()
    assert len(title_of_first.__wrapped__.calls) == 1  # another row changed
    article.title = "changed"
    article.save()
    assert title_of_first() == "changed"
    AuthorFactory(name="new")
    assert "new" in author_names()
    assert len(author_names.__wrapped__.calls) == 2


def test_tags_callable_and_invalidate_tags():
    @cached(tags=lambda uid: [f"user:{uid}", "dashboards"])
    @counting
    def dashboard(uid):
        return f"dash {uid} #{len(dashboard.__wrapped__.calls)}"

    assert dashboard(1) == dashboard(1)
    assert dashboard(2) == dashboard(2)
    invalidate_tags("user:1")
    dashboard(1), dashboard(2)
    assert [c[0] for c in dashboard.__wrapped__.calls] == [(1,), (2,), (1,)]
    invalidate_tags("dashboards")
    dashboard(1), dashboard(2)
    assert len(dashboard.__wrapped__.calls) == 5


def test_explicit_key_and_per_call_invalidate():
    @cached(key="report:{year}")
    @counting
    def report(year):
        return year * 2

    assert report(2024) == report(2024) == 4048
    assert report.cache_key(2024).endswith(":report:2024") and ":k:" in report.cache_key(2024)
    report.invalidate(2024)
    report(2024)
    assert len(report.__wrapped__.calls) == 2


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="-3"):
        cached(timeout=-3)
    with pytest.raises(ValueError, match="7"):
        cached(tags=[7])
    with pytest.raises(ValueError, match="''"):
        cached(key="")
    with pytest.raises(TypeError, match="'Article'"):
        cached(depends_on=["Article"])
    with pytest.raises(ValueError, match="''"):
        invalidate_tags("")
    with pytest.raises(ValueError, match="None"):
        invalidate_tags(None)
    with pytest.raises(TypeError, match="42"):
        invalidate_model(42)
    with pytest.raises(TypeError, match="Article"):
        invalidate_object(Article(title="unsaved"))
    with pytest.raises(ValueError, match="'a b'"):
        invalidate_pattern("a b")


def test_invalidate_object_and_model(queries):
    article, other = ArticleFactory(), ArticleFactory()
    for a in (article, other):
        with queries(0):
            Article.objects.cache().get(pk=a.pk)
    with queries(1):
        Article.objects.cache().count()
    version = article.cache_version
    invalidate_object(article)
    assert article.cache_version != version
    with queries(1):
        Article.objects.cache().get(pk=article.pk)
    with queries(0):
        Article.objects.cache().get(pk=other.pk)
    with queries(1):
        Article.objects.cache().count()
    invalidate_model(Article)
    with queries(1):
        Article.objects.cache().get(pk=other.pk)
    with queries(1):
        Article.objects.cache().count()


def test_invalidate_all(queries):
    author = AuthorFactory()

    @cached
    @counting
    def f():
        return 1

    f()
    with queries(0):
        Author.objects.cache().get(pk=author.pk)
    invalidate_all()
    f()
    assert len(f.__wrapped__.calls) == 2
    with queries(1):
        Author.objects.cache().get(pk=author.pk)


@needs_redis
def test_invalidate_pattern_on_redis():
    @cached(key=lambda region: f"sales:{region}")
    @counting
    def sales(region):
        return region

    @cached(tags=lambda uid: [f"user:{uid}"])
    @counting
    def profile(uid):
        return uid

    for region in ("eu", "us"):
        sales(region)
    for uid in (1, 2):
        profile(uid)
    assert invalidate_pattern("sales:e*") == 1
    sales("eu"), sales("us")
    assert [c[0] for c in sales.__wrapped__.calls] == [("eu",), ("us",), ("eu",)]
    assert invalidate_pattern("user:*") == 2  # the tag versions go, so every tagged entry misses
    profile(1), profile(2)
    assert len(profile.__wrapped__.calls) == 4
    assert invalidate_pattern("nothing:*") == 0


@pytest.mark.skipif(CACHE in REDIS_CACHES, reason="Redis supports patterns")
def test_invalidate_pattern_elsewhere_is_a_clear_error():
    with pytest.raises(PatternUnsupported, match="needs a Redis cache.*'default'"):
        invalidate_pattern("sales:*")


def test_cache_disabled_reads_the_database(queries):
    author = AuthorFactory()

    @cached
    @counting
    def f():
        return 1

    with cache_disabled():
        f(), f()
        with queries(1):
            Author.objects.cache().get(pk=author.pk)
        with queries(1):
            Author.objects.cache().get(pk=author.pk)
    assert len(f.__wrapped__.calls) == 2
    with queries(0):
        Author.objects.cache().get(pk=author.pk)


def test_enabled_false_setting(queries):
    author = AuthorFactory()
    with override_settings(CACHEKIT={"ENABLED": False}):
        with queries(1):
            Author.objects.cache().get(pk=author.pk)
        with queries(1):
            Author.objects.cache().get(pk=author.pk)


def test_cached_function_bypasses_inside_its_own_write_transaction():
    from django.db import transaction

    article = ArticleFactory(title="before")

    @cached(depends_on=[Article])
    def titles():
        return sorted(Article.objects.values_list("title", flat=True))

    assert titles() == ["before"]
    with transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="during")
        assert titles() == ["during"]
    assert titles() == ["during"]


def test_key_prefix_separates_namespaces(queries):
    author = AuthorFactory()
    with queries(0):
        Author.objects.cache().get(pk=author.pk)
    with override_settings(CACHEKIT={"KEY_PREFIX": "other"}):
        with queries(1):
            Author.objects.cache().get(pk=author.pk)
    assert caches["default"] is not None


def test_per_call_invalidate_is_a_bump_counted_once_for_its_function(queries):
    from django_cachekit.metrics import counters as metrics

    @cached(timeout=60)
    @counting
    def report(n):
        return n

    report(1), report(2)
    report.invalidate(1)
    with queries(0):
        report(1), report(2)
    assert [c[0] for c in report.__wrapped__.calls] == [(1,), (2,), (1,)]
    counts = metrics.snapshot()
    assert counts[f"{report.__module__}.{report.__qualname__}"]["invalidation"] == 1
    assert counts.get("tags", {}).get("invalidation", 0) == 0  # the call's own tag is not a user tag


@pytest.mark.skipif(CACHE in REDIS_CACHES, reason="Redis supports patterns")
def test_invalidate_pattern_elsewhere_fails_at_the_call_inside_a_transaction():
    from django.db import transaction

    with transaction.atomic():
        with pytest.raises(PatternUnsupported, match="needs a Redis cache"):
            invalidate_pattern("sales:*")


@needs_redis
def test_invalidate_pattern_that_cannot_look_at_commit_retires_everything(monkeypatch):
    from django.db import transaction

    from django_cachekit.core import protocol as core
    from django_cachekit.stores import get_store

    @cached(key="sales:{region}")
    @counting
    def sales(region):
        return region

    @cached
    @counting
    def unrelated():
        return 1

    sales("eu"), unrelated()
    store = type(get_store("default"))
    with transaction.atomic():
        assert invalidate_pattern("sales:*") == 1

        def unreachable(self, pattern):
            raise ConnectionError("the cache went away")

        monkeypatch.setattr(store, "match_tags", unreachable)
    monkeypatch.undo()
    # What the pattern matched at commit is unknown: every entry is retired once the cache answers.
    assert not core.runtime().lost_invalidations  # delivered with the commit's own bump
    sales("eu"), unrelated()
    assert len(sales.__wrapped__.calls) == len(unrelated.__wrapped__.calls) == 2


@needs_redis
def test_invalidate_pattern_matches_the_key_prefix_literally(queries):
    @cached(key="sales:{region}")
    @counting
    def sales(region):
        return region

    with override_settings(CACHEKIT={"KEY_PREFIX": "pq"}):
        sales("eu")
    with override_settings(CACHEKIT={"KEY_PREFIX": "p*"}):
        sales("eu")
        assert invalidate_pattern("sales:*") == 1  # its own name, not the one under "pq"
    with override_settings(CACHEKIT={"KEY_PREFIX": "pq"}):
        sales("eu")
    assert len(sales.__wrapped__.calls) == 2
