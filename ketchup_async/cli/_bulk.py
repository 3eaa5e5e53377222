"""``ketchup generate`` and ``ketchup resume``: a durable run with progress, then its summary."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from .. import (
    AuthenticationError,
    BulkError,
    BulkInput,
    BulkOptions,
    BulkProgress,
    BulkSummary,
    ClientStats,
    JournalError,
    KetchupClient,
    KetchupError,
    ValidationError,
    resume_bulk,
    run_bulk,
)
from ._args import UsageError
from ._health import ApiHealth, ErrorLog
from ._inputs import load_inputs
from ._progress import make_reporter, print_summary
from ._runtime import (
    EXIT_BUDGET,
    EXIT_FAILED,
    EXIT_JOURNAL,
    EXIT_OK,
    Interrupted,
    client_options,
    console,
    make_client,
    read_api_key,
    run_async,
)

__all__ = ["cmd_generate", "cmd_resume", "run_bulk_command"]

Work = Callable[[KetchupClient, Callable[[BulkProgress], None]], Awaitable[BulkSummary]]


def _error(text: str) -> None:
    print(f"ketchup: error: {text}", file=sys.stderr, flush=True)


def run_bulk_command(
    out_dir: Path,
    work: Work,
    *,
    client: Callable[[], AbstractAsyncContextManager[KetchupClient]],
    title: str,
    verbose: bool = False,
) -> int:
    """Run a bulk run with progress, then print its summary; map errors to exit codes.

    Args:
        out_dir: The run's directory (for the resume hint).
        work: Runs the bulk run with a client and a progress callback.
        client: Makes the client's async context (the demo's also runs a fake server).
        title: The summary table's title.
        verbose: Add the client's own figures to the summary (``client.stats()``).
    """
    out = console()
    health = ApiHealth()
    reporter = make_reporter(out, sys.stdout, health=health, out_dir=str(out_dir))
    base_url = ""
    stats: ClientStats | None = None

    async def go() -> BulkSummary:
        nonlocal base_url, stats
        async with client() as ketchup:
            base_url = ketchup.base_url
            try:
                with reporter:
                    return await work(ketchup, reporter)
            finally:
                stats = ketchup.stats()

    watch = ErrorLog(health, time.monotonic)
    logging.getLogger("ketchup_async").addHandler(watch)
    try:
        summary = run_async(go)
    except Interrupted as stop:
        print(
            f"\nketchup: {stop.what}; the journal is intact. Resume with: ketchup resume {out_dir}",
            file=sys.stderr,
        )
        return stop.code
    except JournalError as exc:
        _error(f"{exc} (once fixed: ketchup resume {out_dir})")
        return EXIT_JOURNAL
    except (BulkError, ValidationError) as exc:
        raise UsageError(str(exc)) from None
    except AuthenticationError as exc:
        raise UsageError(f"the API refused the key: {exc}") from None
    except KetchupError as exc:
        _error(str(exc))
        print(f"ketchup: resume with: ketchup resume {out_dir}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        logging.getLogger("ketchup_async").removeHandler(watch)
    print_summary(out, summary, title=title, client=stats if verbose else None)
    if summary.pending and health.failing_for(time.monotonic()) is not None:
        what = "cannot reach" if health.unreachable else "no good answer from"
        _error(f"{what} the API at {base_url}: {health.last_error}")
    if summary.pending:
        print(f"ketchup: {_inputs(summary.pending)} not finished: ketchup resume {out_dir}")
    if summary.uncertain:
        print(
            f"ketchup: {_inputs(summary.uncertain)} uncertain (the submit may have been "
            f"charged): ketchup resume {out_dir} --resubmit-uncertain submits them again"
        )
    if summary.budget_reached and summary.pending:
        print(
            f"ketchup: the credit budget ({summary.max_credits}) was reached: "
            f"{_inputs(summary.pending)} queued, not sent; go on with: "
            f"ketchup resume {out_dir} --max-credits M"
        )
    if summary.ok:
        return EXIT_OK
    failed = summary.failed or summary.uncertain or (summary.download and summary.missing_files)
    return EXIT_BUDGET if summary.budget_reached and not failed else EXIT_FAILED


def _inputs(count: int) -> str:
    return f"{count:,} input is" if count == 1 else f"{count:,} inputs are"


def _run_options(args: argparse.Namespace, **extra: Any) -> BulkOptions:
    """The run's ``BulkOptions`` from the flags ``generate`` and ``resume`` share."""
    return BulkOptions(
        concurrency=args.concurrency,
        download=args.download,
        max_credits=args.max_credits,
        price=args.price,
        **extra,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    """``ketchup generate INPUT --out DIR``."""
    key = read_api_key(args)
    read: Callable[[], Iterator[BulkInput]] = load_inputs(
        args.input, model=args.model, images=args.image
    )
    options = client_options(args, key)
    out_dir = Path(args.out)

    def work(
        client: KetchupClient, progress: Callable[[BulkProgress], None]
    ) -> Awaitable[BulkSummary]:
        run = _run_options(args, progress=progress, reuse=args.reuse)
        return run_bulk(client, read(), out_dir, run)

    return run_bulk_command(
        out_dir,
        work,
        client=lambda: make_client(options),
        title="ketchup generate",
        verbose=args.verbose,
    )


def cmd_resume(args: argparse.Namespace) -> int:
    """``ketchup resume DIR``."""
    key = read_api_key(args)
    options = client_options(args, key)
    out_dir = Path(args.dir)

    def work(
        client: KetchupClient, progress: Callable[[BulkProgress], None]
    ) -> Awaitable[BulkSummary]:
        run = _run_options(args, progress=progress, resubmit_uncertain=args.resubmit_uncertain)
        return resume_bulk(client, out_dir, run)

    return run_bulk_command(
        out_dir,
        work,
        client=lambda: make_client(options),
        title="ketchup resume",
        verbose=args.verbose,
    )
