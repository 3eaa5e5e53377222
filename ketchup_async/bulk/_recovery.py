"""The recovery file: task ids the journal could not record (a full disk), kept anyway.

A task id is money: once the API returned it, it must never be lost. When the journal cannot
record one (``mark_submitted`` keeps failing), the runner logs it at ERROR (stderr by default)
and appends ``{"key", "seq", "task_id"}`` as one JSON line to
``<out>/.ketchup/recovered-task-ids.jsonl``. The file is opened when the run starts and given
some room in advance (``posix_fallocate``), so a disk that fills up later can still take a few
hundred ids; the room is zero bytes, which readers skip. ``resume_bulk`` reads it before
anything else and puts each id back into the journal, then deletes the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import attrs

from ..errors import KetchupError, UnjournaledTasksError

__all__ = ["Recovered", "RecoveryLog", "TaskIdKeeper", "read_recovered"]

logger = logging.getLogger("ketchup_async")

#: Bytes reserved when the file is opened (about 500 task ids).
RESERVE_BYTES = 64 * 1024


@attrs.frozen
class Recovered:
    """One task id from the recovery file.

    Attributes:
        key: The input's key.
        seq: The input's row in the journal.
        task_id: The task the API created for it.
    """

    key: str
    seq: int
    task_id: str


class RecoveryLog:
    """The recovery file of one run, open for appending (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._end = 0
        self.written = 0

    def open(self) -> None:
        """Open (creating it 0600) and reserve room; best effort: failures are logged."""
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            data = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
            self._end = len(data.rstrip(b"\0"))
        except OSError as exc:
            logger.warning("cannot open the recovery file %s: %s", self.path, exc)
            self.close()
            return
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: no fallocate
            os.posix_fallocate(self._fd, self._end, RESERVE_BYTES)

    def append(self, entry: Recovered) -> bool:
        """Write one id durably; return False if it could not be written."""
        line = json.dumps(attrs.asdict(entry), ensure_ascii=False).encode() + b"\n"
        try:
            if self._fd is None:
                self.open()
            if self._fd is None:
                return False
            written = os.pwrite(self._fd, line, self._end)
            if written != len(line):
                raise OSError(f"short write ({written} of {len(line)} bytes)")
            os.fsync(self._fd)
        except OSError as exc:
            logger.error("cannot write task id %s to %s: %s", entry.task_id, self.path, exc)
            return False
        self._end += len(line)
        self.written += 1
        return True

    def close(self) -> None:
        """Give back the unused room; delete the file if it holds nothing."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, self._end)
        except OSError:  # pragma: no cover - readers skip the zero bytes anyway
            pass
        finally:
            os.close(fd)
        if self._end == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()


def read_recovered(path: Path) -> list[Recovered]:
    """The ids in a recovery file (none if it is missing); unreadable lines are logged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    found: list[Recovered] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip(b"\0 \r\t")
        if not line:
            continue
        try:
            item = json.loads(line)
            found.append(Recovered(str(item["key"]), int(item["seq"]), str(item["task_id"])))
        except (ValueError, TypeError, KeyError) as exc:
            logger.error("%s line %d is not a task id record (%s): %r", path, number, exc, line)
    return found


class TaskIdKeeper:
    """Journals task ids; keeps (logs and saves) those the journal cannot take.

    Args:
        write: Journals one task id (``Journal.mark_submitted``).
        log: The run's recovery file.
        delays: Seconds to wait before each new try of a failed write.
    """

    def __init__(
        self,
        write: Callable[[int, str], Awaitable[None]],
        log: RecoveryLog,
        delays: Sequence[float],
    ) -> None:
        self._write = write
        self.log = log
        self.delays = tuple(delays)
        #: Input key -> the entry the journal could not record (yet).
        self.lost: dict[str, Recovered] = {}

    async def record(self, entry: Recovered) -> KetchupError | None:
        """Journal ``entry``, retrying; if that fails, log and save it and return the error."""
        error = await self._try(entry)
        if error is not None:
            self.lost[entry.key] = entry
            saved = self.log.append(entry)
            logger.error(
                "input %s: task %s was created but the journal could not record it (%s); %s",
                entry.key,
                entry.task_id,
                error,
                f"saved in {self.log.path}" if saved else "NOT saved anywhere else: keep this line",
            )
        return error

    async def retry(self) -> int:
        """Try the lost entries once more; return how many the journal took."""
        taken = 0
        for key, entry in list(self.lost.items()):
            if await self._try(entry) is None:
                del self.lost[key]
                taken += 1
        return taken

    def error(self) -> UnjournaledTasksError | None:
        """The error that ends a run with lost entries (None when there are none)."""
        if not self.lost:
            return None
        return UnjournaledTasksError(
            {e.key: e.task_id for e in self.lost.values()},
            str(self.log.path) if self.log.written else None,
        )

    async def _try(self, entry: Recovered) -> KetchupError | None:
        error: KetchupError | None = None
        for delay in (0.0, *self.delays):
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._write(entry.seq, entry.task_id)
            except KetchupError as exc:
                error = exc
                continue
            return None
        return error
