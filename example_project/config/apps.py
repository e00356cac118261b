"""The project's own app: at ``runserver`` start-up it says which cache django-cachekit uses."""

import sys
import urllib.parse

from django.apps import AppConfig
from django.conf import settings

from django_cachekit.core.settings import conf
from django_cachekit.management.base import process_local


def _location(location: object) -> str:
    """The cache's LOCATION without a password."""
    text = str(location)
    parts = urllib.parse.urlsplit(text)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        text = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return text


def cache_line(alias: str | None = None) -> str:
    """One line naming the cache django-cachekit uses, and what a process-local one means."""
    alias = alias or conf.CACHE_ALIAS
    backend = settings.CACHES[alias]["BACKEND"]
    if process_local(alias):
        return (
            f"django-cachekit: cache {alias!r} is {backend}, inside this server process only: management "
            "commands (cachekit_warm, cachekit_stats, ...) cannot reach it. Set REDIS_URL to share one cache."
        )
    location = settings.CACHES[alias].get("LOCATION", "")
    return f"django-cachekit: cache {alias!r} is {backend} at {_location(location)}."


class ExampleConfig(AppConfig):
    name = "config"
    label = "example_config"
    verbose_name = "Example project"

    def ready(self) -> None:
        # runserver with the autoreloader sets the project up twice: speak in the serving child only.
        from os import environ

        if sys.argv[1:2] == ["runserver"] and (environ.get("RUN_MAIN") == "true" or "--noreload" in sys.argv):
            sys.stdout.write(cache_line() + "\n")
