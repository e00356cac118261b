"""Keys built from a queryset's steps instead of its SQL are exact."""

import pytest
from django.db import connection
from django.db.models import Count, OuterRef, Q, Subquery
from django.test.utils import CaptureQueriesContext

from django_cachekit.orm import fingerprint
from tests.factories import ArticleFactory, AuthorFactory, CommentFactory, TagFactory
from tests.testapp.models import Article, Category, Comment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data():
    author = AuthorFactory()
    rows = [ArticleFactory(author=author, title=f"a{i}", views=i % 3) for i in range(6)]
    return author, rows


def compiled_sql(monkeypatch):
    """Count SQL compilations done to build keys."""
    from django_cachekit.orm import queries

    calls = []
    original = queries.hook.read_tables

    def read_tables(sql):
        calls.append(sql)
        return original(sql)

    monkeypatch.setattr(queries.hook, "read_tables", read_tables)
    return calls


def test_a_hit_compiles_no_sql(queries, data, monkeypatch):
    def read():
        return [a.title for a in Article.objects.cache().filter(views=1).order_by("-id")[:2]]

    with queries(1):
        first = read()
    calls = compiled_sql(monkeypatch)
    with queries(0):
        assert read() == first
    assert calls == []


def test_values_and_steps_make_distinct_keys(queries, data):
    def titles(qs):
        return sorted(a.title for a in qs)

    assert titles(Article.objects.cache().filter(views=1)) == ["a1", "a4"]
    assert titles(Article.objects.cache().filter(views=2)) == ["a2", "a5"]
    assert titles(Article.objects.cache().exclude(views=1)) == ["a0", "a2", "a3", "a5"]
    assert titles(Article.objects.cache().filter(Q(views=1) | Q(views=2))) == ["a1", "a2", "a4", "a5"]
    assert titles(Article.objects.cache().filter(views=True)) == ["a1", "a4"]
    assert [a.title for a in Article.objects.cache().order_by("id")[1:3]] == ["a1", "a2"]
    assert [a.title for a in Article.objects.cache().order_by("id")[2:4]] == ["a2", "a3"]
    assert Article.objects.cache().order_by("id")[4].title == "a4"
    assert list(Article.objects.cache().filter(views=0).values_list("title", flat=True).order_by("id")) == ["a0", "a3"]
    assert list(Article.objects.cache().filter(views=0).values_list("views", flat=True).order_by("id")) == [0, 0]


def test_in_place_change_of_the_query_is_noticed(queries, data):
    qs = Article.objects.cache().filter(views=1)
    with queries(1):
        assert len(list(qs.all())) == 2
    narrowed = qs.all()
    narrowed.query.add_q(Q(title="a1"))  # not through a recorded method
    with queries(1):
        assert [a.title for a in narrowed] == ["a1"]
    chained = narrowed.filter(views=1)  # recorded on top of the unrecorded change
    with queries(1):
        assert [a.title for a in chained] == ["a1"]


def test_get_and_list_of_the_same_filter_do_not_mix(queries, data):
    with queries(1):
        assert Article.objects.cache().filter(views=1).get(title="a1").title == "a1"
    with queries(1):
        assert sorted(a.title for a in Article.objects.cache().filter(views=1).filter(title="a1")) == ["a1"]
    with pytest.raises(Article.MultipleObjectsReturned):
        Article.objects.cache().get(views=1)
    assert len(list(Article.objects.cache().filter(views=1))) == 2


def test_unrecorded_methods_fall_back_to_sql(queries, data):
    def annotated(n):
        return [
            (a.title, a.c)
            for a in Article.objects.cache().annotate(c=Count("comments")).filter(c__gte=n).order_by("id")
        ]

    CommentFactory(article=data[1][0])
    assert annotated(1) == [("a0", 1)]
    assert len(annotated(0)) == 6
    with queries(0):
        assert annotated(1) == [("a0", 1)]
    newest = Comment.objects.filter(article=OuterRef("pk")).order_by("-id").values("text")[:1]
    with queries(1):
        rows = list(Article.objects.cache().annotate(last=Subquery(newest)).filter(views=0).order_by("id"))
    assert rows[0].last is not None
    with queries(0):
        list(Article.objects.cache().annotate(last=Subquery(newest)).filter(views=0).order_by("id"))


def test_subquery_values_are_not_fingerprinted(queries, data):
    inner = Article.objects.filter(views=2).values("pk")
    qs = Article.objects.cache().filter(pk__in=inner)
    assert qs._fingerprint() is None
    with queries(1):
        assert len(list(qs)) == 2
    with queries(0):
        assert len(list(Article.objects.cache().filter(pk__in=Article.objects.filter(views=2).values("pk")))) == 2
    Article.objects.filter(title="a0").update(views=2)
    with queries(1):
        assert len(list(Article.objects.cache().filter(pk__in=Article.objects.filter(views=2).values("pk")))) == 3


def test_related_manager_and_m2m_filters(queries, data):
    author, rows = data
    tag = TagFactory()
    rows[0].tags.add(tag)
    with queries(1):
        assert [a.title for a in author.articles.cache().filter(tags=tag)] == ["a0"]
    with queries(0):
        assert [a.title for a in author.articles.cache().filter(tags=tag)] == ["a0"]
    other = AuthorFactory()
    with queries(1):
        assert list(other.articles.cache().filter(tags=tag)) == []
    with queries(1):
        assert [a.title for a in tag.articles.cache().all()] == ["a0"]


def test_model_instances_and_unsaved_values():
    author = AuthorFactory.build()
    with pytest.raises(fingerprint.Unknown):
        fingerprint.value(author)
    assert fingerprint.value([1, 2])[1] == fingerprint.value([3, 4, 5])[1]
    assert fingerprint.value([1, 2])[0] != fingerprint.value([1, 3])[0]
    assert fingerprint.value(1)[0] != fingerprint.value(True)[0]


def test_shape_is_compiled_once_per_process(data, monkeypatch):
    from django_cachekit.orm import queries

    queries.clear()
    calls = compiled_sql(monkeypatch)
    with CaptureQueriesContext(connection) as executed:
        for views in (0, 1, 2, 3):
            list(Article.objects.cache().filter(views=views))
    # Each miss's own SELECT is read once (to check its tags); the key's SQL only for the first value.
    assert len(executed) == 4
    assert len(calls) == 4 + 1
    for views in (0, 1, 2, 3):
        list(Article.objects.cache().filter(views=views))
    assert len(calls) == 5


def test_field_names_are_part_of_the_shape(queries, data):
    from django_cachekit.orm import queries as plans

    _, rows = data
    plans.clear()
    list(Article.objects.cache().select_related("author"))  # the same kinds of values, other joins

    def category_names():
        return sorted({a.category.name for a in Article.objects.cache().select_related("category")})

    with queries(1):
        assert "renamed" not in category_names()
    with queries(0):  # tagged with the tables it reads on its first miss, so it was stored
        assert "renamed" not in category_names()
    Category.objects.filter(pk=rows[0].category_id).update(name="renamed")
    with queries(1):
        assert "renamed" in category_names()


def test_values_are_recorded_by_their_exact_encoding():
    import decimal

    assert fingerprint.value(decimal.Decimal("1.0"))[0] != fingerprint.value(decimal.Decimal("1.00"))[0]
    assert fingerprint.value(1.0)[0] != fingerprint.value(1)[0]
    with pytest.raises(fingerprint.Unknown):
        fingerprint.value({"a": 1})
