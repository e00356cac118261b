"""Merging the workers' results, the tables, the ratios and the targets (standard library only)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from benchmarks.peers import common

OURS = "cachekit"
READ_KINDS = ("detail", "comments", "article_tags", "category_page", "tag_page", "front_page")


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


# -- merging passes -----------------------------------------------------------------


def merge_core(passes: list[dict[str, Any]]) -> dict[str, Any]:
    """One library on one database: the samples of every pass together."""
    ops: dict[str, Any] = {}
    for key in common.OP_LABELS:
        runs = [p["operations"][key] for p in passes if key in p.get("operations", {})]
        failed = next((r["failed"] for r in runs if r.get("failed")), None)
        merged: dict[str, Any] = {"failed": failed, "iterations": 0}
        verification = [r["verification_queries"] for r in runs if "verification_queries" in r]
        if verification:
            merged["verification_queries"] = max(verification)
        if not runs:
            merged["failed"] = "not run"
        if failed or not runs:
            ops[key] = merged
            continue
        samples = sorted(s for r in runs for s in r["samples_ns"])
        merged.update(
            iterations=len(samples),
            median_us=statistics.median(samples) / 1000,
            p99_us=percentile(samples, 0.99) / 1000,
            queries_per_op=sum(r["queries_per_op"] * r["iterations"] for r in runs) / len(samples),
            zero_query_ops=sum(r["zero_query_ops"] for r in runs),
        )
        ops[key] = merged
    first = passes[0]
    return {k: v for k, v in first.items() if k != "operations"} | {"passes": len(passes), "operations": ops}


def merge_mixed(passes: list[dict[str, Any]]) -> dict[str, Any]:
    counts = ("ops", "reads", "writes", "hits", "queries", "stale", "errors")
    out: dict[str, Any] = {key: sum(p[key] for p in passes) for key in counts}
    out["seconds"] = sum(p["seconds"] for p in passes)
    out["cpu_seconds"] = sum(p.get("cpu_seconds", 0.0) for p in passes)
    out["threads"] = passes[0]["threads"]
    out["rows"] = passes[0]["rows"]
    out["passes"] = len(passes)
    out["stale_examples"] = [e for p in passes for e in p.get("stale_examples", [])][:5]
    out["error_examples"] = [e for p in passes for e in p.get("error_examples", [])][:5]
    out["by_kind"] = {}
    for p in passes:
        for kind, stats in p.get("by_kind", {}).items():
            into = out["by_kind"].setdefault(kind, {"count": 0, "hits": 0, "wall_ns": 0, "cpu_ns": 0})
            for name in into:
                into[name] += stats.get(name, 0)
    seconds = out["seconds"] or 1.0
    out["throughput"] = out["ops"] / seconds
    out["queries_per_second"] = out["queries"] / seconds
    out["hit_rate"] = out["hits"] / out["reads"] if out["reads"] else None
    out["cpu_us_per_op"] = 1e6 * out["cpu_seconds"] / out["ops"] if out["ops"] else None
    return out


# -- formatting ----------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def median_of(core: dict[str, Any], lib: str, op: str) -> float | None:
    result = core.get(lib, {}).get("operations", {}).get(op)
    return None if not result or result.get("failed") else result.get("median_us")


def hit_state(result: dict[str, Any] | None, lib: str) -> str:
    """hit / miss from the verification's captured SQL and the timed calls that ran none."""
    if result is None:
        return "not run"
    if result.get("failed"):
        return "FAILED"
    timed_hits = result.get("zero_query_ops", 0)
    total = result.get("iterations", 0)
    captured = result.get("verification_queries")
    if lib == "none":
        return "miss"
    if captured == 0 and timed_hits == total:
        return "hit"
    if timed_hits == 0:
        return "miss"
    return f"{timed_hits}/{total} hits"


def print_core(db: str, core: dict[str, Any], libs: Sequence[str]) -> None:
    calls = max((r.get("iterations", 0) for lib in core.values() for r in lib["operations"].values()), default=0)
    passes = max((lib.get("passes", 1) for lib in core.values()), default=1)
    print(
        f"\n== {common.DB_LABELS[db]}: median µs (p99 µs), {calls:,} timed calls per operation and library "
        f"in {passes} pass{'es' if passes > 1 else ''}"
    )
    width = 18
    print(f"{'operation':<40}" + "".join(f"{common.LIB_LABELS[lib]:>{width}}" for lib in libs))
    for op, label in common.OP_LABELS.items():
        cells = []
        for lib in libs:
            result = core.get(lib, {}).get("operations", {}).get(op)
            if result is None:
                cells.append("not run")
            elif result.get("failed"):
                cells.append("FAILED")
            else:
                cells.append(f"{result['median_us']:.0f} ({result['p99_us']:.0f})")
        print(f"{label:<40}" + "".join(f"{c:>{width}}" for c in cells))
    print(f"\n{'served without SQL (hit) or not':<40}" + "".join(f"{common.LIB_LABELS[lib]:>{width}}" for lib in libs))
    for op, label in common.OP_LABELS.items():
        if op == "save":
            continue
        cells = [hit_state(core.get(lib, {}).get("operations", {}).get(op), lib) for lib in libs]
        print(f"{label:<40}" + "".join(f"{c:>{width}}" for c in cells))
    print(f"\n{'SQL statements per call':<40}" + "".join(f"{common.LIB_LABELS[lib]:>{width}}" for lib in libs))
    for op, label in common.OP_LABELS.items():
        cells = []
        for lib in libs:
            result = core.get(lib, {}).get("operations", {}).get(op)
            ok = result and not result.get("failed")
            cells.append(f"{result['queries_per_op']:.2f}" if ok else "n/a")
        print(f"{label:<40}" + "".join(f"{c:>{width}}" for c in cells))
    others = [lib for lib in libs if lib != OURS]
    if OURS not in libs or not others:
        return
    print(
        f"\n{'ratio of medians, cachekit / ...':<40}" + "".join(f"{common.LIB_LABELS[lib]:>{width}}" for lib in others)
    )
    for op, label in common.OP_LABELS.items():
        ours = median_of(core, OURS, op)
        cells = []
        for lib in others:
            theirs = median_of(core, lib, op)
            cells.append(f"{ours / theirs:.2f}" if ours and theirs else "n/a")
        print(f"{label:<40}" + "".join(f"{c:>{width}}" for c in cells))
    for lib in libs:
        for op, result in core.get(lib, {}).get("operations", {}).items():
            if result.get("failed"):
                where = f"{common.LIB_LABELS[lib]} on {common.DB_LABELS[db]}"
                print(f"FAILED {where}: {common.OP_LABELS[op]}: {result['failed']}")


def print_growth(growth: dict[str, Any], libs: Sequence[str], db: str) -> None:
    print(
        f"\n== Invalidation cost as the cache grows ({common.DB_LABELS[db]}): one save while N distinct cached "
        "queries of the model exist"
    )
    print(
        f"{'library':<18}{'cached queries':>15}{'save median µs':>16}{'min µs':>9}{'max µs':>9}"
        f"{'CPU µs':>9}{'ref µs':>9}{'save/ref':>9}{'SQL/save':>9}"
        f"{'bookkeeping keys':>18}{'bookkeeping KiB':>17}{'value keys':>12}{'value KiB':>11}"
    )
    for lib in libs:
        result = growth.get(lib)
        if not result:
            continue
        if result.get("warmup_median_us") is not None:
            print(f"{common.LIB_LABELS[lib]:<18}{'warm-up':>15}{fmt(result['warmup_median_us']):>16}")
        for size in result["sizes"]:
            mem = size.get("memory") or {}
            print(
                f"{common.LIB_LABELS[lib]:<18}{size['queries']:>15,}{fmt(size.get('save_median_us')):>16}"
                f"{fmt(size.get('save_min_us')):>9}{fmt(size.get('save_max_us')):>9}"
                f"{fmt(size.get('save_cpu_median_us')):>9}{fmt(size.get('reference_median_us')):>9}"
                f"{fmt(size.get('save_per_reference'), '.2f'):>9}{fmt(size.get('queries_per_save'), '.1f'):>9}"
                f"{mem.get('bookkeeping_keys', 0):>18,}{mem.get('bookkeeping_bytes', 0) / 1024:>17,.1f}"
                f"{mem.get('value_keys', 0):>12,}{mem.get('value_bytes', 0) / 1024:>11,.0f}"
            )
        if result.get("failed"):
            print(f"FAILED {common.LIB_LABELS[lib]} growth: {result['failed']}")


def print_mixed(mixed: dict[str, Any], libs: Sequence[str]) -> None:
    any_result = next(iter(mixed.values()), None)
    if any_result is None:
        return
    print(
        f"\n== Mixed workload (PostgreSQL): {any_result['threads']} threads, "
        f"{any_result['seconds']:.0f} s per library, "
        f"{any_result['rows']:,} articles, Zipf reads 95% / writes 5%"
    )
    print(
        f"{'library':<18}{'ops/s':>9}{'reads':>9}{'writes':>8}{'hit rate':>10}{'SQL/s':>9}"
        f"{'stale reads':>13}{'errors':>8}{'worker CPU µs/op':>18}"
    )
    for lib in libs:
        r = mixed.get(lib)
        if not r:
            continue
        hit_rate = f"{100 * r['hit_rate']:.1f}%" if r["hit_rate"] is not None else "n/a"
        print(
            f"{common.LIB_LABELS[lib]:<18}{r['throughput']:>9,.0f}{r['reads']:>9,}{r['writes']:>8,}{hit_rate:>10}"
            f"{r['queries_per_second']:>9,.0f}{r['stale']:>13,}{r['errors']:>8,}{fmt(r.get('cpu_us_per_op')):>18}"
        )
        for example in r["stale_examples"][:3]:
            print(f"    stale: {example}")
        for example in r["error_examples"][:3]:
            print(f"    error: {example}")
    kinds = list(next(iter(mixed.values()))["by_kind"])
    shown = [lib for lib in libs if lib in mixed]
    print(
        "\nby operation: share of ops, hit rate, mean µs (wall / the thread's CPU)\n"
        + f"{'':<16}"
        + "".join(f"{common.LIB_LABELS[lib]:>24}" for lib in shown)
    )
    for kind in sorted(kinds, key=lambda k: -mixed[shown[0]]["by_kind"].get(k, {}).get("count", 0)):
        cells = []
        for lib in shown:
            stats = mixed[lib]["by_kind"].get(kind) or {"count": 0}
            count = stats["count"]
            if not count:
                cells.append("n/a")
                continue
            share = 100 * count / mixed[lib]["ops"]
            rate = f"{100 * stats['hits'] / count:.0f}% " if kind in READ_KINDS else "write "
            wall, cpu = stats.get("wall_ns", 0) / count / 1000, stats.get("cpu_ns", 0) / count / 1000
            cells.append(f"{share:.1f}% {rate}{wall:.0f}/{cpu:.0f}")
        print(f"{kind.replace('_', ' '):<16}" + "".join(f"{c:>24}" for c in cells))


# -- targets --------------------------------------------------------------------------


def target(label: str, value: float | None, limit: float | None, met: bool | None, shown: str = "") -> dict[str, Any]:
    return {"target": label, "value": value, "limit": limit, "met": met, "shown": shown}


def ratio_target(core: dict[str, Any], op: str, peer: str, limit: float, label: str) -> dict[str, Any]:
    ours, theirs = median_of(core, OURS, op), median_of(core, peer, op)
    if ours is None or theirs is None:
        return target(label, None, limit, None, "n/a")
    value = ours / theirs
    return target(label, value, limit, value <= limit, f"{value:.2f}x ({ours:.0f} / {theirs:.0f} µs)")


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, on PostgreSQL with Redis; None where a needed library or phase did not run."""
    core = results.get("core", {}).get("postgres", {})
    out = []
    if OURS in core:
        for peer in common.PEERS:
            if peer in core:
                name = common.LIB_LABELS[peer]
                out.append(ratio_target(core, "get_hit", peer, 0.5, f"get-by-pk hit ≤ 0.5x {name}"))
                out.append(ratio_target(core, "list_hit", peer, 0.7, f"list-of-100 hit ≤ 0.7x {name}"))
                limit = 0.6 if peer == "cacheops" else 1.0
                out.append(ratio_target(core, "save", peer, limit, f"save ≤ {limit:g}x {name}"))
        state = hit_state(core[OURS]["operations"].get("other_get_after_save"), OURS)
        peers_state = ", ".join(
            f"{common.LIB_LABELS[p]}: {hit_state(core[p]['operations'].get('other_get_after_save'), p)}"
            for p in common.PEERS
            if p in core
        )
        out.append(
            target(
                "another row's get after a save is a hit",
                None,
                None,
                state == "hit",
                f"{state} ({peers_state})" if peers_state else state,
            )
        )
    growth = results.get("growth", {}).get(OURS)
    if growth and len(growth["sizes"]) >= 2:
        first, last = growth["sizes"][0], growth["sizes"][-1]
        if first.get("save_median_us") and last.get("save_median_us"):
            value = last["save_median_us"] / first["save_median_us"]
            detail = f"{value:.2f}x ({last['save_median_us']:.0f} / {first['save_median_us']:.0f} µs)"
            if first.get("save_per_reference") and last.get("save_per_reference"):
                paired = last["save_per_reference"] / first["save_per_reference"]
                detail += f"; over its reference UPDATE {paired:.2f}x"
            out.append(
                target(
                    f"save at {last['queries']:,} cached queries ≤ 1.1x at {first['queries']:,}",
                    value,
                    1.1,
                    value <= 1.1,
                    detail,
                )
            )
    mixed = results.get("mixed", {})
    if OURS in mixed:
        ours = mixed[OURS]
        peers = [p for p in common.PEERS if p in mixed]
        if peers:
            best = max(peers, key=lambda p: mixed[p]["throughput"])
            value = ours["throughput"] / mixed[best]["throughput"] if mixed[best]["throughput"] else None
            out.append(
                target(
                    "mixed throughput ≥ 1.5x the best peer's",
                    value,
                    1.5,
                    None if value is None else value >= 1.5,
                    f"{value:.2f}x {common.LIB_LABELS[best]} ({ours['throughput']:,.0f} / "
                    f"{mixed[best]['throughput']:,.0f} ops/s)"
                    if value is not None
                    else "n/a",
                )
            )
        out.append(
            target("mixed workload: zero stale reads", ours["stale"], 0, ours["stale"] == 0, f"{ours['stale']} stale")
        )
    return out


def print_targets(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    print("\n== Targets (PostgreSQL with Redis)")
    for row in rows:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[row["met"]]
        print(f"{row['target']:<52}{row['shown']:<52} {verdict}")
