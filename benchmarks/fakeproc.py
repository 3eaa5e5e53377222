"""The fake API in its own process: start it, read its counters, stop it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any

import psutil  # type: ignore[import-untyped]

__all__ = ["API_KEY", "FakeServerProcess"]

#: The key every benchmark client uses against the fake server.
API_KEY = "dk-bench0123456789"

_LISTENING = re.compile(r"fake server listening on (http://\S+)")


class FakeServerProcess:
    """``python -m ketchup_async.testing`` as a child process (a context manager).

    Args:
        args: Extra command-line flags (render time, time scale, rate limits...).
    """

    def __init__(self, args: Sequence[str]) -> None:
        self.args = [
            sys.executable,
            "-m",
            "ketchup_async.testing",
            "--port",
            "0",
            "--cdn-port",
            "0",
            "--api-key",
            API_KEY,
            *args,
        ]
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    def __enter__(self) -> FakeServerProcess:
        self._stderr = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = _LISTENING.search(line)
        if match is None:
            self.__exit__(None, None, None)
            raise RuntimeError(f"fake server did not start: {line!r} {self.stderr()!r}")
        self.base_url = match.group(1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr(self) -> str:
        """What the server wrote to stderr so far (for error messages)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        assert self._proc is not None
        times = psutil.Process(self._proc.pid).cpu_times()
        return float(times.user + times.system)

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """The server's counters (``GET /_fake/stats``)."""
        stats: dict[str, Any] = self._get("/_fake/stats")
        return stats

    def tasks(self) -> dict[str, dict[str, Any]]:
        """Every task's ``completed_at`` (monotonic) and status (``GET /_fake/tasks``)."""
        tasks: dict[str, dict[str, Any]] = self._get("/_fake/tasks")["tasks"]
        return tasks
