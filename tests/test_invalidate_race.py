"""``cached(...).invalidate()`` and ``invalidate_pattern()`` retire entries by bumping versions.

A reader held between its computation and its store while the main thread
writes and invalidates never stores back what the invalidation retired; inside
``transaction.atomic`` the bump waits for the commit (a rollback retires
nothing), and a name first stored after ``invalidate_pattern()`` but before the
commit is retired too.
"""

import threading

import pytest
from django.db import connection, transaction

from django_cachekit import cached, invalidate_pattern
from tests.conftest import needs_redis
from tests.factories import AuthorFactory
from tests.testapp.models import Author

pytestmark = pytest.mark.django_db(transaction=True)


def in_thread(target, *args):
    """Run ``target(*args)`` in a thread with its own database connection: ``(thread, results, errors)``."""
    results, errors = [], []

    def run():
        try:
            results.append(target(*args))
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results, errors


def finish(thread, results, errors, timeout=30):
    thread.join(timeout)
    assert not thread.is_alive(), "thread did not finish"
    if errors:
        raise errors[0]
    return results[0]


class Held:
    """Holds the reader that ``hold()`` marked between its computation and its cache store."""

    def __init__(self):
        self.reached, self.release = threading.Event(), threading.Event()
        self._marked = threading.local()

    def hold(self, func, *args):
        self._marked.on = True
        return func(*args)

    def here(self):
        if getattr(self._marked, "on", False):
            self.reached.set()
            assert self.release.wait(20), "the reader was never released"


@pytest.fixture
def held():
    held = Held()
    yield held
    held.release.set()  # a failed test must not leave its reader (and its connection) waiting


def name_reader(calls, held=None, **options):
    # No depends_on: only the function's own invalidation can retire its entries.
    @cached(timeout=60, **options)
    def name_of(pk):
        calls.append(pk)
        name = Author.objects.values_list("name", flat=True).get(pk=pk)
        if held is not None:
            held.here()
        return name

    return name_of


def test_a_reader_that_computed_before_invalidate_never_stores_its_old_value(queries, held):
    author = AuthorFactory(name="old")
    calls = []
    name_of = name_reader(calls, held)
    thread, results, errors = in_thread(held.hold, name_of, author.pk)
    assert held.reached.wait(20)
    Author.objects.filter(pk=author.pk).update(name="new")
    name_of.invalidate(author.pk)
    held.release.set()
    assert finish(thread, results, errors) == "old"  # computed before the write: its store comes too late
    with queries(1):
        assert name_of(author.pk) == "new"
    with queries(0):
        assert name_of(author.pk) == "new"


def test_invalidate_inside_a_transaction_waits_for_the_commit(queries):
    author = AuthorFactory(name="old")
    calls = []
    name_of = name_reader(calls)
    assert name_of(author.pk) == "old"
    with transaction.atomic():
        Author.objects.filter(pk=author.pk).update(name="new")
        name_of.invalidate(author.pk)
        assert name_of(author.pk) == "new"  # the transaction reads its own write
        # Elsewhere the committed row is still the old one, and so is the entry: a hit.
        assert finish(*in_thread(name_of, author.pk)) == "old"
        assert calls == [author.pk, author.pk]
    with queries(1):
        assert name_of(author.pk) == "new"
    with queries(0):
        assert name_of(author.pk) == "new"


def test_invalidate_in_a_rolled_back_transaction_retires_nothing(queries):
    author = AuthorFactory(name="old")
    name_of = name_reader([])
    name_of(author.pk)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        name_of.invalidate(author.pk)
        raise Rollback
    with queries(0):
        assert name_of(author.pk) == "old"


def test_invalidate_reaches_only_its_own_call(queries):
    first, second = AuthorFactory(name="one"), AuthorFactory(name="two")
    name_of = name_reader([])
    name_of(first.pk), name_of(second.pk)
    name_of.invalidate(first.pk)
    with queries(1):
        name_of(first.pk)
    with queries(0):
        name_of(second.pk)


@needs_redis
def test_a_reader_that_computed_before_invalidate_pattern_never_stores_its_old_value(queries, held):
    author = AuthorFactory(name="old")
    calls = []
    name_of = name_reader(calls, held, key="author-name:{pk}")
    thread, results, errors = in_thread(held.hold, name_of, author.pk)
    assert held.reached.wait(20)
    Author.objects.filter(pk=author.pk).update(name="new")
    # The held reader created the entry's version before computing: the pattern finds it.
    assert invalidate_pattern("author-name:*") == 1
    held.release.set()
    assert finish(thread, results, errors) == "old"
    with queries(1):
        assert name_of(author.pk) == "new"
    with queries(0):
        assert name_of(author.pk) == "new"


@needs_redis
def test_invalidate_pattern_inside_a_transaction_retires_at_commit_what_matches_then(queries):
    author = AuthorFactory(name="old")
    calls = []
    name_of = name_reader(calls, key="author-name:{pk}")
    other = AuthorFactory(name="other")
    assert name_of(author.pk) == "old"
    with transaction.atomic():
        Author.objects.filter(pk__in=[author.pk, other.pk]).update(name="new")
        assert invalidate_pattern("author-name:*") == 1  # what matches now
        assert name_of(author.pk) == "new"  # the transaction reads its own write
        # Elsewhere: the old entry is still a hit, and a name first stored now holds the committed row.
        assert finish(*in_thread(name_of, author.pk)) == "old"
        assert finish(*in_thread(name_of, other.pk)) == "other"
        assert calls == [author.pk, author.pk, other.pk]
    with queries(1):
        assert name_of(author.pk) == "new"
    with queries(1):
        assert name_of(other.pk) == "new"  # stored after the call, before the commit: retired too
    with queries(0):
        assert name_of(other.pk) == "new"


@needs_redis
def test_invalidate_pattern_in_a_rolled_back_transaction_retires_nothing(queries):
    author = AuthorFactory(name="old")
    name_of = name_reader([], key="author-name:{pk}")
    name_of(author.pk)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        invalidate_pattern("author-name:*")
        raise Rollback
    with queries(0):
        assert name_of(author.pk) == "old"
