"""``manage.py cachekit_stats``: hits, misses and invalidations per model and namespace."""

from __future__ import annotations

import json
import time
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_cachekit.core.settings import conf
from django_cachekit.management.base import add_cache_argument, positive_int, positive_seconds, using_cache
from django_cachekit.metrics import counters, series, totals

SORTS = {
    "lookups": lambda r: (-r["lookups"], r["namespace"]),
    "hits": lambda r: (-r["hit"], r["namespace"]),
    "misses": lambda r: (-(r["miss"] + r["corrupt"] + r["rejected"] + r["stale"]), r["namespace"]),
    "rate": lambda r: (r["hit_rate"] is None, -(r["hit_rate"] or 0), r["namespace"]),
    "invalidations": lambda r: (-r["invalidation"], r["namespace"]),
    "name": lambda r: (r["namespace"],),
}
SORT_HELP = (
    "Order of the rows: lookups (most first, the default), hits (most first), misses (most misses, stale "
    "and unreadable entries first), rate (highest hit rate first), invalidations (most first) or name."
)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def per_second(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


class Command(BaseCommand):
    help = (
        "Show the cache's hits, misses, hit rate, stale entries, invalidations and largest entries "
        "per model and namespace, added up over every process (CACHEKIT['METRICS'])."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "labels",
            nargs="*",
            metavar="app_label[.Model]|namespace",
            help="Show only these models, apps or namespaces (a @cached function's dotted name).",
        )
        parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
        parser.add_argument("--reset", action="store_true", help="Clear the totals after printing them.")
        parser.add_argument("--sort", choices=sorted(SORTS), default="lookups", help=SORT_HELP)
        parser.add_argument(
            "--watch",
            action="store_true",
            help="Print a line every --interval seconds: each namespace's hit rate and lookups per second "
            "over that interval (with --json, one JSON object per line), until Ctrl-C or --count lines.",
        )
        parser.add_argument(
            "--interval",
            type=positive_seconds,
            metavar="SECONDS",
            help="With --watch, the seconds between lines (default: CACHEKIT['METRICS_FLUSH_INTERVAL'], how often "
            "each process adds its counts to the totals; shorter intervals show other processes' counts in bursts).",
        )
        parser.add_argument(
            "--count",
            type=positive_int,
            metavar="N",
            help="With --watch, stop after N lines (default: until Ctrl-C).",
        )
        add_cache_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["watch"] and options["reset"]:
            raise CommandError("--reset cannot be combined with --watch.")
        if not options["watch"] and options["count"] is not None:
            raise CommandError("--count is for --watch: without it the totals are printed once.")
        with using_cache(options["cache"], self.stderr, options["verbosity"]):
            if options["watch"]:
                self._watch(options)
            else:
                self._once(options)

    def _collect(self) -> totals.Report:
        try:
            return totals.collect()
        except Exception as exc:  # the cache client's own error
            raise CommandError(
                f"Could not read the metrics from the cache {conf.CACHE_ALIAS!r}: {type(exc).__name__}: {exc}"
            ) from exc

    def _once(self, options: dict[str, Any]) -> None:
        report = self._collect()
        rows = self._select(report, options["labels"])
        rows.sort(key=SORTS[options["sort"]])
        if options["json"]:
            self._print_json(report, rows, options["reset"])
        else:
            self._print_table(report, rows, options["verbosity"])
        if options["reset"]:
            try:
                totals.reset()
            except Exception as exc:
                raise CommandError(f"Could not reset the metrics in the cache {conf.CACHE_ALIAS!r}: {exc}") from exc
            if not options["json"] and options["verbosity"] > 0:
                self.stdout.write("The totals were reset.")

    def _watch(self, options: dict[str, Any]) -> None:
        labels: list[str] = options["labels"]
        interval_seconds: float = options["interval"] or conf.METRICS_FLUSH_INTERVAL
        if conf.METRICS and interval_seconds < conf.METRICS_FLUSH_INTERVAL and options["verbosity"] > 0:
            self.stderr.write(
                f"Other processes add their counts every {conf.METRICS_FLUSH_INTERVAL:g} s "
                "(CACHEKIT['METRICS_FLUSH_INTERVAL']): lines this short show them in bursts."
            )
        report = self._collect()
        self._select(report, labels)  # an unknown label is an error before the first interval
        before = series.read(report)
        printed = 0

        def wanted(namespace: str) -> bool:
            return not labels or any(matches(namespace, label) for label in labels)

        try:
            while options["count"] is None or printed < options["count"]:
                sleep(interval_seconds)
                printed += 1
                try:
                    after = series.read(totals.collect())
                except Exception as exc:  # the cache is down for a while: say so, keep watching
                    clock = time.strftime("%H:%M:%S")
                    self.stderr.write(f"{clock}  could not read the metrics from the cache {conf.CACHE_ALIAS!r}: {exc}")
                    continue
                interval = series.rates(before, after, wanted)
                rows: list[dict[str, Any]] = interval["namespaces"]
                rows.sort(key=SORTS[options["sort"]])
                if options["json"]:
                    self.stdout.write(json.dumps({"cache": conf.CACHE_ALIAS, **interval}))
                else:
                    self.stdout.write(self._watch_line(interval))
                self.stdout.flush()
                before = after
        except KeyboardInterrupt:
            return

    def _watch_line(self, interval: dict[str, Any]) -> str:
        """``12:00:02  total 83.3% of 12 (6.0/s)  |  blog.article 80.0% of 10 (5.0/s)  |  ...``"""
        clock = time.strftime("%H:%M:%S", time.localtime(interval["at"]))

        def cell(name: str, r: dict[str, Any]) -> str:
            return f"{name} {rate(r['hit_rate'])} of {r['lookups']} ({per_second(r['lookups_per_second'])})"

        looked_up = [r for r in interval["namespaces"] if r["lookups"]]
        if not looked_up:
            return f"{clock}  no lookups"
        return "  |  ".join(
            [f"{clock}  {cell('total', interval['total'])}"] + [cell(r["namespace"], r) for r in looked_up]
        )

    def _select(self, report: totals.Report, labels: list[str]) -> list[dict[str, Any]]:
        rows = report.rows()
        if not labels:
            return rows
        chosen: dict[str, dict[str, Any]] = {}
        for label in labels:
            found = [r for r in rows if matches(r["namespace"], label)]
            if not found:
                found = self._empty_rows(label)
            for row in found:
                chosen[row["namespace"]] = row
        return list(chosen.values())

    def _empty_rows(self, label: str) -> list[dict[str, Any]]:
        """Zero rows for an installed model or app without metrics; CommandError for anything else."""
        try:
            if label.count(".") == 1:
                names = [apps.get_model(label)._meta.label_lower]
            else:
                names = [m._meta.label_lower for m in apps.get_app_config(label).get_models()]
        except (LookupError, ValueError):
            raise CommandError(
                f"{label!r} is neither an installed model or app nor a namespace with metrics."
            ) from None
        return totals.Report({n: dict.fromkeys(counters.EVENTS, 0) for n in names}, {}, shared=False).rows()

    def _print_json(self, report: totals.Report, rows: list[dict[str, Any]], reset: bool) -> None:
        total = {event: sum(r[event] for r in rows) for event in counters.EVENTS}
        data = {
            "cache": conf.CACHE_ALIAS,
            "shared": report.shared,
            "namespaces": rows,
            "total": {**total, "hit_rate": totals.hit_rate(total)},
            "reset": reset,
        }
        self.stdout.write(json.dumps(data, indent=2))

    def _print_table(self, report: totals.Report, rows: list[dict[str, Any]], verbosity: int) -> None:
        out = self.stdout.write
        if verbosity > 0:
            if report.shared:
                out(f"Cache metrics of every process (totals in the cache {conf.CACHE_ALIAS!r})")
            else:
                out("Cache metrics of this process only (CACHEKIT['METRICS'] is False)")
            out("")
        if not rows:
            out("Nothing counted yet.")
            return
        header = ("namespace", "kind", "hits", "misses", "stale", "hit rate", "invalidations", "stores", "largest")
        table = [header]
        for r in rows:
            largest = r["biggest"][0]["bytes"] if r["biggest"] else None
            table.append(
                (
                    r["namespace"],
                    r["kind"],
                    str(r["hit"]),
                    str(r["miss"] + r["corrupt"] + r["rejected"]),
                    str(r["stale"]),
                    rate(r["hit_rate"]),
                    str(r["invalidation"]),
                    str(r["store"]),
                    "-" if largest is None else size(largest),
                )
            )
        total = {event: sum(r[event] for r in rows) for event in counters.EVENTS}
        table.append(
            (
                "total",
                "",
                str(total["hit"]),
                str(total["miss"] + total["corrupt"] + total["rejected"]),
                str(total["stale"]),
                rate(totals.hit_rate(total)),
                str(total["invalidation"]),
                str(total["store"]),
                "",
            )
        )
        widths = [max(len(line[i]) for line in table) for i in range(len(header))]
        for n, line in enumerate(table):
            cells = [cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))]
            out("  ".join(cells).rstrip())
            if n == 0 or n == len(table) - 2:
                out("  ".join("-" * w for w in widths))
        notes = []
        if total["bypass"]:
            notes.append(f"{total['bypass']} reads bypassed the cache (cache unavailable, or tables no model owns)")
        if total["error"]:
            notes.append(f"{total['error']} cache errors")
        for note in notes:
            out(f"Also: {note}.")
        biggest = [(b["bytes"], r["namespace"], b["key"]) for r in rows for b in r["biggest"][:3]]
        if biggest and verbosity > 0:
            out("")
            out("Largest entries stored")
            width = max(len(ns) for _, ns, _ in biggest)
            for n, ns, key in sorted(biggest, reverse=True)[:10]:
                out(f"  {ns.ljust(width)}  {size(n).rjust(10)}  {key}")


def matches(namespace: str, label: str) -> bool:
    """Whether ``label`` (a namespace, an app, a model, a module) names ``namespace``."""
    wanted = label.lower()
    namespace = namespace.lower()
    # A view's namespace is "view:<dotted name>": its app's label or module names it too.
    names = (namespace, namespace.removeprefix("view:"))
    return any(n == wanted or n.startswith(f"{wanted}.") for n in names)


sleep = time.sleep  # replaced by tests that make traffic between readings
