"""Durable bulk runs: many prompts to files, crash-safe, never paid twice.

``run_bulk`` journals every input (SQLite, in ``<out_dir>/.ketchup/``), submits them, records
every transition and downloads each result as it arrives; ``resume_bulk`` picks up a run that
stopped (Ctrl-C, crash, SIGKILL, power cut) without submitting anything twice. Both end by
rewriting ``<out_dir>/manifest.jsonl`` atomically from the journal.

Example::

    async with KetchupClient() as client:
        summary = await run_bulk(client, ["a red bicycle", "a blue boat"], "out")
        print(summary.succeeded, "of", summary.total)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterable, Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .. import _validate
from .._converter import unstructure_request
from .._many import aiter_inputs
from .._models import GenerateRequest
from ..errors import BulkError, ValidationError
from ._journal import Journal, JournalError, journal_path
from ._progress import BulkProgress
from ._runner import BulkRunner
from ._states import State

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = [
    "MANIFEST_FILE",
    "BulkError",
    "BulkInput",
    "BulkProgress",
    "BulkSummary",
    "resume_bulk",
    "run_bulk",
]

#: The manifest's name in the output directory.
MANIFEST_FILE = "manifest.jsonl"
_INGEST_BATCH = 2000


@attrs.frozen
class BulkInput:
    """One input of a bulk run: a stable key (file names, manifest ``id``) and its request.

    Attributes:
        key: Unique within the run, e.g. a JSONL ``id`` or the input's line number.
        request: What to generate.
    """

    key: str
    request: GenerateRequest

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or "\x00" in self.key:
            raise ValidationError("key", f"must be a non-empty string, got {self.key!r}")


@attrs.frozen
class BulkSummary:
    """How a bulk run ended (the whole journal, plus what this run did).

    Attributes:
        out_dir: The output directory.
        manifest: The manifest written at the end.
        total: Inputs in the journal.
        succeeded: Inputs whose task succeeded.
        failed: Inputs that failed (the task failed, or the submit was refused).
        uncertain: Inputs whose submit may or may not have been charged (not resubmitted).
        pending: Inputs not final yet (the run was interrupted): resume them.
        missing_files: Successes without all their files on record.
        submitted: Submits sent by this run.
        resumed: Tasks of an earlier run re-attached by this run.
        files_written: Files written by this run.
        queries: Task queries this run's client sent.
        consumed: Credits consumed by the whole journal.
        elapsed: Seconds this run took.
        download: Whether files were downloaded.
    """

    out_dir: Path
    manifest: Path
    total: int
    succeeded: int
    failed: int
    uncertain: int
    pending: int
    missing_files: int
    submitted: int
    resumed: int
    files_written: int
    queries: int
    consumed: Decimal
    elapsed: float
    download: bool

    @property
    def ok(self) -> bool:
        """True when every input succeeded (and has its files, when downloading)."""
        return self.succeeded == self.total and not (self.download and self.missing_files)


def request_json(request: GenerateRequest, *, default_model: str) -> str:
    """The canonical JSON of a request as journaled (and sent)."""
    body = unstructure_request(request, default_model=default_model)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _as_input(item: object, position: int, max_images: int) -> BulkInput:
    if isinstance(item, BulkInput):
        return item
    try:
        if isinstance(item, GenerateRequest):
            return BulkInput(str(position), item)
        if isinstance(item, str):
            return BulkInput(str(position), GenerateRequest(item, max_images=max_images))
    except ValidationError as exc:
        raise BulkError(f"input {position}: {exc}") from None
    raise BulkError(
        f"input {position}: must be a prompt, a GenerateRequest or a BulkInput, "
        f"got {type(item).__name__}"
    )


async def _ingest(
    client: KetchupClient,
    journal: Journal,
    inputs: Iterable[object] | AsyncIterable[object],
) -> int:
    seen: set[str] = set()
    batch: list[tuple[str, str]] = []
    added = 0
    position = 0
    async for item in aiter_inputs(inputs):
        position += 1
        entry = _as_input(item, position, client.max_images)
        if entry.key in seen:
            raise BulkError(f"duplicate input id {entry.key!r} (input {position})")
        seen.add(entry.key)
        batch.append((entry.key, request_json(entry.request, default_model=client.model)))
        if len(batch) >= _INGEST_BATCH:
            added += await journal.add_inputs(batch)
            batch = []
    if batch:
        added += await journal.add_inputs(batch)
    return added


def _prepare_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BulkError(
            f"cannot create the output directory {str(out_dir)!r}: {exc.strerror or exc}"
        ) from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise BulkError(f"the output directory {str(out_dir)!r} is not writable")


async def _open(out_dir: Path, *, create: bool) -> Journal:
    try:
        return await Journal.open(journal_path(out_dir), create=create)
    except JournalError:
        raise
    except OSError as exc:
        raise BulkError(
            f"cannot write the journal in {str(out_dir)!r}: {exc.strerror or exc}"
        ) from None


async def _check_base_url(client: KetchupClient, journal: Journal) -> None:
    stored = await journal.get_meta("base_url")
    if stored is None:
        await journal.set_meta("base_url", client.base_url)
    elif stored != client.base_url:
        raise BulkError(
            f"this run's tasks belong to {stored}, but the client talks to {client.base_url}: "
            "resume it against the same API"
        )


async def _execute(
    client: KetchupClient,
    out_dir: Path,
    inputs: Iterable[object] | AsyncIterable[object] | None,
    *,
    concurrency: int,
    download: bool,
    download_concurrency: int,
    resubmit_uncertain: bool,
    progress: Callable[[BulkProgress], None] | None,
    progress_interval: float,
) -> BulkSummary:
    for name, value in (
        ("concurrency", concurrency),
        ("download_concurrency", download_concurrency),
    ):
        _validate.check_int(value, field=name, minimum=1)
    started = time.monotonic()
    queries = client.queries_sent
    if inputs is not None:
        _prepare_dir(out_dir)
    elif not journal_path(out_dir).exists():
        raise BulkError(f"there is no bulk run to resume in {str(out_dir)!r}")
    journal = await _open(out_dir, create=inputs is not None)
    runner: BulkRunner | None = None
    try:
        await _check_base_url(client, journal)
        if inputs is not None:
            await _ingest(client, journal, inputs)
        await journal.recover(resubmit_uncertain=resubmit_uncertain)
        runner = BulkRunner(
            client,
            journal,
            out_dir,
            concurrency=concurrency,
            download=download,
            download_concurrency=download_concurrency,
            progress=progress,
            progress_interval=progress_interval,
        )
        await runner.drive()
        counts = await journal.counts()
        missing = await journal.missing_files()
        consumed = await journal.consumed_total()
    finally:
        try:
            await journal.write_manifest(out_dir / MANIFEST_FILE)
        finally:
            await journal.close()
    return BulkSummary(
        out_dir=out_dir,
        manifest=out_dir / MANIFEST_FILE,
        total=sum(counts.values()),
        succeeded=counts[State.SUCCEEDED],
        failed=counts[State.FAILED],
        uncertain=counts[State.UNCERTAIN],
        pending=sum(n for s, n in counts.items() if not s.is_final),
        missing_files=missing,
        submitted=runner.submits,
        resumed=runner.resumed,
        files_written=runner.files_written,
        queries=client.queries_sent - queries,
        consumed=consumed,
        elapsed=time.monotonic() - started,
        download=download,
    )


async def run_bulk(
    client: KetchupClient,
    inputs: Iterable[Any] | AsyncIterable[Any],
    out_dir: str | os.PathLike[str],
    *,
    concurrency: int = 128,
    download: bool = True,
    download_concurrency: int = 8,
    resubmit_uncertain: bool = False,
    progress: Callable[[BulkProgress], None] | None = None,
    progress_interval: float = 0.1,
) -> BulkSummary:
    """Generate every input into ``out_dir``, durably; running it again resumes.

    Inputs (prompts, ``GenerateRequest`` or ``BulkInput`` objects, from an iterable or an
    async iterable) are journaled first, in batches, under their key (a prompt's or request's
    key is its 1-based position). Inputs already in the journal are not submitted again.

    Args:
        client: An open client.
        inputs: What to generate.
        out_dir: Where the files, ``manifest.jsonl`` and the journal (``.ketchup/``) go.
        concurrency: Jobs in flight (submitted, not finished).
        download: Download each result's images (``{id}.png``, ``{id}-2.png``...).
        download_concurrency: Results downloading at once.
        resubmit_uncertain: Submit again inputs whose earlier submit may or may not have
            been charged (they may then be paid twice).
        progress: Called with a ``BulkProgress`` at most every ``progress_interval`` seconds.
        progress_interval: Seconds between two progress calls.

    Returns:
        The summary; ``summary.ok`` when every input succeeded.

    Raises:
        BulkError: A bad or duplicate input, an unusable output directory, or a journal that
            belongs to another API.
        JournalError: The journal is locked by another run or cannot be written.
    """
    return await _execute(
        client,
        Path(out_dir),
        inputs,
        concurrency=concurrency,
        download=download,
        download_concurrency=download_concurrency,
        resubmit_uncertain=resubmit_uncertain,
        progress=progress,
        progress_interval=progress_interval,
    )


async def resume_bulk(
    client: KetchupClient,
    out_dir: str | os.PathLike[str],
    *,
    concurrency: int = 128,
    download: bool = True,
    download_concurrency: int = 8,
    resubmit_uncertain: bool = False,
    progress: Callable[[BulkProgress], None] | None = None,
    progress_interval: float = 0.1,
) -> BulkSummary:
    """Finish the bulk run journaled in ``out_dir`` (see ``run_bulk`` for the arguments).

    Tasks already submitted are re-attached (never submitted again), successes without their
    files are downloaded, inputs never sent are submitted; an input whose submit was in flight
    when the run stopped is ``uncertain`` and left alone unless ``resubmit_uncertain``.

    Raises:
        BulkError: There is no journal in ``out_dir``, or it belongs to another API.
    """
    return await _execute(
        client,
        Path(out_dir),
        None,
        concurrency=concurrency,
        download=download,
        download_concurrency=download_concurrency,
        resubmit_uncertain=resubmit_uncertain,
        progress=progress,
        progress_interval=progress_interval,
    )
