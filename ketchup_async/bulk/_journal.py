"""The SQLite journal of a durable bulk run: one row per input, every transition committed.

Durability: WAL mode with ``synchronous=FULL``. A commit returns only once the WAL is fsynced,
so a committed ``submitting`` or task id survives not only SIGKILL of the process (WAL +
``NORMAL`` would already do) but also a power cut: a submit is money, and an input whose
``submitting`` row was lost would be submitted again. The cost (one fsync per commit) is
amortised by group commit: writes queued while a commit is running go into the next
transaction together, so 100,000 inputs journal at the speed of the API, not of the disk.

Threading: the connection is created, used and closed by ONE dedicated worker thread; the event
loop never touches SQLite. Each write is a small function of the connection run inside its own
SAVEPOINT, so one refused write (an invalid transition) never rolls back its neighbours.

A lock file (``flock``) makes sure one process at a time drives a journal.

Failures: a write that fails (a full disk, an I/O error) fails its own future, and the
transaction it shared with others (they fail too); later writes are tried again, so a caller
can retry what matters (a task id) once space is back. A damaged file or row is one
``JournalCorruptError`` naming the file and the problem, never a raw traceback. The file and
its WAL are created 0600 (``.ketchup/`` 0700): they hold the user's prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from ..errors import JournalCorruptError, JournalError, JournalLockedError, JournalMismatchError
from . import _sql as sql
from ._manifest import write_manifest
from ._outdir import JOURNAL_DIR, JOURNAL_FILE, LOCK_FILE, create_private, journal_path, take_lock
from ._recovery import Recovered
from ._sql import Row, as_journal_error, row_from_db
from ._states import State

__all__ = [
    "JOURNAL_DIR",
    "JOURNAL_FILE",
    "Journal",
    "JournalError",
    "JournalLockedError",
    "JournalMismatchError",
    "Row",
    "journal_path",
]

Op = Callable[[sqlite3.Connection], Any]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the awaiting caller was cancelled; the write happened anyway
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
        future.exception()  # retrieved: a fire-and-forget write that failed logs nothing


class Journal:
    """The journal of one output directory. Open it with ``await Journal.open(path)``."""

    def __init__(self, path: Path, lock: IO[bytes] | None) -> None:
        self.path = path
        self._lock = lock
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ketchup-journal")
        self._conn: sqlite3.Connection | None = None  # touched by the worker thread only
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flushing = False
        self._idle: list[asyncio.Future[None]] = []
        self._closed = False
        #: Transactions committed (for benchmarks: the group-commit ratio).
        self.commits = 0

    def __repr__(self) -> str:
        return f"<Journal {str(self.path)!r}>"

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> Journal:
        """Open (or create) the journal at ``path`` and take its lock.

        Raises:
            JournalLockedError: Another process holds it.
            JournalError: It does not exist (``create=False``), is not a journal, or is from a
                newer version of ketchup-async.
        """
        path = Path(path)
        if not create and not path.exists():
            raise JournalError(f"no journal at {str(path)!r}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = take_lock(path.parent / LOCK_FILE)
        journal = cls(path, lock)
        try:
            await asyncio.wrap_future(journal._executor.submit(journal._connect))
        except BaseException:
            await journal._shutdown()
            raise
        return journal

    def _connect(self) -> None:
        try:
            create_private(self.path)  # before SQLite: its WAL and shm files copy this mode
        except OSError as exc:
            raise JournalError(f"cannot create the journal {str(self.path)!r}: {exc}") from None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {str(self.path)!r}: {exc}") from None
        try:
            sql.setup(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            raise JournalError(f"cannot use the journal {str(self.path)!r}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise JournalCorruptError(str(self.path), f"not a usable journal ({exc})") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Commit what is queued, close the connection and release the lock (idempotent)."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            await self._shutdown()

    async def _shutdown(self) -> None:
        try:
            await asyncio.shield(self._loop.run_in_executor(self._executor, self._disconnect))
        finally:
            self._executor.shutdown(wait=False)
            if self._lock is not None:
                self._lock.close()  # releases the flock
                self._lock = None

    def _disconnect(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    async def flush(self) -> None:
        """Wait until every queued write is committed (or has failed, on its own future)."""
        if self._pending or self._flushing:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._idle.append(waiter)
            await asyncio.shield(waiter)

    # -- group commit -----------------------------------------------------------------------

    def _submit(self, op: Op) -> asyncio.Future[Any]:
        if self._closed:
            raise JournalError("the journal is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append((op, future))
        if not self._flushing:
            self._start_flush()
        return future

    def _start_flush(self) -> None:
        batch, self._pending = self._pending, []
        self._flushing = True
        done = self._executor.submit(self._apply, [op for op, _ in batch])
        done.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._flushed, batch, f))

    def _apply(self, ops: list[Op]) -> list[tuple[bool, Any]]:
        conn = self._conn
        if conn is None:
            raise JournalError("the journal is closed")
        results: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in ops:
                conn.execute("SAVEPOINT op")
                try:
                    value = op(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    results.append((False, as_journal_error(self.path, exc)))
                else:
                    conn.execute("RELEASE op")
                    results.append((True, value))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return results

    def _flushed(
        self, batch: list[tuple[Op, asyncio.Future[Any]]], done: ConcurrentFuture[Any]
    ) -> None:
        self._flushing = False
        error = done.exception()
        if error is not None:  # the whole transaction failed: every write of it did
            failure = as_journal_error(self.path, error)
            for _, future in batch:
                _settle(future, False, failure)
        else:
            self.commits += 1
            for (_, future), (ok, value) in zip(batch, done.result(), strict=True):
                _settle(future, ok, value)
        if self._pending:
            self._start_flush()
            return
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- meta and ingestion -----------------------------------------------------------------

    async def get_meta(self, name: str) -> str | None:
        """A value stored with ``set_meta``, or None."""
        result: str | None = await self._submit(lambda c: sql.get_meta(c, name))
        return result

    async def set_meta(self, name: str, value: str) -> None:
        """Store a small named value (the API base URL, the schema version...)."""
        await self._submit(lambda c: sql.set_meta(c, name, value))

    async def add_inputs(self, items: Sequence[tuple[str, str]]) -> int:
        """Add ``(key, request JSON)`` pairs as ``queued`` in one transaction.

        Keys already in the journal with the same request are left as they are (a re-run).

        Returns:
            How many inputs were new.

        Raises:
            JournalMismatchError: A key is already there with another request (nothing of
                this batch is added).
        """
        added: int = await self._submit(lambda c: sql.add_inputs(c, items, time.time()))
        return added

    # -- reading ----------------------------------------------------------------------------

    async def counts(self) -> dict[State, int]:
        """The number of inputs in each state (every state present, zeros included)."""
        result: dict[State, int] = await self._submit(sql.counts)
        return result

    async def missing_files(self) -> int:
        """How many succeeded inputs have fewer files recorded than result images."""
        result: int = await self._submit(sql.missing_files)
        return result

    async def consumed_total(self) -> Decimal:
        """The sum of the credits consumed by every input so far."""
        values: list[str] = await self._submit(sql.consumed_values)
        total = Decimal(0)
        for value in values:
            with contextlib.suppress(InvalidOperation):
                total += Decimal(value)
        return total

    async def rows(
        self, state: State | None = None, *, after: int = 0, limit: int = 1000
    ) -> list[Row]:
        """A page of rows (of one state, or all) with ``seq > after``, in input order."""
        records: list[Sequence[Any]] = await self._submit(
            lambda c: sql.rows(c, state, after, limit)
        )
        return [self._row(r) for r in records]

    async def row(self, key: str) -> Row | None:
        """The row of the input with ``key``, or None."""
        record: Sequence[Any] | None = await self._submit(lambda c: sql.row_by_key(c, key))
        return None if record is None else self._row(record)

    def _row(self, record: Sequence[Any]) -> Row:
        try:
            return row_from_db(record)
        except (ValueError, TypeError) as exc:
            raise JournalCorruptError(str(self.path), str(exc)) from None

    async def has_tasks(self) -> bool:
        """True once any input may have a task at the API (submitting or later, or a task id)."""
        result: bool = await self._submit(sql.has_tasks)
        return result

    # -- transitions ------------------------------------------------------------------------

    async def recover(self, *, resubmit_uncertain: bool) -> tuple[int, int]:
        """Settle a previous run that stopped: ``submitting`` rows become ``uncertain``.

        Args:
            resubmit_uncertain: Also put every ``uncertain`` row back to ``queued`` (it may
                then be charged twice).

        Returns:
            (rows made uncertain, rows re-queued).
        """
        result: tuple[int, int] = await self._submit(
            lambda c: sql.recover(c, resubmit_uncertain, time.time())
        )
        return result

    async def attach_recovered(self, entries: Sequence[Recovered]) -> list[Recovered]:
        """Put task ids from the recovery file back: ``submitting -> submitted`` (one commit).

        Returns:
            The entries that could not be applied (their row is in another state or has
            another task id); entries already in the journal count as applied.
        """
        now = time.time()
        result: list[Recovered] = await self._submit(
            lambda c: [e for e in entries if not sql.attach_task(c, e.key, e.task_id, now)]
        )
        return result

    def mark_submitting(self, seq: int) -> asyncio.Future[None]:
        """``queued -> submitting``: committed before the submit is sent."""
        return self._transition(seq, State.SUBMITTING, {"error": None})

    def mark_requeued(self, seq: int, error: str) -> asyncio.Future[None]:
        """``submitting -> queued``: the submit was not sent or refused, nothing was charged."""
        return self._transition(seq, State.QUEUED, {"error": error}, source=State.SUBMITTING)

    def mark_submitted(self, seq: int, task_id: str) -> asyncio.Future[None]:
        """``submitting -> submitted`` with the task id: await it before anything else."""
        return self._transition(seq, State.SUBMITTED, {"task_id": task_id})

    def mark_succeeded(
        self, seq: int, images: Sequence[str], consumed: str | None
    ) -> asyncio.Future[None]:
        """``submitted -> succeeded`` with the result images and the credits consumed."""
        return self._transition(
            seq, State.SUCCEEDED, {"images": json.dumps(list(images)), "consumed": consumed}
        )

    def mark_failed(
        self, seq: int, error: str, consumed: str | None = None
    ) -> asyncio.Future[None]:
        """``submitting|submitted -> failed`` with why."""
        return self._transition(seq, State.FAILED, {"error": error, "consumed": consumed})

    def mark_uncertain(self, seq: int, error: str) -> asyncio.Future[None]:
        """``submitting -> uncertain``: the submit may or may not have been charged."""
        return self._transition(seq, State.UNCERTAIN, {"error": error})

    def set_files(
        self,
        seq: int,
        files: Sequence[str],
        error: str | None = None,
        checksums: Sequence[str] = (),
    ) -> asyncio.Future[None]:
        """Record the files of a ``succeeded`` row and their sha256 (or why some are missing)."""
        sums = list(checksums)
        return self._submit(lambda c: sql.set_files(c, seq, list(files), error, time.time(), sums))

    def mark_reused(self, seq: int, values: dict[str, Any]) -> asyncio.Future[None]:
        """``queued -> reused`` with its ``files``, ``checksums``, ``reused_from``, ``saved``."""
        return self._transition(seq, State.REUSED, values, source=State.QUEUED)

    def call(self, op: Op) -> asyncio.Future[Any]:
        """Run ``op(connection)`` on the journal thread, in the next commit (see ``_sql``)."""
        return self._submit(op)

    def claim_names(self, seq: int, base: str, count: int) -> asyncio.Future[list[str]]:
        """Reserve ``count`` file stems for row ``seq``: ``base``, ``base-2``, ...

        A stem already owned by another row (also ignoring case) is replaced by one with a
        short digest, so two inputs never write the same file. Calling it again for the same
        row returns the same stems.
        """
        return self._submit(lambda c: sql.claim_names(c, seq, base, count))

    def write_manifest(self, dest: Path) -> asyncio.Future[int]:
        """Rewrite ``dest`` (``manifest.jsonl``) atomically from the journal; return its lines."""
        return self._submit(lambda c: write_manifest(c, dest))

    def _transition(
        self, seq: int, target: State, values: dict[str, Any], source: State | None = None
    ) -> asyncio.Future[None]:
        now = time.time()
        return self._submit(lambda c: sql.transition(c, seq, target, values, now, source))
