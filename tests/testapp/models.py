"""Models covering every relation the cache must follow."""

from typing import Any, ClassVar

from django.db import models

from django_cachekit.models import CachedManager, CachedModelMixin, CachedQuerySet


class Author(CachedModelMixin, models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)

    class CacheMeta:
        timeout = 300

    def __str__(self) -> str:
        return self.name


class Category(CachedModelMixin, models.Model):
    name = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")

    def __str__(self) -> str:
        return self.name


class Tag(CachedModelMixin, models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Plain(models.Model):
    """A model without the mixin, joined by cached queries."""

    label = models.CharField(max_length=50)


class Article(CachedModelMixin, models.Model):
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="articles")
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="articles")
    plain = models.ForeignKey(Plain, null=True, blank=True, on_delete=models.SET_DEFAULT, default=None)
    tags = models.ManyToManyField(Tag, blank=True, related_name="articles")
    views = models.IntegerField(default=0)
    rating = models.DecimalField(max_digits=5, decimal_places=2, default=0)
    published = models.DateTimeField(null=True, blank=True)
    extra = models.JSONField(default=dict, blank=True)

    class CacheMeta:
        tags = ("author:{author_id}",)
        # cachekit_warm: the most viewed articles, their query entry and their object entries
        warm = staticmethod(lambda: Article.objects.order_by("-views", "pk")[:100])

    def __str__(self) -> str:
        return self.title


class Comment(CachedModelMixin, models.Model):
    article = models.ForeignKey(Article, on_delete=models.CASCADE, related_name="comments")
    text = models.TextField()
    score = models.IntegerField(default=0)

    class CacheMeta:
        touch = ("article",)


class Reply(CachedModelMixin, models.Model):
    """Touches its comment, which touches its article: a chain of two."""

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="replies")
    text = models.TextField()

    class CacheMeta:
        touch = ("comment",)


class Group(CachedModelMixin, models.Model):
    name = models.CharField(max_length=50)
    members = models.ManyToManyField(Author, through="Membership", related_name="groups")


class Membership(CachedModelMixin, models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    role = models.CharField(max_length=20, default="member")


class Place(CachedModelMixin, models.Model):
    name = models.CharField(max_length=50)


class Restaurant(Place):
    """Multi-table inheritance: a row spans two tables."""

    serves_pizza = models.BooleanField(default=False)


class PublishedManagerArticle(Article):
    class Meta:
        proxy = True


class ArticleQuerySet(CachedQuerySet[Any]):
    """A project's own queryset methods, on a cached queryset (the README's Models section)."""

    def titled(self, prefix: str) -> Any:
        return self.filter(title__startswith=prefix)


class ArticleManager(CachedManager.from_queryset(ArticleQuerySet)):  # type: ignore[misc]
    def popular(self) -> Any:
        return self.get_queryset().filter(views__gte=3)


class CustomManagerArticle(Article):
    objects: ClassVar[Any] = ArticleManager()

    class Meta:
        proxy = True


class Tagged(CachedModelMixin, models.Model):
    """A declared tag on a foreign key that is nulled when its target goes."""

    plain = models.ForeignKey(Plain, null=True, on_delete=models.SET_NULL)

    class CacheMeta:
        tags = ("plain:{plain_id}",)


# -- raw SQL


class ArticleTotals(CachedModelMixin, models.Model):
    """A cached model on a materialized view its test creates (tests/test_rawsql.py)."""

    author_id = models.IntegerField(primary_key=True)
    total = models.IntegerField()

    class Meta:
        managed = False
        db_table = "testapp_articletotals"


class Legacy(CachedModelMixin, models.Model):
    """A cached model on a table Django does not manage; its test creates it."""

    name = models.CharField(max_length=50)

    class Meta:
        managed = False
        db_table = "testapp_legacy"
