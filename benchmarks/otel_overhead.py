"""CPU per query with and without ``opentelemetry-api``: ``python -m benchmarks.otel_overhead``.

The fake API runs in its own process. Each mode runs in a fresh child process (so what it can
import is exactly what the mode says) and times ``count`` sequential ``client.query()`` calls,
which go through the one request path and its telemetry hook:

- ``absent``: ``opentelemetry`` cannot be imported (the SDK without the ``otel`` extra);
- ``api``: ``opentelemetry-api`` installed, no SDK configured (the library default: no-ops);
- ``sdk``: an SDK tracer and meter provider exporting to memory (for reference: the price of
  actually recording, paid only by those who configure it).

Rounds alternate the modes; each mode's best and median CPU per query are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from .fakeproc import API_KEY, FakeServerProcess

__all__ = ["main"]

MODES = ("absent", "api", "sdk")

_CHILD = r"""
import asyncio, json, sys, time
mode, base_url, api_key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked: " + name)

if mode == "absent":
    sys.meta_path.insert(0, Block())
from ketchup_async import KetchupClient, Telemetry

telemetry = None
if mode == "sdk":
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    telemetry = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)

async def main():
    async with KetchupClient(api_key=api_key, base_url=base_url, telemetry=telemetry) as client:
        task_id = (await client.submit("overhead")).task_id
        for _ in range(100):  # warm up the connection and the code paths
            await client.query(task_id)
        started = time.process_time()
        for _ in range(count):
            await client.query(task_id)
        return (time.process_time() - started) / count

print(json.dumps({"mode": mode, "cpu_per_query": asyncio.run(main())}))
"""


def _run(mode: str, base_url: str, count: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, base_url, API_KEY, str(count)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return float(json.loads(done.stdout)["cpu_per_query"])


def main(argv: list[str] | None = None) -> int:
    """Print each mode's CPU per query."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.otel_overhead")
    parser.add_argument("--count", type=int, default=2000, help="queries per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each mode")
    args = parser.parse_args(argv)
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    with FakeServerProcess(["--render-time", "1000"]) as server:
        for _ in range(args.rounds):
            for mode in MODES:
                samples[mode].append(_run(mode, server.base_url, args.count))
    # On a shared machine the noise is one-sided (others' load only adds): the best round of
    # each mode is its cost, the median is shown beside it.
    base = min(samples["absent"])
    for mode in MODES:
        best, median = min(samples[mode]), statistics.median(samples[mode])
        print(
            f"{mode:>7}: {best * 1e6:6.1f} us CPU per query, best round "
            f"({(best / base - 1) * 100:+.1f}% vs absent); median {median * 1e6:.1f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
