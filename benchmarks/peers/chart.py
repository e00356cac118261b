"""Draw the peer comparison's results (a JSON file written by run.py) as one PNG.

    python benchmarks/peers/chart.py benchmarks/results/peers-<stamp>.json docs/peers.png

Run by run.py with a Python that has matplotlib (its own, or .venv-peers/pyXY/chart).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.peers import common, report

COLORS = {"none": "#9e9e9e", "cachekit": "#1b7f5b", "cacheops": "#d08c2b", "cachalot": "#4a6fb5"}


def core_panel(ax: Any, core: dict[str, Any], db: str) -> None:
    libs = [lib for lib in common.LIBS if lib in core]
    ops = list(common.OP_LABELS)
    height = 0.8 / max(1, len(libs))
    top = 0.0
    for j, lib in enumerate(libs):
        for i, op in enumerate(ops):
            result = core[lib]["operations"].get(op, {})
            y = i + (j - (len(libs) - 1) / 2) * height
            if result.get("failed") or result.get("median_us") is None:
                ax.text(1, y, " failed verification", va="center", fontsize=6, color=COLORS[lib])
                continue
            value = result["median_us"]
            top = max(top, value)
            ax.barh(y, value, height=height * 0.92, color=COLORS[lib], label=common.LIB_LABELS[lib] if i == 0 else None)
            state = report.hit_state(result, lib) if op in common.HIT_OR_MISS and lib != "none" else ""
            note = f" {value:,.0f}" + (f" ({state})" if state in ("hit", "miss") else "")
            ax.text(value, y, note, va="center", fontsize=6)
    ax.set_yticks(range(len(ops)), [common.OP_LABELS[op] for op in ops], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25 if top else 1)
    ax.set_xlabel("median µs per call (lower is better)", fontsize=8)
    ax.set_title(f"Core operations on {common.DB_LABELS[db]} with Redis", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.tick_params(axis="x", labelsize=7)


def growth_panels(ax_time: Any, ax_mem: Any, growth: dict[str, Any]) -> None:
    for lib in common.LIBS:
        result = growth.get(lib)
        if not result:
            continue
        sizes = [s["queries"] for s in result["sizes"]]
        times = [s.get("save_median_us") for s in result["sizes"]]
        ax_time.plot(sizes, times, marker="o", color=COLORS[lib], label=common.LIB_LABELS[lib])
        ax_time.set_xticks(sizes)
        ax_mem.set_xticks(sizes)
        if lib != "none":
            memory = [max(1, (s.get("memory") or {}).get("bookkeeping_bytes", 0)) / 1024 for s in result["sizes"]]
            ax_mem.plot(sizes, memory, marker="o", color=COLORS[lib], label=common.LIB_LABELS[lib])
    for ax in (ax_time, ax_mem):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("distinct cached queries of the model", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax_time.set_ylim(bottom=0)
    ax_time.set_ylabel("median µs of one save", fontsize=8)
    ax_time.set_title("Save time as the cache grows", fontsize=10)
    ax_mem.set_yscale("log")
    ax_mem.set_ylabel("KiB kept to invalidate (log)", fontsize=8)
    ax_mem.set_title("Redis memory of the bookkeeping", fontsize=10)


def mixed_panel(ax: Any, mixed: dict[str, Any]) -> None:
    libs = [lib for lib in common.LIBS if lib in mixed]
    values = [mixed[lib]["throughput"] for lib in libs]
    bars = ax.bar(range(len(libs)), values, color=[COLORS[lib] for lib in libs])
    for bar, lib in zip(bars, libs):
        r = mixed[lib]
        hit = f"{100 * r['hit_rate']:.0f}% hits\n" if r["hit_rate"] is not None and lib != "none" else ""
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"{r['throughput']:,.0f}\n{hit}{r['stale']} stale",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(range(len(libs)), [common.LIB_LABELS[lib].replace("django-", "") for lib in libs], fontsize=8)
    ax.set_ylim(0, max(values, default=1) * 1.35)
    ax.set_ylabel("operations per second", fontsize=8)
    any_result = next(iter(mixed.values()))
    ax.set_title(f"Mixed workload, {any_result['threads']} threads", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)


def footer(document: dict[str, Any]) -> str:
    machine = document["machine"]
    versions = document["versions"]
    base = next(iter(versions.values()), {})
    libs = "; ".join(v.get("library", "") for lib, v in versions.items() if lib != "none")
    load = machine["load_average"]
    loads = ", ".join(f"{k} {v[0]:.1f}" for k, v in load.items())
    servers = ", ".join(v.split(" (")[0] for v in machine["servers"].values())
    return (
        f"{machine['cpu']}, {machine['cores']} cores; load average (1 min) {loads}.\n"
        f"Python {base.get('python')}, Django {base.get('django')}, django-redis {base.get('django_redis')}, "
        f"redis-py {base.get('redis_py')} with hiredis; {servers} on loopback; {libs}.\n"
        f"{document['created']}: python benchmarks/peers/run.py"
    )


def draw(document: dict[str, Any], path: Path) -> None:
    results = document["results"]
    core = results.get("core", {})
    db = "postgres" if "postgres" in core else next(iter(core), None)
    fig = plt.figure(figsize=(13, 10), dpi=110)
    grid = fig.add_gridspec(2, 3, height_ratios=(1.35, 1), hspace=0.35, wspace=0.35)
    if db is not None:
        core_panel(fig.add_subplot(grid[0, :]), core[db], db)
    if results.get("growth"):
        growth_panels(fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1]), results["growth"])
    if results.get("mixed"):
        # Without the growth panels (a run of other phases) the mixed workload takes their place.
        mixed_panel(fig.add_subplot(grid[1, 2] if results.get("growth") else grid[1, :2]), results["mixed"])
    fig.suptitle("django-cachekit, django-cacheops and django-cachalot on the same workload", fontsize=13)
    fig.text(0.01, 0.005, footer(document), fontsize=7, va="bottom", color="#444444")
    fig.subplots_adjust(left=0.2, right=0.97, top=0.93, bottom=0.12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: chart.py RESULTS.json OUT.png", file=sys.stderr)
        return 2
    draw(json.loads(Path(argv[0]).read_text()), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
