"""Warmers: what they store, that a second run stores nothing, that they never
store stale data, refresh-ahead, selection by label and tag, the warming task."""

import time

import pytest
from django.core.cache import caches
from django.db import models
from django.test.utils import isolate_apps

from django_cachekit import cached, warmer
from django_cachekit.checks import check_models
from django_cachekit.core import protocol as core
from django_cachekit.models import CachedModelMixin
from django_cachekit.schema.meta import CacheMetaError, parse_cache_meta
from django_cachekit.warming import warmers as warming
from tests.conftest import CACHE
from tests.factories import ArticleFactory, AuthorFactory, CategoryFactory
from tests.testapp.models import Article, Author, Category, Plain

pytestmark = pytest.mark.django_db(transaction=True)

TOP = ("-views", "pk")


@pytest.fixture(autouse=True)
def registry():
    """Warmers registered by a test are gone after it."""
    saved = dict(warming._registered)
    yield warming._registered
    warming._registered.clear()
    warming._registered.update(saved)


def clear_cache():
    # Factories' saves write their rows through; start from an empty cache.
    caches["default"].clear()


@pytest.fixture
def articles():
    made = [ArticleFactory(views=v) for v in (5, 3, 9, 1, 7)]
    clear_cache()
    return made


def run(*labels, **kwargs):
    (result,) = warming.warm(labels or ["testapp.Article"], **kwargs)
    if result.error is not None:
        raise result.error
    return result


def top_articles():
    return list(Article.objects.cache().order_by(*TOP)[:100])


# -- what a warmer stores ------------------------------------------------------


def test_model_warmer_stores_the_query_entry_and_every_object_entry(articles, queries):
    result = run()
    assert (result.stored, result.fresh) == (1 + len(articles), 0)
    with queries(0):
        listed = top_articles()
        for article in articles:
            assert Article.objects.cache().get(pk=article.pk).title == article.title
        assert set(Article.objects.cache().in_bulk([a.pk for a in articles])) == {a.pk for a in articles}
    assert [a.views for a in listed] == [9, 7, 5, 3, 1]


def test_a_second_run_stores_nothing(articles):
    run()
    again = run()
    assert (again.stored, again.fresh) == (0, 1 + len(articles))


def test_after_a_save_only_what_changed_is_stored(articles, queries):
    run()
    article = Article.objects.get(pk=articles[0].pk)
    article.title = "Changed"
    article.save()  # the row is written through; the table's queries are retired
    result = run()
    assert (result.stored, result.fresh) == (1, len(articles))
    Article.objects.filter(pk=articles[1].pk).update(views=100)  # no write-through: that row and the queries
    result = run()
    assert (result.stored, result.fresh) == (2, len(articles) - 1)
    with queries(0):
        listed = top_articles()
        assert Article.objects.cache().get(pk=article.pk).title == "Changed"
    assert listed[0].pk == articles[1].pk


def test_limit_reads_at_most_n_rows_per_queryset(articles, queries):
    result = warming.Runner(limit=2).run(warming.select(["testapp.Article"])[0])
    assert result.stored == 1 + 2
    with queries(0):
        Article.objects.cache().get(pk=articles[2].pk)  # views 9
        Article.objects.cache().get(pk=articles[4].pk)  # views 7
    with queries(1):
        Article.objects.cache().get(pk=articles[0].pk)


def test_dry_run_counts_and_stores_nothing(articles, queries):
    result = warming.Runner(dry_run=True).run(warming.select(["testapp.Article"])[0])
    assert (result.stored, result.fresh) == (1 + len(articles), 0)
    with queries(1):
        top_articles()
    with queries(1):
        Article.objects.cache().get(pk=articles[0].pk)


def test_warming_never_stores_what_a_concurrent_write_changed(articles, monkeypatch, queries):
    """A write committed after the versions were read and before the store leaves a miss, never old data."""
    target = articles[2]
    original = core.store_many
    state = {"done": False}

    def store_many(items, timeout, namespace):
        if not state["done"]:
            state["done"] = True
            Article.objects.filter(pk=target.pk).update(title="Written meanwhile")
        return original(items, timeout, namespace)

    monkeypatch.setattr(core, "store_many", store_many)
    run()
    assert state["done"]
    with queries(1):
        assert Article.objects.cache().get(pk=target.pk).title == "Written meanwhile"


# -- @warmer functions -----------------------------------------------------------


def test_warmer_function_returning_querysets_and_instances(queries):
    authors = [AuthorFactory() for _ in range(3)]
    categories = [CategoryFactory() for _ in range(2)]
    clear_cache()

    @warmer("people", tags=["front"])
    def people():
        return [Author.objects.order_by("pk").values_list("name", flat=True), categories]

    result = run("people")
    assert result.stored == 1 + len(categories)  # the values query, then each category's entry
    with queries(0):
        assert list(Author.objects.cache().order_by("pk").values_list("name", flat=True)) == [a.name for a in authors]
        for category in categories:
            Category.objects.cache().get(pk=category.pk)
    assert people() is not None  # the function is returned unchanged


def test_warmer_that_fills_the_cache_itself():
    AuthorFactory(name="Ann")
    calls = []

    @cached(key="author-names")
    def author_names():
        calls.append(1)
        return sorted(Author.objects.values_list("name", flat=True))

    @warmer
    def names():
        author_names()

    first, second = run("names"), run("names")
    assert (first.stored, first.fresh, second.stored, second.fresh) == (1, 0, 0, 1)
    assert author_names() == ["Ann"] and len(calls) == 1


def test_a_failing_warmer_is_reported_and_does_not_stop_the_others(articles, queries):
    @warmer("broken")
    def broken():
        raise RuntimeError("database is on fire")

    results = warming.warm(["broken", "testapp.Article"])
    assert [r.warmer.name for r in results] == ["testapp.Article", "broken"]
    assert results[0].error is None and results[0].stored == 1 + len(articles)
    assert isinstance(results[1].error, RuntimeError)
    assert results[1].as_dict()["error"] == "RuntimeError: database is on fire"


@pytest.mark.parametrize(
    ("returned", "shown"),
    [
        (lambda: Plain.objects.all(), "queryset of testapp.Plain, which is not cached"),
        (lambda: "Article", "returned 'Article'"),
        (lambda: 42, "returned 42"),
        (lambda: [Plain(pk=1)], "testapp.Plain instance, which is not a cached model"),
        (lambda: [Article(title="new")], "unsaved testapp.Article"),
    ],
)
def test_what_cannot_be_warmed_is_an_error_naming_the_warmer(returned, shown):
    warmer("odd")(returned)
    (result,) = warming.warm(["odd"])
    assert isinstance(result.error, warming.WarmerError)
    assert "'odd'" in str(result.error) and shown in str(result.error)


# -- selection -------------------------------------------------------------------


def test_select_by_name_app_model_and_tag():
    warmer("home", tags=["front"])(lambda: None)
    warmer("sidebar", tags=["front", "nav"])(lambda: None)
    names = lambda found: [w.name for w in found]  # noqa: E731
    assert names(warming.select()) == ["testapp.Article", "home", "sidebar"]
    assert names(warming.select(["testapp.Article"])) == ["testapp.Article"]
    assert names(warming.select(["testapp.article"])) == ["testapp.Article"]
    assert names(warming.select(["home"])) == ["home"]
    assert names(warming.select(tags=["nav"])) == ["sidebar"]
    assert names(warming.select(["home"], tags=["nav"])) == ["home", "sidebar"]
    # @warmer functions defined in a module of an app belong to it
    assert names(warming.select(["testapp"])) == ["testapp.Article"]


@pytest.mark.parametrize(
    ("labels", "tags", "shown"),
    [
        (["nosuch"], [], "'nosuch' is not a warmer name, an app label"),
        (["testapp.Nosuch"], [], "'testapp.Nosuch' is not a warmer name"),
        (["testapp.Author"], [], "testapp.Author has no warmer"),
        (["auth"], [], "The app 'auth' has no warmer"),
        ([], ["nosuch"], "No warmer has the tag 'nosuch'"),
    ],
)
def test_unknown_labels_are_named(labels, tags, shown):
    with pytest.raises(warming.UnknownLabel, match=shown):
        warming.select(labels, tags)


def test_proxies_and_children_do_not_repeat_an_inherited_warmer():
    assert [w.name for w in warming.warmers() if w.model is not None] == ["testapp.Article"]


@pytest.mark.parametrize(
    ("args", "kwargs", "shown"),
    [
        (("has space",), {}, "'has space'"),
        (("",), {}, "''"),
        ((), {"tags": [""]}, "''"),
        ((), {"tags": [3]}, "3"),
        ((), {"refresh_ahead": 1.5}, "1.5"),
        ((), {"refresh_ahead": 0}, "0"),
        ((), {"refresh_ahead": True}, "True"),
    ],
)
def test_bad_warmer_arguments_fail_at_decoration(args, kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        warmer(*args, **kwargs)


def test_two_functions_cannot_share_a_name():
    warmer("same")(lambda: None)

    def other():
        return None

    with pytest.raises(ValueError, match="'same' is already registered"):
        warmer("same")(other)


# -- CacheMeta.warm and refresh_ahead, checked ------------------------------------


@isolate_apps("tests.testapp")
def test_cache_meta_warm_may_take_the_model():
    seen = []

    class Thing(CachedModelMixin, models.Model):
        name = models.CharField(max_length=5)

        class Meta:
            app_label = "testapp"

        class CacheMeta:
            def warm(model):
                seen.append(model)

            refresh_ahead = 0.5

    options = parse_cache_meta(Thing)
    options.warm()
    assert seen == [Thing] and options.refresh_ahead == 0.5


@isolate_apps("tests.testapp")
@pytest.mark.parametrize(
    ("cache_meta", "check_id", "shown"),
    [
        ({"warm": staticmethod(lambda a, b: None)}, "django_cachekit.E025", "(a, b)"),
        ({"warm": staticmethod(lambda: None), "refresh_ahead": 1}, "django_cachekit.E026", "1"),
        ({"warm": staticmethod(lambda: None), "refresh_ahead": "0.2"}, "django_cachekit.E026", "'0.2'"),
        ({"refresh_ahead": 0.2}, "django_cachekit.E026", "has no warm"),
    ],
)
def test_bad_warm_options_are_reported_by_checks(cache_meta, check_id, shown):
    model = type(
        "Broken",
        (CachedModelMixin, models.Model),
        {
            "__module__": "tests.testapp.models",
            "name": models.CharField(max_length=5),
            "CacheMeta": type("CacheMeta", (), cache_meta),
        },
    )
    with pytest.raises(CacheMetaError):
        parse_cache_meta(model)
    messages = [m for m in check_models([model._meta.apps.get_app_config("testapp")]) if m.obj is model]
    assert [m.id for m in messages] == [check_id]
    assert shown in messages[0].msg and messages[0].hint


# -- refresh-ahead ----------------------------------------------------------------


def test_refresh_ahead_keeps_a_popular_entry_warm_past_its_timeout(queries):
    """Entries of 6 s, refreshed when less than 3 s are left: a run at 3.5 s
    extends them, so at 7 s (past the first expiry) they are still hits; the
    same entries of a warmer without refresh-ahead have expired."""
    authors = [AuthorFactory() for _ in range(2)]
    categories = [CategoryFactory() for _ in range(2)]
    clear_cache()
    warmer("hot", refresh_ahead=0.5)(lambda: Author.objects.cache(timeout=6).order_by("pk"))
    warmer("cold")(lambda: Category.objects.cache(timeout=6).order_by("pk"))
    runner = warming.Runner()  # one runner across rounds, as cachekit_warm --interval keeps
    hot, cold = warming.select(["hot"])[0], warming.select(["cold"])[0]
    first = runner.run(hot)
    runner.run(cold)
    assert (first.stored, first.refreshed) == (3, 0)
    if CACHE != "memcached":  # Memcached cannot tell the time left: every valid entry is extended
        assert runner.run(hot).refreshed == 0  # about 6 s left: not due yet
    time.sleep(3.5)
    second = runner.run(hot)
    assert (second.stored, second.fresh, second.refreshed) == (0, 3, 3)
    time.sleep(3.5)
    with queries(0):
        assert [a.pk for a in Author.objects.cache(timeout=6).order_by("pk")] == [a.pk for a in authors]
        Author.objects.cache().get(pk=authors[0].pk)
    with queries(1):
        assert [c.pk for c in Category.objects.cache(timeout=6).order_by("pk")] == [c.pk for c in categories]


def test_refresh_ahead_in_a_dry_run_counts_and_extends_nothing():
    AuthorFactory()
    clear_cache()
    warmer("hot", refresh_ahead=0.99)(lambda: Author.objects.cache(timeout=60).order_by("pk"))
    hot = warming.select(["hot"])[0]
    runner = warming.Runner()
    runner.run(hot)
    stored = list(runner.timeouts)
    time.sleep(1.1)  # less than 99% of 60 s left
    store = core.runtime().store
    before = store.ttls(stored)
    result = warming.Runner(dry_run=True).run(hot)
    assert (result.stored, result.fresh, result.refreshed) == (0, 2, 2)
    if CACHE != "memcached":
        assert all(after <= earlier for after, earlier in zip(store.ttls(stored), before))
        assert runner.run(hot).refreshed == 2
        assert all(after > earlier for after, earlier in zip(store.ttls(stored), before))


def test_store_ttls_and_touch():
    store = core.runtime().store
    store.set("ck:test:a", b"x", 100)
    store.set("ck:test:b", b"y", None)
    a, b, missing = store.ttls(["ck:test:a", "ck:test:b", "ck:test:none"])
    if CACHE == "memcached":
        assert (a, b, missing) == (None, None, None)
    else:
        assert 90 < a <= 100 and b == float("inf") and missing == 0
    assert store.touch_many({"ck:test:a": 1000, "ck:test:none": 10}) == 1
    if CACHE != "memcached":
        assert store.ttls(["ck:test:a"])[0] > 900


# -- the task ---------------------------------------------------------------------


def test_warm_cache_task_runs_the_warmers(articles, queries):
    from django_cachekit.tasks import warm_cache

    result = warm_cache.enqueue(labels=["testapp.Article"])
    assert result.status == "SUCCESSFUL", result.errors
    assert result.return_value["stored"] == 1 + len(articles)
    assert result.return_value["warmers"][0]["warmer"] == "testapp.Article"
    with queries(0):
        top_articles()
    again = warm_cache.enqueue()
    assert again.return_value["stored"] == 0 and again.return_value["fresh"] == 1 + len(articles)


def test_warm_cache_task_fails_when_a_warmer_fails_after_running_the_others(articles, queries):
    from django_cachekit.tasks import warm_cache

    warmer("broken")(lambda: 1 / 0)
    result = warm_cache.enqueue()
    assert result.status == "FAILED"
    assert "WarmingFailed" in result.errors[0].exception_class_path
    assert "broken: ZeroDivisionError" in result.errors[0].traceback
    with queries(0):
        top_articles()
