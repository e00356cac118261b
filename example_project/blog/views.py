"""Plain Django views whose reads go through django-cachekit.

Nothing here invalidates anything by hand: saving a comment, editing an article
in the admin or running ``seed_blog --reset`` retires exactly the cached reads
that changed, and the next request reads them again.
"""

from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render

from .forms import CommentForm
from .models import Article, Author, Category, Tag
from .stats import author_summary, category_summary, category_totals, site_totals

PAGE_SIZE = 20


def article_queryset():
    """Articles with what a list shows, every query of it cached.

    The count, the page slice, the joined author and category and the
    prefetched tags are each one cache entry, invalidated when any of the
    tables they read is written.
    """
    return (
        Article.objects.cache()
        .select_related("author", "category")
        .prefetch_related("tags")
        .annotate(comment_count=Count("comments"))
        .order_by("-published_at", "-pk")
    )


def paginate(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def article_list(request):
    articles = article_queryset()
    tag = None
    if request.GET.get("tag"):
        try:
            tag = Tag.objects.cache().get(slug=request.GET["tag"])
        except Tag.DoesNotExist:
            raise Http404("No such tag.") from None
        articles = articles.filter(tags=tag)
    return render(request, "blog/article_list.html", {"page_obj": paginate(request, articles), "tag": tag})


def article_detail(request, pk):
    # A pristine get(pk=...) is served from the article's own cache entry,
    # which a save refreshes (write-through) instead of just deleting.
    try:
        article = Article.objects.cache().get(pk=pk)
    except Article.DoesNotExist:
        raise Http404("No article with this id.") from None

    if request.method == "POST":
        form = CommentForm(request.POST)
        if form.is_valid():
            comment = form.save(commit=False)
            comment.article = article
            comment.save()
            return redirect(comment)
    else:
        form = CommentForm()

    # A foreign key read as article.author would query the database every time:
    # read the related rows from their own object entries and attach them.
    article.author = Author.objects.cache().get(pk=article.author_id)
    if article.category_id is not None:
        article.category = Category.objects.cache().get(pk=article.category_id)
    context = {
        "article": article,
        "tags": list(article.tags.cache()),
        "comments": list(article.comments.cache()),
        "form": form,
    }
    return render(request, "blog/article_detail.html", context)


def author_detail(request, pk):
    try:
        author = Author.objects.cache().get(pk=pk)
    except Author.DoesNotExist:
        raise Http404("No author with this id.") from None
    context = {
        "author": author,
        "summary": author_summary(author.pk),
        "page_obj": paginate(request, article_queryset().filter(author=author)),
    }
    return render(request, "blog/author_detail.html", context)


def category_detail(request, slug):
    # Not a primary key lookup: cached as a query, keyed on its SQL.
    try:
        category = Category.objects.cache().get(slug=slug)
    except Category.DoesNotExist:
        raise Http404("No category with this slug.") from None
    context = {
        "category": category,
        "summary": category_summary(category.pk),
        "page_obj": paginate(request, article_queryset().filter(category=category)),
    }
    return render(request, "blog/category_detail.html", context)


def stats(request):
    return render(request, "blog/stats.html", {"totals": site_totals(), "categories": category_totals()})
