"""The commit protocol: a write's tags are marked before it commits and bumped
right after, before any ``on_commit`` hook of the application runs.

Another process reading in the round trip between COMMIT and the bump is
neither served the old entry nor stores what it read; a hook that hands work
to the next process (``on_commit(lambda: task.delay(pk))``) reads the new row;
a writer that dies between its mark and its bump leaves the tags unusable for
``WRITE_MARK_TIMEOUT`` at most.
"""

import time

import pytest
from django.db import connection, transaction
from django.db.models.signals import pre_save
from django.test import override_settings

from django_cachekit.core import keys
from django_cachekit.core import protocol as core
from django_cachekit.schema import meta
from tests.conftest import CACHE, DB, REDIS_CACHES
from tests.factories import ArticleFactory
from tests.test_race import finish, in_thread
from tests.testapp.models import Article
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)
needs_threads = pytest.mark.skipif(DB != "postgres", reason="a second connection reading during a commit")


def _cached_title(pk):
    return Article.objects.cache().get(pk=pk).title


def _primed(title="old"):
    article = ArticleFactory(title=title)
    assert _cached_title(article.pk) == title
    assert _cached_title(article.pk) == title  # now a hit
    return article


@pytest.fixture
def in_the_gap(monkeypatch):
    """Run ``read`` in another thread (and connection) at the first bump with
    tags: the moment COMMIT has returned but the bump is not yet sent."""
    seen = []
    original = core.bump

    def start(read):
        def bump(tags, *args, **kwargs):
            if tags and not seen:
                thread, errors = in_thread(lambda: seen.append(read()))
                finish(thread, errors)
            return original(tags, *args, **kwargs)

        monkeypatch.setattr(core, "bump", bump)
        return seen

    return start


@needs_threads
@pytest.mark.parametrize("atomic", [False, True], ids=["autocommit", "atomic"])
def test_a_read_between_commit_and_bump_gets_the_new_row(in_the_gap, queries, atomic):
    article = _primed()
    seen = in_the_gap(lambda: _cached_title(article.pk))
    article.title = "new"
    if atomic:
        with transaction.atomic():
            article.save()
    else:
        article.save()
    assert seen == ["new"]
    with queries(0):  # the save's write-through is stored: what the reader read was not
        assert _cached_title(article.pk) == "new"


@needs_threads
def test_a_list_read_between_commit_and_bump_is_neither_served_nor_stored(in_the_gap, queries):
    article = _primed()

    def titles():
        return list(Article.objects.cache().filter(pk=article.pk).values_list("title", flat=True))

    assert titles() == ["old"]
    seen = in_the_gap(titles)
    with transaction.atomic():
        Article.objects.filter(pk=article.pk).update(title="new")
    assert seen == [["new"]]
    with queries(1):
        assert titles() == ["new"]
    with queries(0):
        assert titles() == ["new"]


@needs_threads
def test_a_raw_statement_that_commits_as_it_runs_is_marked_before_it_runs(in_the_gap):
    article = _primed()
    seen = in_the_gap(lambda: _cached_title(article.pk))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Article._meta.db_table} SET title = %s WHERE id = %s", ["new", article.pk])
    assert seen == ["new"]
    assert _cached_title(article.pk) == "new"


def _hook_reads(article, seen):
    transaction.on_commit(lambda: seen.append(_cached_title(article.pk)))


def _titles_by_author():
    """A ``@cached`` function tagged by the ``author:<id>`` tag Article declares."""
    from django_cachekit import cached

    @cached(tags=lambda author_id: [f"author:{author_id}"])
    def titles_of(author_id):
        return sorted(Article.objects.filter(author_id=author_id).values_list("title", flat=True))

    return titles_of


@needs_threads
def test_a_declared_tag_a_pre_save_receiver_changes_is_marked_before_the_update(in_the_gap):
    from tests.factories import AuthorFactory

    article = _primed()
    second = AuthorFactory()
    titles_of = _titles_by_author()
    assert titles_of(second.pk) == []  # cached: nothing of second's yet

    def receiver(sender, instance, **kwargs):
        instance.author = second  # decided after the save began

    seen = in_the_gap(lambda: titles_of(second.pk))
    pre_save.connect(receiver, sender=Article, dispatch_uid="test_commit.reassign")
    try:
        article.save()
    finally:
        pre_save.disconnect(dispatch_uid="test_commit.reassign", sender=Article)
    assert seen == [["old"]]
    assert titles_of(second.pk) == ["old"]


@needs_threads
def test_a_foreign_key_a_pre_save_receiver_changes_is_marked_before_the_update(in_the_gap):
    from tests.factories import CategoryFactory

    first, second = CategoryFactory(), CategoryFactory()
    created = ArticleFactory(title="moves", category=first)

    def titles(category):
        return [a.title for a in Article.objects.cache().filter(category_id=category.pk)]

    assert titles(second) == [] and titles(second) == []  # a hit now
    article = Article.objects.cache().get(pk=created.pk)  # its old values are known

    def receiver(sender, instance, **kwargs):
        instance.category = second

    seen = in_the_gap(lambda: titles(second))
    pre_save.connect(receiver, sender=Article, dispatch_uid="test_commit.move")
    try:
        article.save()
    finally:
        pre_save.disconnect(dispatch_uid="test_commit.move", sender=Article)
    assert seen == [["moves"]]
    assert titles(second) == ["moves"]


@needs_threads
def test_the_declared_tags_of_a_new_row_are_marked_before_its_insert(in_the_gap):
    from tests.factories import AuthorFactory

    author = AuthorFactory()
    titles_of = _titles_by_author()
    assert titles_of(author.pk) == []
    seen = in_the_gap(lambda: titles_of(author.pk))
    Article.objects.create(title="new", author=author)
    assert seen == [["new"]]
    assert titles_of(author.pk) == ["new"]


@needs_threads
def test_the_declared_tags_of_bulk_created_rows_are_marked_before_their_commit(in_the_gap):
    from tests.factories import AuthorFactory

    author = AuthorFactory()
    titles_of = _titles_by_author()
    assert titles_of(author.pk) == []
    seen = in_the_gap(lambda: titles_of(author.pk))
    Article.objects.bulk_create([Article(title="bulk", author=author)])
    assert seen == [["bulk"]]
    assert titles_of(author.pk) == ["bulk"]


def test_a_hook_registered_before_the_first_write_reads_the_new_row():
    article = _primed()
    seen = []
    with transaction.atomic():
        _hook_reads(article, seen)
        article.title = "new"
        article.save()
    assert seen == ["new"]


def test_a_hook_registered_in_a_pre_save_receiver_reads_the_new_row():
    article = _primed()
    seen = []

    def receiver(sender, instance, **kwargs):
        _hook_reads(instance, seen)

    pre_save.connect(receiver, sender=Article, dispatch_uid="test_commit.hook")
    try:
        with transaction.atomic():
            article.title = "new"
            article.save()
    finally:
        pre_save.disconnect(dispatch_uid="test_commit.hook", sender=Article)
    assert seen == ["new"]


def test_a_hook_of_an_inner_block_after_the_outer_block_wrote_reads_the_new_row():
    article = _primed()
    other = ArticleFactory(title="other")
    seen = []
    with transaction.atomic():
        other.title = "other, changed"
        other.save()
        with transaction.atomic():
            _hook_reads(article, seen)
            article.title = "new"
            article.save()
    assert seen == ["new"]


def test_a_rolled_back_transaction_bumps_nothing_and_leaves_no_mark(queries):
    article = _primed()
    with pytest.raises(RuntimeError), transaction.atomic():
        article.title = "new"
        article.save()
        raise RuntimeError
    with queries(0):
        assert _cached_title(article.pk) == "old"


@needs_threads
def test_a_transaction_managed_by_hand_is_bumped_at_its_commit(queries):
    article = _primed()
    transaction.set_autocommit(False)
    try:
        article.title = "new"
        article.save()
        # Another connection reads the row as committed (old) and stores it.
        thread, errors = in_thread(lambda: _cached_title(article.pk))
        finish(thread, errors)
        with queries(1):  # this connection reads its own write
            assert _cached_title(article.pk) == "new"
        transaction.commit()
    finally:
        transaction.set_autocommit(True)
    assert _cached_title(article.pk) == "new"


@needs_threads
def test_a_transaction_managed_by_hand_and_rolled_back_bumps_nothing(queries):
    article = _primed()
    transaction.set_autocommit(False)
    try:
        article.title = "new"
        article.save()
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    with queries(0):
        assert _cached_title(article.pk) == "old"


def _article_tags(article):
    return list(meta.info(Article).object_tags(article.pk))


def test_a_writer_that_dies_after_marking_blocks_its_tags_for_the_bound_only(queries):
    article = _primed()
    with override_settings(CACHEKIT={"CACHE_ALIAS": "default", "TIMEOUT": 600, "WRITE_MARK_TIMEOUT": 1}):
        core.mark(_article_tags(article), core.new_token())  # and never bumps
        with queries(1):  # marked: not served
            assert _cached_title(article.pk) == "old"
        with queries(1):  # and not stored
            assert _cached_title(article.pk) == "old"
        time.sleep(1.3)
        with queries(1):  # past the bound: cached again, the entry from before the mark retired by it
            assert _cached_title(article.pk) == "old"
        with queries(0):
            assert _cached_title(article.pk) == "old"


@pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="a deadline per writer is the Redis store's")
def test_on_redis_each_writer_has_its_own_deadline():
    store = core.runtime().store
    (mark,) = keys.mark_keys(["u:test-deadlines"])

    def marked():
        return store.fetch([], [], [mark])[2] == [True]

    store.mark([mark], "dead", 1.0)  # never lifted
    store.mark([mark], "live", 60.0)
    time.sleep(1.3)
    assert marked()  # the live writer still holds it
    store.unmark([mark], "live")
    assert not marked()  # the dead writer's deadline has passed: nothing is left

    store.mark([mark], "dead", 1.0)
    store.mark([mark], "live", 60.0)
    store.unmark([mark], "live")
    assert marked()  # the dead writer is within its bound
    wait_until(lambda: not marked(), 3, "the dead writer's mark outlived its 1 s bound")


@pytest.mark.skipif(DB != "postgres", reason="a failing statement on its own connection")
def test_a_statement_that_fails_lifts_its_marks(queries):
    article = _primed()
    with pytest.raises(Exception), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Article._meta.db_table} SET views = views / 0 WHERE id = %s", [article.pk])
    with queries(1):  # the mark retired the entry: read once more
        assert _cached_title(article.pk) == "old"
    with queries(0):  # and no mark is left to keep it from being stored and served
        assert _cached_title(article.pk) == "old"
