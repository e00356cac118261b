"""The models of django-cachekit: the mixin that makes a model cacheable, and the table of
invalidations a writer could not deliver."""

from __future__ import annotations

from django.db import models

from django_cachekit.orm.managers import CachedManager, CachedQuerySet
from django_cachekit.orm.mixin import CachedModelMixin, cache_versions

__all__ = ["CachedManager", "CachedModelMixin", "CachedQuerySet", "PendingInvalidation", "cache_versions"]


class PendingInvalidation(models.Model):
    """Tags a write could not announce to the cache, waiting to be bumped (see ``outbox``)."""

    id = models.BigAutoField(primary_key=True)
    tags = models.TextField()
    created = models.DateTimeField()

    class Meta:
        db_table = "django_cachekit_pending"
        verbose_name = "pending invalidation"

    def __str__(self) -> str:
        return self.tags.replace("\n", ", ")
