"""The output directory of a bulk run: what lives where, and how it is kept safe.

```
<out>/                         the run's images ({id}.png ...) and manifest.jsonl
<out>/.ketchup/                the run's own files (mode 0700)
    journal.sqlite3 (+ -wal, -shm)  the journal (mode 0600)
    lock                       held (flock) by the process driving the run
    recovered-task-ids.jsonl   task ids the journal could not record (disk full), if any
    tmp/                       downloads in progress (cleared when a run starts)
```

Rules: a run starts only in a new or empty directory, or one that already holds a ketchup run
(``refuse_foreign``); every file of the run is created private (0600: prompts and results are
the user's data); no input's file can share a name with the run's own files (file stems never
start with a dot, and always end with an image extension, see ``_files``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import IO

from ..errors import BulkError, JournalLockedError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JOURNAL_DIR",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "RECOVERY_FILE",
    "TMP_DIR",
    "clean_stale",
    "create_private",
    "journal_path",
    "prepare",
    "refuse_foreign",
    "run_dir",
    "take_lock",
]

#: The manifest's name in the output directory.
MANIFEST_FILE = "manifest.jsonl"
#: The run's own directory inside the output directory.
JOURNAL_DIR = ".ketchup"
JOURNAL_FILE = "journal.sqlite3"
LOCK_FILE = "lock"
RECOVERY_FILE = "recovered-task-ids.jsonl"
TMP_DIR = "tmp"

# Temporary files of atomic writes: ``.<name>.<pid>.<8 hex>.part`` (manifest, older downloads).
_STALE_PART = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.part")


def journal_path(out_dir: str | os.PathLike[str]) -> Path:
    """Where the journal of the bulk run writing into ``out_dir`` lives."""
    return Path(out_dir) / JOURNAL_DIR / JOURNAL_FILE


def run_dir(out_dir: str | os.PathLike[str]) -> Path:
    """The run's own directory (``<out>/.ketchup``)."""
    return Path(out_dir) / JOURNAL_DIR


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; make it 0600 if it does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)


def prepare(out_dir: Path) -> None:
    """Create ``out_dir`` and its ``.ketchup`` directory (0700), or raise ``BulkError``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        run_dir(out_dir).mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise BulkError(
            f"cannot create the output directory {str(out_dir)!r}: {exc.strerror or exc}"
        ) from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BulkError(f"the output directory {str(out_dir)!r} is not writable")


def refuse_foreign(out_dir: Path) -> None:
    """Refuse a non-empty directory that holds no ketchup run (its files are someone else's).

    A directory with a ``.ketchup/`` folder is a run's (or one being started: its lock says).

    Raises:
        BulkError: ``out_dir`` is not a directory, or holds files and no ``.ketchup/``.
    """
    if not out_dir.exists() or run_dir(out_dir).is_dir():  # new, or a run's (maybe starting)
        return
    if not out_dir.is_dir():
        raise BulkError(f"{str(out_dir)!r} exists and is not a directory")
    try:
        foreign = sorted(e.name for e in out_dir.iterdir() if e.name != JOURNAL_DIR)
    except OSError as exc:
        raise BulkError(f"cannot read {str(out_dir)!r}: {exc.strerror or exc}") from None
    if foreign:
        raise BulkError(
            f"{str(out_dir)!r} is not empty and holds no ketchup run (it has {foreign[0]!r}"
            f"{' and more' if len(foreign) > 1 else ''}): choose a new or empty directory, "
            "so that no file of yours is replaced"
        )


def clean_stale(out_dir: Path) -> int:
    """Delete what an earlier run killed mid-write left behind; return how many were removed.

    Only the run's own leftovers: ``.ketchup/tmp/`` and ``.<name>.<pid>.<hex>.part`` files of
    atomic writes. Call it holding the journal's lock (no other process writes them).
    """
    removed = 0
    tmp = run_dir(out_dir) / TMP_DIR
    if tmp.exists():
        removed += sum(1 for _ in tmp.iterdir())
        shutil.rmtree(tmp, ignore_errors=True)
    for entry in out_dir.iterdir():
        if _STALE_PART.fullmatch(entry.name) and entry.is_file():
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


def take_lock(path: Path) -> IO[bytes] | None:
    """Take the run's lock file (0600) for this process, or raise ``JournalLockedError``."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise JournalLockedError(
            f"another ketchup run is using {str(path.parent.parent)!r} (its journal is locked)"
        ) from None
    return handle
