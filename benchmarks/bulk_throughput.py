"""Throughput of a durable bulk run, and what SIGKILL + resume costs.

Runs against a fake Ketchup API in its own process (``python -m ketchup_async.testing``), at a
time scale (real seconds per API second), with downloads on:

    python -m benchmarks.bulk_throughput                       # 10,000 prompts at 1/20 scale
    python -m benchmarks.bulk_throughput --count 2000 --kills 3  # SIGKILL the CLI 3 times

Figures are printed in real seconds and in "API seconds" (real / scale): at scale 0.05, the
fake renders in 8 s API time (0.4 s real) and the client's poll budget is 10 queries per API
second, as against the real API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from ketchup_async import KetchupClient, PollPolicy, RetryPolicy
from ketchup_async.bulk._run import run_bulk

from .fakeproc import API_KEY, FakeServerProcess


def count_files(out: Path) -> int:
    """PNG files in ``out``."""
    return sum(1 for _ in out.glob("*.png"))


def prompts(count: int) -> list[str]:
    """Distinct prompts (the fake counts tasks per prompt to detect double submits)."""
    return [f"benchmark prompt {i}: a lighthouse in a storm" for i in range(count)]


async def in_process(args: argparse.Namespace, fake: FakeServerProcess, out: Path) -> None:
    """One run_bulk of --count prompts; print wall time, throughput and costs."""
    polling = PollPolicy().scaled(args.time_scale)
    if args.query_rate:
        polling = attrs.evolve(polling, rate=args.query_rate / args.time_scale)
    async with KetchupClient(
        api_key=API_KEY,
        base_url=fake.base_url,
        polling=polling,
        retry=RetryPolicy().scaled(args.time_scale),
        max_concurrency=128,
        download_hosts=[urlsplit(fake.base_url).hostname or "127.0.0.1"],  # the fake's images
    ) as client:
        started = time.perf_counter()
        summary = await run_bulk(
            client, prompts(args.count), out, concurrency=args.concurrency, download=True
        )
        wall = time.perf_counter() - started
    stats = fake.stats()
    files = count_files(out)
    jobs = summary.submitted
    api_wall = wall / args.time_scale
    print(f"prompts            {args.count:,} (time scale {args.time_scale}, downloads on)")
    print(f"wall time          {wall:.1f} s real = {api_wall:,.0f} s API time")
    print(f"throughput         {jobs / wall:,.1f} jobs/s real = {jobs / api_wall:.2f} jobs/s API")
    print(f"succeeded          {summary.succeeded:,}  files {files:,}  ok={summary.ok}")
    print(f"queries per job    {summary.queries / max(jobs, 1):.2f}")
    print(
        f"server: tasks {stats['tasks']:,}, duplicate prompts {stats['duplicate_prompts']}, "
        f"429s {stats['rate_limited']}, requests {stats['requests']}"
    )


def _count(journal: Path, state: str) -> int:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as conn:
            query = "SELECT COUNT(*) FROM inputs WHERE state = ?"
            return int(conn.execute(query, (state,)).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def kill_and_resume(args: argparse.Namespace, fake: FakeServerProcess, out: Path) -> None:
    """SIGKILL `ketchup generate` --kills times at spread-out points, then let it finish."""
    source = out.parent / "prompts.txt"
    source.write_text("\n".join(prompts(args.count)) + "\n")
    journal = out / ".ketchup" / "journal.sqlite3"
    env = {**os.environ, "KETCHUP_API_KEY": API_KEY, "KETCHUP_BASE_URL": fake.base_url}
    argv = [
        sys.executable,
        "-m",
        "ketchup_async.cli",
        "generate",
        str(source),
        "--out",
        str(out),
        "--concurrency",
        str(args.concurrency),
        "--time-scale",
        str(args.time_scale),
    ]
    for k in range(1, args.kills + 1):
        target = args.count * k // (args.kills + 1)
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while _count(journal, "succeeded") < target and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(
            f"kill {k}: SIGKILL after {_count(journal, 'succeeded'):,} successes, "
            f"{_count(journal, 'submitting'):,} submits in flight, "
            f"{_count(journal, 'submitted'):,} tasks pending"
        )
    started = time.perf_counter()
    final = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    by_status: dict[str, int] = {}
    for line in lines:
        by_status[line["status"]] = by_status.get(line["status"], 0) + 1
    missing = sum(
        1
        for line in lines
        if line["status"] == "succeeded" and not all((out / f).is_file() for f in line["files"])
    )
    stats = fake.stats()
    print(
        f"resume: exit {final.returncode} in {wall:.1f} s; manifest {len(lines):,} lines "
        f"{by_status}; successes without files {missing}"
    )
    print(
        f"server: tasks {stats['tasks']:,} for {args.count:,} prompts, "
        f"prompts submitted twice: {stats['duplicate_prompts']}"
    )


def main() -> None:
    """Parse the flags and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--query-rate", type=float, help="queries per API second")
    parser.add_argument("--kills", type=int, default=0, help="SIGKILL the CLI this many times")
    args = parser.parse_args()
    with (
        FakeServerProcess(["--time-scale", str(args.time_scale)]) as fake,
        tempfile.TemporaryDirectory(prefix="ketchup-bench-") as tmp,
    ):
        out = Path(tmp) / "out"
        if args.kills:
            kill_and_resume(args, fake, out)
        else:
            asyncio.run(in_process(args, fake, out))


if __name__ == "__main__":
    main()
