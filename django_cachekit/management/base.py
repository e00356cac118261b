"""What the django-cachekit commands share: the ``--cache`` option and labels."""

from __future__ import annotations

import argparse
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


def process_local(alias: str) -> str | None:
    """The dotted name of the backend of the cache ``alias`` when it lives inside this process
    (LocMemCache, DummyCache), else None."""
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.locmem import LocMemCache
    from django.utils.module_loading import import_string

    try:
        backend = import_string(settings.CACHES[alias]["BACKEND"])
    except (ImportError, KeyError, TypeError):
        return None  # Django's own checks say what is wrong
    if isinstance(backend, type) and issubclass(backend, (LocMemCache, DummyCache)):
        return f"{backend.__module__}.{backend.__qualname__}"
    return None


def warn_if_process_local(alias: str, stderr: Any) -> bool:
    """Write to ``stderr`` (a command's ``self.stderr``) that the cache ``alias`` lives inside this
    process, so a command cannot reach the entries of the server's processes; True when it did.

    Every django-cachekit command calls it once the alias is known (``using_cache`` does, given
    ``stderr``); a command of a project's own may call it the same way.
    """
    backend = process_local(alias)
    if backend is None:
        return False
    stderr.write(
        f"Warning: the cache {alias!r} is {backend}, which lives inside this process: this command "
        "cannot read or change the entries of the server's processes, and what it stores is gone when it "
        "exits. Point it at the server's shared cache (Redis or Memcached): --cache ALIAS, or the same "
        "CACHES and CACHEKIT['CACHE_ALIAS'] as the server."
    )
    return True


@contextmanager
def using_cache(alias: str | None, stderr: Any = None, verbosity: int = 1) -> Iterator[str]:
    """Run the block with django-cachekit on the cache ``alias``; given ``stderr`` (and a verbosity
    above 0), warn there first when that cache is process-local (``warn_if_process_local``)."""
    if alias is not None and alias != conf.CACHE_ALIAS and alias not in settings.CACHES:
        raise CommandError(f"--cache {alias!r} is not in CACHES; use one of {', '.join(sorted(settings.CACHES))}.")
    if stderr is not None and verbosity >= 1:
        warn_if_process_local(alias or conf.CACHE_ALIAS, stderr)
    if alias is None or alias == conf.CACHE_ALIAS:
        yield conf.CACHE_ALIAS
        return
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


def positive_int(text: str) -> int:
    """An argparse type: a positive integer, or an error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds, or an error naming the value."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value
