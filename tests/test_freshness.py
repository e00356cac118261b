"""After every kind of write, the next cached read returns the new data.

Each test reads twice (the first read runs its queries, the repeat runs none),
writes, and reads again.
"""

import pytest
from django.db import connection, models

from django_cachekit import cached, invalidate_model
from django_cachekit.models import cache_versions
from tests.factories import ArticleFactory, AuthorFactory, CategoryFactory, CommentFactory, GroupFactory, TagFactory
from tests.testapp.models import Article, Author, Category, Comment, Membership, Place, Plain, Reply, Restaurant, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def cached_twice(queries, read, n=1):
    with queries(n):
        first = read()
    with queries(0):
        again = read()
    assert again == first
    return first


def titles(qs):
    return sorted(a.title for a in qs)


def test_save_updates_object_and_queries(queries):
    article = ArticleFactory(title="old")
    assert cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).title, n=0) == "old"
    assert cached_twice(queries, lambda: titles(Article.objects.cache().all())) == ["old"]
    article.title = "new"
    article.save()
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "new"
    with queries(1):
        assert titles(Article.objects.cache().all()) == ["new"]


def test_create_is_seen_by_count_list_and_missing_get(queries):
    author = AuthorFactory()
    ArticleFactory(author=author)
    assert cached_twice(queries, lambda: Article.objects.cache().count()) == 1
    missing_pk = Article.objects.latest("pk").pk + 1
    with queries(1), pytest.raises(Article.DoesNotExist):
        Article.objects.cache().get(pk=missing_pk)
    with queries(0), pytest.raises(Article.DoesNotExist):
        Article.objects.cache().get(pk=missing_pk)
    created = ArticleFactory(author=author, title="fresh")
    with queries(1):
        assert Article.objects.cache().count() == 2
    # A read of that pk ran before the insert, so the insert cannot prove its
    # entry is the newest: the next get is one miss, never a stale "missing".
    assert (
        cached_twice(queries, lambda: Article.objects.cache().get(pk=created.pk).title, n=int(created.pk == missing_pk))
        == "fresh"
    )


def test_negative_entry_is_invalidated_by_insert_with_that_pk(queries):
    author = AuthorFactory()
    with queries(1), pytest.raises(Article.DoesNotExist):
        Article.objects.cache().get(pk=9000)
    Article.objects.bulk_create([Article(pk=9000, title="late", author=author)])
    with queries(1):
        assert Article.objects.cache().get(pk=9000).title == "late"


def test_delete_instance(queries):
    article = ArticleFactory()
    cached_twice(queries, lambda: Article.objects.cache().count())
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).pk, n=0)
    pk = article.pk
    article.delete()
    with queries(1):
        assert Article.objects.cache().count() == 0
    with queries(1), pytest.raises(Article.DoesNotExist):
        Article.objects.cache().get(pk=pk)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_m2m_auto_through_add_remove_set_clear(queries, direction):
    article = ArticleFactory()
    tag = TagFactory(name="python")
    other = TagFactory(name="django")

    def by_tag():
        return titles(Article.objects.cache().filter(tags__name="python"))

    def tags_of():
        return sorted(t.name for t in Tag.objects.cache().filter(articles=article))

    def prefetched():
        return [sorted(t.name for t in a.tags.all()) for a in Article.objects.cache().prefetch_related("tags")]

    def add(*tags):
        if direction == "forward":
            article.tags.add(*tags)
        else:
            for t in tags:
                t.articles.add(article)

    assert cached_twice(queries, by_tag) == []
    assert cached_twice(queries, tags_of) == []
    assert cached_twice(queries, prefetched, n=2) == [[]]
    add(tag)
    with queries(1):
        assert by_tag() == [article.title]
    with queries(1):
        assert tags_of() == ["python"]
    with queries(1):  # the articles did not change, only the prefetched tags
        assert prefetched() == [["python"]]
    if direction == "forward":
        article.tags.remove(tag)
    else:
        tag.articles.remove(article)
    with queries(1):
        assert by_tag() == []
    if direction == "forward":
        article.tags.set([tag, other])
    else:
        tag.articles.set([article])
        other.articles.set([article])
    with queries(1):
        assert tags_of() == ["django", "python"]
    if direction == "forward":
        article.tags.clear()
    else:
        tag.articles.clear()
    with queries(1):
        assert tags_of() == ([] if direction == "forward" else ["django"])


def test_m2m_explicit_through(queries):
    group = GroupFactory()
    alice = AuthorFactory(name="alice")
    bob = AuthorFactory(name="bob")

    def members():
        return sorted(a.name for a in Author.objects.cache().filter(groups=group))

    def roles():
        return sorted(Membership.objects.cache().filter(group=group).values_list("role", flat=True))

    assert cached_twice(queries, members) == []
    group.members.add(alice, through_defaults={"role": "owner"})
    with queries(1):
        assert members() == ["alice"]
    bob.groups.add(group)
    with queries(1):
        assert members() == ["alice", "bob"]
    assert cached_twice(queries, roles) == ["member", "owner"]
    Membership.objects.filter(author=bob).update(role="admin")
    with queries(1):
        assert roles() == ["admin", "owner"]
    Membership.objects.create(group=group, author=AuthorFactory(name="carol"))
    with queries(1):
        assert members() == ["alice", "bob", "carol"]
    group.members.remove(alice)
    with queries(1):
        assert members() == ["bob", "carol"]
    group.members.set([alice])
    with queries(1):
        assert members() == ["alice"]
    group.members.clear()
    with queries(1):
        assert members() == []


def test_queryset_update(queries):
    a, b = ArticleFactory(views=1), ArticleFactory(views=1)
    cached_twice(queries, lambda: Article.objects.cache().get(pk=a.pk).views, n=0)
    cached_twice(queries, lambda: Article.objects.cache().get(pk=b.pk).views, n=0)
    cached_twice(queries, lambda: list(Article.objects.cache().filter(views=5)))
    Article.objects.filter(pk=a.pk).update(views=5)
    with queries(1):
        assert Article.objects.cache().get(pk=a.pk).views == 5
    with queries(0):  # a pk-precise UPDATE leaves other rows' entries alone
        assert Article.objects.cache().get(pk=b.pk).views == 1
    with queries(1):
        assert [x.pk for x in Article.objects.cache().filter(views=5)] == [a.pk]
    Article.objects.filter(views=1).update(views=7)
    with queries(1):
        assert Article.objects.cache().get(pk=b.pk).views == 7


def test_bulk_create_and_bulk_update(queries):
    author = AuthorFactory()
    cached_twice(queries, lambda: Article.objects.cache().filter(author=author).count())
    created = Article.objects.bulk_create([Article(title=f"b{i}", author=author) for i in range(3)])
    with queries(1):
        assert Article.objects.cache().filter(author=author).count() == 3
    rows = list(Article.objects.filter(author=author))
    for row in rows:
        cached_twice(queries, lambda row=row: Article.objects.cache().get(pk=row.pk).title)
    for row in rows:
        row.title = row.title.upper()
    Article.objects.bulk_update(rows, ["title"])
    for row in rows:
        with queries(1):
            assert Article.objects.cache().get(pk=row.pk).title == row.title
    assert len(created) == 3


def test_queryset_delete(queries):
    author = AuthorFactory()
    ArticleFactory.create_batch(3, author=author)
    keep = ArticleFactory(author=author, title="keep")
    cached_twice(queries, lambda: Article.objects.cache().filter(author=author).count())
    cached_twice(queries, lambda: Article.objects.cache().get(pk=keep.pk).title, n=0)
    Article.objects.exclude(pk=keep.pk).delete()
    with queries(1):
        assert Article.objects.cache().filter(author=author).count() == 1


def test_cascade(queries):
    article = ArticleFactory()
    comment = CommentFactory(article=article)
    cached_twice(queries, lambda: Comment.objects.cache().count())
    cached_twice(queries, lambda: Comment.objects.cache().get(pk=comment.pk).pk, n=0)
    article.author.delete()
    with queries(1):
        assert Comment.objects.cache().count() == 0
    with queries(1), pytest.raises(Comment.DoesNotExist):
        Comment.objects.cache().get(pk=comment.pk)


def test_set_null(queries):
    category = CategoryFactory()
    article = ArticleFactory(category=category)
    child = CategoryFactory(parent=category)
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).category_id, n=0)
    cached_twice(queries, lambda: Category.objects.cache().get(pk=child.pk).parent_id, n=0)
    cached_twice(queries, lambda: Article.objects.cache().filter(category__isnull=True).count())
    category.delete()
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).category_id is None
    with queries(1):
        assert Category.objects.cache().get(pk=child.pk).parent_id is None
    with queries(1):
        assert Article.objects.cache().filter(category__isnull=True).count() == 1


def test_set_default_on_uncached_model(queries):
    plain = Plain.objects.create(label="p")
    article = ArticleFactory(plain=plain)
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).plain_id, n=0)
    plain.delete()
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).plain_id is None


def test_join_to_uncached_model_is_invalidated(queries):
    plain = Plain.objects.create(label="x")
    ArticleFactory(plain=plain)
    assert cached_twice(queries, lambda: Article.objects.cache().filter(plain__label="y").count()) == 0
    Plain.objects.filter(pk=plain.pk).update(label="y")
    with queries(1):
        assert Article.objects.cache().filter(plain__label="y").count() == 1
    plain.label = "z"
    plain.save()
    with queries(1):
        assert Article.objects.cache().filter(plain__label="y").count() == 0


def test_change_to_joined_cached_model(queries):
    author = AuthorFactory(name="before")
    ArticleFactory(author=author)
    assert cached_twice(queries, lambda: Article.objects.cache().filter(author__name="after").count()) == 0
    assert cached_twice(queries, lambda: [a.author.name for a in Article.objects.cache().select_related("author")]) == [
        "before"
    ]
    author.name = "after"
    author.save()
    with queries(1):
        assert Article.objects.cache().filter(author__name="after").count() == 1
    with queries(1):
        assert [a.author.name for a in Article.objects.cache().select_related("author")] == ["after"]


def test_raw_sql_through_django_cursor(queries):
    article = ArticleFactory(title="before")
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).title, n=0)
    cached_twice(queries, lambda: Article.objects.cache().filter(title="after").count())
    table = Article._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET title = %s WHERE id = %s", ["after", article.pk])
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "after"
    with queries(1):
        assert Article.objects.cache().filter(title="after").count() == 1


def test_write_outside_django_needs_invalidate_model(queries, django_db_blocker):
    article = ArticleFactory(title="before")
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).title, n=0)
    cached_twice(queries, lambda: Article.objects.cache().filter(title="after").count())
    # A second, independent connection: another program writing to the database.
    outside = connection.copy()
    try:
        with outside.cursor() as cursor:
            outside.execute_wrappers.clear()
            cursor.cursor.execute(f"UPDATE {Article._meta.db_table} SET title = 'after' WHERE id = {int(article.pk)}")
        if not outside.get_autocommit():
            outside.commit()
    finally:
        outside.close()
    with queries(0):  # nothing told the cache
        assert Article.objects.cache().get(pk=article.pk).title == "before"
    invalidate_model(Article)
    with queries(1):
        assert Article.objects.cache().get(pk=article.pk).title == "after"
    with queries(1):
        assert Article.objects.cache().filter(title="after").count() == 1


def test_multi_table_inheritance(queries):
    restaurant = Restaurant.objects.create(name="Chez", serves_pizza=False)
    cached_twice(queries, lambda: Restaurant.objects.cache().get(pk=restaurant.pk).name, n=0)
    cached_twice(queries, lambda: sorted(Place.objects.cache().values_list("name", flat=True)))
    place = Place.objects.get(pk=restaurant.pk)
    place.name = "Chez Nous"
    place.save()
    with queries(1):
        assert Restaurant.objects.cache().get(pk=restaurant.pk).name == "Chez Nous"
    Restaurant.objects.filter(pk=restaurant.pk).update(serves_pizza=True)
    with queries(1):
        assert Restaurant.objects.cache().get(pk=restaurant.pk).serves_pizza is True
    restaurant.refresh_from_db()
    restaurant.name = "Renamed"
    restaurant.save()
    with queries(1):
        assert sorted(Place.objects.cache().values_list("name", flat=True)) == ["Renamed"]


def test_declared_tags_follow_old_and_new_values(queries):
    first, second = AuthorFactory(), AuthorFactory()
    article = ArticleFactory(author=first)
    calls = []

    @cached(tags=lambda author_id: [f"author:{author_id}"])
    def titles_of(author_id):
        calls.append(author_id)
        return sorted(Article.objects.filter(author_id=author_id).values_list("title", flat=True))

    assert titles_of(first.pk) == [article.title]
    assert titles_of(second.pk) == []
    assert titles_of(first.pk) == [article.title] and calls == [first.pk, second.pk]
    article.author = second
    article.save()  # bumps author:<first> (old value) and author:<second> (new value)
    assert titles_of(first.pk) == []
    assert titles_of(second.pk) == [article.title]
    assert calls == [first.pk, second.pk, first.pk, second.pk]
    Article.objects.filter(pk=article.pk).update(author=first)
    assert titles_of(first.pk) == [article.title]
    assert titles_of(second.pk) == []
    article.refresh_from_db()
    article.author = second
    Article.objects.bulk_update([article], ["author"])
    assert titles_of(second.pk) == [article.title]
    assert titles_of(first.pk) == []
    Article.objects.bulk_create([Article(title="bulk", author=first)])
    assert "bulk" in titles_of(first.pk)
    article.delete()
    assert titles_of(second.pk) == []


def test_declared_tags_of_instance_built_by_hand(queries):
    first, second = AuthorFactory(), AuthorFactory()
    article = ArticleFactory(author=first)

    @cached(tags=lambda author_id: [f"author:{author_id}"])
    def count_for(author_id):
        return Article.objects.filter(author_id=author_id).count()

    assert count_for(first.pk) == 1
    # Not loaded from the database: the old author is read before saving.
    Article(pk=article.pk, title=article.title, author=second).save()
    assert count_for(first.pk) == 0


def test_touch_changes_parent_version_but_not_its_entry(queries):
    article, other = ArticleFactory(), ArticleFactory()
    cached_twice(queries, lambda: Article.objects.cache().get(pk=article.pk).title, n=0)
    version, other_version = cache_versions([article, other])
    comment = CommentFactory(article=article)
    assert article.cache_version != version
    assert other.cache_version == other_version
    with queries(0):  # the article row did not change: its entry stays valid
        Article.objects.cache().get(pk=article.pk)
    version = article.cache_version
    comment.text = "edited"
    comment.save()
    assert article.cache_version != version
    version = article.cache_version
    comment.delete()
    assert article.cache_version != version
    assert other.cache_version == other_version


def test_touch_chain_is_read_once_when_the_parent_did_not_change(queries):
    comment = CommentFactory()
    reply = Reply.objects.create(comment=comment, text="first")
    article_version, comment_version = cache_versions([comment.article, comment])
    reply = Reply.objects.cache().get(pk=reply.pk)
    reply.text = "edited"
    # The UPDATE, then the comment's article read once: old and new parent are the same row.
    with queries(2):
        reply.save()
    new_article, new_comment = cache_versions([comment.article, comment])
    assert new_article != article_version and new_comment != comment_version


def test_cache_version_changes_with_row_and_m2m(queries):
    article = ArticleFactory()
    version = article.cache_version
    assert article.cache_version == version
    article.title = "changed"
    article.save()
    assert article.cache_version != version
    version = article.cache_version
    article.tags.add(TagFactory())
    assert article.cache_version != version


def test_unrelated_models_stay_cached(queries):
    article = ArticleFactory()
    tag = TagFactory()
    cached_twice(queries, lambda: Tag.objects.cache().get(pk=tag.pk).name, n=0)
    cached_twice(queries, lambda: list(Tag.objects.cache().values_list("name", flat=True)))
    article.title = "changed"
    article.save()
    with queries(0):
        Tag.objects.cache().get(pk=tag.pk)
    with queries(0):
        list(Tag.objects.cache().values_list("name", flat=True))


def test_uncached_model_is_untouched():
    assert not hasattr(Plain.objects, "cache")
    assert isinstance(Plain._meta.get_field("label"), models.CharField)


def test_set_null_on_a_watched_foreign_key(queries):
    from tests.testapp.models import Plain as Target
    from tests.testapp.models import Tagged

    target = Target.objects.create(label="t")
    Tagged.objects.create(plain=target)

    @cached(tags=lambda pid: [f"plain:{pid}"])
    def count_for(pid):
        return Tagged.objects.filter(plain_id=pid).count()

    assert count_for(target.pk) == 1
    assert count_for(None) == 0
    pk = target.pk
    target.delete()
    assert count_for(pk) == 0
    assert count_for(None) == 1


def test_link_rows_deleted_by_cascade_change_cache_version():
    article = ArticleFactory()
    first, second = TagFactory(), TagFactory()
    article.tags.add(first, second)
    version = article.cache_version
    first.delete()  # the link row goes by cascade, without m2m_changed
    assert article.cache_version != version
    version = article.cache_version
    Article.tags.through.objects.filter(tag=second).delete()
    assert article.cache_version != version


def test_explicit_through_row_created_directly_changes_both_versions():
    group = GroupFactory()
    author = AuthorFactory()
    versions = group.cache_version, author.cache_version
    Membership.objects.create(group=group, author=author)
    assert group.cache_version != versions[0] and author.cache_version != versions[1]
