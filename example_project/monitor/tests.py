"""Tests of the monitor page: ``python example_project/manage.py test monitor``."""

import json

from blog.models import Article
from blog.tests import CacheIsolationMixin, clear_cache, seed
from django.test import TransactionTestCase
from django.urls import reverse

from django_cachekit.metrics import totals


class MonitorTests(CacheIsolationMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        seed(authors=3, articles=12, comments=2, tags=4, seed=3)
        clear_cache()  # the seed's saves wrote their rows through: start from misses
        totals.reset()
        self.addCleanup(totals.reset)  # nothing left for the exit flush to write

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
