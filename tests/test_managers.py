"""Every cached read: the first runs its queries, the repeat runs none."""

import time

import pytest
from django.db import connections, transaction
from django.db.models import Count, Max, Prefetch, Sum

from django_cachekit import invalidate_tags
from django_cachekit.metrics import counters as metrics
from tests.factories import ArticleFactory, AuthorFactory, CommentFactory, TagFactory
from tests.testapp.models import Article, Author, Comment, CustomManagerArticle, PublishedManagerArticle, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def twice(queries, read, n=1):
    with queries(n):
        first = read()
    with queries(0):
        assert read() == first
    return first


@pytest.fixture
def data():
    author = AuthorFactory(name="ann")
    articles = [ArticleFactory(author=author, title=f"a{i}", views=i) for i in range(5)]
    tags = [TagFactory(name="x"), TagFactory(name="y")]
    articles[0].tags.set(tags)
    CommentFactory(article=articles[0], score=3)
    CommentFactory(article=articles[0], score=4)
    # Entries written through by the factories would make the first get a hit.
    from django.core.cache import caches

    caches["default"].clear()
    return author, articles, tags


@pytest.mark.parametrize("lookup", ["pk", "id", "pk__exact", "id__exact"])
def test_get_by_primary_key(queries, data, lookup):
    article = data[1][2]
    assert twice(queries, lambda: Article.objects.cache().get(**{lookup: article.pk}).title) == "a2"
    with queries(0):
        assert Article.objects.cache().get(pk=str(article.pk)).title == "a2"  # "2" from a URL is the same row


def test_get_returns_a_real_instance(queries, data):
    article = data[1][0]
    with queries(1):
        first = Article.objects.cache().get(pk=article.pk)
    with queries(0):
        again = Article.objects.cache().get(pk=article.pk)
    assert again == first and again is not first
    assert again._state.adding is False and again._state.db == "default"
    assert (again.rating, again.extra, again.author_id) == (article.rating, article.extra, article.author_id)
    with queries(1):  # related objects are not in the entry
        assert again.author.name == "ann"


def test_get_missing_and_not_a_pk(queries, data):
    twice(queries, lambda: Article.objects.cache().filter(pk=10**6).exists())
    with queries(1), pytest.raises(Article.DoesNotExist, match="Article matching query does not exist"):
        Article.objects.cache().get(pk=10**6)
    with queries(0), pytest.raises(Article.DoesNotExist):
        Article.objects.cache().get(pk=10**6)
    assert twice(queries, lambda: Article.objects.cache().get(title="a3").views) == 3
    with pytest.raises(Article.MultipleObjectsReturned):
        Article.objects.cache().get(author=data[0])
    with pytest.raises(ValueError):
        Article.objects.cache().get(pk="not-a-number")


def test_filtered_get_uses_a_query_entry(queries, data):
    article = data[1][1]
    assert twice(queries, lambda: Article.objects.cache().filter(views__gte=1).get(pk=article.pk).title) == "a1"
    with queries(1), pytest.raises(Article.DoesNotExist):
        Article.objects.cache().filter(views__gte=100).get(pk=article.pk)


def test_first_last_slice_count_exists(queries, data):
    ordered = Article.objects.cache().order_by("views")
    assert twice(queries, lambda: ordered.first().title) == "a0"
    assert twice(queries, lambda: ordered.last().title) == "a4"
    assert twice(queries, lambda: [a.title for a in ordered[1:3]]) == ["a1", "a2"]
    assert twice(queries, lambda: ordered[3].title) == "a3"
    assert twice(queries, lambda: Article.objects.cache().filter(views__gt=2).count()) == 2
    assert twice(queries, lambda: Article.objects.cache().filter(views=99).exists()) is False


def test_aggregate_over_a_join(queries, data):
    result = twice(queries, lambda: Article.objects.cache().aggregate(total=Sum("comments__score"), n=Count("pk")))
    assert result == {"total": 7, "n": 6}  # the join repeats the first article per comment
    CommentFactory(article=data[1][1], score=10)
    with queries(1):
        assert Article.objects.cache().aggregate(total=Sum("comments__score"), n=Count("pk"))["total"] == 17
    assert twice(queries, lambda: Article.objects.cache().aggregate(Max("views"))) == {"views__max": 4}


def test_values_and_values_list(queries, data):
    qs = Article.objects.cache().order_by("views")
    assert twice(queries, lambda: list(qs.values("title", "views")[:2])) == [
        {"title": "a0", "views": 0},
        {"title": "a1", "views": 1},
    ]
    assert twice(queries, lambda: list(qs.values_list("title", flat=True))) == ["a0", "a1", "a2", "a3", "a4"]
    assert twice(queries, lambda: list(qs.values_list("title", "views"))[-1]) == ("a4", 4)
    row = twice(queries, lambda: qs.values_list("title", "views", named=True)[0])
    assert (row.title, row.views) == ("a0", 0)
    assert twice(queries, lambda: list(qs.order_by().values_list("author__name", flat=True).distinct())) == ["ann"]


def test_annotate(queries, data):
    rows = twice(
        queries,
        lambda: [(a.title, a.n) for a in Article.objects.cache().annotate(n=Count("comments")).order_by("views")],
    )
    assert rows[0] == ("a0", 2)


def test_in_bulk_reads_object_entries_in_one_round_trip(queries, data):
    pks = [a.pk for a in data[1][:3]]
    with queries(1):
        found = Article.objects.cache().in_bulk(pks + [10**6])
    assert sorted(found) == sorted(pks)
    with queries(0):
        assert Article.objects.cache().in_bulk(pks + [10**6]).keys() == found.keys()
    with queries(0):  # the entries are the per-object ones get() uses
        assert Article.objects.cache().get(pk=pks[0]).title == "a0"
    with queries(1):  # one query for the rows not cached yet
        assert len(Article.objects.cache().in_bulk([*pks, data[1][4].pk])) == 4
    assert Article.objects.cache().in_bulk([]) == {}
    assert twice(queries, lambda: sorted(Tag.objects.cache().in_bulk(["x"], field_name="name"))) == ["x"]


def test_select_related_and_prefetch_related(queries, data):
    def read():
        return [
            (a.title, a.author.name, sorted(t.name for t in a.tags.all()), len(a.comments.all()))
            for a in Article.objects.cache()
            .select_related("author", "category")
            .prefetch_related("tags", "comments")
            .order_by("views")
        ]

    rows = twice(queries, read, n=3)
    assert rows[0] == ("a0", "ann", ["x", "y"], 2)
    CommentFactory(article=data[1][0])
    with queries(1):  # only the comments prefetch is re-read
        assert read()[0][3] == 3


def test_prefetch_with_custom_queryset_and_nested(queries, data):
    def read():
        qs = Article.objects.cache().prefetch_related(
            Prefetch("comments", queryset=Comment.objects.filter(score__gte=4), to_attr="good"),
            "tags__articles",
        )
        return [
            (a.title, [c.score for c in a.good], sorted(len(t.articles.all()) for t in a.tags.all()))
            for a in qs.order_by("views")
        ]

    rows = twice(queries, read, n=4)
    assert rows[0] == ("a0", [4], [1, 1])


def test_related_manager_keeps_the_known_instance(queries, data):
    author = data[0]
    with queries(1):
        articles = list(author.articles.cache().order_by("views"))
    with queries(0):
        again = list(author.articles.cache().order_by("views"))
    assert [a.title for a in again] == [a.title for a in articles]
    with queries(0):
        assert all(a.author is author for a in again)
    author.name = "renamed in memory"
    with queries(0):
        assert list(author.articles.cache().order_by("views"))[0].author.name == "renamed in memory"


def test_nocache_and_uncached_paths(queries, data):
    qs = Article.objects.cache().filter(views__gte=0)
    twice(queries, lambda: list(qs.all()))
    with queries(1):
        list(qs.nocache())
    with queries(1):
        list(qs.nocache())
    with queries(1):  # nocache() sticks through later chaining
        list(qs.nocache().filter(views__lt=100))
    with queries(1):
        list(Article.objects.filter(views__gte=0))  # not asked to cache
    with queries(1):
        list(qs.iterator())  # streaming reads are never cached
    with queries(1):
        list(qs.iterator())
    with transaction.atomic():
        with queries(1):
            list(qs.select_for_update())
        with queries(1):
            list(qs.select_for_update())
    with queries(0):
        assert list(qs.filter(pk__in=[])) == []


def test_cache_arguments_are_validated():
    with pytest.raises(ValueError, match="-1"):
        Article.objects.cache(timeout=-1)
    with pytest.raises(ValueError, match="'soon'"):
        Article.objects.cache(timeout="soon")
    with pytest.raises(ValueError, match="5"):
        Article.objects.cache(tags=[5])
    with pytest.raises(ValueError, match="''"):
        Article.objects.all().cache(tags=[""])


def test_timeout_expires_entries(queries, data):
    qs = Article.objects.cache(timeout=1).filter(views=1)
    twice(queries, lambda: list(qs.all()))
    time.sleep(2.1)
    with queries(1):
        list(qs.all())


def test_query_tags_and_invalidate_tags(queries, data):
    def read():
        return Article.objects.cache(tags=["frontpage"]).filter(views__lt=3).count()

    twice(queries, read)
    twice(queries, lambda: Article.objects.cache().filter(views__lt=3).count())
    invalidate_tags("frontpage")
    with queries(1):
        read()
    with queries(0):  # the same query without the tag is another entry
        Article.objects.cache().filter(views__lt=3).count()


def test_proxy_model_shares_object_entries(queries, data):
    article = data[1][0]
    twice(queries, lambda: Article.objects.cache().get(pk=article.pk).title)
    with queries(0):
        proxied = PublishedManagerArticle.objects.cache().get(pk=article.pk)
    assert type(proxied) is PublishedManagerArticle and proxied.title == "a0"


def test_custom_manager_and_queryset_from_queryset(queries, data):
    articles = CustomManagerArticle.objects
    assert twice(queries, lambda: [a.title for a in articles.cache().titled("a").order_by("id")]) == [
        f"a{i}" for i in range(5)
    ]
    assert twice(queries, lambda: articles.titled("a").cache().filter(views__lt=2).count()) == 2
    assert twice(queries, lambda: sorted(a.views for a in articles.popular().cache())) == [3, 4]
    got = twice(queries, lambda: articles.cache().get(pk=data[1][0].pk))
    assert type(got) is CustomManagerArticle
    Article.objects.filter(pk=data[1][4].pk).update(views=0)
    with queries(1):
        assert sorted(a.views for a in articles.popular().cache()) == [3]


@pytest.mark.django_db(transaction=True, databases=["default", "replica"])
def test_two_aliases_of_the_same_database(django_assert_num_queries, data):
    article = data[1][0]

    def read_replica():
        return Article.objects.cache().using("replica").get(pk=article.pk).title

    def count_replica():
        return Article.objects.cache().using("replica").filter(title="written via default").count()

    for n in (1, 0):
        with django_assert_num_queries(n, using="replica"):
            assert read_replica() == "a0"
        with django_assert_num_queries(n, using="replica"):
            assert count_replica() == 0
    with django_assert_num_queries(1):  # the alias is in the key: default has its own entry
        Article.objects.cache().get(pk=article.pk)
    Article.objects.using("default").filter(pk=article.pk).update(title="written via default")
    with django_assert_num_queries(1, using="replica"):
        assert read_replica() == "written via default"
    with django_assert_num_queries(1, using="replica"):
        assert count_replica() == 1
    assert connections["replica"].alias == "replica"


def test_metrics_count_hits_and_misses(queries, data):
    metrics.reset()
    article = data[1][0]
    for _ in range(3):
        Article.objects.cache().get(pk=article.pk)
    counts = metrics.snapshot()["testapp.article"]
    assert (counts["hit"], counts["miss"], counts["store"]) == (2, 1, 1)


def test_async_reads(queries, data):
    article = data[1][0]

    async def read():
        return (await Article.objects.cache().aget(pk=article.pk)).title, await Article.objects.cache().acount()

    from asgiref.sync import async_to_sync

    with queries(2):
        assert async_to_sync(read)() == ("a0", 5)
    with queries(0):
        assert async_to_sync(read)() == ("a0", 5)


def test_author_and_tag_managers(queries, data):
    assert twice(queries, lambda: sorted(Tag.objects.cache().values_list("name", flat=True))) == ["x", "y"]
    assert twice(queries, lambda: Author.objects.cache().get(name="ann").pk) == data[0].pk
