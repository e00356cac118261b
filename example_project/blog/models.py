"""A small blog whose every model is cached by django-cachekit.

``CachedModelMixin`` gives each model ``objects = CachedManager()``: reads go
through the cache only when asked (``Model.objects.cache()``), and every write,
whatever way it reaches the database, invalidates what it changed.
"""

from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from django_cachekit.models import CachedModelMixin


class Author(CachedModelMixin, models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    bio = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("blog:author_detail", args=[self.pk])


class Category(CachedModelMixin, models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("blog:category_detail", args=[self.slug])


class Tag(CachedModelMixin, models.Model):
    name = models.CharField(max_length=50, unique=True)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("blog:article_list") + f"?tag={self.slug}"


class Article(CachedModelMixin, models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, blank=True)
    body = models.TextField()
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles")
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    published_at = models.DateTimeField(default=timezone.now, db_index=True)
    views = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-published_at", "-pk"]

    class CacheMeta:
        # A change to an article also bumps these tags, with its old and new
        # values: cached functions tagged "author:7" (see blog/stats.py) are
        # invalidated by the articles of author 7 only.
        tags = ("author:{author_id}", "category:{category_id}")
        # ``manage.py cachekit_warm`` loads the 100 most read articles' entries
        # (see blog/warmers.py for the pages' warmers).
        warm = staticmethod(lambda: Article.objects.order_by("-views", "-pk")[:100])

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        if not self.slug:
            self.slug = slugify(self.title)[:200]
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("blog:article_detail", args=[self.pk])


class Comment(CachedModelMixin, models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    author_name = models.CharField("name", max_length=80)
    body = models.TextField("comment", max_length=5000)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]

    class CacheMeta:
        # A new comment changes its article's cache_version (fragment caches
        # keyed on it are retired), not the article's cached row.
        touch = ("article",)

    def __str__(self) -> str:
        return f"Comment by {self.author_name}"

    def get_absolute_url(self) -> str:
        return reverse("blog:article_detail", args=[self.article_id]) + f"#comment-{self.pk}"
