"""The app of the peer comparison's models."""

from __future__ import annotations

from django.apps import AppConfig


class PeerappConfig(AppConfig):
    name = "benchmarks.peers.peerapp"
    label = "peerapp"
    default_auto_field = "django.db.models.BigAutoField"
