"""Numbers computed by a few queries and cached as a whole with ``@cached``.

Each function says what its result depends on, and django-cachekit retires the
cached result when that changes:

- ``depends_on=[Model, ...]``: any write to those models' tables.
- ``tags=...``: tags bumped by name, here the ``author:{author_id}`` and
  ``category:{category_id}`` tags that ``Article.CacheMeta.tags`` declares, so
  an author's summary is recomputed when one of *their* articles changes, not
  when anyone's does.

``computed_at`` is part of each result: the page shows when the numbers were
really computed, which makes the caching visible.
"""

from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from django_cachekit import cached

from .models import Article, Author, Category, Comment


@cached(timeout=300, depends_on=[Article, Comment, Author])
def site_totals() -> dict:
    articles = Article.objects.aggregate(
        count=Count("pk"), views=Sum("views"), first=Min("published_at"), last=Max("published_at")
    )
    comments = Comment.objects.count()
    top_authors = list(
        Author.objects.annotate(article_count=Count("articles"), total_views=Sum("articles__views"))
        .filter(article_count__gt=0)
        .order_by("-article_count", "-total_views", "name")
        .values("pk", "name", "article_count", "total_views")[:5]
    )
    return {
        "articles": articles["count"],
        "comments": comments,
        "authors": Author.objects.count(),
        "views": articles["views"] or 0,
        "first_published": articles["first"],
        "last_published": articles["last"],
        "comments_per_article": round(comments / articles["count"], 2) if articles["count"] else 0,
        "top_authors": top_authors,
        "computed_at": timezone.now(),
    }


@cached(timeout=300, depends_on=[Category, Article])
def category_totals() -> dict:
    categories = list(
        Category.objects.annotate(article_count=Count("articles"))
        .order_by("-article_count", "name")
        .values("name", "slug", "article_count")
    )
    return {
        "categories": categories,
        "uncategorized": Article.objects.filter(category__isnull=True).count(),
        "computed_at": timezone.now(),
    }


# Comments are not tagged by author, so any comment write retires these too.
@cached(timeout=600, tags=lambda author_id: [f"author:{author_id}"], depends_on=[Comment])
def author_summary(author_id: int) -> dict:
    articles = Article.objects.filter(author_id=author_id).aggregate(
        count=Count("pk"), views=Sum("views"), first=Min("published_at"), last=Max("published_at")
    )
    return {
        "articles": articles["count"],
        "views": articles["views"] or 0,
        "first_published": articles["first"],
        "last_published": articles["last"],
        "comments": Comment.objects.filter(article__author_id=author_id).count(),
        "computed_at": timezone.now(),
    }


@cached(timeout=600, tags=lambda category_id: [f"category:{category_id}"])
def category_summary(category_id: int) -> dict:
    articles = Article.objects.filter(category_id=category_id).aggregate(
        count=Count("pk"), views=Sum("views"), authors=Count("author", distinct=True), last=Max("published_at")
    )
    return {
        "articles": articles["count"],
        "views": articles["views"] or 0,
        "authors": articles["authors"],
        "last_published": articles["last"],
        "computed_at": timezone.now(),
    }
