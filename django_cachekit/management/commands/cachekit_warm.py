"""``manage.py cachekit_warm``: run the warmers, once or every ``--interval`` seconds."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from django_cachekit.core.settings import conf
from django_cachekit.management.base import add_cache_argument, positive_int, positive_seconds, using_cache
from django_cachekit.warming import warmers


class Command(BaseCommand):
    help = (
        "Fill the cache by running warmers: models' CacheMeta.warm and @warmer functions. "
        "Entries already valid are left alone, so a second run stores nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "labels",
            nargs="*",
            metavar="app_label[.Model]|warmer",
            help="Warmer names, app labels or app_label.Model; every warmer when none is given.",
        )
        parser.add_argument("--tag", action="append", default=[], dest="tags", help="Run the warmers with this tag.")
        parser.add_argument("--dry-run", action="store_true", help="Read everything, store nothing, report the counts.")
        parser.add_argument("--limit", type=positive_int, metavar="N", help="Read at most N rows per queryset.")
        parser.add_argument(
            "--interval",
            type=positive_seconds,
            metavar="SECONDS",
            help="Run again every SECONDS until stopped by SIGTERM or SIGINT.",
        )
        add_cache_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        labels: list[str] = options["labels"]
        self.verbosity: int = options["verbosity"]
        with using_cache(options["cache"], self.stderr, options["verbosity"]) as alias:
            try:
                selected = warmers.select(labels, options["tags"])
            except warmers.UnknownLabel as exc:
                raise CommandError(str(exc)) from None
            if not selected:
                self._say("No warmer is registered: give a model CacheMeta.warm or decorate a function with @warmer.")
                return
            if not conf.ENABLED:
                self.stderr.write("CACHEKIT['ENABLED'] is False: nothing is warmed.")
                return
            runner = warmers.Runner(limit=options["limit"], dry_run=options["dry_run"])
            interval = options["interval"]
            if interval is None:
                if not runner.cache_available():
                    raise CommandError(f"The cache {alias!r} is unavailable; nothing was warmed.")
                failed = self._round(runner, selected, alias, None)
                if failed:
                    raise CommandError(f"{len(failed)} of {len(selected)} warmers failed: {', '.join(failed)}.")
                return
            self._periodic(runner, selected, alias, interval)

    # -- rounds -------------------------------------------------------------

    def _periodic(self, runner: warmers.Runner, selected: list[warmers.Warmer], alias: str, interval: float) -> None:
        stop = threading.Event()
        with _stopped_by_signals(stop) as received:
            rounds = 0
            while not stop.is_set():
                rounds += 1
                started = time.monotonic()
                close_old_connections()
                self._round(runner, selected, alias, rounds, stop)
                if stop.is_set():
                    break
                wait = max(interval - (time.monotonic() - started), 0.0)
                self._say(f"Next round in {wait:.1f} s.")
                stop.wait(wait)
        close_old_connections()
        by = received[0] if received else "request"
        self._say(f"Stopped by {by} after {rounds} round{'s' if rounds != 1 else ''}.")

    def _round(
        self,
        runner: warmers.Runner,
        selected: list[warmers.Warmer],
        alias: str,
        number: int | None,
        stop: threading.Event | None = None,
    ) -> list[str]:
        """Run every warmer once; return the names of those that failed."""
        head = f"Round {number}: " if number is not None else ""
        if number is not None and not runner.cache_available():
            self.stderr.write(f"{head}the cache {alias!r} is unavailable; nothing was warmed.")
            return [w.name for w in selected]
        progress = self.verbosity >= 1 and self.stdout.isatty()
        started = time.perf_counter()
        results: list[warmers.Result] = []
        for index, item in enumerate(selected, 1):
            if stop is not None and stop.is_set():
                break
            if progress:
                self.stdout.write(f"\r\x1b[K[{index}/{len(selected)}] warming {item.name}...", ending="")
                self.stdout.flush()
            result = runner.run(item)
            results.append(result)
            if progress:
                self.stdout.write("\r\x1b[K", ending="")
            self._report(result, runner.dry_run)
        elapsed = time.perf_counter() - started
        failed = [r.warmer.name for r in results if r.error is not None]
        stored = sum(r.stored for r in results)
        fresh = sum(r.fresh for r in results)
        refreshed = sum(r.refreshed for r in results)
        verb = "would store" if runner.dry_run else "stored"
        summary = (
            f"{head}{len(results)} warmer{'s' if len(results) != 1 else ''} in {elapsed:.2f} s: "
            f"{stored} entr{'ies' if stored != 1 else 'y'} {verb}, {fresh} already fresh"
        )
        if refreshed:
            summary += f", {refreshed} {'would be ' if runner.dry_run else ''}refreshed"
        if failed:
            summary += f", {len(failed)} failed"
        self._say(summary + ("." if not runner.dry_run else " (dry run: nothing stored)."))
        return failed

    def _report(self, result: warmers.Result, dry_run: bool) -> None:
        name = result.warmer.name
        if result.error is not None:
            self.stderr.write(f"{name}: failed: {type(result.error).__name__}: {result.error}")
            if self.verbosity >= 2:
                import traceback

                self.stderr.write("".join(traceback.format_exception(result.error)).rstrip())
            return
        line = f"{name}: {result.stored} {'would be stored' if dry_run else 'stored'}, {result.fresh} already fresh"
        if result.refreshed:
            line += f", {result.refreshed} {'would be ' if dry_run else ''}refreshed"
        self._say(f"{line} ({result.seconds:.2f} s)")
        if self.verbosity >= 2:
            self.stdout.write(f"  from {result.warmer.source}")

    def _say(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)
            self.stdout.flush()


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[list[str]]:
    """Set ``stop`` on the first SIGTERM or SIGINT; a second one acts as usual."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()
        for sig, action in previous.items():
            signal.signal(sig, action)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)
