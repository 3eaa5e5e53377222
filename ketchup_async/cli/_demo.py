"""``ketchup demo``: the bundled prompts, through an in-process fake API, into real PNG files."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from .. import (
    BulkInput,
    BulkProgress,
    BulkSummary,
    GenerateRequest,
    KetchupClient,
    PollPolicy,
    RetryPolicy,
    run_bulk,
)
from ..bulk import JOURNAL_DIR, MANIFEST_FILE
from ..testing import FakeKetchupServer
from ._args import UsageError
from ._bulk import run_bulk_command

__all__ = ["cmd_demo", "demo_inputs", "sample_prompts"]

_DEMO_KEY = "dk-demo0000000000"
_MARKER = "demo"


def sample_prompts() -> list[str]:
    """The bundled sample prompts."""
    text = files("ketchup_async.cli").joinpath("prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def demo_inputs(count: int) -> list[BulkInput]:
    """``count`` inputs cycling through the sample prompts (later rounds say which round)."""
    prompts = sample_prompts()
    inputs = []
    for i in range(count):
        prompt = prompts[i % len(prompts)]
        if i >= len(prompts):
            prompt = f"{prompt} (variation {i // len(prompts) + 1})"
        inputs.append(BulkInput(str(i + 1), GenerateRequest(prompt)))
    return inputs


def _prepare(out_dir: Path) -> None:
    """Clear the previous demo in ``out_dir``; refuse a directory that is not a demo's."""
    marker = out_dir / JOURNAL_DIR / _MARKER
    if out_dir.exists():
        if not out_dir.is_dir():
            raise UsageError(f"{str(out_dir)!r} exists and is not a directory")
        if marker.exists():
            manifest = out_dir / MANIFEST_FILE
            if manifest.exists():
                for line in manifest.read_text(encoding="utf-8").splitlines():
                    with contextlib.suppress(ValueError, AttributeError, TypeError):
                        for name in json.loads(line).get("files", []):
                            (out_dir / Path(name).name).unlink(missing_ok=True)
                manifest.unlink()
            shutil.rmtree(out_dir / JOURNAL_DIR)
        elif any(out_dir.iterdir()):
            raise UsageError(
                f"{str(out_dir)!r} exists and is not a ketchup demo directory: choose another --out"
            )
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("written by `ketchup demo`: its files may be replaced\n")
    except OSError as exc:
        raise UsageError(f"cannot write to {str(out_dir)!r}: {exc.strerror or exc}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status."""
    out_dir = Path(args.out)
    _prepare(out_dir)
    scale = args.time_scale
    inputs = demo_inputs(args.count)

    @contextlib.asynccontextmanager
    async def client() -> AsyncIterator[KetchupClient]:
        async with FakeKetchupServer(
            api_keys=(_DEMO_KEY,), time_scale=scale, seed=int(time.time())
        ) as server:
            print(f"demo: a fake Ketchup API runs at {server.base_url} ({1 / scale:g}x speed)")
            async with KetchupClient(
                api_key=_DEMO_KEY,
                base_url=server.base_url,
                polling=PollPolicy().scaled(scale),
                retry=RetryPolicy().scaled(scale),
                download_hosts=[urlsplit(server.cdn_url).hostname or "127.0.0.1"],
            ) as ketchup:
                yield ketchup

    def work(
        ketchup: KetchupClient, progress: Callable[[BulkProgress], None]
    ) -> Awaitable[BulkSummary]:
        return run_bulk(ketchup, inputs, out_dir, concurrency=args.concurrency, progress=progress)

    status = run_bulk_command(
        out_dir, work, client=client, title="ketchup demo", verbose=args.verbose
    )
    pngs = sorted(out_dir.glob("*.png"))
    print(f"demo: {len(pngs)} PNG files and {MANIFEST_FILE} in {out_dir}/")
    return status
