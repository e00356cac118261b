"""Concurrency against a real database and cache, with real threads.

A reader held between its database read and its cache store while a writer
commits never leaves a stale entry; concurrent writers of one row never leave
the entry older than the committed row; a bounded soak ends with every cached
read equal to the database.
"""

import random
import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction

from django_cachekit.core import protocol as core
from django_cachekit.invalidation import buffers as writes
from tests.conftest import CACHE, DB, REDIS_CACHES
from tests.factories import ArticleFactory, AuthorFactory, TagFactory
from tests.testapp.models import Article

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(DB != "postgres", reason="row locks and concurrent commits need PostgreSQL"),
]


def in_thread(target, *args):
    errors = []

    def run():
        try:
            target(*args)
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def finish(thread, errors, timeout=30):
    thread.join(timeout)
    assert not thread.is_alive(), "thread did not finish"
    if errors:
        raise errors[0]


@pytest.fixture
def hold_store(monkeypatch):
    """Stop the next cache store in a marked thread until released."""
    reached, release = threading.Event(), threading.Event()
    marked = threading.local()
    original = core.store

    def store(*args, **kwargs):
        if getattr(marked, "on", False):
            reached.set()
            assert release.wait(20)
        return original(*args, **kwargs)

    monkeypatch.setattr(core, "store", store)
    return marked, reached, release


@pytest.mark.parametrize("read", ["object", "query"])
def test_reader_held_before_store_while_writer_commits(queries, hold_store, read):
    marked, reached, release = hold_store
    article = ArticleFactory(title="old")
    from django.core.cache import caches

    caches["default"].clear()  # the reader must miss

    def reader():
        marked.on = True
        if read == "object":
            assert Article.objects.cache().get(pk=article.pk).title == "old"
        else:
            assert [a.title for a in Article.objects.cache().filter(pk__gte=article.pk)] == ["old"]

    thread, errors = in_thread(reader)
    assert reached.wait(20)  # the reader has read "old" from the database
    Article.objects.filter(pk=article.pk).update(title="new")  # committed and invalidated
    release.set()  # the reader now stores what it read
    finish(thread, errors)
    with queries(1):
        if read == "object":
            assert Article.objects.cache().get(pk=article.pk).title == "new"
        else:
            assert [a.title for a in Article.objects.cache().filter(pk__gte=article.pk)] == ["new"]


@pytest.mark.parametrize("order", ["later-flushes-first", "earlier-flushes-first"])
def test_two_writers_of_one_row(monkeypatch, order):
    """Both commit; their post-commit flushes run in either order."""
    article = ArticleFactory(title="start")
    gates = {name: threading.Event() for name in ("w1", "w2")}
    flushed = {name: threading.Event() for name in ("w1", "w2")}
    who = threading.local()
    original = writes.Buffer.flush
    w1_committed = threading.Event()

    def flush(self):
        name = getattr(who, "name", None)
        if name and not self.empty():  # the flush right after COMMIT
            if name == "w1":
                w1_committed.set()
            assert gates[name].wait(20)
        original(self)
        if name:
            flushed[name].set()

    monkeypatch.setattr(writes.Buffer, "flush", flush)

    def writer(name, title, wait_for=None):
        who.name = name
        if wait_for is not None:
            assert wait_for.wait(20)
        obj = Article.objects.get(pk=article.pk)
        obj.title = title
        with transaction.atomic():
            obj.save()

    t1, e1 = in_thread(writer, "w1", "first")
    # w2 saves after w1 committed: it is the last writer, its row is what the database holds.
    t2, e2 = in_thread(writer, "w2", "second", w1_committed)
    if order == "later-flushes-first":
        gates["w2"].set()
        assert flushed["w2"].wait(20)
        gates["w1"].set()
    else:
        gates["w1"].set()
        assert flushed["w1"].wait(20)
        gates["w2"].set()
    finish(t1, e1)
    finish(t2, e2)
    assert Article.objects.get(pk=article.pk).title == "second"
    assert Article.objects.cache().get(pk=article.pk).title == "second"


def test_insert_flushed_after_a_later_update(monkeypatch, queries):
    """The creator's write-through arrives last; it must not cover the update."""
    author = AuthorFactory()
    gate, flushing = threading.Event(), threading.Event()
    who = threading.local()
    original = writes.Buffer.flush

    def flush(self):
        if getattr(who, "creator", False):
            flushing.set()
            assert gate.wait(20)
        original(self)

    monkeypatch.setattr(writes.Buffer, "flush", flush)
    created = {}

    def creator():
        who.creator = True
        created["obj"] = Article.objects.create(title="created", author=author)

    thread, errors = in_thread(creator)
    assert flushing.wait(20)  # committed, not yet flushed
    obj = Article.objects.get(pk=Article.objects.latest("pk").pk)
    obj.title = "updated"
    obj.save()
    gate.set()
    finish(thread, errors)
    assert Article.objects.cache().get(pk=obj.pk).title == "updated"


@pytest.mark.soak
@pytest.mark.skipif(CACHE not in REDIS_CACHES, reason="the soak runs on Redis")
def test_soak_writers_and_readers():
    """4 writer and 8 reader threads for 10 s; then every cached read equals the database."""
    author = AuthorFactory()
    rows = [ArticleFactory(author=author, title=f"r{i}", views=0) for i in range(12)]
    tags = [TagFactory() for _ in range(4)]
    pks = [r.pk for r in rows]
    stop = threading.Event()
    deadline = time.monotonic() + 10

    def writer(seed):
        rnd = random.Random(seed)
        while time.monotonic() < deadline:
            pk = rnd.choice(pks)
            action = rnd.random()
            if action < 0.4:
                obj = Article.objects.get(pk=pk)
                obj.title = f"t{rnd.randrange(10**6)}"
                obj.views = rnd.randrange(100)
                obj.save()
            elif action < 0.6:
                Article.objects.filter(pk=pk).update(views=rnd.randrange(100))
            elif action < 0.7:
                with transaction.atomic():
                    objs = list(Article.objects.filter(pk__in=rnd.sample(pks, 3)).select_for_update())
                    for obj in objs:
                        obj.views = rnd.randrange(100)
                    Article.objects.bulk_update(objs, ["views"])
            elif action < 0.8:
                Article.objects.get(pk=pk).tags.add(rnd.choice(tags))
            elif action < 0.9:
                Article.objects.get(pk=pk).tags.clear()
            else:
                try:
                    with transaction.atomic():
                        Article.objects.filter(pk=pk).update(title="rolled back")
                        raise RuntimeError
                except RuntimeError:
                    pass
            close_old_connections()

    def reader(seed):
        rnd = random.Random(seed)
        while not stop.is_set():
            pk = rnd.choice(pks)
            Article.objects.cache().get(pk=pk)
            list(Article.objects.cache().filter(views__gte=rnd.randrange(50)).order_by("pk"))
            Article.objects.cache().filter(tags__isnull=False).distinct().count()
            Article.objects.cache().in_bulk(rnd.sample(pks, 4))

    threads = [in_thread(writer, i) for i in range(4)] + [in_thread(reader, 100 + i) for i in range(8)]
    for thread, errors in threads[:4]:
        finish(thread, errors, timeout=60)
    stop.set()
    for thread, errors in threads[4:]:
        finish(thread, errors, timeout=60)

    def state(qs):
        return [(a.pk, a.title, a.views) for a in qs]

    for pk in pks:
        cached = Article.objects.cache().get(pk=pk)
        db = Article.objects.get(pk=pk)
        assert (cached.title, cached.views) == (db.title, db.views)
    assert Article.objects.cache().in_bulk(pks).keys() == set(pks)
    for pk, obj in Article.objects.cache().in_bulk(pks).items():
        assert (obj.title, obj.views) == tuple(Article.objects.filter(pk=pk).values_list("title", "views")[0])
    for threshold in range(0, 100, 7):
        cached = state(Article.objects.cache().filter(views__gte=threshold).order_by("pk"))
        assert cached == state(Article.objects.filter(views__gte=threshold).order_by("pk"))
    assert (
        Article.objects.cache().filter(tags__isnull=False).distinct().count()
        == Article.objects.filter(tags__isnull=False).distinct().count()
    )
