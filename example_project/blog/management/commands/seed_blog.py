"""``manage.py seed_blog``: fill the blog with realistic data, fast.

Idempotent: when any blog data exists it adds nothing unless ``--reset`` is
given. Everything is written with ``bulk_create`` (the tags too, through the
m2m table) in one transaction, so django-cachekit invalidates each table once,
at commit.
"""

import random
import time
from datetime import timedelta

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from blog import seed_data
from blog.models import Article, Author, Category, Comment, Tag

BATCH_SIZE = 500
DEMO_USERNAME = DEMO_PASSWORD = "demo"  # for the example's dashboard only
MAX_TAGS_PER_ARTICLE = 4
HISTORY_DAYS = 730


class Command(BaseCommand):
    help = "Fill the blog with generated authors, categories, tags, articles and comments."

    def add_arguments(self, parser):
        parser.add_argument("--authors", type=int, default=20, help="Authors to create (default 20).")
        parser.add_argument("--articles", type=int, default=500, help="Articles to create (default 500).")
        parser.add_argument(
            "--comments", type=int, default=8, help="Most comments per article; each gets 0 to N (default 8)."
        )
        parser.add_argument("--tags", type=int, default=30, help="Tags to create (default 30).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed, for the same data on every run.")
        parser.add_argument("--reset", action="store_true", help="Delete all blog data first.")

    def handle(self, *args, **options):
        counts = {name: options[name] for name in ("authors", "articles", "comments", "tags")}
        for name, value in counts.items():
            if value < 0:
                raise CommandError(f"--{name} must be zero or more, not {value}.")
        if counts["articles"] and not counts["authors"]:
            raise CommandError(f"--articles {counts['articles']} needs at least one author, not --authors 0.")
        self.verbosity = options["verbosity"]
        rng = random.Random(options["seed"])
        started = time.monotonic()

        with transaction.atomic():
            if options["reset"]:
                self.reset()
            elif self.has_data():
                self.say(
                    "The blog already has data; nothing added. Use --reset to replace it.", style=self.style.WARNING
                )
                self.ensure_demo_user()
                return
            created = self.seed(rng, **counts)
            self.ensure_demo_user()

        summary = ", ".join(f"{n} {name}" for name, n in created.items())
        self.say(f"Created {summary} in {time.monotonic() - started:.1f}s.", style=self.style.SUCCESS)

    def say(self, message, level=1, style=None):
        if self.verbosity >= level:
            self.stdout.write(style(message) if style else message)

    def ensure_demo_user(self):
        """A ``demo``/``demo`` account for the dashboard, with the first author's email."""
        email = Author.objects.order_by("pk").values_list("email", flat=True).first() or ""
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            User.objects.create_user(DEMO_USERNAME, email=email, password=DEMO_PASSWORD)
            self.say(f"Created the user {DEMO_USERNAME!r} (password {DEMO_PASSWORD!r}).", level=2)
        elif user.email != email:
            user.email = email
            user.save(update_fields=["email"])

    def has_data(self):
        return any(model.objects.exists() for model in (Author, Category, Tag, Article, Comment))

    def reset(self):
        # Children first: fewer rows for the deletion collector to walk.
        for model in (Comment, Article, Tag, Category, Author):
            deleted, _ = model.objects.all().delete()
            self.say(f"Deleted {model._meta.verbose_name_plural}: {deleted} rows.", level=2)

    def seed(self, rng, authors, articles, comments, tags):
        now = timezone.now().replace(microsecond=0)

        author_objs = Author.objects.bulk_create(
            [
                Author(name=name, email=email, bio=seed_data.bio(rng))
                for name, email in seed_data.person_names(rng, authors)
            ],
            batch_size=BATCH_SIZE,
        )
        self.say(f"Created {len(author_objs)} authors.", level=2)

        category_objs = Category.objects.bulk_create(
            [Category(name=name, slug=slugify(name)) for name in seed_data.CATEGORIES]
        )
        self.say(f"Created {len(category_objs)} categories.", level=2)

        tag_objs = Tag.objects.bulk_create(
            [Tag(name=name, slug=slugify(name)) for name in seed_data.tag_names(rng, tags)], batch_size=BATCH_SIZE
        )
        self.say(f"Created {len(tag_objs)} tags.", level=2)

        article_objs = []
        for _ in range(articles):
            title = seed_data.title(rng)
            article_objs.append(
                Article(
                    title=title,
                    slug=slugify(title)[:200],
                    body=seed_data.paragraphs(rng),
                    author=rng.choice(author_objs),
                    # One article in ten has no category.
                    category=rng.choice(category_objs) if rng.random() > 0.1 else None,
                    published_at=now - timedelta(seconds=rng.randint(3600, HISTORY_DAYS * 86400)),
                    views=min(int(rng.paretovariate(1.3) * 40), 100_000),
                )
            )
        article_objs = Article.objects.bulk_create(article_objs, batch_size=BATCH_SIZE)
        self._ensure_pks(Article, article_objs)
        self.say(f"Created {len(article_objs)} articles.", level=2)

        through = Article.tags.through
        links = []
        if tag_objs:
            self._ensure_pks(Tag, tag_objs)
            for article in article_objs:
                for tag in rng.sample(tag_objs, rng.randint(0, min(MAX_TAGS_PER_ARTICLE, len(tag_objs)))):
                    links.append(through(article_id=article.pk, tag_id=tag.pk))
        through.objects.bulk_create(links, batch_size=BATCH_SIZE)
        self.say(f"Tagged articles with {len(links)} links.", level=2)

        comment_objs = []
        for article in article_objs:
            age = max(int((now - article.published_at).total_seconds()), 60)
            for _ in range(rng.randint(0, comments)):
                name, _email = next(seed_data.person_names(rng, 1))
                comment_objs.append(
                    Comment(
                        article_id=article.pk,
                        author_name=name.split()[0] if rng.random() < 0.3 else name,
                        body=seed_data.comment(rng),
                        created_at=article.published_at + timedelta(seconds=rng.randint(60, age)),
                    )
                )
        Comment.objects.bulk_create(comment_objs, batch_size=BATCH_SIZE)
        self.say(f"Created {len(comment_objs)} comments.", level=2)

        return {
            "authors": len(author_objs),
            "categories": len(category_objs),
            "tags": len(tag_objs),
            "articles": len(article_objs),
            "tag links": len(links),
            "comments": len(comment_objs),
        }

    def _ensure_pks(self, model, objs):
        """Give ``objs`` their primary keys when the database did not return them.

        The tables were empty before this transaction, so the new rows are the
        only ones, in insertion order.
        """
        if all(obj.pk is not None for obj in objs):
            return
        pks = list(model.objects.order_by("pk").values_list("pk", flat=True))
        if len(pks) != len(objs):
            raise CommandError(f"Could not read back the primary keys of the new {model._meta.verbose_name_plural}.")
        for obj, pk in zip(objs, pks, strict=True):
            obj.pk = pk
