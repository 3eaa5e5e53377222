"""Durable bulk runs: many prompts to files, journaled, resumable, never paid twice.

``run_bulk`` and ``resume_bulk`` (``_run``) drive a ``KetchupClient`` through its public API
only, with one frozen ``BulkOptions`` (``_values``). A SQLite journal (``_journal``, over the
SQL in ``_sql``; ``_manifest`` writes ``manifest.jsonl``) records each input's state (the pure
transitions live in ``_states``); ``_runner`` turns outcomes into journal rows and files
(``_files``); ``_outdir`` says what lives where in the output directory; ``_recovery`` keeps the
task ids a full disk kept out of the journal; ``_progress`` is the snapshot handed to progress
callbacks; ``_budget``-driven spend control and ``--reuse`` live in ``_spend`` and ``_reuse``.

Blocking file and SQLite work runs in threads through ``anyio.to_thread.run_sync``, not
``asyncio.to_thread``, for its cancellation rule: a cancelled caller still waits for the
thread to finish, so a journal write or a file rename is never half done behind the caller's
back (Ctrl-C while a row is being committed leaves it committed or not, never racing the
cleanup). That is the one thing anyio does here; task groups and streams were weighed for
``generate_many`` and not used (see ``ketchup_async._many``).
"""

from __future__ import annotations

from ._journal import JOURNAL_DIR
from ._outdir import MANIFEST_FILE
from ._progress import BulkProgress
from ._run import resume_bulk, run_bulk
from ._states import State
from ._values import BulkInput, BulkOptions, BulkSummary

__all__ = [
    "JOURNAL_DIR",
    "MANIFEST_FILE",
    "BulkInput",
    "BulkOptions",
    "BulkProgress",
    "BulkSummary",
    "State",
    "resume_bulk",
    "run_bulk",
]
