"""The ``ketchup`` console script: durable bulk generation, status, a fake server and a demo.

Thin: every command calls the library (``run_bulk``, ``resume_bulk``, ``KetchupClient``).
Exit status: 0 when every input succeeded, 1 when some did not, 2 for a usage error, 5 when the
credit budget (``--max-credits``) kept inputs from being sent, 130 when interrupted (Ctrl-C) and
143 when terminated (SIGTERM); after any of the last three the journal is intact and
``ketchup resume DIR`` continues.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from ._args import UsageError, build_parser

__all__ = ["main"]


class _StderrHandler(logging.Handler):
    """Writes SDK log lines to the current ``sys.stderr`` (a live progress bar redirects it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"ketchup: {record.levelname.lower()}: {self.format(record)}", file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _configure_logging(verbose: bool) -> tuple[logging.Handler, int]:
    logger = logging.getLogger("ketchup_async")
    handler = _StderrHandler()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    return handler, previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ketchup`` with ``argv`` (default: the process's); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"ketchup: error: {exc}", file=sys.stderr)
        return 2
    handler, previous_level = _configure_logging(args.verbose)
    try:
        from ._commands import dispatch

        return dispatch(args)
    except UsageError as exc:
        print(f"ketchup: error: {exc}", file=sys.stderr)
        return 2
    finally:
        # Called in process (tests, other tools), leave the library's logging as it was.
        logger = logging.getLogger("ketchup_async")
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
