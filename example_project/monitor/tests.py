"""Tests of the monitor page: ``python example_project/manage.py test monitor``."""

import json

from blog.models import Article
from blog.tests import CacheIsolationMixin, clear_cache, seed
from django.test import TransactionTestCase
from django.urls import reverse

from django_cachekit.metrics import totals

from . import views


class MonitorTests(CacheIsolationMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        seed(authors=3, articles=12, comments=2, tags=4, seed=3)
        clear_cache()  # the seed's saves wrote their rows through: start from misses
        totals.reset()
        self.addCleanup(totals.reset)  # nothing left for the exit flush to write
        views.forget()

    def test_data_reports_the_hit_rate_of_what_pages_read(self):
        article = Article.objects.order_by("pk").first()
        url = reverse("blog:article_detail", args=[article.pk])
        for _ in range(5):
            self.assertEqual(self.client.get(url).status_code, 200)
        data = self.client.get(reverse("monitor:hit_rate_data")).json()
        rows = {row["namespace"]: row for row in data["rows"]}
        self.assertEqual(rows["blog.article"]["lookups"], 5)  # one get(pk=...) per page
        self.assertEqual(rows["blog.article"]["hits"], 4)
        self.assertEqual(rows["blog.article"]["hit_rate"], 80.0)
        self.assertEqual(rows["blog.article"]["kind"], "model")
        self.assertEqual(data["rows"][0]["kind"], "model")  # models first
        self.assertEqual(data["target"], 80.0)

    def test_page_embeds_the_numbers_and_the_chart(self):
        self.client.get(reverse("blog:stats"))
        self.client.get(reverse("blog:stats"))
        response = self.client.get(reverse("monitor:hit_rate"))
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<svg id="chart"')
        self.assertContains(response, reverse("monitor:hit_rate_data"))
        html = response.content.decode()
        initial = json.loads(html.split('id="initial-data" type="application/json">')[1].split("</script>")[0])
        rows = {row["namespace"]: row for row in initial["rows"]}
        self.assertEqual(rows["blog.stats.site_totals"]["hits"], 1)
        self.assertEqual(rows["blog.stats.site_totals"]["kind"], "function")

    def test_data_gives_what_changed_since_the_previous_reading(self):
        article = Article.objects.order_by("pk").first()
        url = reverse("blog:article_detail", args=[article.pk])
        data_url = reverse("monitor:hit_rate_data")
        self.client.get(url)
        first = self.client.get(data_url).json()
        self.assertIsNone(first["interval"])  # nothing to compare with yet
        for _ in range(3):
            self.client.get(url)
        second = self.client.get(data_url).json()
        self.assertEqual({r["namespace"]: r["lookups"] for r in second["rows"]}["blog.article"], 4)  # the totals
        rates = {r["namespace"]: r for r in second["interval"]["namespaces"]}
        self.assertEqual(rates["blog.article"]["lookups"], 3)  # since the first reading
        self.assertEqual(rates["blog.article"]["hit_rate"], 100.0)
        self.assertEqual(rates["blog.article"]["kind"], "model")
        seconds = second["interval"]["seconds"]
        self.assertGreater(seconds, 0)
        self.assertEqual(rates["blog.article"]["lookups_per_second"], round(3 / seconds, 2))
        third = self.client.get(data_url).json()
        self.assertEqual(third["interval"]["namespaces"], [])  # nothing read in between
        self.assertEqual(third["interval"]["total"]["lookups"], 0)

    def test_views_are_a_group_of_their_own(self):
        self.client.get(reverse("blog:article_list"))
        self.client.get(reverse("blog:article_list"))
        self.client.get(reverse("blog:stats"))
        rows = self.client.get(reverse("monitor:hit_rate_data")).json()["rows"]
        kinds = {r["namespace"]: r["kind"] for r in rows}
        self.assertEqual(kinds["view:blog.views.article_list"], "view")
        self.assertEqual(kinds["blog.stats.site_totals"], "function")
        order = [r["kind"] for r in rows]
        self.assertEqual(order, sorted(order, key=views.KINDS.index))  # models, views, functions, fragments
        self.assertContains(self.client.get(reverse("monitor:hit_rate")), 'view: "Views"')

    def test_inner_fragments_name_the_fragment_around_them(self):
        article = Article.objects.filter(comments__isnull=False).order_by("pk").first()
        self.client.get(reverse("blog:article_detail", args=[article.pk]))
        self.assertEqual(views.nested_fragments(), {"fragment:comment": "fragment:article"})
        rows = {r["namespace"]: r for r in self.client.get(reverse("monitor:hit_rate_data")).json()["rows"]}
        self.assertEqual(rows["fragment:comment"]["inside"], "fragment:article")
        self.assertIsNone(rows["fragment:article"]["inside"])
        self.assertIsNone(rows["blog.article"]["inside"])
        self.assertContains(self.client.get(reverse("monitor:hit_rate")), "looked up only when")
