"""Child processes for tests that must survive (or kill) a client: the fake API, the CLI."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["BANNER", "PAST_QUEUED", "FakeProcess", "cli_process", "journal_count"]

#: The first line ``python -m ketchup_async.testing`` (or ``ketchup fake-server``) prints.
BANNER = re.compile(r"fake server listening on (http://127\.0\.0\.1:\d+) ")

#: Every journal state an input reaches once its submit began.
PAST_QUEUED = ("submitting", "submitted", "succeeded", "failed", "uncertain")


class FakeProcess:
    """``python -m ketchup_async.testing`` with the given flags; ``stats()`` reads its counters."""

    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ketchup_async.testing", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30.0)
        assert ready, "the fake server did not start"
        line = self.proc.stdout.readline()
        match = BANNER.match(line)
        assert match, f"unexpected fake server banner: {line!r}"
        self.url = match.group(1)

    def stats(self) -> dict[str, Any]:
        """The fake's ``/_fake/stats`` summary."""
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
        return stats

    def created(self, prompt: str) -> int:
        """How many tasks the fake created for ``prompt``."""
        return int(self.stats()["created_per_prompt"].get(prompt, 0))

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL if it hangs)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored and the child would inherit that
    # (then Ctrl-C rightly does nothing): give the CLI the disposition a terminal user has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_process(*argv: str, base_url: str, api_key: str) -> subprocess.Popen[str]:
    """``ketchup ARGV`` in a child process, configured through the environment."""
    environ = {**os.environ, "KETCHUP_API_KEY": api_key, "KETCHUP_BASE_URL": base_url}
    return subprocess.Popen(
        [sys.executable, "-m", "ketchup_async.cli", *argv],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def journal_count(journal: Path, states: tuple[str, ...]) -> int:
    """Inputs in ``states``, read from another process while a run writes (WAL); -1 before
    the journal exists."""
    if not journal.exists():
        return -1
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as conn:
            marks = ",".join("?" * len(states))
            query = f"SELECT COUNT(*) FROM inputs WHERE state IN ({marks})"
            return int(conn.execute(query, states).fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return -1
