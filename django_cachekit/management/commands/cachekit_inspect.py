"""``manage.py cachekit_inspect``: what is cached for an object, or under a key, and whether it is valid."""

from __future__ import annotations

import json
import math
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, models

from django_cachekit.core import codec, keys, protocol
from django_cachekit.management.base import add_cache_argument, using_cache
from django_cachekit.schema import meta


def _short(value: Any, size: int = 70) -> str:
    text = repr(value)
    return text if len(text) <= size else text[: size - 3] + "..."


def _summary(payload: Any) -> str:
    if payload is None:
        return "None"
    if isinstance(payload, (list, tuple, dict, set)):
        return f"{type(payload).__name__} of {len(payload)} item{'s' if len(payload) != 1 else ''}"
    return _short(payload)


class Command(BaseCommand):
    help = (
        "Show what django-cachekit holds for an object (app_label.Model pk) or a key: "
        "its tags with the versions it was stamped with and the current ones, its time to live, "
        "and whether it is still valid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", nargs="?", metavar="app_label.Model")
        parser.add_argument("pk", nargs="?")
        parser.add_argument("--key", help="Inspect this key (as cache_key shows it) instead of an object's entry.")
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="The database alias of the object's entry (default: default)."
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the report as JSON.")
        add_cache_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        key_given: str | None = options["key"]
        label, pk = options["model"], options["pk"]
        if key_given is not None and (label or pk):
            raise CommandError("Give either app_label.Model and a primary key, or --key, not both.")
        if key_given is None and (label is None or pk is None):
            raise CommandError("Give app_label.Model and a primary key (cachekit_inspect blog.Article 42), or --key.")
        if key_given is not None and not key_given.strip():
            raise CommandError(f"--key takes a key, not {key_given!r}.")
        db = options["database"]
        if db not in connections:
            raise CommandError(f"--database {db!r} is not in DATABASES.")
        with using_cache(options["cache"], self.stderr, options["verbosity"]) as alias:
            report = self._report(label, pk, key_given, db, alias)
        if options["as_json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        elif options["verbosity"] >= 1:
            self._print(report)

    def _report(self, label: str | None, pk: str | None, key: str | None, db: str, alias: str) -> dict[str, Any]:
        report: dict[str, Any] = {"cache": alias}
        info = None
        if key is None:
            assert label is not None
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                raise CommandError(f"{label!r} is not an installed model (app_label.Model).") from None
            if not meta.is_cached_model(model):
                raise CommandError(f"{model._meta.label} is not a cached model (it does not use CachedModelMixin).")
            info = meta.info(model)
            try:
                pk_value = info.pk_value(pk)
            except ValidationError:
                raise CommandError(f"{pk!r} is not a valid primary key for {model._meta.label}.") from None
            key = info.object_key(db, pk_value)
            report.update(model=model._meta.label, pk=pk_value, database=db)
        report["key"] = key
        store = protocol.runtime().store
        try:
            raw = store.fetch([key], [])[0][0]
            ttl = store.ttls([key])[0]
        except Exception as exc:  # the cache client's own errors
            raise CommandError(f"The cache {alias!r} could not be read: {type(exc).__name__}: {exc}") from None
        report["present"] = raw is not None
        report["valid"] = False
        if raw is not None:
            report["ttl"] = None if ttl is None else ("never" if math.isinf(ttl) else round(ttl, 3))
            try:
                tags, stamp, payload = codec.decode(key, raw)
            except codec.CorruptEntry as exc:
                report["unreadable"] = str(exc)
            else:
                current = store.fetch([], keys.version_keys(tags))[1]
                report["tags"] = [
                    {"tag": tag, "stamped": s, "current": c, "ok": s == c} for tag, s, c in zip(tags, stamp, current)
                ]
                report["valid"] = all(s == c for s, c in zip(stamp, current)) and len(current) == len(stamp)
                report["value"] = self._describe(info, payload)
                if info is not None:
                    report["database_row"] = self._compare(info, db, report["pk"], payload)
        if info is not None:
            manager: models.Manager[Any] = info.model._base_manager
            report["row_exists"] = manager.using(db).filter(pk=report["pk"]).exists()
            version_tags = info.version_tags(report["pk"])
            found = store.fetch([], keys.version_keys(version_tags))[1]
            report["cache_version_tags"] = dict(zip(version_tags, found))
        return report

    def _describe(self, info: meta.ModelInfo | None, payload: Any) -> Any:
        if info is not None and isinstance(payload, tuple) and len(payload) == len(info.attnames):
            return {name: _short(value) for name, value in zip(info.attnames, payload)}
        if info is not None and payload is None:
            return "the row did not exist (a cached 'does not exist')"
        return _summary(payload)

    def _compare(self, info: meta.ModelInfo, db: str, pk: Any, payload: Any) -> str:
        manager: models.Manager[Any] = info.model._base_manager
        rows = list(manager.using(db).filter(pk=pk).values_list(*info.attnames))
        if not rows:
            return "missing" if payload is not None else "missing, as cached"
        if payload is None:
            return "present, the entry says it did not exist"
        if tuple(rows[0]) == payload:
            return "matches"
        differ = [n for n, a, b in zip(info.attnames, rows[0], payload) if a != b]
        return f"differs ({', '.join(differ)})"

    def _print(self, report: dict[str, Any]) -> None:
        out = self.stdout.write
        if "model" in report:
            out(f"Object:    {report['model']} pk={report['pk']!r} (database {report['database']!r})")
        out(f"Key:       {report['key']}")
        out(f"Cache:     {report['cache']!r}")
        if not report["present"]:
            out("Present:   no (a read is a miss)")
            if report.get("row_exists") is False:
                out(f"Database:  no row with pk={report['pk']!r} in the database {report['database']!r}")
        else:
            ttl = report["ttl"]
            if ttl is None:
                shown = "unknown (the cache cannot tell)"
            elif ttl == "never":
                shown = "no expiry"
            else:
                shown = f"{ttl:.1f} s left"
            out("Present:   yes")
            out(f"TTL:       {shown}")
            if "unreadable" in report:
                out(f"Valid:     no, the entry does not load ({report['unreadable']}); a read treats it as a miss")
            else:
                stale = [t["tag"] for t in report["tags"] if not t["ok"]]
                verdict = "yes: every tag is at the version it was stamped with" if report["valid"] else "no"
                if stale:
                    verdict = f"no: {', '.join(stale)} changed since it was stored (a read is a miss)"
                out(f"Valid:     {verdict}")
                out("Tags:      tag / version stamped / version now")
                for t in report["tags"]:
                    now = "missing" if t["current"] is None else t["current"]
                    out(f"  {t['tag']}  {t['stamped']}  {now}{'' if t['ok'] else '  changed'}")
                value = report["value"]
                if isinstance(value, dict):
                    out("Values:")
                    for name, shown_value in value.items():
                        out(f"  {name} = {shown_value}")
                else:
                    out(f"Value:     {value}")
                if "database_row" in report:
                    out(f"Database:  {report['database_row']}")
        if "cache_version_tags" in report:
            out("cache_version tags (current versions):")
            for tag, version in report["cache_version_tags"].items():
                out(f"  {tag}  {'missing' if version is None else version}")
