"""Runs every workload: a fresh fake server process per run, each variant in its own process,
rows interleaved (rotated each round), several rounds."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs

from .fakeproc import FakeServerProcess
from .figures import Figures, median_figures, run_figures
from .frontier import poll_frontier
from .workloads import Row, Workload, workloads

__all__ = ["RunOptions", "machine", "run_all"]

Log = Callable[[str], None]

#: Sequential requests timed for the raw cost of one aiohttp request.
RAW_REQUESTS = 2000
_SMOKE_RAW_REQUESTS = 100
_TIMEOUT = 3600.0


@attrs.frozen(kw_only=True)
class RunOptions:
    """What to run.

    Attributes:
        rounds: Rounds of every row (medians are reported).
        sweep_rounds: Rounds of the sweep-only chart points (at most ``rounds``).
        smoke: Tiny job counts and a fast clock (seconds, for the test suite).
        seed: The fake server's seed (the same for every run).
        only: Workload keys to run (all if empty).
    """

    rounds: int = 3
    sweep_rounds: int = 1
    smoke: bool = False
    seed: int = 1
    only: tuple[str, ...] = ()


def machine() -> dict[str, str]:
    """The machine the figures were measured on."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "load_average_at_start": load,
    }


def _variant(variant: str, base_url: str, args: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.run_variant", variant, "--base-url", base_url]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"variant {variant} failed ({done.returncode}): {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _run_row(workload: Workload, row: Row, seed: int) -> tuple[Figures, list[float]]:
    """One variant run: its figures and the render times (API s) the server drew."""
    with FakeServerProcess(workload.all_server_args(seed)) as server:
        flags = ["--jobs", str(workload.jobs), "--scale", repr(workload.scale), *row.flags()]
        record = _variant(row.variant, server.base_url, flags)
        stats, tasks = server.stats(), server.tasks()
        server_cpu = server.cpu_seconds()
    figures = run_figures(
        record,
        stats,
        tasks,
        scale=workload.scale,
        server_cpu=server_cpu,
        query_limit=workload.query_limit,
    )
    if record["errors"]:
        figures["errors"] = float(len(record["errors"]))
    return figures, [float(task["render_seconds"]) for task in tasks.values()]


def _without_limits(args: list[str]) -> list[str]:
    """Server flags without rate limits (a bare request's cost is measured unrefused)."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--submit-rate-limit", "--query-rate-limit"):
            skip = True
        else:
            out.append(arg)
    return out


def _run_raw(workload: Workload, seed: int, count: int) -> dict[str, Any]:
    with FakeServerProcess(_without_limits(workload.all_server_args(seed))) as server:
        return _variant("raw", server.base_url, ["--jobs", str(count)])


def _run_scale(workload: Workload, seed: int) -> dict[str, Any]:
    with FakeServerProcess(workload.all_server_args(seed)) as server:
        args = ["--scale", repr(workload.scale), "--queries", str(workload.queries), "--pending"]
        return _variant("scale", server.base_url, [*args, *map(str, workload.pending)])


def _describe(figures: Figures) -> str:
    return (
        f"q/job {figures['queries_per_job']:.2f}, lag p50 {figures['lag_p50']:.2f} s "
        f"p99 {figures['lag_p99']:.2f} s, cpu {figures['cpu_ms_per_job']:.3f} ms/job, "
        f"429s {figures['rate_limited']:.0f} (submits {figures['submit_rate_limited']:.0f}), "
        f"failed {figures['failed']:.0f}, wall {figures['wall']:.0f} s, "
        f"lost {figures['lost']:.0f}, dup {figures['duplicated']:.0f}"
    )


def _rows_workload(
    workload: Workload, options: RunOptions, log: Log
) -> tuple[dict[str, Any], list[float]]:
    """Every row's rounds and medians, and the render times of the first run."""
    per_row: dict[str, list[Figures]] = {row.key: [] for row in workload.rows}
    renders: list[float] = []
    for round_index in range(options.rounds):
        shift = round_index % len(workload.rows)
        order = workload.rows[shift:] + workload.rows[:shift]
        for row in order:
            if row.sweep_only and round_index >= options.sweep_rounds:
                continue
            started = time.monotonic()
            figures, drawn = _run_row(workload, row, options.seed)
            renders = renders or drawn
            per_row[row.key].append(figures)
            log(
                f"[{workload.key} round {round_index + 1}/{options.rounds}] {row.key}: "
                f"{_describe(figures)} ({time.monotonic() - started:.0f} s)"
            )
    rows = {
        row.key: {
            **attrs.asdict(row),
            "in_sweep": row.in_sweep,
            "rounds": per_row[row.key],
            "median": median_figures(per_row[row.key]),
        }
        for row in workload.rows
    }
    return rows, renders


def _median_scale(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    steps = []
    for i, first in enumerate(rounds[0]["steps"]):
        step = {"pending": first["pending"]}
        for name in ("rss_per_pending", "cpu_per_query", "query_rate", "submit_seconds"):
            values = sorted(r["steps"][i][name] for r in rounds)
            step[name] = values[len(values) // 2]
        steps.append(step)
    peaks = sorted(r["peak_rss_bytes"] for r in rounds)
    bare = sorted(r["bare_paced_query_cpu"] for r in rounds)
    return {
        "steps": steps,
        "peak_rss_bytes": peaks[len(peaks) // 2],
        "bare_paced_query_cpu": bare[len(bare) // 2],
        "rate_budget": rounds[0]["rate_budget"],
    }


def run_all(options: RunOptions, log: Log) -> dict[str, Any]:
    """Run the workloads; return every round's figures, their medians and the context."""
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict[str, Any] = {
        "machine": machine(),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "options": attrs.asdict(options),
        "workloads": {},
    }
    chosen = [
        w for w in workloads(smoke=options.smoke) if not options.only or w.key in options.only
    ]
    raw_count = _SMOKE_RAW_REQUESTS if options.smoke else RAW_REQUESTS
    raw_rounds: list[dict[str, Any]] = []
    for workload in chosen:
        entry: dict[str, Any] = {
            "title": workload.title,
            "jobs": workload.jobs,
            "scale": workload.scale,
            "server_args": workload.all_server_args(options.seed),
        }
        if workload.rows:
            if not raw_rounds:
                for _ in range(options.rounds):
                    raw_rounds.append(_run_raw(workload, options.seed, raw_count))
                log(f"[raw] one aiohttp query: {raw_rounds[0]['query_cpu'] * 1e6:.0f} us CPU")
            entry["rows"], renders = _rows_workload(workload, options, log)
            if workload.query_limit is None and renders:
                entry["frontier"] = poll_frontier(renders)
                log(f"[{workload.key}] best possible schedule: {entry['frontier']}")
        else:
            entry["pending"] = list(workload.pending)
            entry["queries"] = workload.queries
            entry["rounds"] = []
            for round_index in range(options.rounds):
                scale_run = _run_scale(workload, options.seed)
                entry["rounds"].append(scale_run)
                last = scale_run["steps"][-1]
                log(
                    f"[{workload.key} round {round_index + 1}/{options.rounds}] "
                    f"{last['pending']:,} pending: {last['rss_per_pending']:.0f} B/job, "
                    f"{last['cpu_per_query'] * 1e6:.0f} us CPU/query"
                )
            entry["median"] = _median_scale(entry["rounds"])
        results["workloads"][workload.key] = entry
    if raw_rounds:
        results["raw"] = {
            name: sorted(r[name] for r in raw_rounds)[len(raw_rounds) // 2]
            for name in ("query_cpu", "submit_cpu")
        }
        results["raw"]["requests"] = raw_count
    elapsed = datetime.datetime.now(datetime.timezone.utc) - started
    results["elapsed_seconds"] = elapsed.total_seconds()
    return results
