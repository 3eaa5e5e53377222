"""Bulk generation from a script: prompts in, PNG files out, with plain ketchup-async.

Run against the real API (key from KETCHUP_API_KEY)::

    python examples/bulk_script.py prompts.txt out/

or against the built-in fake server, no key needed::

    python examples/bulk_script.py --fake prompts.txt out/

For durable, resumable runs of many thousands of prompts, prefer the ``ketchup`` CLI, which
journals every job; this script shows the library calls it is built from.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ketchup_async import KetchupClient, PollPolicy, RetryPolicy
from ketchup_async.testing import FakeKetchupServer

FAKE_SCALE = 0.02


def read_prompts(path: Path) -> Iterator[str]:
    """Yield the non-blank lines of ``path``, lazily."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield line.strip()


@contextlib.asynccontextmanager
async def open_client(fake: bool) -> AsyncIterator[KetchupClient]:
    """A client for the real API, or for an in-process fake server when ``fake``."""
    if not fake:
        async with KetchupClient() as client:
            yield client
        return
    async with FakeKetchupServer(api_keys=("dk-example",), time_scale=FAKE_SCALE) as server:
        async with KetchupClient(
            api_key="dk-example",
            base_url=server.base_url,
            polling=PollPolicy().scaled(FAKE_SCALE),
            retry=RetryPolicy().scaled(FAKE_SCALE),
            # The fake serves its images from loopback, which downloads refuse unless allowed.
            download_hosts=[urlsplit(server.cdn_url).hostname or "127.0.0.1"],
        ) as client:
            yield client


async def run(prompts: Path, out: Path, *, fake: bool = False, concurrency: int = 64) -> int:
    """Generate an image per prompt into ``out``; return the number of failures."""
    failures = 0
    async with open_client(fake) as client:
        async for outcome in client.generate_many(read_prompts(prompts), concurrency=concurrency):
            if outcome.ok and outcome.result is not None:
                for n, image in enumerate(outcome.result.images):
                    path = await client.download(image, out / f"{outcome.index:05d}-{n}")
                    print(f"{outcome.index:5d} ok     {path}")
            else:
                failures += 1
                print(f"{outcome.index:5d} FAILED {outcome.error}", file=sys.stderr)
        print(f"{client.queries_sent} status queries in all")
    return failures


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompts", type=Path, help="a text file, one prompt per line")
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--fake", action="store_true", help="use the built-in fake server")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    failures = asyncio.run(
        run(args.prompts, args.out, fake=args.fake, concurrency=args.concurrency)
    )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
