"""Queries filtered on a foreign-key value are invalidated by writes to rows
holding that value (before or after the write), not by every write to the table.

Each test caches a few lists, writes, and checks that the lists the write can
change run their query again and return the new data, while the others stay
hits (zero SQL).
"""

import threading

import pytest
from django.db import connection, transaction

from tests.factories import ArticleFactory, AuthorFactory, CategoryFactory, CommentFactory, TagFactory
from tests.testapp.models import Article, Comment, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def comment_texts(article):
    return sorted(c.text for c in Comment.objects.cache().filter(article=article))


def titles(category):
    return sorted(a.title for a in Article.objects.cache().filter(category_id=category.pk))


def warm(queries, read, *args):
    with queries(1):
        first = read(*args)
    with queries(0):
        assert read(*args) == first
    return first


def test_a_new_child_refreshes_its_parents_list_only(queries):
    one, two = ArticleFactory(), ArticleFactory()
    CommentFactory(article=one, text="a")
    warm(queries, comment_texts, one)
    warm(queries, comment_texts, two)
    Comment.objects.create(article=two, text="b")
    with queries(0):
        assert comment_texts(one) == ["a"]
    with queries(1):
        assert comment_texts(two) == ["b"]


def test_the_same_value_written_any_way_names_the_same_rows(queries):
    one = ArticleFactory()
    warm(queries, lambda: sorted(c.text for c in Comment.objects.cache().filter(article_id=str(one.pk))))
    Comment(article_id=str(one.pk), text="string pk").save()
    with queries(1):
        assert sorted(c.text for c in Comment.objects.cache().filter(article_id=str(one.pk))) == ["string pk"]


def test_moving_a_row_refreshes_the_old_and_the_new_list(queries):
    first, second, third = CategoryFactory(), CategoryFactory(), CategoryFactory()
    ArticleFactory(category=first, title="stays")
    moving = ArticleFactory(category=first, title="moves")
    ArticleFactory(category=third, title="elsewhere")
    for category in (first, second, third):
        warm(queries, titles, category)
    article = Article.objects.cache().get(pk=moving.pk)  # loaded from the cache: its old values are known
    article.category = second
    article.save()
    with queries(1):
        assert titles(first) == ["stays"]
    with queries(1):
        assert titles(second) == ["moves"]
    with queries(0):
        assert titles(third) == ["elsewhere"]


def test_a_save_that_changes_no_foreign_key_leaves_other_values_lists_alone(queries):
    first, second = CategoryFactory(), CategoryFactory()
    ArticleFactory(category=first, title="one")
    other = ArticleFactory(category=second, title="two")
    warm(queries, titles, first)
    warm(queries, titles, second)
    article = Article.objects.cache().get(pk=other.pk)
    article.title = "two, edited"
    article.save()
    with queries(0):
        assert titles(first) == ["one"]
    with queries(1):
        assert titles(second) == ["two, edited"]


def test_a_save_whose_old_values_are_unknown_refreshes_every_list(queries):
    first, second = CategoryFactory(), CategoryFactory()
    ArticleFactory(category=first, title="one")
    other = ArticleFactory(category=second, title="two")
    warm(queries, titles, first)
    article = Article.objects.get(pk=other.pk)  # an uncached load: no versions to check its values against
    article.category = first
    article.save()
    with queries(1):
        assert titles(first) == ["one", "two"]


def test_a_write_between_load_and_save_falls_back_to_every_list(queries):
    """Another writer moved the row after this instance was loaded: its loaded
    values are not the row's old values, and the save must not trust them."""
    first, second = CategoryFactory(), CategoryFactory()
    row = ArticleFactory(category=first, title="contested")
    stale = Article.objects.cache().get(pk=row.pk)  # loaded in first
    other = Article.objects.cache().get(pk=row.pk)
    other.category = second
    other.save()
    warm(queries, titles, second)
    assert titles(second) == ["contested"]
    stale.views += 1
    stale.save()  # writes category=first back
    with queries(1):
        assert titles(second) == []
    with queries(1):
        assert titles(first) == ["contested"]


def test_a_concurrent_writer_in_another_thread_never_leaves_a_stale_list():
    first, second = CategoryFactory(), CategoryFactory()
    row = ArticleFactory(category=first, title="contested")
    stale = Article.objects.cache().get(pk=row.pk)

    def move():
        try:
            moved = Article.objects.cache().get(pk=row.pk)
            moved.category = second
            moved.save()
        finally:
            connection.close()

    thread = threading.Thread(target=move)
    thread.start()
    thread.join()
    assert titles(second) == ["contested"]
    stale.save()
    assert titles(second) == []
    assert titles(first) == ["contested"]


def test_queryset_update_refreshes_every_list(queries):
    first, second = CategoryFactory(), CategoryFactory()
    ArticleFactory(category=first, title="one")
    warm(queries, titles, second)
    Article.objects.filter(category=first).update(category=second)
    with queries(1):
        assert titles(second) == ["one"]


def test_delete_refreshes_the_list(queries):
    category = CategoryFactory()
    doomed = ArticleFactory(category=category, title="doomed")
    ArticleFactory(category=category, title="kept")
    warm(queries, titles, category)
    Article.objects.cache().get(pk=doomed.pk).delete()
    with queries(1):
        assert titles(category) == ["kept"]


def test_bulk_create_refreshes_the_lists_of_its_rows(queries):
    one, two = ArticleFactory(), ArticleFactory()
    warm(queries, comment_texts, one)
    Comment.objects.bulk_create([Comment(article=one, text="x"), Comment(article=two, text="y")])
    with queries(1):
        assert comment_texts(one) == ["x"]
    with queries(1):
        assert comment_texts(two) == ["y"]


def test_m2m_add_refreshes_only_the_lists_of_the_rows_it_links(queries):
    one, two = ArticleFactory(), ArticleFactory()
    red, blue = TagFactory(name="red"), TagFactory(name="blue")
    one.tags.add(red)

    def names(article):
        return sorted(t.name for t in Tag.objects.cache().filter(articles=article.pk))

    warm(queries, names, one)
    warm(queries, names, two)
    two.tags.add(blue)
    with queries(0):
        assert names(one) == ["red"]
    with queries(1):
        assert names(two) == ["blue"]
    one.tags.remove(red)
    with queries(1):
        assert names(one) == []


def test_a_rolled_back_save_then_a_save_is_fresh(queries):
    first, second = CategoryFactory(), CategoryFactory()
    row = ArticleFactory(category=first, title="row")
    article = Article.objects.cache().get(pk=row.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        article.category = second
        article.save()
        raise RuntimeError("roll back")
    warm(queries, titles, first)
    warm(queries, titles, second)
    article.category = second
    article.save()
    with queries(1):
        assert titles(first) == []
    with queries(1):
        assert titles(second) == ["row"]


def test_a_transaction_reads_its_own_keyed_writes(queries):
    one, two = ArticleFactory(), ArticleFactory()
    warm(queries, comment_texts, one)
    warm(queries, comment_texts, two)
    with transaction.atomic():
        Comment.objects.create(article=one, text="mine")
        with queries(1):
            assert comment_texts(one) == ["mine"]
        with queries(0):
            assert comment_texts(two) == []
    with queries(1):
        assert comment_texts(one) == ["mine"]


def test_a_filter_on_a_table_read_twice_is_tagged_by_the_table(queries):
    """A self-join reads other rows of the table than the filtered ones: any
    write to the table may change the result."""
    author = AuthorFactory()
    first, second = CategoryFactory(), CategoryFactory()
    ArticleFactory(author=author, category=first, title="quiet", views=0)
    loud = ArticleFactory(author=author, category=second, title="loud", views=0)

    def read():
        qs = Article.objects.cache().filter(category=first, author__articles__views__gt=5).distinct()
        return sorted(a.title for a in qs)

    warm(queries, read)
    assert read() == []
    article = Article.objects.cache().get(pk=loud.pk)
    article.views = 10
    article.save()
    with queries(1):
        assert read() == ["quiet"]


def test_a_second_update_of_the_row_during_its_save_is_not_trusted(queries):
    """A pre_save handler that updates the row itself: only one UPDATE of the
    save is covered by the instance's loaded values; the other bumps the keyed
    tag, so a list read in between is not left holding the row."""
    from django.db.models.signals import pre_save

    first, second = CategoryFactory(), CategoryFactory()
    row = ArticleFactory(category=first, title="bounced")
    article = Article.objects.cache().get(pk=row.pk)

    def detour(sender, instance, **kwargs):
        if instance.pk == row.pk:
            Article.objects.filter(pk=row.pk).update(category=second)
            assert titles(second) == ["bounced"]  # read and stored while the row is in second

    pre_save.connect(detour, sender=Article)
    try:
        article.views += 1
        article.save()  # writes category=first back
    finally:
        pre_save.disconnect(detour, sender=Article)
    assert titles(second) == []
    assert titles(first) == ["bounced"]


def test_a_save_that_fails_after_its_update_refreshes_every_list(queries):
    """A post_save handler raises after the row was updated: the save never
    reports the old and new values, so every list keyed on the table goes."""
    from django.db.models.signals import post_save

    first, second = CategoryFactory(), CategoryFactory()
    row = ArticleFactory(category=first, title="moved")
    article = Article.objects.cache().get(pk=row.pk)
    warm(queries, titles, first)
    warm(queries, titles, second)

    def fail(sender, instance, **kwargs):
        raise RuntimeError("after the update")

    post_save.connect(fail, sender=Article)
    try:
        article.category = second
        with pytest.raises(RuntimeError):
            article.save()  # autocommit: the UPDATE is committed
    finally:
        post_save.disconnect(fail, sender=Article)
    with queries(1):
        assert titles(first) == []
    with queries(1):
        assert titles(second) == ["moved"]
