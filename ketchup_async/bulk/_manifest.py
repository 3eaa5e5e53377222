"""``manifest.jsonl``: one JSON line per input, rewritten atomically from the journal.

Runs on the journal thread (a function of the ``sqlite3.Connection``). The file is created
0600: it holds the user's prompts. Each line: ``id``, ``prompt``, ``task_id``, ``status``,
``files``, ``consumed`` (credits this input cost this run's journal), ``error``, and for a
``reused`` input ``reused_from`` (``run``, ``id``, ``task_id`` of the source) and ``saved`` (the
credits its source paid; its ``task_id`` is the source's task).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
from pathlib import Path

__all__ = ["write_manifest"]


def write_manifest(conn: sqlite3.Connection, dest: Path) -> int:
    """Write every row as one JSON line to ``dest`` atomically; return the line count.

    Raises:
        ValueError: A row is damaged (the journal reports it as corrupt).
    """
    part = dest.with_name(f".{dest.name}.{os.getpid()}.{random.getrandbits(32):08x}.part")
    lines = 0
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "w", encoding="utf-8", newline="\n") as handle:
            cursor = conn.execute(
                "SELECT seq, key, request, state, task_id, files, consumed, error, reused_from, "
                "saved FROM inputs ORDER BY seq"
            )
            for seq, key, request, state, task_id, files, consumed, error, source, saved in cursor:
                try:
                    prompt = json.loads(request).get("prompt")
                    names = json.loads(files) if files else []
                    origin = json.loads(source) if source else None
                    if origin is not None:
                        task_id = origin["task_id"]
                except (ValueError, TypeError, AttributeError, KeyError):
                    raise ValueError(
                        f"row #{seq}: column 'request', 'files' or 'reused_from' is damaged"
                    ) from None
                entry = {
                    "id": key,
                    "prompt": prompt,
                    "task_id": task_id,
                    "status": state,
                    "files": names,
                    "consumed": consumed,
                    "error": error,
                }
                if origin is not None:
                    entry["reused_from"] = origin
                    entry["saved"] = saved
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
                lines += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(part, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return lines
