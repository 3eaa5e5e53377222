"""Callbacks that arrive before their job is known, remembered in bounded memory.

A webhook can beat the submit response that names its task. Only what resolving needs is
kept: the task id, the status and the verify flag, never the payload (its images could be
forged), bounded by count and by bytes; when the job appears, the poller queries it.
"""

from __future__ import annotations

from collections import OrderedDict

from ._models import TaskStatus
from ._validate import MAX_TASK_ID_CHARS

__all__ = ["EARLY_CALLBACKS", "EARLY_CALLBACK_BYTES", "EarlyCallbacks"]

#: Task ids remembered at most...
EARLY_CALLBACKS = 10_000
#: ...and about this many bytes at most.
EARLY_CALLBACK_BYTES = 2 * 1024 * 1024
_ENTRY_OVERHEAD = 160  # bytes per entry besides its task id (an estimate)


class EarlyCallbacks:
    """A bounded, oldest-first-evicted memory of (task id -> status, verify)."""

    __slots__ = ("_bytes", "_entries", "max_bytes", "max_count")

    def __init__(
        self, *, max_count: int = EARLY_CALLBACKS, max_bytes: int = EARLY_CALLBACK_BYTES
    ) -> None:
        self._entries: OrderedDict[str, tuple[TaskStatus, bool]] = OrderedDict()
        self._bytes = 0
        self.max_count = max_count
        self.max_bytes = max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The estimated bytes held."""
        return self._bytes

    def remember(self, task_id: str, status: TaskStatus, verify: bool) -> None:
        """Remember a final callback for ``task_id`` (evicting the oldest beyond the bounds)."""
        if len(task_id) > MAX_TASK_ID_CHARS:
            return  # not a task id the client could ever track
        self.pop(task_id)
        self._entries[task_id] = (status, verify)
        self._bytes += len(task_id) + _ENTRY_OVERHEAD
        while len(self._entries) > self.max_count or self._bytes > self.max_bytes:
            oldest, _ = self._entries.popitem(last=False)
            self._bytes -= len(oldest) + _ENTRY_OVERHEAD

    def pop(self, task_id: str) -> tuple[TaskStatus, bool] | None:
        """Forget ``task_id`` and return what was remembered for it, if anything."""
        entry = self._entries.pop(task_id, None)
        if entry is not None:
            self._bytes -= len(task_id) + _ENTRY_OVERHEAD
        return entry

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
        self._bytes = 0
