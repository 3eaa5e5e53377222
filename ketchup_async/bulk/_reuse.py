"""Content-addressed reuse: take the files of an identical request from another (finished) run.

An input's key is the sha256 of its canonical request as journaled (model resolved, prompt,
reference images, every generation parameter; never the callback URL). ``read_sources`` indexes
the successes of another run's journal by that key, WITHOUT touching it: no lock, no write, no
WAL or shared-memory file (a journal with no WAL file is opened ``immutable``; one being written
by a live run is read through a read-only connection). Only results whose files have a recorded
sha256 are offered, and ``copy_verified`` checks every byte before a file is placed: a changed
or missing source file means "not reusable", and the input is submitted as usual.

Blocking file and SQLite I/O: call these functions in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..errors import BulkError
from ._files import place, sha256_file
from ._outdir import journal_path

__all__ = ["Source", "copy_verified", "read_sources", "request_key"]


def request_key(request: Mapping[str, Any]) -> str:
    """The reuse key of a journaled request: sha256 of its canonical JSON, callback URL left out."""
    body = {k: v for k, v in request.items() if k != "callback_url"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@attrs.frozen
class Source:
    """One success of a reused run.

    Attributes:
        run: The reused run's directory.
        key: The input's id in that run.
        task_id: The task that made the images (the original one, if that run reused it too).
        files: Its files, relative to ``run``.
        checksums: Their sha256, in the same order.
        consumed: What the task cost.
    """

    run: Path
    key: str
    task_id: str | None
    files: tuple[str, ...]
    checksums: tuple[str, ...]
    consumed: str | None


def _connect(path: Path) -> sqlite3.Connection:
    wal = path.with_name(path.name + "-wal")
    # No WAL file: no run is writing it; ``immutable`` reads without creating -wal/-shm files.
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=10.0)


def _sources(run: Path) -> Iterable[tuple[str, Source]]:
    path = journal_path(run)
    if not path.is_file():
        raise BulkError(f"reuse: there is no ketchup run in {str(run)!r}")
    try:
        conn = _connect(path)
        try:
            records = conn.execute(
                "SELECT request, key, task_id, files, checksums, consumed, reused_from, saved "
                "FROM inputs WHERE state IN ('succeeded', 'reused') AND checksums IS NOT NULL"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BulkError(f"reuse: cannot read the journal of {str(run)!r}: {exc}") from None
    for request, key, task_id, files, sums, origin, consumed_or_saved in (
        (r[0], r[1], r[2], r[3], r[4], r[6], r[5] if r[6] is None else r[7]) for r in records
    ):
        try:
            names = tuple(json.loads(files or "[]"))
            checksums = tuple(json.loads(sums))
            if origin is not None:
                task_id = json.loads(origin)["task_id"]
            key_of = request_key(json.loads(request))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue  # a damaged row is simply not reusable
        if not names or len(names) != len(checksums):
            continue
        yield key_of, Source(run, str(key), task_id, names, checksums, consumed_or_saved)


def read_sources(runs: Sequence[Path], own: Path) -> dict[str, Source]:
    """Index the reusable successes of ``runs`` by request key (the first run listed wins).

    Raises:
        BulkError: A directory holds no run, is the run ``own`` itself, or its journal cannot
            be read.
    """
    index: dict[str, Source] = {}
    for run in runs:
        if run.resolve() == own.resolve():
            raise BulkError(f"a run cannot reuse itself ({str(run)!r})")
        for key, source in _sources(run):
            index.setdefault(key, source)
    return index


def _stage(src: Path, staging: Path) -> Path:
    staged = staging / f".ketchup-{secrets.token_hex(8)}{src.suffix}"
    try:
        os.link(src, staged)  # a hard link when the file system allows it
    except OSError:
        shutil.copyfile(src, staged)
    return staged


def copy_verified(
    source: Source, out_dir: Path, stems: Sequence[str], staging: Path
) -> tuple[list[str], list[str]] | None:
    """Copy (or hard-link) ``source``'s files into ``out_dir`` under ``stems``, verified.

    A file already in place with the right checksum (an earlier attempt that stopped before
    the journal recorded it) is kept as it is. Nothing is placed unless every file matches.

    Returns:
        (file names, checksums), or None when a source file is missing or has changed.
    """
    staging.mkdir(parents=True, exist_ok=True)
    staged: list[Path] = []
    try:
        for name, digest in zip(source.files, source.checksums, strict=True):
            src = source.run / name
            if os.sep in name or name.startswith(".") or not src.is_file():
                return None
            copy = _stage(src, staging)
            staged.append(copy)
            if sha256_file(copy) != digest:
                return None
        names: list[str] = []
        for copy, stem, digest in zip(staged, stems, source.checksums, strict=True):
            existing = out_dir / f"{stem}{copy.suffix}"
            if existing.is_file() and sha256_file(existing) == digest:
                names.append(existing.name)
                continue
            names.append(place(copy, out_dir, stem).name)
        return names, list(source.checksums)
    finally:
        for copy in staged:
            with contextlib.suppress(OSError):
                copy.unlink()
