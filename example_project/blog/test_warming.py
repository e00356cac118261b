"""The blog's warmers: after ``cachekit_warm`` the pages they cover need no SQL."""

from io import StringIO

from django.core.management import call_command
from django.test import TransactionTestCase
from django.urls import reverse

from blog.models import Article, Category
from blog.tests import CacheIsolationMixin, seed


def warm(*args):
    out = StringIO()
    call_command("cachekit_warm", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


class WarmingTests(CacheIsolationMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        seed(authors=3, articles=30, comments=2, tags=4, seed=3)

    def test_warmed_pages_run_no_sql(self):
        output = warm()
        for name in ("blog.Article", "front-page", "categories", "stats"):
            self.assertIn(f"{name}: ", output)
        category = Category.objects.order_by("name").first()
        top = Article.objects.order_by("-views", "-pk").first()
        for url in (reverse("blog:article_list"), reverse("blog:stats")):
            with self.assertNumQueries(0):
                self.assertEqual(self.client.get(url).status_code, 200)
        with self.assertNumQueries(0):
            Article.objects.cache().get(pk=top.pk)
            Category.objects.cache().get(slug=category.slug)

    def test_a_second_run_stores_nothing(self):
        warm()
        self.assertIn(": 0 entries stored, ", warm())
