"""The database alias a cached read is computed on and keyed by.

An entry is stamped with versions read before its query ran, which holds only
if the database is at least as new as those versions. A replica that has not
yet replayed a commit breaks that: it would store the old row under the new
versions, served until the next write. So a cached read on a replica computes
its misses on the primary and keys its entries on the primary's alias, where
replica-routed and primary-routed reads share them.

An alias is a replica when ``CACHEKIT["REPLICAS"]`` maps it to its primary, or
when the routers read a model from another alias than they write it to and the
queryset did not choose its alias with ``using()``: the write alias is then the
primary.
"""

from __future__ import annotations

from typing import Any

from django.db import models, router

from django_cachekit.core.settings import conf


def primary(model: type[models.Model], db: str, explicit: bool, hints: dict[str, Any]) -> str:
    """The alias whose data a cached read of ``model`` on ``db`` must be computed from."""
    replicas = conf.REPLICAS
    if replicas:
        found = replicas.get(db)
        if found is not None:
            return found
    if explicit or not router.routers:
        return db
    # ``db`` is the router's read alias here: its write alias holds the newest data.
    return router.db_for_write(model, **hints)


def of_instance(obj: models.Model) -> str:
    """The alias that keys ``obj``'s object entry."""
    model = type(obj)
    db = obj._state.db
    routed = router.db_for_read(model, instance=obj)
    if db is None:
        db = routed
    return primary(model, db, db != routed, {"instance": obj})
