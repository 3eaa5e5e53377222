"""A ``FakeKetchupServer`` in its own process, so it outlives a SIGKILLed client."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
import urllib.request
from typing import Any

_BANNER = re.compile(r"fake server listening on (http://127\.0\.0\.1:\d+) ")


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
        match = _BANNER.match(self.proc.stdout.readline())
        assert match, "unexpected fake server banner"
        self.url = match.group(1)

    def stats(self) -> dict[str, Any]:
        """The fake's ``/_fake/stats`` summary."""
        with urllib.request.urlopen(f"{self.url}/_fake/stats", timeout=10) as response:
            stats: dict[str, Any] = json.load(response)
        return stats

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
