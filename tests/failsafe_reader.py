"""A second process for tests/test_failsafe.py: another Django worker on the same database and cache.

Run as ``python tests/failsafe_reader.py '<json>'`` with ``DJANGO_SETTINGS_MODULE=tests.settings``,
``CK_DB_NAME`` (the test database the parent's pytest-django made) and the
parent's ``CACHEKIT_TEST_*`` environment. The JSON argument holds:

- ``location``: the Redis URL of the cache alias ``"faulty"`` (see tests/faultserver.py);
- ``cachekit``: the ``CACHEKIT`` settings besides ``CACHE_ALIAS``;
- ``mode``: ``"read"`` (read ``pks`` in a loop), ``"update"`` (``QuerySet.update()`` then
  read, in a loop) or ``"save"`` (one save of ``pk`` with ``title``, then exit);
- ``pks``, ``pk``, ``title``, ``stop`` (a file whose existence ends the loop), ``duration`` (a bound).

It prints one JSON line per event, times from ``time.monotonic()`` (system-wide on Linux,
so comparable with the parent's): ``{"kind": "ready"}`` once set up, then per read (a get of
each pk, then the list of them) ``{"kind": "get"|"list", "t0", "t1", "views": {pk: views}, "q": queries}``, per write
``{"kind": "write", "t1", "n"}``, and ``{"kind": "error", "error": ...}`` for an exception
that reached the caller (the loop goes on).
"""

import json
import os
import sys
import time

from django.conf import settings


def configure(options):
    from tests.faultserver import ALIAS, cache_config

    for alias in settings.DATABASES.values():
        alias["NAME"] = os.environ["CK_DB_NAME"]
    settings.CACHES = {**settings.CACHES, ALIAS: cache_config(options["location"])}
    settings.CACHEKIT = {"CACHE_ALIAS": ALIAS, **options.get("cachekit", {})}


def emit(**event):
    print(json.dumps(event), flush=True)


def main():
    options = json.loads(sys.argv[1])
    configure(options)
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.testapp.models import Article

    def timed(kind, read):
        t0 = time.monotonic()
        try:
            with CaptureQueriesContext(connection) as ctx:
                views = read()
        except Exception as exc:
            emit(kind="error", error=f"{kind}: {exc!r}", t0=t0, t1=time.monotonic())
            return
        emit(kind=kind, t0=t0, t1=time.monotonic(), views=views, q=len(ctx.captured_queries))

    pks = options.get("pks", [])

    def read_list():
        return {str(a.pk): a.views for a in Article.objects.cache().filter(pk__in=pks).order_by("pk")}

    mode = options.get("mode", "read")
    if mode == "save":
        article = Article.objects.get(pk=options["pk"])
        article.title = options["title"]
        article.views += 1
        try:
            article.save()
        except Exception as exc:
            emit(kind="error", error=repr(exc))
            sys.exit(3)
        emit(kind="write", t1=time.monotonic(), n=article.views)
        return
    deadline = time.monotonic() + float(options.get("duration", 30))
    stop = options.get("stop")
    n = int(options.get("start", 0))
    ready = False
    while time.monotonic() < deadline and not (stop and os.path.exists(stop)):
        if mode == "update":
            n += 1
            try:
                Article.objects.filter(pk__in=pks).update(views=n)
            except Exception as exc:
                emit(kind="error", error=f"update: {exc!r}")
            else:
                emit(kind="write", t1=time.monotonic(), n=n)
        for pk in pks:
            timed("get", lambda pk=pk: {str(pk): Article.objects.cache().get(pk=pk).views})
        timed("list", read_list)
        if not ready:
            emit(kind="ready")
            ready = True
        time.sleep(float(options.get("pause", 0.01)))
    connection.close()


if __name__ == "__main__":
    main()
