"""The ``ketchup`` subcommands: thin wrappers over the library."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import stat
import sys
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import attrs

from .. import _validate
from .._client import KetchupClient
from .._models import PollPolicy, RetryPolicy, Task
from ..bulk import BulkInput, BulkProgress, BulkSummary, resume_bulk, run_bulk
from ..errors import (
    AuthenticationError,
    BulkError,
    JournalError,
    KetchupError,
    TaskNotFoundError,
    ValidationError,
)
from ._args import UsageError
from ._inputs import load_inputs
from ._progress import load_rich, make_reporter, print_summary

__all__ = [
    "EXIT_BUDGET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Interrupted",
    "dispatch",
    "read_api_key",
    "run_async",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: The credit budget (--max-credits) kept inputs from being sent (and nothing failed).
EXIT_BUDGET = 5
#: 128 + the signal's number, as a shell reports a process killed by it.
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM

T = TypeVar("T")


def read_api_key(args: argparse.Namespace) -> str:
    """The API key from ``--api-key-file`` or ``KETCHUP_API_KEY`` (never from argv).

    Raises:
        UsageError: No key, an unreadable or empty file, or a file other users can read.
    """
    path = getattr(args, "api_key_file", None)
    if path is None:
        key = os.environ.get("KETCHUP_API_KEY", "").strip()
        if not key:
            raise UsageError("no API key: set KETCHUP_API_KEY or use --api-key-file FILE")
        return key
    try:
        with open(path, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read(4096)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the API key file {path!r}: {reason or exc}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(
            f"the API key file {path!r} is accessible by other users: chmod 600 {path}"
        )
    key = text.strip()
    if not key:
        raise UsageError(f"the API key file {path!r} is empty")
    if any(c.isspace() for c in key):
        raise UsageError(f"the API key file {path!r} must hold one key and nothing else")
    return key


def client_options(args: argparse.Namespace, key: str) -> dict[str, Any]:
    """``KetchupClient`` keyword arguments from the connection and run flags."""
    scale = args.time_scale
    polling = PollPolicy().scaled(scale) if scale != 1.0 else PollPolicy()
    query_rate = getattr(args, "query_rate", None)
    if query_rate is not None:
        polling = attrs.evolve(polling, rate=query_rate)
    options: dict[str, Any] = {
        "api_key": key,
        "base_url": args.base_url,
        "polling": polling,
        "retry": RetryPolicy().scaled(scale) if scale != 1.0 else RetryPolicy(),
        "submit_rate": getattr(args, "submit_rate", None),
    }
    model = getattr(args, "model", None)
    if model is not None:
        options["model"] = model
    return options


def make_client(options: dict[str, Any]) -> KetchupClient:
    """A client, with its warnings (plain-HTTP base URL) as one stderr line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            client = KetchupClient(**options)
        except ValidationError as exc:
            raise UsageError(str(exc)) from None
    for warning in caught:
        print(f"ketchup: warning: {warning.message}", file=sys.stderr)
    return client


class Interrupted(Exception):
    """A signal stopped the command: SIGINT (Ctrl-C) or SIGTERM (a service manager's stop).

    Attributes:
        code: The exit status to report (``EXIT_INTERRUPTED`` or ``EXIT_TERMINATED``).
        what: How to say it to the user.
    """

    def __init__(self, code: int) -> None:
        self.code = code
        self.what = "terminated" if code == EXIT_TERMINATED else "interrupted"
        super().__init__(self.what)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` in a fresh event loop; SIGINT and SIGTERM cancel it cleanly.

    Raises:
        Interrupted: A signal stopped the work (after it unwound: the journal is consistent).
    """
    terminated = False

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None

        def on_sigterm() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
        return await work()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        raise Interrupted(EXIT_INTERRUPTED) from None
    except asyncio.CancelledError:
        if terminated:
            raise Interrupted(EXIT_TERMINATED) from None
        raise


def _console() -> Any:
    load_rich()
    from rich.console import Console

    return Console(highlight=False)


Work = Callable[[KetchupClient, Callable[[BulkProgress], None]], Awaitable[BulkSummary]]


def run_bulk_command(
    out_dir: Path,
    work: Work,
    *,
    client: Callable[[], AbstractAsyncContextManager[KetchupClient]],
    title: str,
) -> int:
    """Run a bulk run with progress, then print its summary; map errors to exit codes.

    Args:
        out_dir: The run's directory (for the resume hint).
        work: Runs the bulk run with a client and a progress callback.
        client: Makes the client's async context (the demo's also runs a fake server).
        title: The summary table's title.
    """
    console = _console()
    reporter = make_reporter(console, sys.stdout)

    async def go() -> BulkSummary:
        async with client() as ketchup:
            with reporter:
                return await work(ketchup, reporter)

    try:
        summary = run_async(go)
    except Interrupted as stop:
        print(
            f"\nketchup: {stop.what}; the journal is intact. Resume with: ketchup resume {out_dir}",
            file=sys.stderr,
        )
        return stop.code
    except (BulkError, JournalError, ValidationError) as exc:
        raise UsageError(str(exc)) from None
    except AuthenticationError as exc:
        raise UsageError(f"the API refused the key: {exc}") from None
    except KetchupError as exc:
        print(f"ketchup: error: {exc}", file=sys.stderr)
        print(f"ketchup: resume with: ketchup resume {out_dir}", file=sys.stderr)
        return EXIT_FAILED
    print_summary(console, summary, title=title)
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


def _budget(args: argparse.Namespace) -> dict[str, Any]:
    """The spend-control ``BulkOptions`` fields from the flags."""
    return {"max_credits": args.max_credits, "price": args.price}


def _inputs(count: int) -> str:
    return f"{count:,} input is" if count == 1 else f"{count:,} inputs are"


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
        return run_bulk(
            client,
            read(),
            out_dir,
            concurrency=args.concurrency,
            download=args.download,
            progress=progress,
            reuse=args.reuse,
            **_budget(args),
        )

    return run_bulk_command(
        out_dir, work, client=lambda: make_client(options), title="ketchup generate"
    )


def cmd_resume(args: argparse.Namespace) -> int:
    """``ketchup resume DIR``."""
    key = read_api_key(args)
    options = client_options(args, key)
    out_dir = Path(args.dir)

    def work(
        client: KetchupClient, progress: Callable[[BulkProgress], None]
    ) -> Awaitable[BulkSummary]:
        return resume_bulk(
            client,
            out_dir,
            concurrency=args.concurrency,
            download=args.download,
            resubmit_uncertain=args.resubmit_uncertain,
            progress=progress,
            **_budget(args),
        )

    return run_bulk_command(
        out_dir, work, client=lambda: make_client(options), title="ketchup resume"
    )


def cmd_status(args: argparse.Namespace) -> int:
    """``ketchup status TASK_ID...``: one query each, a table."""
    for task_id in args.task_ids:
        try:
            _validate.check_task_id(task_id)
        except ValidationError as exc:
            raise UsageError(f"bad task id: {exc.problem}") from None
    key = read_api_key(args)
    options = client_options(args, key)
    console = _console()

    async def go() -> list[Task | KetchupError]:
        async with make_client(options) as client:

            async def one(task_id: str) -> Task | KetchupError:
                try:
                    return await client.query(task_id)
                except AuthenticationError:
                    raise
                except KetchupError as exc:
                    return exc

            return list(await asyncio.gather(*(one(t) for t in args.task_ids)))

    try:
        answers = run_async(go)
    except Interrupted as stop:
        return stop.code
    except AuthenticationError as exc:
        raise UsageError(f"the API refused the key: {exc}") from None
    from rich.table import Table

    table = Table("task id", "status", "consumed", "images / reason")
    failures = 0
    for task_id, answer in zip(args.task_ids, answers, strict=True):
        if isinstance(answer, Task):
            detail = "\n".join(i.image[:80] for i in answer.images) or (answer.reason or "")
            consumed = "" if answer.consumed is None else str(answer.consumed)
            table.add_row(task_id, answer.status.value, consumed, detail)
        else:
            failures += 1
            status = "not found" if isinstance(answer, TaskNotFoundError) else "error"
            table.add_row(task_id, f"[red]{status}[/]", "", str(answer))
    console.print(table)
    return EXIT_FAILED if failures else EXIT_OK


def cmd_fake_server(args: argparse.Namespace) -> int:
    """``ketchup fake-server``: the fake API in this process, until Ctrl-C."""
    from ..testing._cli import run

    return run(args)


def dispatch(args: argparse.Namespace) -> int:
    """Run the subcommand named by ``args.command``; return the exit status."""
    from ._demo import cmd_demo

    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "generate": cmd_generate,
        "resume": cmd_resume,
        "status": cmd_status,
        "fake-server": cmd_fake_server,
        "demo": cmd_demo,
    }
    return commands[args.command](args)
