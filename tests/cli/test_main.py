"""``ketchup_async.cli``: dispatch, logging, the fake-server command, the import graph."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from pathlib import Path

from ketchup_async.cli import main

from .._processes import BANNER


def test_fake_server_subcommand(tmp_path: Path) -> None:
    """`ketchup fake-server` serves until SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketchup_async.cli", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        assert ready
        assert BANNER.match(proc.stdout.readline())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_main_restores_the_library_log_level() -> None:
    """Running the CLI in process leaves the ketchup_async logger's level as it found it."""
    import logging

    logger = logging.getLogger("ketchup_async")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        main(["status", "../not-a-task-id"])
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(before)
