"""A cached article and its plain-Django twin, with the same fields in another table.

The twin has no mixin and the stock manager, so its numbers are what Django
does without django-cachekit.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from django_cachekit.models import CachedModelMixin


class BenchAuthor(models.Model):
    name = models.CharField(max_length=100)

    objects: ClassVar[models.Manager[BenchAuthor]] = models.Manager()

    def __str__(self) -> str:
        return self.name


class ArticleFields(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    body = models.TextField()
    author = models.ForeignKey(BenchAuthor, on_delete=models.CASCADE, related_name="+")
    views = models.IntegerField(default=0)
    rating = models.DecimalField(max_digits=4, decimal_places=2)
    published = models.DateTimeField()
    active = models.BooleanField(default=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.title


class BenchArticle(CachedModelMixin, ArticleFields):
    """Read through django-cachekit with ``objects.cache()``."""


class BenchArticlePlain(ArticleFields):
    """The uncached baseline: stock Django, another table."""

    objects: ClassVar[models.Manager[BenchArticlePlain]] = models.Manager()
