"""What the HTTP test modules share: the middleware, the settings, a clock and a signed-in client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client

from django_cachekit.http import responses as httpcache

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]


def use_http_settings(settings, urlconf: str, renders: dict, middleware: list[str] = MIDDLEWARE) -> Iterator[None]:
    """Body of a module's autouse fixture: its URLconf, the middleware, and ``renders`` emptied around the test."""
    settings.ROOT_URLCONF = urlconf
    settings.MIDDLEWARE = middleware
    # Sessions in signed cookies: no table, and the session survives a cache failure.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    renders.clear()
    yield
    renders.clear()


@pytest.fixture
def clock(monkeypatch):
    """Control the time conditional() reads versions at (Last-Modified is whole seconds)."""
    state = {"now": 1_700_000_000.25}
    monkeypatch.setattr(httpcache, "now", lambda: state["now"])
    return state


def login(username: str) -> Client:
    """A client signed in as a new user named ``username``."""
    client = Client()
    client.force_login(User.objects.create_user(username, password="x"))
    return client
