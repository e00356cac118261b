"""A save reports, and writes through, the row its statement wrote: a ``post_save``
receiver that changes the instance afterwards (without saving it) changes nothing
the cache holds."""

import pytest
from django.db.models.signals import post_save

from django_cachekit import cached
from tests.factories import ArticleFactory, AuthorFactory, CategoryFactory
from tests.testapp.models import Article

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    """Connect ``post_save`` receivers of Article for the test."""
    connected = []

    def connect(func):
        post_save.connect(func, sender=Article, weak=False)
        connected.append(func)

    yield connect
    for func in connected:
        post_save.disconnect(func, sender=Article)


@pytest.fixture
def titles_of():
    """A ``@cached`` function tagged by the ``author:<id>`` tag Article declares."""

    @cached(tags=lambda author_id: [f"author:{author_id}"])
    def titles_of(author_id):
        return sorted(Article.objects.filter(author_id=author_id).values_list("title", flat=True))

    return titles_of


def titles(category):
    return sorted(a.title for a in Article.objects.cache().filter(category_id=category.pk))


def test_the_entry_written_through_is_the_row_as_saved(queries, receiver):
    article = ArticleFactory(title="before")

    def retitle(sender, instance, **kwargs):
        instance.title = "never saved"  # the instance changes, not the row

    receiver(retitle)
    article.title = "saved"
    article.save()
    assert Article.objects.get(pk=article.pk).title == "saved"
    with queries(0):  # the save's own entry
        assert Article.objects.cache().get(pk=article.pk).title == "saved"


def test_the_values_a_save_reports_are_the_ones_it_wrote(queries, receiver):
    first, second, third = CategoryFactory(), CategoryFactory(), CategoryFactory()
    moving = ArticleFactory(category=first, title="moves")
    for category in (first, second, third):
        with queries(1):
            titles(category)
    article = Article.objects.cache().get(pk=moving.pk)  # its old values are known

    def elsewhere(sender, instance, **kwargs):
        instance.category = third  # not saved: the row's category is second

    receiver(elsewhere)
    article.category = second
    article.save()
    with queries(1):
        assert titles(first) == []
    with queries(1):
        assert titles(second) == ["moves"]
    # The next save knows the row's old value as written, so moving it back refreshes second.
    article.category = first
    article.save()
    with queries(1):
        assert titles(second) == []


def test_a_save_of_some_fields_remembers_the_row_not_the_unsaved_values(titles_of):
    first, second, third = AuthorFactory(), AuthorFactory(), AuthorFactory()
    article = ArticleFactory(author=first)

    assert titles_of(first.pk) == [article.title]
    article.author = second  # in memory only: the save below does not write it
    article.views += 1
    article.save(update_fields=["views"])
    assert Article.objects.get(pk=article.pk).author_id == first.pk
    assert titles_of(first.pk) == [article.title]
    article.author = third
    article.save()  # the row moves from first to third
    assert titles_of(first.pk) == []
    assert titles_of(third.pk) == [article.title]


def test_a_post_save_receiver_that_saves_the_instance_again_is_written_through(queries, receiver, titles_of):
    first, second, third = AuthorFactory(), AuthorFactory(), AuthorFactory()
    article = ArticleFactory(title="draft", author=first)

    assert titles_of(third.pk) == []

    def publish(sender, instance, **kwargs):
        if instance.title == "saved":  # the common pattern: finish the row in a second save
            instance.title = "published"
            instance.author = third
            instance.save()

    receiver(publish)
    article.title = "saved"
    article.author = second
    article.save()
    assert Article.objects.values_list("title", "author_id").get(pk=article.pk) == ("published", third.pk)
    with queries(0):
        cached_row = Article.objects.cache().get(pk=article.pk)
    assert (cached_row.title, cached_row.author_id) == ("published", third.pk)
    assert titles_of(third.pk) == ["published"]
    # The instance remembers the row as the last save wrote it.
    article.author = first
    article.save()
    assert titles_of(third.pk) == []


def test_a_post_save_receiver_that_updates_the_row_leaves_no_older_entry(queries, receiver):
    from django.db.models import F

    article = ArticleFactory(title="before", views=1)

    def count(sender, instance, **kwargs):
        Article.objects.filter(pk=instance.pk).update(views=F("views") + 100)  # the row moves on

    receiver(count)
    article.title = "saved"
    article.save()
    assert Article.objects.values_list("title", "views").get(pk=article.pk) == ("saved", 101)
    cached_row = Article.objects.cache().get(pk=article.pk)
    assert (cached_row.title, cached_row.views) == ("saved", 101)


def test_a_post_save_receiver_that_saves_another_instance_of_the_row_leaves_no_older_entry(queries, receiver):
    article = ArticleFactory(title="before", views=1)

    def count(sender, instance, **kwargs):
        if instance.title == "saved":
            other = Article.objects.get(pk=instance.pk)
            other.views = 50
            other.title = "saved by the receiver"
            other.save()

    receiver(count)
    article.title = "saved"
    article.save()
    assert Article.objects.values_list("title", "views").get(pk=article.pk) == ("saved by the receiver", 50)
    cached_row = Article.objects.cache().get(pk=article.pk)
    assert (cached_row.title, cached_row.views) == ("saved by the receiver", 50)


def test_a_new_row_finished_by_a_second_save_in_post_save_is_written_through(queries, receiver):
    def slug(sender, instance, created, **kwargs):
        if created:  # the common pattern: a value that needs the new primary key
            instance.title = f"article-{instance.pk}"
            instance.save()

    receiver(slug)
    article = Article.objects.create(title="", author=AuthorFactory())
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == f"article-{article.pk}"


def test_a_receiver_saving_some_fields_again_writes_nothing_through(queries, receiver):
    article = ArticleFactory(title="before", views=1)

    def bump_views(sender, instance, **kwargs):
        if instance.views == 1:
            instance.views = 2
            instance.title = "in memory only"
            instance.save(update_fields=["views"])

    receiver(bump_views)
    article.title = "saved"
    article.save()
    assert Article.objects.values_list("title", "views").get(pk=article.pk) == ("saved", 2)
    cached_row = Article.objects.cache().get(pk=article.pk)
    assert (cached_row.title, cached_row.views) == ("saved", 2)


def test_a_save_after_refresh_from_db_bumps_the_value_the_refresh_loaded(titles_of):
    first, second, third = AuthorFactory(), AuthorFactory(), AuthorFactory()
    article = ArticleFactory(author=first)

    Article.objects.filter(pk=article.pk).update(author=second)  # another writer moves the row
    article.refresh_from_db()
    assert titles_of(second.pk) == [article.title]
    article.author = third
    article.save()
    assert titles_of(second.pk) == []
    assert titles_of(third.pk) == [article.title]
