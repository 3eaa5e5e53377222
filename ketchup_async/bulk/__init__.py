"""Durable bulk runs: many prompts to files, journaled, resumable, never paid twice.

``run_bulk`` and ``resume_bulk`` drive a ``KetchupClient`` through its public API only. A
SQLite journal (``_journal`` over the SQL in ``_sql``) records each input's state (the pure
transitions live in ``_states``); ``_runner`` turns outcomes into journal rows and files
(``_files``); ``_progress`` is the snapshot handed to progress callbacks.
"""

from __future__ import annotations

from ._journal import JOURNAL_DIR
from ._progress import BulkProgress
from ._run import MANIFEST_FILE, BulkInput, BulkSummary, resume_bulk, run_bulk
from ._states import State

__all__ = [
    "JOURNAL_DIR",
    "MANIFEST_FILE",
    "BulkInput",
    "BulkProgress",
    "BulkSummary",
    "State",
    "resume_bulk",
    "run_bulk",
]
