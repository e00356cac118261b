"""A save's UPDATE, made once per model and set of fields instead of compiled by Django each time."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import CharField, F, Value, sql
from django.db.models.sql.compiler import SQLUpdateCompiler
from django.test.utils import CaptureQueriesContext

from django_cachekit.invalidation import rowupdate as saves
from tests.factories import ArticleFactory, AuthorFactory, CategoryFactory, CommentFactory
from tests.testapp.models import Article, Author, Category, Comment, Place, Restaurant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def compiled(monkeypatch):
    """How many UPDATE statements Django compiled."""
    calls = []
    as_sql = SQLUpdateCompiler.as_sql

    def counting(self, *args, **kwargs):
        calls.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLUpdateCompiler, "as_sql", counting)
    return calls


def save_values(obj, update_fields=None):
    """The ``(field, model, value)`` triples ``Model._save_table`` passes to ``_do_update``."""
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if not f.primary_key and not f.generated]
    if update_fields is not None:
        fields = [f for f in fields if f.name in update_fields or f.attname in update_fields]
    return [(f, None, f.pre_save(obj, False)) for f in fields]


def django_statement(obj, values):
    query = obj._meta.model._base_manager.using("default").filter(pk=obj.pk).query.chain(sql.UpdateQuery)
    query.add_update_fields(values)
    return query.get_compiler("default").as_sql()


def cached_author(pk):
    return Author.objects.cache().get(pk=pk)


def plain(params):
    # psycopg's Jsonb wraps a JSON value without comparing equal to another wrapper of it.
    return [getattr(p, "obj", p) for p in params]


def test_a_save_runs_the_statement_without_django_compiling_it(compiled):
    article = ArticleFactory(title="before", views=1)
    compiled.clear()
    article.title = "after"
    article.views = 2
    with CaptureQueriesContext(connection) as ctx:
        article.save()
    assert compiled == []
    assert [q["sql"].split(" SET ")[0] for q in ctx.captured_queries] == [
        f"UPDATE {connection.ops.quote_name('testapp_article')}"
    ]
    assert Article.objects.nocache().values_list("title", "views").get(pk=article.pk) == ("after", 2)
    assert Article.objects.cache().get(pk=article.pk).title == "after"


@pytest.mark.parametrize("update_fields", [None, ["title"], ["views", "rating"]])
def test_the_statement_is_the_one_django_builds(update_fields):
    article = ArticleFactory(
        views=3,
        rating=Decimal("4.25"),
        published=datetime(2024, 5, 1, 12, tzinfo=UTC),
        extra={"a": [1, 2]},
        plain=None,
    )
    article.plain_id = None
    values = [v for v in save_values(article, update_fields) if v[2] is not None]
    ours = saves.update_statement(Article, article.pk, values, connection)
    assert ours is not None
    expected_sql, expected_params = django_statement(article, values)
    assert ours[0] == expected_sql
    assert plain(ours[1]) == plain(expected_params)


def test_a_null_value_is_written_as_null():
    category = CategoryFactory(name="child", parent=CategoryFactory(name="parent"))
    Category.objects.cache().get(pk=category.pk)
    category.parent = None
    category.save()
    assert Category.objects.nocache().values_list("parent_id", flat=True).get(pk=category.pk) is None
    assert Category.objects.cache().get(pk=category.pk).parent_id is None


def test_update_fields_write_only_those_columns(compiled):
    article = ArticleFactory(title="kept", views=1)
    Article.objects.filter(pk=article.pk).update(title="changed elsewhere")
    compiled.clear()
    article.views = 5
    with CaptureQueriesContext(connection) as ctx:
        article.save(update_fields=["views"])
    assert compiled == []
    quote = connection.ops.quote_name
    assert ctx.captured_queries[0]["sql"].startswith(f"UPDATE {quote('testapp_article')} SET {quote('views')} = ")
    assert Article.objects.nocache().values_list("title", "views").get(pk=article.pk) == ("changed elsewhere", 5)
    assert Article.objects.cache().get(pk=article.pk).views == 5


def test_an_expression_goes_through_django(compiled):
    comment = CommentFactory(score=1)
    compiled.clear()
    comment.score = F("score") + 10
    comment.save()
    assert compiled == [Comment]
    comment.refresh_from_db()
    assert comment.score == 11
    assert Comment.objects.cache().get(pk=comment.pk).score == 11


def test_a_saved_row_that_was_deleted_is_inserted_again():
    author = AuthorFactory(name="gone")
    assert cached_author(author.pk).name == "gone"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name('testapp_author')} WHERE id = %s", [author.pk])
    author.name = "back"
    author.save()  # the UPDATE finds no row: Django inserts it
    assert cached_author(author.pk).name == "back"
    author.name = "forced"
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {connection.ops.quote_name('testapp_author')} WHERE id = %s", [author.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        author.save(force_update=True)


def test_multi_table_inheritance_updates_both_tables():
    restaurant = Restaurant.objects.create(name="Luigi's", serves_pizza=False)
    assert Restaurant.objects.cache().get(pk=restaurant.pk).name == "Luigi's"
    restaurant.name = "Mario's"
    restaurant.serves_pizza = True
    restaurant.save()
    assert Place.objects.nocache().get(pk=restaurant.pk).name == "Mario's"
    fresh = Restaurant.objects.cache().get(pk=restaurant.pk)
    assert (fresh.name, fresh.serves_pizza) == ("Mario's", True)


def test_select_on_save_goes_through_django(compiled, monkeypatch):
    author = AuthorFactory(name="a")
    monkeypatch.setattr(type(author)._meta, "select_on_save", True)
    compiled.clear()
    author.name = "b"
    with CaptureQueriesContext(connection) as ctx:
        author.save()
    assert len(compiled) == 1
    assert len(ctx.captured_queries) == 2  # Django checks the row exists first
    assert cached_author(author.pk).name == "b"


@pytest.mark.filterwarnings("ignore:Field.get_placeholder is deprecated")  # Django 6.x on the 5.2 name
@pytest.mark.parametrize("method", ["get_placeholder", "get_placeholder_sql"])
def test_a_field_with_a_placeholder_of_its_own_goes_through_django(method):
    # Django 5.2 asks get_placeholder, 6.x get_placeholder_sql: the statement is its own, not "%s".
    kind = type("Wrapped", (CharField,), {method: lambda self, value, compiler, connection: ("UPPER(%s)", [value])})
    field = kind(max_length=10)
    field.set_attributes_from_name("title")
    assert saves.update_statement(Article, 1, [(field, None, "x")], connection) is None


def test_a_value_prepared_as_an_expression_goes_through_django():
    kind = type("AsValue", (CharField,), {"get_db_prep_save": lambda self, value, connection: Value(value)})
    field = kind(max_length=10)
    field.set_attributes_from_name("title")
    assert saves.update_statement(Article, 1, [(field, None, 7)], connection) is None
    plain_field = CharField(max_length=10)
    plain_field.set_attributes_from_name("title")
    assert saves.update_statement(Article, 1, [(plain_field, None, "x")], connection) is not None
