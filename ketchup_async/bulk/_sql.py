"""The journal's SQL: plain functions of a ``sqlite3.Connection``, run on the journal thread.

Every state change goes through ``transition``, whose ``WHERE state IN (...)`` comes from the
pure transition table in ``_states``: a write that the table forbids changes nothing and
raises ``InvalidTransitionError``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import (
    InvalidTransitionError,
    JournalCorruptError,
    JournalError,
    JournalMismatchError,
    KetchupError,
)
from ._row import COLUMNS, Row, row_from_db
from ._states import State, check_transition, sources_of

__all__ = [
    "COLUMNS",
    "JournalError",
    "JournalMismatchError",
    "Row",
    "BUDGET_REASON",
    "add_inputs",
    "as_journal_error",
    "attach_task",
    "claim_names",
    "consumed_values",
    "counts",
    "get_meta",
    "has_tasks",
    "mark_budget_stopped",
    "missing_files",
    "recover",
    "row_by_key",
    "row_from_db",
    "rows",
    "saved_values",
    "set_files",
    "set_meta",
    "setup",
    "spend_rows",
    "transition",
]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    images TEXT,
    files TEXT,
    consumed TEXT,
    error TEXT,
    checksums TEXT,
    reused_from TEXT,
    saved TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inputs_state ON inputs (state, seq);
CREATE TABLE IF NOT EXISTS names (
    stem TEXT PRIMARY KEY COLLATE NOCASE,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS names_owner ON names (seq, idx);
"""

# Columns version 2 added to ``inputs`` (a version 1 journal gets them on open).
_ADDED_IN_2 = ("checksums", "reused_from", "saved")

# Columns a transition may set (the SQL is built from these names only).
_SETTABLE = frozenset(
    {"task_id", "images", "consumed", "error", "files", "checksums", "reused_from", "saved"}
)

#: The error of a ``queued`` input a credit budget kept from being sent.
BUDGET_REASON = "budget"

_INTERRUPTED = (
    "the run stopped while this submit was in flight: it may or may not have been charged"
)


def as_journal_error(path: Path, exc: BaseException) -> BaseException:
    """What a caller sees for ``exc`` raised by SQLite or by decoding a row of ``path``."""
    if isinstance(exc, KetchupError):
        return exc
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return JournalCorruptError(str(path), str(exc))
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        return JournalCorruptError(str(path), str(exc))
    if isinstance(exc, (sqlite3.Error, OSError)):
        return JournalError(f"the journal {str(path)!r} could not be written: {exc}")
    return exc


def setup(conn: sqlite3.Connection) -> None:
    """Set WAL + ``synchronous=FULL`` and create (or check) the schema."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        found = get_meta(conn, "schema")
        if found is not None and (not found.isdigit() or int(found) > SCHEMA_VERSION):
            raise JournalError(
                f"the journal has schema version {found!r}; this ketchup-async reads "
                f"version {SCHEMA_VERSION} (upgrade ketchup-async)"
            )
        present = {r[1] for r in conn.execute("PRAGMA table_info(inputs)")}
        for column in _ADDED_IN_2:
            if column not in present:  # a version 1 journal
                conn.execute(f"ALTER TABLE inputs ADD COLUMN {column} TEXT")
        if found != str(SCHEMA_VERSION):
            set_meta(conn, "schema", str(SCHEMA_VERSION))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def get_meta(conn: sqlite3.Connection, name: str) -> str | None:
    """Read one meta value."""
    record = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    return None if record is None else str(record[0])


def set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    """Write one meta value."""
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def add_inputs(conn: sqlite3.Connection, items: Sequence[tuple[str, str]], now: float) -> int:
    """Insert ``(key, request JSON)`` pairs as ``queued``; return how many were new.

    Raises:
        JournalMismatchError: A key exists with another request.
    """
    added = 0
    for key, request in items:
        cursor = conn.execute(
            "INSERT OR IGNORE INTO inputs (key, request, state, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, request, State.QUEUED.value, now, now),
        )
        if cursor.rowcount == 1:
            added += 1
            continue
        record = conn.execute("SELECT request FROM inputs WHERE key = ?", (key,)).fetchone()
        if record is None or record[0] != request:
            raise JournalMismatchError(key)
    return added


def counts(conn: sqlite3.Connection) -> dict[State, int]:
    """Inputs per state, every state included."""
    result = dict.fromkeys(State, 0)
    for state, number in conn.execute("SELECT state, COUNT(*) FROM inputs GROUP BY state"):
        try:
            result[State(state)] = number
        except ValueError:
            raise ValueError(f"{number} row(s) have the unknown state {state!r}") from None
    return result


def has_tasks(conn: sqlite3.Connection) -> bool:
    """True if any input has a task id or may have one (its submit went out)."""
    maybe = sorted(s.value for s in (State.SUBMITTING, State.SUBMITTED, State.UNCERTAIN))
    record = conn.execute(
        "SELECT 1 FROM inputs WHERE task_id IS NOT NULL OR state IN (?, ?, ?) LIMIT 1",
        maybe,
    ).fetchone()
    return record is not None


def missing_files(conn: sqlite3.Connection) -> int:
    """Succeeded inputs with fewer files recorded than result images."""
    record = conn.execute(
        "SELECT COUNT(*) FROM inputs WHERE state = ? AND "
        "json_array_length(COALESCE(files, '[]')) < json_array_length(COALESCE(images, '[]'))",
        (State.SUCCEEDED.value,),
    ).fetchone()
    return int(record[0])


def consumed_values(conn: sqlite3.Connection) -> list[str]:
    """Every non-null ``consumed`` value."""
    return [r[0] for r in conn.execute("SELECT consumed FROM inputs WHERE consumed IS NOT NULL")]


def saved_values(conn: sqlite3.Connection) -> list[str]:
    """Every non-null ``saved`` value (credits reused inputs did not pay again)."""
    return [r[0] for r in conn.execute("SELECT saved FROM inputs WHERE saved IS NOT NULL")]


def spend_rows(conn: sqlite3.Connection) -> list[tuple[int, str, str, str | None]]:
    """``(seq, request JSON, state, consumed)`` of every input that may have cost credits."""
    maybe = [s.value for s in (State.SUBMITTED, State.SUCCEEDED, State.FAILED, State.UNCERTAIN)]
    query = "SELECT seq, request, state, consumed FROM inputs WHERE state IN (?, ?, ?, ?)"
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query, maybe)]


def mark_budget_stopped(conn: sqlite3.Connection, now: float) -> int:
    """Give every ``queued`` input the reason ``budget``; return how many."""
    return conn.execute(
        "UPDATE inputs SET error = ?, updated_at = ? WHERE state = ?",
        (BUDGET_REASON, now, State.QUEUED.value),
    ).rowcount


def rows(
    conn: sqlite3.Connection, state: State | None, after: int, limit: int
) -> list[Sequence[Any]]:
    """A page of rows with ``seq > after`` (of one state, or all), in input order."""
    if state is None:
        query = f"SELECT {COLUMNS} FROM inputs WHERE seq > ? ORDER BY seq LIMIT ?"
        return conn.execute(query, (after, limit)).fetchall()
    query = f"SELECT {COLUMNS} FROM inputs WHERE state = ? AND seq > ? ORDER BY seq LIMIT ?"
    return conn.execute(query, (state.value, after, limit)).fetchall()


def row_by_key(conn: sqlite3.Connection, key: str) -> Sequence[Any] | None:
    """The row of ``key``, or None."""
    record: Sequence[Any] | None = conn.execute(
        f"SELECT {COLUMNS} FROM inputs WHERE key = ?", (key,)
    ).fetchone()
    return record


def transition(
    conn: sqlite3.Connection,
    seq: int,
    target: State,
    values: dict[str, Any],
    now: float,
    source: State | None = None,
) -> None:
    """Move row ``seq`` to ``target`` (setting ``values``) if the table allows it.

    With ``source``, only from that state (which the table must allow).

    Raises:
        InvalidTransitionError: The row's state cannot go to ``target``.
        JournalError: There is no such row.
    """
    unknown = set(values) - _SETTABLE
    if unknown:
        raise JournalError(f"cannot set {sorted(unknown)} in a transition")
    if source is not None:
        check_transition(source, target)
    allowed = sources_of(target) if source is None else {source}
    sources = sorted(s.value for s in allowed)
    sets = "".join(f", {column} = ?" for column in values)
    marks = ", ".join("?" * len(sources))
    cursor = conn.execute(
        f"UPDATE inputs SET state = ?, updated_at = ?{sets} WHERE seq = ? AND state IN ({marks})",
        (target.value, now, *values.values(), seq, *sources),
    )
    if cursor.rowcount == 1:
        return
    record = conn.execute("SELECT state FROM inputs WHERE seq = ?", (seq,)).fetchone()
    if record is None:
        raise JournalError(f"there is no input #{seq} in the journal")
    check_transition(State(record[0]), target)
    if source is not None:
        raise InvalidTransitionError(record[0], target.value)
    raise JournalError(f"input #{seq} could not be updated")  # pragma: no cover


def attach_task(conn: sqlite3.Connection, key: str, task_id: str, now: float) -> bool:
    """Record a recovered task id: ``submitting -> submitted``; True if it is now recorded.

    False when the row is missing, in another state, or has another task id.
    """
    record = conn.execute("SELECT seq, state, task_id FROM inputs WHERE key = ?", (key,)).fetchone()
    if record is None:
        return False
    seq, state, known = record
    if known is not None:
        return bool(known == task_id)
    if state != State.SUBMITTING.value:
        return False
    transition(conn, seq, State.SUBMITTED, {"task_id": task_id}, now, State.SUBMITTING)
    return True


def recover(conn: sqlite3.Connection, resubmit_uncertain: bool, now: float) -> tuple[int, int]:
    """``submitting -> uncertain`` for every row; then, if asked, ``uncertain -> queued``."""
    check_transition(State.SUBMITTING, State.UNCERTAIN)
    uncertain = conn.execute(
        "UPDATE inputs SET state = ?, error = ?, updated_at = ? WHERE state = ?",
        (State.UNCERTAIN.value, _INTERRUPTED, now, State.SUBMITTING.value),
    ).rowcount
    requeued = 0
    if resubmit_uncertain:
        check_transition(State.UNCERTAIN, State.QUEUED)
        requeued = conn.execute(
            "UPDATE inputs SET state = ?, task_id = NULL, error = NULL, updated_at = ? "
            "WHERE state = ?",
            (State.QUEUED.value, now, State.UNCERTAIN.value),
        ).rowcount
    return uncertain, requeued


def set_files(
    conn: sqlite3.Connection,
    seq: int,
    files: list[str],
    error: str | None,
    now: float,
    checksums: list[str] | None = None,
) -> None:
    """Record the files of a succeeded row (and why some are missing, if they are).

    Raises:
        JournalError: The row has not succeeded.
    """
    cursor = conn.execute(
        "UPDATE inputs SET files = ?, checksums = ?, error = ?, updated_at = ? "
        "WHERE seq = ? AND state = ?",
        (json.dumps(files), json.dumps(checksums or []), error, now, seq, State.SUCCEEDED.value),
    )
    if cursor.rowcount != 1:
        raise JournalError(f"input #{seq} has not succeeded: it has no files to record")


def claim_names(conn: sqlite3.Connection, seq: int, base: str, count: int) -> list[str]:
    """Reserve ``count`` file stems for row ``seq`` (see ``Journal.claim_names``)."""
    stems: list[str] = []
    for idx in range(count):
        owned = conn.execute(
            "SELECT stem FROM names WHERE seq = ? AND idx = ?", (seq, idx)
        ).fetchone()
        if owned is not None:
            stems.append(owned[0])
            continue
        natural = base if idx == 0 else f"{base}-{idx + 1}"
        candidate, attempt = natural, 0
        while (
            conn.execute(
                "INSERT OR IGNORE INTO names (stem, seq, idx) VALUES (?, ?, ?)",
                (candidate, seq, idx),
            ).rowcount
            != 1
        ):
            attempt += 1
            digest = hashlib.sha256(f"{seq}:{idx}:{attempt}".encode()).hexdigest()[:8]
            candidate = f"{natural}-{digest}"
        stems.append(candidate)
    return stems
