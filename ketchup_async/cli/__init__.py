"""The ``ketchup`` console script: durable bulk generation, status, a fake server and a demo.

Thin: every command calls the library through its public API (``run_bulk``, ``resume_bulk``,
``KetchupClient``, ``ketchup_async.testing``). Modules: ``_args`` (the parser), ``_runtime``
(exit codes, key, client, signals), ``_inputs`` (INPUT files), ``_health`` (is the API
answering?), ``_progress`` (bars, lines, summary), one module per command (``_bulk`` for
generate and resume, ``_status``, ``_demo``). Exit codes: see ``_runtime``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ..testing import run_server
from ._args import UsageError, build_parser
from ._bulk import cmd_generate, cmd_resume
from ._demo import cmd_demo
from ._runtime import EXIT_USAGE
from ._status import cmd_status

__all__ = ["main"]


class _StderrHandler(logging.Handler):
    """Writes SDK log lines to the current ``sys.stderr`` (a live progress bar redirects it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"ketchup: {record.levelname.lower()}: {self.format(record)}", file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _configure_logging(verbose: bool) -> tuple[logging.Handler, int]:
    # The logger passes everything (the API-health watch counts DEBUG records of failed
    # requests); what reaches the terminal is the handler's level.
    logger = logging.getLogger("ketchup_async")
    handler = _StderrHandler(logging.DEBUG if verbose else logging.WARNING)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler, previous


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "generate": cmd_generate,
    "resume": cmd_resume,
    "status": cmd_status,
    "fake-server": run_server,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ketchup`` with ``argv`` (default: the process's); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(f"ketchup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler, previous_level = _configure_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"ketchup: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        # Called in process (tests, other tools), leave the library's logging as it was.
        logger = logging.getLogger("ketchup_async")
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
