"""``manage.py cachekit_invalidate``: retire cached entries by model, tag or pattern, or all."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cachekit import api
from django_cachekit.core import protocol
from django_cachekit.management.base import add_cache_argument, models_for, using_cache


class Command(BaseCommand):
    help = "Invalidate django-cachekit entries of models or apps, by tag, by key pattern (Redis), or all of them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "labels", nargs="*", metavar="app_label[.Model]", help="Retire every cached query and object of these."
        )
        parser.add_argument("--tag", action="append", default=[], dest="tags", help="Retire entries with this tag.")
        parser.add_argument(
            "--pattern",
            action="append",
            default=[],
            dest="patterns",
            help="Delete entries whose cached(key=...) name or tag name matches this glob (Redis only).",
        )
        parser.add_argument("--all", action="store_true", help="Retire every entry django-cachekit stored.")
        add_cache_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        labels: list[str] = options["labels"]
        verbosity = options["verbosity"]
        tags: list[str] = options["tags"]
        patterns: list[str] = options["patterns"]
        if not (labels or tags or patterns or options["all"]):
            raise CommandError(
                "Say what to invalidate: app labels or app_label.Model, --tag TAG, --pattern GLOB or --all."
            )
        found = [model for label in labels for model in models_for(label)]
        for tag in tags:
            if not tag or any(c.isspace() for c in tag):
                raise CommandError(f"--tag takes a non-empty tag without spaces, not {tag!r}.")
        done: list[str] = []
        with using_cache(options["cache"], self.stderr, options["verbosity"]) as alias:
            if options["all"]:
                api.invalidate_all()
                done.append("every entry")
            for model in dict.fromkeys(found):
                api.invalidate_model(model)
                done.append(model._meta.label)
            if tags:
                api.invalidate_tags(*tags)
                done.extend(f"tag {tag!r}" for tag in tags)
            for pattern in patterns:
                try:
                    matched = api.invalidate_pattern(pattern)
                except api.PatternUnsupported:
                    raise CommandError(
                        f"--pattern needs a Redis cache, and the cache {alias!r} uses "
                        f"{protocol.runtime().store.describe()}; retire its entries with --tag, a model label "
                        "or --all instead."
                    ) from None
                except ValueError as exc:
                    raise CommandError(str(exc)) from None
                except Exception as exc:  # the cache client's own errors
                    raise CommandError(f"The cache {alias!r} failed: {type(exc).__name__}: {exc}") from None
                done.append(f"pattern {pattern!r} ({matched} name{'s' if matched != 1 else ''} retired)")
            if protocol.runtime().lost_invalidations:
                raise CommandError(f"The cache {alias!r} could not be reached: nothing was invalidated.")
        if verbosity >= 1:
            self.stdout.write(f"Invalidated in cache {alias!r}: {', '.join(done)}.")
