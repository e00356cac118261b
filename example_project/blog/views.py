"""Plain Django views whose reads go through django-cachekit.

Nothing here invalidates anything by hand: saving a comment, editing an article
in the admin or running ``seed_blog --reset`` retires exactly the cached reads
that changed, and the next request reads them again.

HTTP caching, from the decorators of ``django_cachekit.decorators``:

- The article list is public: a shared cache in front (nginx, a CDN) may keep
  it for ``SHARED_MAX_AGE`` seconds, browsers revalidate it every time, and the
  whole response is cached until one of the tables it shows is written.
- An article page carries an ETag derived from the article's cache version
  (its row, tags and comments) and the tables of its author, category and
  tags: revalidating it is a 304 that runs no SQL. It holds a CSRF token, so it
  is never stored by a shared cache.
- The dashboard is personal: ``Cache-Control: private``, an ETag that differs
  per user, and its numbers come from ``cached()`` functions keyed per author.
"""

from django.contrib.auth import SESSION_KEY, get_user_model, login, logout
from django.contrib.auth.forms import AuthenticationForm
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from django_cachekit import cached
from django_cachekit.http.decorators import cache_headers, cache_response, conditional

from .forms import CommentForm
from .models import Article, Author, Category, Comment, Tag
from .stats import author_summary, category_summary, category_totals, site_totals

PAGE_SIZE = 20

# Seconds a shared cache may serve the public list before revalidating it
# ("micro-caching"): a write shows there at most this much later.
SHARED_MAX_AGE = 2

# Everything the list shows: articles, their authors, categories, tag links,
# tags and comment counts.
LIST_DEPENDS_ON = [Article, Author, Category, Tag, Article.tags.through, Comment]


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


@cache_headers(public=True, max_age=0, s_maxage=SHARED_MAX_AGE)
@conditional(depends_on=LIST_DEPENDS_ON)
@cache_response(depends_on=LIST_DEPENDS_ON)
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


@conditional(Article, depends_on=[Author, Category, Tag])
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


# -- the dashboard: personal content, cached safely -------------------------------------


@cached(timeout=600, depends_on=[Author, get_user_model()])
def author_id_for_user(user_id):
    """The author whose email is the user's: the dashboard shows their articles."""
    email = get_user_model().objects.filter(pk=user_id).values_list("email", flat=True).first()
    if not email:
        return None
    return Author.objects.filter(email=email).values_list("pk", flat=True).first()


@cached(timeout=600, tags=lambda author_id: [f"author:{author_id}"], depends_on=[Comment])
def author_articles(author_id):
    return list(
        Article.objects.filter(author_id=author_id)
        .annotate(comment_count=Count("comments"))
        .order_by("-views", "-pk")
        .values("pk", "title", "views", "comment_count")[:10]
    )


@cached(timeout=600, tags=lambda author_id: [f"author:{author_id}"], depends_on=[Comment])
def recent_comments(author_id):
    return list(
        Comment.objects.filter(article__author_id=author_id)
        .order_by("-created_at", "-pk")
        .values("pk", "author_name", "body", "created_at", "article_id", "article__title")[:5]
    )


def dashboard_tags(request):
    # The session names the user: reading it (from the cache, with the cached_db
    # session engine) and the cached author id costs no SQL on a revalidation.
    user_id = request.session.get(SESSION_KEY)
    author_id = author_id_for_user(int(user_id)) if user_id else None
    return [f"author:{author_id}"] if author_id else ["dashboard:no-author"]


# private: only the user's browser may keep it; the ETag differs per user
# (conditional's default per_user=True), so a shared browser never gets a 304
# for someone else's copy.
@cache_headers(private=True, max_age=0)
@conditional(depends_on=[Comment, Author], tags=dashboard_tags)
def dashboard(request):
    if not request.user.is_authenticated:
        return redirect(f"{reverse('blog:login')}?next={reverse('blog:dashboard')}")
    author_id = author_id_for_user(request.user.pk)
    context = {"author": None, "now": timezone.now()}
    if author_id is not None:
        context.update(
            author=Author.objects.cache().get(pk=author_id),
            summary=author_summary(author_id),
            articles=author_articles(author_id),
            comments=recent_comments(author_id),
        )
    return render(request, "blog/dashboard.html", context)


def login_view(request):
    form = AuthenticationForm(request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.get_user())
        target = request.POST.get("next") or request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = reverse("blog:dashboard")
        return redirect(target)
    return render(request, "blog/dashboard.html", {"login_form": form, "next": request.GET.get("next", "")})


@require_POST
def logout_view(request):
    logout(request)
    return redirect("blog:article_list")
