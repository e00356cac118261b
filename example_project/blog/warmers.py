"""What ``manage.py cachekit_warm`` loads besides ``Article.CacheMeta.warm``.

django-cachekit imports each app's ``warmers`` module by itself. A warmer
returns querysets or instances to load through the cache, or fills the cache by
calling cached functions and returns None. Entries still valid are left alone,
so running it every few minutes (cron, a systemd timer, ``--interval``) costs
little more than one cache round trip per entry.
"""

from django.core.paginator import Paginator

from django_cachekit import warmer

from .models import Category
from .stats import category_summary, category_totals, site_totals
from .views import PAGE_SIZE, article_queryset


@warmer("front-page", tags=["pages"], refresh_ahead=0.25)
def front_page():
    # Read as the view reads it: the paginator's count, then page 1's slice.
    page = Paginator(article_queryset(), PAGE_SIZE).page(1)
    return page.object_list


@warmer("categories", tags=["pages"])
def categories():
    found = list(Category.objects.cache().order_by("name"))
    for category in found:
        Category.objects.cache().get(slug=category.slug)  # the category page's lookup
        category_summary(category.pk)
    return found  # and each category's own entry, read by the article page


@warmer("stats", tags=["pages"])
def stats():
    site_totals()
    category_totals()
