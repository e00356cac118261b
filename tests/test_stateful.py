"""Random writes, rolled-back transactions and cached reads: cached equals uncached after every step."""

import pytest
from django.core.cache import caches
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from tests.testapp.models import Article, Author, Tag

pytestmark = pytest.mark.django_db(transaction=True)

titles = st.sampled_from(["alpha", "beta", "gamma", "delta"])
views = st.integers(min_value=0, max_value=9)


class Rollback(Exception):
    pass


class CacheMachine(RuleBasedStateMachine):
    @initialize()
    def start(self):
        Article.objects.all().delete()
        Tag.objects.all().delete()
        Author.objects.all().delete()
        caches["default"].clear()
        self.authors = [Author.objects.create(name=f"author{i}") for i in range(2)]
        self.tags = [Tag.objects.create(name=f"tag{i}") for i in range(3)]
        self.pks = []

    def pick(self, data):
        # Draw an index, not a pk: pks depend on the database, and draws must not.
        index = data.draw(st.integers(min_value=0, max_value=50))
        live = list(Article.objects.order_by("pk").values_list("pk", flat=True))
        return live[index % len(live)] if live else None

    @rule(title=titles, views=views, author=st.integers(0, 1))
    def create(self, title, views, author):
        self.pks.append(Article.objects.create(title=title, views=views, author=self.authors[author]).pk)

    @rule(data=st.data(), title=titles, views=views)
    def save(self, data, title, views):
        pk = self.pick(data)
        if pk is not None:
            obj = Article.objects.get(pk=pk)
            obj.title, obj.views = title, views
            obj.save()

    @rule(data=st.data(), views=views)
    def update_one(self, data, views):
        pk = self.pick(data)
        if pk is not None:
            Article.objects.filter(pk=pk).update(views=views)

    @rule(title=titles, views=views)
    def update_many(self, title, views):
        Article.objects.filter(title=title).update(views=views)

    @rule(n=st.integers(1, 3), title=titles)
    def bulk_create(self, n, title):
        made = Article.objects.bulk_create([Article(title=title, author=self.authors[0]) for _ in range(n)])
        self.pks += [a.pk for a in made if a.pk is not None]

    @rule(views=views)
    def bulk_update(self, views):
        objs = list(Article.objects.all()[:3])
        for obj in objs:
            obj.views = views
        Article.objects.bulk_update(objs, ["views"])

    @rule(data=st.data(), tag=st.integers(0, 2), add=st.booleans())
    def link(self, data, tag, add):
        pk = self.pick(data)
        if pk is not None:
            related = Article.objects.get(pk=pk).tags
            (related.add if add else related.remove)(self.tags[tag])

    @rule(tag=st.integers(0, 2))
    def clear_tag(self, tag):
        self.tags[tag].articles.clear()

    @rule(data=st.data())
    def delete(self, data):
        pk = self.pick(data)
        if pk is not None:
            Article.objects.get(pk=pk).delete()

    @rule(title=titles)
    def delete_many(self, title):
        Article.objects.filter(title=title).delete()

    @rule(data=st.data(), title=titles, views=views)
    def rolled_back(self, data, title, views):
        pk = self.pick(data)
        try:
            with transaction.atomic():
                Article.objects.filter(title=title).update(views=views)
                if pk is not None:
                    obj = Article.objects.get(pk=pk)
                    obj.title = "rolled"
                    obj.save()
                    obj.tags.add(self.tags[0])
                Article.objects.create(title="rolled", author=self.authors[1])
                raise Rollback
        except Rollback:
            pass

    @rule(data=st.data(), views=views)
    def savepoint(self, data, views):
        pk = self.pick(data)
        with transaction.atomic():
            Article.objects.filter(views=views).update(title="kept")
            try:
                with transaction.atomic():
                    if pk is not None:
                        Article.objects.filter(pk=pk).update(title="undone")
                    raise Rollback
            except Rollback:
                pass

    @rule(data=st.data())
    def read_cached(self, data):
        pk = self.pick(data)
        if pk is not None:
            Article.objects.cache().get(pk=pk)
        list(Article.objects.cache().filter(views__gte=5))

    @invariant()
    def cached_equals_uncached(self):
        if not hasattr(self, "pks"):
            return
        for pk in self.pks:
            db = Article.objects.filter(pk=pk).values_list("title", "views", "author_id").first()
            try:
                got = Article.objects.cache().get(pk=pk)
                cached = (got.title, got.views, got.author_id)
            except Article.DoesNotExist:
                cached = None
            assert cached == (tuple(db) if db else None)

        def rows(qs):
            return [(a.pk, a.title, a.views) for a in qs.order_by("pk")]

        assert rows(Article.objects.cache()) == rows(Article.objects.all())
        assert rows(Article.objects.cache().filter(views__gte=5)) == rows(Article.objects.filter(views__gte=5))
        assert Article.objects.cache().count() == Article.objects.count()
        for tag in self.tags:
            assert rows(Article.objects.cache().filter(tags=tag)) == rows(Article.objects.filter(tags=tag))
        prefetched = [
            (a.pk, sorted(t.name for t in a.tags.all()))
            for a in Article.objects.cache().prefetch_related("tags").order_by("pk")
        ]
        assert prefetched == [
            (a.pk, sorted(t.name for t in a.tags.all()))
            for a in Article.objects.prefetch_related("tags").order_by("pk")
        ]
        live = self.pks[:6]
        cached_bulk = {pk: (a.title, a.views) for pk, a in Article.objects.cache().in_bulk(live).items()}
        assert cached_bulk == {pk: (a.title, a.views) for pk, a in Article.objects.in_bulk(live).items()}


def test_cached_reads_equal_the_database():
    run_state_machine_as_test(
        CacheMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
