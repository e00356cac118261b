"""Tests of the example project: ``python example_project/manage.py test blog``.

They use ``TransactionTestCase``: django-cachekit invalidates when a
transaction commits, and ``TestCase`` wraps every test in a transaction that
never does. The settings give each test run its own cache key prefix; the
cache is emptied of this run's keys before and after every test.
"""

from datetime import timedelta
from io import StringIO

from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Max
from django.test import Client, TransactionTestCase, override_settings
from django.urls import reverse
from django.utils import timezone

from blog.models import Article, Author, Category, Comment, Tag


def clear_cache():
    """Delete this run's keys only (never a whole shared Redis database)."""
    if hasattr(cache, "delete_pattern"):  # django-redis: keys under this run's KEY_PREFIX
        cache.delete_pattern("*")
    else:
        cache.clear()


class CacheIsolationMixin:
    def setUp(self):
        super().setUp()
        clear_cache()
        self.addCleanup(clear_cache)


def seed(**options):
    out = StringIO()
    call_command("seed_blog", stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def counts():
    return {
        "authors": Author.objects.count(),
        "categories": Category.objects.count(),
        "tags": Tag.objects.count(),
        "articles": Article.objects.count(),
        "links": Article.tags.through.objects.count(),
        "comments": Comment.objects.count(),
    }


class SeedBlogTests(CacheIsolationMixin, TransactionTestCase):
    def test_creates_the_requested_counts(self):
        output = seed(authors=4, articles=30, comments=3, tags=6, seed=7)
        found = counts()
        self.assertEqual(found["authors"], 4)
        self.assertEqual(found["articles"], 30)
        self.assertEqual(found["tags"], 6)
        self.assertEqual(found["categories"], 8)
        self.assertGreater(found["links"], 0)
        self.assertGreater(found["comments"], 0)
        # --comments is the most per article.
        self.assertLessEqual(found["comments"], 30 * 3)
        most = Article.objects.annotate(n=Count("comments")).aggregate(most=Max("n"))["most"]
        self.assertLessEqual(most, 3)
        self.assertIn("Created 4 authors, 8 categories, 6 tags, 30 articles", output)
        # Comments come after their article; nothing is published in the future.
        self.assertFalse(Comment.objects.filter(created_at__lt=F("article__published_at")).exists())
        self.assertFalse(Article.objects.filter(published_at__gt=timezone.now()).exists())

    def test_second_run_adds_nothing(self):
        seed(authors=3, articles=10, comments=2, tags=4, seed=1)
        before = counts()
        output = seed(authors=3, articles=10, comments=2, tags=4, seed=1)
        self.assertEqual(counts(), before)
        self.assertIn("already has data; nothing added", output)

    def test_reset_replaces_the_data(self):
        seed(authors=3, articles=10, comments=2, tags=4, seed=1)
        seed(authors=2, articles=5, comments=0, tags=2, seed=2, reset=True)
        found = counts()
        self.assertEqual((found["authors"], found["articles"], found["tags"]), (2, 5, 2))
        self.assertEqual(found["comments"], 0)

    def test_same_seed_same_data(self):
        seed(authors=3, articles=12, comments=2, tags=5, seed=42)
        first = list(Article.objects.order_by("pk").values_list("title", "author__name", "views"))
        seed(authors=3, articles=12, comments=2, tags=5, seed=42, reset=True)
        second = list(Article.objects.order_by("pk").values_list("title", "author__name", "views"))
        self.assertEqual(first, second)

    def test_negative_values_name_the_option_and_value(self):
        for option in ("authors", "articles", "comments", "tags"):
            with (
                self.subTest(option=option),
                self.assertRaisesMessage(CommandError, f"--{option} must be zero or more, not -5."),
            ):
                seed(**{option: -5})
        self.assertEqual(sum(counts().values()), 0)

    def test_articles_without_authors(self):
        with self.assertRaisesMessage(CommandError, "--articles 3 needs at least one author"):
            seed(authors=0, articles=3)

    def test_not_an_integer(self):
        with self.assertRaisesMessage(CommandError, "invalid int value: 'many'"):
            call_command("seed_blog", "--tags", "many", stdout=StringIO())

    def test_verbosity(self):
        self.assertEqual(seed(authors=1, articles=1, tags=1, seed=3, verbosity=0), "")
        detailed = seed(authors=1, articles=1, tags=1, seed=3, verbosity=2, reset=True)
        self.assertIn("Created 1 articles.", detailed)
        self.assertIn("Deleted articles: ", detailed)


class PageTests(CacheIsolationMixin, TransactionTestCase):
    def setUp(self):
        super().setUp()
        now = timezone.now()
        self.ada = Author.objects.create(name="Ada Lovelace", email="ada@example.com", bio="Analyst.")
        self.alan = Author.objects.create(name="Alan Turing", email="alan@example.com")
        self.databases_cat = Category.objects.create(name="Databases", slug="databases")
        self.python_cat = Category.objects.create(name="Python", slug="python")
        self.redis = Tag.objects.create(name="redis", slug="redis")
        self.orm = Tag.objects.create(name="orm", slug="orm")
        self.old = Article.objects.create(
            title="Indexes first",
            body="Measure, then index.",
            author=self.ada,
            category=self.databases_cat,
            published_at=now - timedelta(days=3),
            views=10,
        )
        self.new = Article.objects.create(
            title="Caching the ORM",
            body="Versioned tags.\n\nOne increment retires everything.",
            author=self.ada,
            category=self.python_cat,
            published_at=now - timedelta(days=1),
            views=5,
        )
        self.other = Article.objects.create(
            title="On computable numbers",
            body="A paper.",
            author=self.alan,
            category=None,
            published_at=now - timedelta(days=2),
            views=7,
        )
        self.new.tags.add(self.redis, self.orm)
        Comment.objects.create(article=self.new, author_name="Grace", body="Nice one.")
        Comment.objects.create(article=self.new, author_name="Linus", body="Numbers, please.")
        clear_cache()  # every test starts cold

    def test_list(self):
        response = self.client.get(reverse("blog:article_list"))
        self.assertEqual(response.status_code, 200)
        titles = [a.title for a in response.context["page_obj"]]
        self.assertEqual(titles, ["Caching the ORM", "On computable numbers", "Indexes first"])
        self.assertContains(response, "Ada Lovelace")
        self.assertContains(response, "2 comments")
        self.assertContains(response, 'href="/?tag=redis"')

    def test_list_is_paginated_by_20(self):
        seed(authors=2, articles=42, comments=0, tags=2, seed=5, reset=True)
        first = self.client.get("/")
        self.assertEqual(len(first.context["page_obj"]), 20)
        self.assertContains(first, "Page 1 of 3 (42 articles)")
        last = self.client.get("/?page=3")
        self.assertEqual(len(last.context["page_obj"]), 2)
        self.assertEqual(self.client.get("/?page=99").context["page_obj"].number, 3)
        published = [a.published_at for a in first.context["page_obj"]]
        self.assertEqual(published, sorted(published, reverse=True))

    def test_list_by_tag(self):
        response = self.client.get("/?tag=orm")
        self.assertEqual([a.title for a in response.context["page_obj"]], ["Caching the ORM"])
        self.assertEqual(self.client.get("/?tag=nope").status_code, 404)

    def test_list_second_get_is_served_from_the_cache(self):
        # count, page of articles (joined authors and categories), prefetched tags
        with self.assertNumQueries(3):
            self.client.get("/")
        with self.assertNumQueries(0):
            self.client.get("/")
        Article.objects.filter(pk=self.other.pk).update(title="On computable numbers, revised")
        # The update retired the queries that read blog_article; the tags prefetch
        # depends on the page's article ids, unchanged, so it is still a hit.
        with self.assertNumQueries(2):
            response = self.client.get("/")
        self.assertContains(response, "On computable numbers, revised")

    def test_detail(self):
        response = self.client.get(self.new.get_absolute_url())
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "<h1>Caching the ORM</h1>", html=True)
        self.assertContains(response, "Ada Lovelace")
        self.assertContains(response, 'href="/categories/python/"')
        self.assertContains(response, 'href="/?tag=redis"')
        self.assertContains(response, 'href="/?tag=orm"')
        self.assertContains(response, "Nice one.")
        self.assertContains(response, "2 comments")
        self.assertEqual(self.client.get("/articles/987654/").status_code, 404)

    def test_detail_second_get_runs_fewer_queries(self):
        url = self.new.get_absolute_url()
        # article, author, category (object entries), tags, comments (query entries)
        with self.assertNumQueries(5):
            self.client.get(url)
        with self.assertNumQueries(0):
            response = self.client.get(url)
        self.assertContains(response, "Caching the ORM")

    def test_detail_after_saving_the_article(self):
        url = self.new.get_absolute_url()
        self.client.get(url)
        article = Article.objects.get(pk=self.new.pk)
        article.title = "Caching the ORM, second edition"
        article.save()
        # The save wrote the fresh row through to the article's entry, and the
        # tags and comments queries do not read blog_article: no query at all.
        with self.assertNumQueries(0):
            response = self.client.get(url)
        self.assertContains(response, "Caching the ORM, second edition")

    def test_detail_after_posting_a_comment(self):
        url = self.new.get_absolute_url()
        self.client.get(url)
        # The article comes from the cache; the one query is the INSERT.
        with self.assertNumQueries(1):
            response = self.client.post(url, {"author_name": "Barbara", "body": "Liskov approves."})
        comment = Comment.objects.get(author_name="Barbara")
        self.assertRedirects(response, f"{url}#comment-{comment.pk}", fetch_redirect_response=False)
        # Only the comments query was retired.
        with self.assertNumQueries(1):
            response = self.client.get(url)
        self.assertContains(response, "Liskov approves.")
        self.assertContains(response, "3 comments")

    def test_invalid_comment_is_not_saved(self):
        response = self.client.post(self.new.get_absolute_url(), {"author_name": "", "body": "Anonymous"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "This field is required.")
        self.assertEqual(Comment.objects.filter(body="Anonymous").count(), 0)

    def test_author(self):
        response = self.client.get(self.ada.get_absolute_url())
        self.assertEqual(response.status_code, 200)
        self.assertEqual([a.title for a in response.context["page_obj"]], ["Caching the ORM", "Indexes first"])
        self.assertNotContains(response, "On computable numbers")
        summary = response.context["summary"]
        self.assertEqual((summary["articles"], summary["views"], summary["comments"]), (2, 15, 2))
        self.assertEqual(self.client.get("/authors/987654/").status_code, 404)

    def test_author_summary_follows_the_author_tag(self):
        url = self.ada.get_absolute_url()
        self.client.get(url)
        computed_at = self.client.get(url).context["summary"]["computed_at"]
        # Another author's article: the "author:<ada>" tag is not bumped.
        Article.objects.create(title="Elsewhere", body=".", author=self.alan)
        self.assertEqual(self.client.get(url).context["summary"]["computed_at"], computed_at)
        # One of Ada's: her summary is computed again.
        Article.objects.create(title="Notes on the engine", body=".", author=self.ada)
        summary = self.client.get(url).context["summary"]
        self.assertEqual(summary["articles"], 3)
        self.assertGreater(summary["computed_at"], computed_at)

    def test_category(self):
        response = self.client.get(self.databases_cat.get_absolute_url())
        self.assertEqual(response.status_code, 200)
        self.assertEqual([a.title for a in response.context["page_obj"]], ["Indexes first"])
        self.assertContains(response, "<h1>Databases</h1>", html=True)
        self.assertEqual(response.context["summary"]["articles"], 1)
        self.assertEqual(self.client.get("/categories/nope/").status_code, 404)

    def test_category_after_moving_an_article(self):
        url = self.databases_cat.get_absolute_url()
        self.client.get(url)
        self.new.category = self.databases_cat
        self.new.save()
        response = self.client.get(url)
        self.assertEqual([a.title for a in response.context["page_obj"]], ["Caching the ORM", "Indexes first"])
        self.assertEqual(response.context["summary"]["articles"], 2)

    def test_stats(self):
        response = self.client.get(reverse("blog:stats"))
        self.assertEqual(response.status_code, 200)
        totals = response.context["totals"]
        self.assertEqual(
            (totals["articles"], totals["comments"], totals["authors"], totals["views"]),
            (3, 2, 2, 22),
        )
        self.assertEqual([a["name"] for a in totals["top_authors"]], ["Ada Lovelace", "Alan Turing"])
        self.assertContains(response, '<div class="value" id="stat-comments">2</div>', html=True)
        categories = response.context["categories"]
        self.assertEqual(
            [(c["name"], c["article_count"]) for c in categories["categories"]], [("Databases", 1), ("Python", 1)]
        )
        self.assertEqual(categories["uncategorized"], 1)

    def test_stats_are_cached_until_a_write(self):
        url = reverse("blog:stats")
        # site_totals: 3 queries (articles aggregate, comment count, top authors)
        # plus the author count; category_totals: 2.
        with self.assertNumQueries(6):
            self.client.get(url)
        with self.assertNumQueries(0):
            self.client.get(url)
        Comment.objects.create(article=self.other, author_name="Edsger", body="Considered.")
        # site_totals depends on Comment and is computed again; category_totals does not.
        with self.assertNumQueries(4):
            response = self.client.get(url)
        self.assertEqual(response.context["totals"]["comments"], 3)
        self.assertContains(response, '<div class="value" id="stat-comments">3</div>', html=True)


class FragmentTests(CacheIsolationMixin, TransactionTestCase):
    """The list and the detail render articles and comments as cached fragments."""

    def setUp(self):
        from django_cachekit.metrics import counters as metrics

        super().setUp()
        self.ada = Author.objects.create(name="Ada Lovelace", email="ada@example.com")
        self.python_cat = Category.objects.create(name="Python", slug="python")
        self.redis = Tag.objects.create(name="redis", slug="redis")
        now = timezone.now()
        self.first = Article.objects.create(
            title="First", body="One.", author=self.ada, category=self.python_cat, published_at=now
        )
        self.second = Article.objects.create(
            title="Second", body="Two.", author=self.ada, published_at=now - timedelta(days=1)
        )
        self.first.tags.add(self.redis)
        Comment.objects.create(article=self.first, author_name="Grace", body="Nice one.")
        Comment.objects.create(article=self.first, author_name="Linus", body="Numbers, please.")
        Comment.objects.create(article=self.second, author_name="Barbara", body="Agreed.")
        clear_cache()
        metrics.reset()

    def fragments(self, name):
        from django_cachekit.metrics import counters as metrics

        found = metrics.snapshot().get(f"fragment:{name}", {})
        return {event: n for event, n in found.items() if n and event in ("hit", "miss", "stale")}

    def fragment_reads(self, url):
        """GET ``url``; return the fragment keys of each cache read that had some."""
        from unittest import mock

        from django_cachekit.core import protocol as core

        store = core.runtime().store
        fetch = store.fetch
        reads = []

        def counting(keys, version_keys, mark_keys=()):
            reads.append([k for k in keys if ":fr:" in k])
            return fetch(keys, version_keys, mark_keys)

        with mock.patch.object(store, "fetch", counting):
            self.client.get(url)
        return [r for r in reads if r]

    def test_list_reads_the_fragments_of_a_page_in_one_round_trip(self):
        self.client.get("/")
        self.assertEqual(self.fragments("article-item"), {"miss": 2})
        # "/" itself is now a whole-response hit (cache_response): render the same
        # page under another URL to read its fragments.
        reads = self.fragment_reads("/?page=1")
        self.assertEqual([len(r) for r in reads], [2])
        self.assertEqual(self.fragments("article-item"), {"miss": 2, "hit": 2})

    def test_list_fragments_follow_what_they_show(self):
        self.client.get("/")
        self.ada.name = "Ada King"
        self.ada.save()
        self.redis.name = "valkey"
        self.redis.save()
        Comment.objects.create(article=self.first, author_name="Edsger", body="Considered.")
        response = self.client.get("/")
        self.assertContains(response, "Ada King", count=2)
        self.assertNotContains(response, "Ada Lovelace")
        self.assertContains(response, ">valkey</a>")
        self.assertContains(response, "3 comments")

    def test_detail_is_a_russian_doll(self):
        url = self.first.get_absolute_url()
        self.client.get(url)
        self.client.get(self.second.get_absolute_url())
        self.assertEqual(self.fragments("comment"), {"miss": 3})
        self.client.get(url)
        # The outer fragment is a hit: its comments are not even looked up.
        self.assertEqual(self.fragments("article"), {"miss": 2, "hit": 1})
        self.assertEqual(self.fragments("comment"), {"miss": 3})
        self.client.post(url, {"author_name": "Barbara", "body": "Liskov approves."})
        response = self.client.get(url)
        self.assertContains(response, "Liskov approves.")
        self.assertContains(response, "3 comments")
        # The new comment touched its article: the outer fragment renders again and
        # reuses the two comments that did not change.
        self.assertEqual(self.fragments("article"), {"miss": 2, "hit": 1, "stale": 1})
        self.assertEqual(self.fragments("comment"), {"miss": 4, "hit": 2})
        # The other article is untouched.
        self.client.get(self.second.get_absolute_url())
        self.assertEqual(self.fragments("article"), {"miss": 2, "hit": 2, "stale": 1})

    def test_detail_edits_of_a_comment_and_of_the_author_show(self):
        url = self.first.get_absolute_url()
        self.client.get(url)
        comment = Comment.objects.get(author_name="Grace")
        comment.body = "Nice one, edited."
        comment.save()
        self.ada.name = "Ada King"
        self.ada.save()
        response = self.client.get(url)
        self.assertContains(response, "Nice one, edited.")
        self.assertContains(response, "Ada King")

    def test_detail_form_is_rendered_for_each_request(self):
        from django.test import Client

        url = self.first.get_absolute_url()
        one, two = Client(), Client()
        first = one.get(url)
        second = two.get(url)
        self.assertEqual(self.fragments("article"), {"miss": 1, "hit": 1})
        self.assertNotEqual(first.context["csrf_token"], second.context["csrf_token"])
        self.assertContains(second, str(second.context["csrf_token"]))


@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
class HttpCachingTests(CacheIsolationMixin, TransactionTestCase):
    """ETags, 304s, whole cached responses and the personal dashboard."""

    def setUp(self):
        super().setUp()
        now = timezone.now()
        self.ada = Author.objects.create(name="Ada Lovelace", email="ada@example.com")
        self.alan = Author.objects.create(name="Alan Turing", email="alan@example.com")
        self.python_cat = Category.objects.create(name="Python", slug="python")
        self.first = Article.objects.create(
            title="First", body="One.", author=self.ada, category=self.python_cat, published_at=now, views=3
        )
        self.second = Article.objects.create(
            title="Second", body="Two.", author=self.alan, published_at=now - timedelta(days=1), views=9
        )
        Comment.objects.create(article=self.first, author_name="Grace", body="Nice one.")
        Comment.objects.create(article=self.second, author_name="Barbara", body="Agreed.")
        self.ada_user = User.objects.create_user("ada", email="ada@example.com", password="pw-ada")
        self.alan_user = User.objects.create_user("alan", email="alan@example.com", password="pw-alan")
        clear_cache()

    def signed_in(self, user):
        client = Client()
        client.force_login(user)
        return client

    def test_list_headers_cached_response_and_304(self):
        first = self.client.get("/")
        self.assertEqual({d.strip() for d in first["Cache-Control"].split(",")}, {"public", "max-age=0", "s-maxage=2"})
        self.assertTrue(first.has_header("ETag"))
        with self.assertNumQueries(0):
            second = self.client.get("/")
        self.assertEqual(second.content, first.content)
        with self.assertNumQueries(0):
            not_modified = self.client.get("/", HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(not_modified.status_code, 304)
        Comment.objects.create(article=self.second, author_name="Edsger", body="Considered.")
        response = self.client.get("/", HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(response.status_code, 200)
        self.assertNotEqual(response["ETag"], first["ETag"])
        self.assertContains(response, "2 comments")

    def test_list_follows_tag_links(self):
        self.client.get("/")
        tag = Tag.objects.create(name="redis", slug="redis")
        self.second.tags.add(tag)
        self.assertContains(self.client.get("/"), 'href="/?tag=redis"')

    def test_detail_304_without_sql_until_the_article_changes(self):
        url = self.first.get_absolute_url()
        first = self.client.get(url)
        # The comment form sets the CSRF cookie: a response that sets a cookie is private.
        self.assertEqual(first["Cache-Control"], "private, no-cache")
        with self.assertNumQueries(0):
            self.assertEqual(self.client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code, 304)
        self.client.post(url, {"author_name": "Linus", "body": "Numbers, please."})
        response = self.client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Numbers, please.")
        self.ada.name = "Ada King"
        self.ada.save()
        renamed = self.client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
        self.assertEqual(renamed.status_code, 200)
        self.assertContains(renamed, "Ada King")

    def test_dashboard_needs_a_login(self):
        response = self.client.get(reverse("blog:dashboard"))
        self.assertRedirects(response, "/login/?next=/dashboard/", fetch_redirect_response=False)
        self.assertEqual(self.client.get("/login/").status_code, 200)
        failed = self.client.post("/login/", {"username": "ada", "password": "wrong"})
        self.assertContains(failed, "Please enter a correct username and password")
        ok = self.client.post("/login/?next=/dashboard/", {"username": "ada", "password": "pw-ada"})
        self.assertRedirects(ok, "/dashboard/", fetch_redirect_response=False)
        elsewhere = Client().post("/login/", {"username": "ada", "password": "pw-ada", "next": "https://evil.example/"})
        self.assertRedirects(elsewhere, "/dashboard/", fetch_redirect_response=False)

    def test_dashboard_is_private_per_user_and_revalidates_without_sql(self):
        ada, alan = self.signed_in(self.ada_user), self.signed_in(self.alan_user)
        for_ada, for_alan = ada.get("/dashboard/"), alan.get("/dashboard/")
        self.assertContains(for_ada, "writing as <a")
        self.assertContains(for_ada, "First")
        self.assertNotContains(for_ada, "Second")
        self.assertContains(for_alan, "Second")
        self.assertNotContains(for_alan, "First")
        for response in (for_ada, for_alan):
            self.assertEqual({d.strip() for d in response["Cache-Control"].split(",")}, {"private", "max-age=0"})
        self.assertNotEqual(for_ada["ETag"], for_alan["ETag"])
        # Alan presenting Ada's ETag gets his own page.
        stolen = alan.get("/dashboard/", HTTP_IF_NONE_MATCH=for_ada["ETag"])
        self.assertEqual(stolen.status_code, 200)
        self.assertContains(stolen, "Alan Turing")
        self.assertNotContains(stolen, "Ada Lovelace")
        # Ada's own revalidation: the session and the author id come from the cache.
        with self.assertNumQueries(0):
            self.assertEqual(ada.get("/dashboard/", HTTP_IF_NONE_MATCH=for_ada["ETag"]).status_code, 304)
        # A comment on Ada's article changes her dashboard.
        Comment.objects.create(article=self.first, author_name="Linus", body="Numbers, please.")
        changed = ada.get("/dashboard/", HTTP_IF_NONE_MATCH=for_ada["ETag"])
        self.assertEqual(changed.status_code, 200)
        self.assertContains(changed, "Numbers, please.")

    def test_signing_out(self):
        ada = self.signed_in(self.ada_user)
        self.assertRedirects(ada.post("/logout/"), "/", fetch_redirect_response=False)
        self.assertEqual(ada.get("/dashboard/").status_code, 302)

    def test_seed_creates_the_demo_user_as_the_first_author(self):
        seed(authors=2, articles=3, comments=1, tags=2, seed=4, reset=True)
        demo = User.objects.get(username="demo")
        self.assertEqual(demo.email, Author.objects.order_by("pk").first().email)
        self.assertTrue(demo.check_password("demo"))
        seed(authors=2, articles=3, comments=1, tags=2, seed=5, reset=True)
        demo.refresh_from_db()
        self.assertEqual(demo.email, Author.objects.order_by("pk").first().email)
