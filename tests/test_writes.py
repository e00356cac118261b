"""Transactions: invalidation on commit, nothing on rollback, writers read their own writes."""

import pytest
from django.db import transaction

from django_cachekit import invalidate_tags
from tests.factories import ArticleFactory, AuthorFactory
from tests.testapp.models import Article, Author

pytestmark = pytest.mark.django_db(transaction=True)


def version_of(tag):
    from django_cachekit.core import protocol as core

    return core.versions([tag])[tag]


def test_invalidation_waits_for_commit(queries):
    article = ArticleFactory(title="before")
    with queries(1):
        assert Article.objects.cache().filter(title="after").count() == 0
    with transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="after")
        # Another reader (no pending writes of its own) still gets the committed state.
        from django_cachekit.invalidation import buffers as writes

        assert "m:testapp_article" in writes.pending("default")
    with queries(1):
        assert Article.objects.cache().filter(title="after").count() == 1


def test_one_bump_per_tag_per_transaction():
    article = ArticleFactory()
    before = version_of("m:testapp_article")
    with transaction.atomic():
        for i in range(5):
            Article.objects.filter(pk=article.pk).update(views=i)
        article.title = "x"
        article.save()
    assert version_of("m:testapp_article") == before + 2  # its mark before COMMIT, its bump after


def test_rollback_invalidates_nothing(queries):
    article = ArticleFactory(title="kept")
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "kept"
    before = version_of("m:testapp_article")
    with pytest.raises(RuntimeError), transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="lost")
        article.title = "lost"
        article.save()
        raise RuntimeError
    assert version_of("m:testapp_article") == before
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "kept"


def test_savepoint_rollback_invalidates_only_what_committed(queries):
    kept, lost = ArticleFactory(title="a"), ArticleFactory(title="b")
    for article in (kept, lost):
        with queries(0):
            Article.objects.cache().get(pk=article.pk)
    with transaction.atomic():
        Article.objects.filter(pk=kept.pk).update(title="a2")
        with pytest.raises(RuntimeError), transaction.atomic():
            Article.objects.filter(pk=lost.pk).update(title="b2")
            raise RuntimeError
    with queries(1):
        assert Article.objects.cache().get(pk=kept.pk).title == "a2"
    with queries(0):  # its savepoint rolled back: its entry was never invalidated
        assert Article.objects.cache().get(pk=lost.pk).title == "b"


def test_writer_reads_its_own_writes(queries):
    article, other = ArticleFactory(title="before"), ArticleFactory(title="other")
    with queries(1):
        list(Article.objects.cache().all())
    with transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="mine")
        with queries(1):
            assert Article.objects.cache().get(pk=article.pk).title == "mine"
        with queries(1):
            assert sorted(a.title for a in Article.objects.cache().all()) == ["mine", "other"]
        with queries(0):  # untouched rows are still served from the cache
            assert Article.objects.cache().get(pk=other.pk).title == "other"
        with queries(0):  # untouched tables too
            Author.objects.cache().get(pk=article.author_id)
    with queries(1):
        assert sorted(a.title for a in Article.objects.cache().all()) == ["mine", "other"]


def test_reads_in_transaction_store_nothing_they_wrote(queries):
    article = ArticleFactory(title="before")
    with transaction.atomic():
        article.title = "during"
        article.save()
        for _ in range(2):
            with queries(1):
                assert Article.objects.cache().filter(title="during").count() == 1
    with queries(1):
        assert Article.objects.cache().filter(title="during").count() == 1
    with queries(0):
        assert Article.objects.cache().filter(title="during").count() == 1


def test_invalidate_tags_inside_transaction_waits_for_commit():
    before = version_of("u:report")
    with transaction.atomic():
        invalidate_tags("report")
        assert version_of("u:report") == before
    assert version_of("u:report") == before + 2  # the mark before COMMIT, the bump after
    with pytest.raises(RuntimeError), transaction.atomic():
        invalidate_tags("report")
        raise RuntimeError
    assert version_of("u:report") == before + 2


def test_save_write_through_happens_after_commit(queries):
    article = ArticleFactory(title="before")
    with transaction.atomic():
        article.title = "after"
        article.save()
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "after"


def test_save_in_rolled_back_transaction_writes_nothing_through(queries):
    article = ArticleFactory(title="before")
    with pytest.raises(RuntimeError), transaction.atomic():
        article.title = "never"
        article.save()
        raise RuntimeError
    with queries(0):
        assert Article.objects.cache().get(pk=article.pk).title == "before"


def test_update_after_save_in_one_transaction_drops_write_through(queries):
    article = ArticleFactory(title="saved", views=1)
    with transaction.atomic():
        article.title = "saved2"
        article.save()
        Article.objects.filter(pk=article.pk).update(views=99)  # the instance no longer matches the row
    with queries(1):
        fresh = Article.objects.cache().get(pk=article.pk)
    assert (fresh.title, fresh.views) == ("saved2", 99)


def test_failed_save_outside_transaction_still_invalidates(queries):
    author = AuthorFactory(name="x")
    with queries(0):
        Author.objects.cache().get(pk=author.pk)

    def boom(sender, instance, **kwargs):
        raise RuntimeError("receiver failed after the row was written")

    from django.db.models.signals import post_save

    post_save.connect(boom, sender=Author)
    try:
        author.name = "written"
        with pytest.raises(RuntimeError):
            author.save()
    finally:
        post_save.disconnect(boom, sender=Author)
    with queries(1):
        assert Author.objects.cache().get(pk=author.pk).name == "written"
