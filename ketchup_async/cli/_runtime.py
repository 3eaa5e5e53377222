"""What every ``ketchup`` command shares: exit codes, the API key, the client, signals.

Exit codes (also in ``ketchup --help`` and the README):

- 0 ``EXIT_OK``: every input succeeded (``status``: every task was found).
- 1 ``EXIT_FAILED``: some inputs failed, are uncertain or not finished (``ketchup resume DIR``).
- 2 ``EXIT_USAGE``: a usage error (bad flag, input, key, directory): nothing was sent.
- 4 ``EXIT_JOURNAL``: the run's journal cannot be used (locked by another run, unreadable or
  corrupt, or a write failed, e.g. a full disk); fix the cause, then ``ketchup resume DIR``.
- 5 ``EXIT_BUDGET``: the credit budget (``--max-credits``) was reached and nothing failed;
  inputs not sent stay queued (``ketchup resume DIR --max-credits M``).
- 130 / 143 ``EXIT_INTERRUPTED`` / ``EXIT_TERMINATED``: stopped by Ctrl-C / SIGTERM (128 + the
  signal's number, as a shell reports it); the journal is intact.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import stat
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from .. import KetchupClient, PollPolicy, RetryPolicy, ValidationError
from ._args import UsageError

__all__ = [
    "EXIT_BUDGET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_JOURNAL",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "Interrupted",
    "client_options",
    "console",
    "make_client",
    "read_api_key",
    "run_async",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_JOURNAL, EXIT_BUDGET = 0, 1, 2, 4, 5
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
    # A loopback API (a local fake server) serves its images from loopback too: allow that host
    # (downloads refuse non-public addresses otherwise), besides $KETCHUP_DOWNLOAD_HOSTS.
    host = urlsplit(args.base_url or os.environ.get("KETCHUP_BASE_URL", "")).hostname
    if host and _is_loopback(host):
        extra = os.environ.get("KETCHUP_DOWNLOAD_HOSTS", "").split(",")
        options["download_hosts"] = [host, *(entry.strip() for entry in extra if entry.strip())]
    return options


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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


def console() -> Any:
    """A rich ``Console`` for stdout (one clear line if rich is not installed)."""
    try:
        from rich.console import Console
    except ImportError:
        raise UsageError(
            "the ketchup command needs the 'rich' package: pip install 'ketchup-async[cli]'"
        ) from None
    return Console(highlight=False)
