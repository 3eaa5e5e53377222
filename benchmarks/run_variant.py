"""One client variant in its own process: ``python -m benchmarks.run_variant VARIANT ...``.

Prints one JSON line: the variant's record plus the process's CPU time (user + system, all
threads) spent on the workload and its peak RSS. Variants: ``ketchup``, ``webhooks``,
``naive``, ``threads``, ``raw`` (the cost of one bare aiohttp request) and ``scale`` (W3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from typing import Any

from .fakeproc import API_KEY
from .rawcost import raw_request_cost
from .variants import VariantConfig, run_ketchup, run_naive, run_threads, run_webhooks

__all__ = ["main", "peak_rss_bytes"]

VARIANTS = ("ketchup", "webhooks", "naive", "threads", "raw", "scale")


def peak_rss_bytes() -> int:
    """This process's peak resident set size, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    if args.variant == "raw":
        return asyncio.run(raw_request_cost(args.base_url, args.jobs))
    if args.variant == "scale":
        from .scale import run_scale

        return asyncio.run(run_scale(args.base_url, args.pending, args.scale, args.queries))
    config = VariantConfig(
        base_url=args.base_url,
        api_key=API_KEY,
        jobs=args.jobs,
        scale=args.scale,
        rate=args.rate,
        first_poll_quantile=args.first_poll_quantile,
        backoff=args.backoff,
    )
    if args.variant == "threads":
        record = run_threads(config)
    else:
        runner = {"ketchup": run_ketchup, "webhooks": run_webhooks, "naive": run_naive}
        record = asyncio.run(runner[args.variant](config))
    return record.as_dict()


def main(argv: list[str] | None = None) -> int:
    """Run one variant and print its figures as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_variant")
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--scale", type=float, default=0.05, help="real seconds per API second")
    parser.add_argument("--rate", type=float, default=None, help="PollPolicy.rate (API q/s)")
    parser.add_argument("--first-poll-quantile", type=float, default=None)
    parser.add_argument("--backoff", type=float, default=None)
    parser.add_argument(
        "--pending", type=int, nargs="*", default=[1000], help="scale: pending-job steps"
    )
    parser.add_argument("--queries", type=int, default=2000, help="scale: queries per step")
    args = parser.parse_args(argv)
    cpu_started = time.process_time()
    figures = _run(args)
    figures["cpu_seconds"] = time.process_time() - cpu_started
    figures["peak_rss_bytes"] = peak_rss_bytes()
    figures["variant"] = args.variant
    print(json.dumps(figures, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
