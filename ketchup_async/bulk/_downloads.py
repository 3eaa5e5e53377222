"""The downloads of a bulk run: each success's images into files, a bounded number at once.

``Downloads.start`` hands one row's images to a task (at most ``concurrency`` download at
once); its files, or why some are missing, are then recorded in the journal. Staged under
``.ketchup/tmp/`` and moved into place without replacing anything (see ``_files``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from .._models import ImageResult
from ._files import download_result, file_stem, files_missing
from ._journal import Journal, Row
from ._outdir import TMP_DIR, run_dir
from ._states import State

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = ["Downloads"]

logger = logging.getLogger("ketchup_async")

_PAGE = 1000


class Downloads:
    """The download tasks of one run.

    Args:
        client: Downloads through its ``download()``.
        journal: Reserves names and records files.
        out_dir: Where the files go.
        concurrency: Results downloading at once.
        finished: Called when a download task ends, with its unexpected error (or None).
    """

    def __init__(
        self,
        client: KetchupClient,
        journal: Journal,
        out_dir: Path,
        *,
        concurrency: int,
        finished: Callable[[BaseException | None], None],
    ) -> None:
        self.client = client
        self.journal = journal
        self.out_dir = out_dir
        self.files_written = 0
        self.errors = 0
        self._finished = finished
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    async def start_missing(self) -> None:
        """Start downloading every success whose files are not all on disk."""
        after = 0
        while page := await self.journal.rows(State.SUCCEEDED, after=after, limit=_PAGE):
            after = page[-1].seq
            missing = await anyio.to_thread.run_sync(self._missing, page)
            for row in missing:
                self.start(row, tuple(ImageResult(i) for i in row.images))

    def _missing(self, rows: list[Row]) -> list[Row]:
        return [r for r in rows if files_missing(self.out_dir, r.files, len(r.images))]

    def start(self, row: Row, images: tuple[ImageResult, ...]) -> None:
        """Download ``images`` of ``row`` in a task."""
        task = asyncio.get_running_loop().create_task(self._download(row, images))
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            error = None if task.cancelled() else task.exception()
            self._finished(error)

        task.add_done_callback(done)

    async def cancel(self) -> None:
        """Stop every download (the rows stay ``succeeded`` without files: resume finishes)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _download(self, row: Row, images: tuple[ImageResult, ...]) -> None:
        async with self._slots:
            report = await download_result(
                self.client,
                images,
                self.out_dir,
                claim=lambda n: self.journal.claim_names(row.seq, file_stem(row.key), n),
                staging=run_dir(self.out_dir) / TMP_DIR,
            )
        self.files_written += len(report.files)
        error = None
        if not report.complete:
            self.errors += 1
            error = "download failed: " + "; ".join(report.errors)
            logger.warning("input %s: %s", row.key, error)
        await self.journal.set_files(row.seq, report.files, error, report.checksums)
