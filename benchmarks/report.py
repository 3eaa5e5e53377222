"""``RESULTS.md`` and ``tradeoff.png`` from the figures of one benchmark run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .notes import SCALE_NOTE, method_lines, workload_notes
from .targets import W1_CPU_RATIO, W1_LAG, W1_QUERY_RATIO, target_rows

__all__ = ["fmt", "headline_table", "render_markdown", "write_chart"]

_COLUMNS = (
    ("queries_per_job", "queries/job", 2),
    ("lag_p50", "lag p50 (s)", 2),
    ("lag_p99", "lag p99 (s)", 2),
    ("cpu_ms_per_job", "client CPU/job (ms)", 3),
    ("rate_limited", "429s", 0),
    ("wall", "drain (s)", 0),
    ("peak_rss_mb", "peak RSS (MB)", 0),
    ("server_cpu_ms_per_job", "server CPU/job (ms)", 3),
)


def fmt(value: float, digits: int) -> str:
    """A figure for a table (``n/a`` for nan)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _row_table(entry: dict[str, Any], raw: dict[str, Any]) -> list[str]:
    header = ["variant", *(title for _, title, _ in _COLUMNS), "lost / dup"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in entry["rows"].values():
        if row["sweep_only"]:
            continue
        med = row["median"]
        cells = [row["label"], *(fmt(med[key], digits) for key, _, digits in _COLUMNS)]
        cells.append(f"{med['lost']:.0f} / {med['duplicated']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    floor_cpu = 1000.0 * (raw["query_cpu"] + raw["submit_cpu"])
    any_row = next(iter(entry["rows"].values()))["median"]
    limit = [
        "*physical limit*",
        "1 (0 with webhooks)",
        fmt(any_row["lag_floor_p50"], 2),
        fmt(any_row["lag_floor_p99"], 2),
        f"{fmt(floor_cpu, 3)} (2 bare requests)",
        "0",
        "",
        "",
        "",
        "0 / 0",
    ]
    lines.append("| " + " | ".join(limit) + " |")
    return lines


def _scale_table(entry: dict[str, Any]) -> list[str]:
    lines = [
        "| jobs pending | client RSS per pending job (bytes) | poller CPU per query (µs) "
        "| query rate (real q/s) | time to submit them (real s) |",
        "|---|---|---|---|---|",
    ]
    for step in entry["median"]["steps"]:
        lines.append(
            f"| {step['pending']:,} | {fmt(step['rss_per_pending'], 0)} | "
            f"{fmt(step['cpu_per_query'] * 1e6, 0)} | {fmt(step['query_rate'], 0)} | "
            f"{fmt(step['submit_seconds'], 1)} |"
        )
    median = entry["median"]
    lines.append(
        f"| *bare aiohttp GETs, one per wake-up at the same {median['rate_budget']:.0f}/s* | | "
        f"{fmt(median['bare_paced_query_cpu'] * 1e6, 0)} | | |"
    )
    peak = median["peak_rss_bytes"] / 1e6
    lines.append("")
    lines.append(
        f"Peak RSS of the client process with {entry['jobs']:,} jobs pending: {peak:.0f} MB."
    )
    return lines


def _sweep_table(entry: dict[str, Any]) -> list[str]:
    naive = entry["rows"].get("naive", {}).get("median")
    lines = [
        "| first_poll_quantile | backoff | queries/job (vs naive) | lag p50 (s) | lag p99 (s) "
        "| client CPU/job, ms (vs naive) | W1 targets met | rounds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    points = [row for row in entry["rows"].values() if row["in_sweep"]]
    points.sort(key=lambda r: (r["first_poll_quantile"] or 0.35, r["backoff"] or 1.25))
    for row in points:
        med = row["median"]
        q_ratio = med["queries_per_job"] / naive["queries_per_job"] if naive else math.nan
        cpu_ratio = med["cpu_ms_per_job"] / naive["cpu_ms_per_job"] if naive else math.nan
        met = [
            name
            for name, ok in (
                ("queries", q_ratio <= W1_QUERY_RATIO),
                ("lag", med["lag_p50"] <= W1_LAG),
                ("CPU", cpu_ratio <= W1_CPU_RATIO),
            )
            if ok
        ]
        lines.append(
            f"| {row['first_poll_quantile'] or 0.35} | {row['backoff'] or 1.25} | "
            f"{fmt(med['queries_per_job'], 2)} ({fmt(q_ratio, 2)}x) | {fmt(med['lag_p50'], 2)} "
            f"| {fmt(med['lag_p99'], 2)} | {fmt(med['cpu_ms_per_job'], 3)} ({fmt(cpu_ratio, 2)}x) "
            f"| {', '.join(met) or 'none'} | {med['rounds']:.0f} |"
        )
    return lines


def headline_table(results: dict[str, Any]) -> list[str]:
    """The README's table: W1 (and W2's 429s), one line per variant."""
    w1 = results["workloads"].get("W1")
    if w1 is None:
        return []
    w2 = results["workloads"].get("W2", {"rows": {}})
    lines = [
        f"| {w1['jobs']:,} jobs at once | queries/job | lag p50 | client CPU/job "
        "| 429s against a 10 q/s limit |",
        "|---|---|---|---|---|",
    ]
    for key, row in w1["rows"].items():
        if row["sweep_only"]:
            continue
        med = row["median"]
        w2_row = w2["rows"].get(key)
        limited = fmt(w2_row["median"]["rate_limited"], 0) if w2_row else "n/a"
        lines.append(
            f"| {row['label']} | {fmt(med['queries_per_job'], 2)} | "
            f"{fmt(med['lag_p50'], 2)} s | {fmt(med['cpu_ms_per_job'], 2)} ms | {limited} |"
        )
    return lines


def render_markdown(results: dict[str, Any], command: str) -> str:
    """The whole ``RESULTS.md``."""
    out = ["# Benchmarks: the shared poller side by side", ""]
    out += method_lines(results, command)
    out += ["", "## Targets", "", *target_rows(results), ""]
    raw = results.get("raw", {"query_cpu": math.nan, "submit_cpu": math.nan})
    for key, entry in results["workloads"].items():
        out += [f"## {key} {entry['title']}", ""]
        out.append(
            f"Time scale {entry['scale']} real s per API s; fake server: "
            f"`{' '.join(entry['server_args'])}`."
        )
        out.append("")
        if "rows" in entry:
            out += _row_table(entry, raw)
        else:
            out += _scale_table(entry)
        out += ["", *workload_notes(key, results), ""]
        if key == "W1" and any(row["in_sweep"] for row in entry["rows"].values()):
            out += ["### `PollPolicy` sweep (W1)", "", *_sweep_table(entry), ""]
            out += ["![queries per job against lag](tradeoff.png)", ""]
    out += ["## Why these time scales", "", *SCALE_NOTE, ""]
    if "raw" in results:
        out.append(
            f"Bare aiohttp cost, {results['raw']['requests']:,} sequential requests: "
            f"{results['raw']['query_cpu'] * 1e6:.0f} µs CPU per query, "
            f"{results['raw']['submit_cpu'] * 1e6:.0f} µs per submit."
        )
        out.append("")
    return "\n".join(out)


def write_chart(results: dict[str, Any], path: Path) -> bool:
    """Queries per job against lag p50, one point per W1 variant and sweep setting."""
    w1 = results["workloads"].get("W1")
    if w1 is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter

    fig, ax = plt.subplots(figsize=(8.5, 5.8), dpi=120)
    ax.scatter(
        [1.0, 0.0],
        [0.0, 0.0],
        marker="*",
        s=320,
        facecolors="none",
        edgecolors="black",
        zorder=2,
        label="physical limit: 1 query/job polling (0 with webhooks), 0 lag",
    )
    sweep: dict[float, list[tuple[float, float, float]]] = {}
    for row in w1["rows"].values():
        if row["in_sweep"]:
            quantile = row["first_poll_quantile"] or 0.35
            med = row["median"]
            point = (row["backoff"] or 1.25, med["queries_per_job"], med["lag_p50"])
            sweep.setdefault(quantile, []).append(point)
    for (quantile, points), color in zip(sorted(sweep.items()), _SWEEP_COLORS, strict=False):
        points.sort()
        ax.plot(
            [p[1] for p in points],
            [p[2] for p in points],
            marker=".",
            color=color,
            alpha=0.7,
            zorder=3,
            label=f"sweep, first_poll_quantile={quantile}: backoff "
            + ", ".join(f"{p[0]}" for p in points)
            + " (right to left)",
        )
    frontier = [p for p in w1.get("frontier", []) if not math.isnan(p["queries_per_job"])]
    if frontier:
        ax.plot(
            [p["queries_per_job"] for p in frontier],
            [p["lag_p50"] for p in frontier],
            linestyle="--",
            color="black",
            alpha=0.6,
            zorder=2,
            label="best possible schedule (an oracle knowing the render-time distribution)",
        )
    markers = {"ketchup": "o", "webhooks": "s", "naive": "^", "threads": "v"}
    for row in w1["rows"].values():
        if not row["sweep_only"]:
            med = row["median"]
            ax.scatter(
                [med["queries_per_job"]],
                [med["lag_p50"]],
                marker=markers[row["variant"]],
                s=80,
                zorder=4,
                label=row["label"].replace("`", ""),
            )
    ax.set_yscale("symlog", linthresh=1.0, linscale=1.5)
    ticks = [0, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.set_xlabel("queries per job (server counter)")
    ax.set_ylabel("detection lag p50, API seconds (symlog)")
    ax.set_title(f"W1: {w1['jobs']:,} jobs submitted at once (medians)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


_SWEEP_COLORS = ("tab:gray", "tab:olive", "tab:cyan")
