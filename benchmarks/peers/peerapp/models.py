"""The example project's blog models (example_project/blog/models.py), field for field.

The example's models inherit django-cachekit's mixin, which the peers'
environments do not have, so they are repeated here on a base chosen by the
process: ``CachedModelMixin`` (with the example's ``CacheMeta``) when
``CACHEKIT_PEERS_LIB=cachekit``, plain ``models.Model`` otherwise. django-cacheops
and django-cachalot configure themselves in settings, not on the models.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.text import slugify

LIB = os.environ.get("CACHEKIT_PEERS_LIB", "none")

if LIB == "cachekit":
    from django_cachekit.models import CachedModelMixin as Base
else:

    class Base(models.Model):  # type: ignore[no-redef]
        class Meta:
            abstract = True


class Author(Base):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    bio = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class Category(Base):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Tag(Base):
    name = models.CharField(max_length=50, unique=True)
    slug = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Article(Base):
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

    class CacheMeta:  # read by django-cachekit only, as in the example project
        tags = ("author:{author_id}", "category:{category_id}")

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.slug:
            self.slug = slugify(self.title)[:200]
        super().save(*args, **kwargs)


class Comment(Base):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    author_name = models.CharField("name", max_length=80)
    body = models.TextField("comment", max_length=5000)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "pk"]

    class CacheMeta:  # read by django-cachekit only, as in the example project
        touch = ("article",)

    def __str__(self) -> str:
        return f"Comment by {self.author_name}"
