"""What the django-cachekit commands share: the ``--cache`` option and labels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db import models
from django.test.utils import override_settings

from django_cachekit.core.settings import conf


def add_cache_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--cache",
        metavar="ALIAS",
        help="The CACHES alias to work on (default: CACHEKIT['CACHE_ALIAS']).",
    )


@contextmanager
def using_cache(alias: str | None) -> Iterator[str]:
    """Run the block with django-cachekit on the cache ``alias``."""
    if alias is None or alias == conf.CACHE_ALIAS:
        yield conf.CACHE_ALIAS
        return
    if alias not in settings.CACHES:
        raise CommandError(f"--cache {alias!r} is not in CACHES; use one of {', '.join(sorted(settings.CACHES))}.")
    options: Any = getattr(settings, "CACHEKIT", None)
    with override_settings(CACHEKIT={**(options if isinstance(options, dict) else {}), "CACHE_ALIAS": alias}):
        yield alias


def models_for(label: str) -> list[type[models.Model]]:
    """The concrete models named by ``app_label`` or ``app_label.Model``; CommandError for anything else."""
    if label.count(".") == 1:
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            raise CommandError(f"{label!r} is not an installed model (app_label.Model).") from None
        if model._meta.abstract:
            raise CommandError(f"{label!r} is an abstract model.")
        return [model]
    try:
        config = apps.get_app_config(label)
    except LookupError:
        raise CommandError(f"{label!r} is not an installed app label nor an app_label.Model.") from None
    return [m for m in config.get_models() if not m._meta.proxy]
