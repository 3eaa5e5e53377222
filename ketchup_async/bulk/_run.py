"""Durable bulk runs: many prompts to files, crash-safe, never paid twice.

``run_bulk`` journals every input (SQLite, in ``<out_dir>/.ketchup/``), submits them, records
every transition and downloads each result as it arrives; ``resume_bulk`` picks up a run that
stopped (Ctrl-C, crash, SIGKILL, power cut) without submitting anything twice. Both end by
rewriting ``<out_dir>/manifest.jsonl`` atomically from the journal.

A run starts only in a new or empty directory or one of its own (``_outdir``); every option
lives in one frozen ``BulkOptions`` (``run_bulk``/``resume_bulk`` also take its fields as
keywords). A run is bound to its API's base URL once a task exists (before that, a resume may
use another URL). Only the client's public API is used (``KetchupClient`` methods and the names
of ``ketchup_async.__all__``); they are imported from the modules that define them, because
``ketchup_async/__init__`` imports this package (``from .. import`` would be a cycle).

Example::

    async with KetchupClient() as client:
        summary = await run_bulk(client, ["a red bicycle", "a blue boat"], "out")
        print(summary.succeeded, "of", summary.total)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._converter import request_to_dict
from .._models import GenerateRequest
from ..errors import BulkError, JournalError, KetchupError, ValidationError
from . import _outdir
from ._journal import Journal
from ._outdir import MANIFEST_FILE, journal_path
from ._progress import BulkProgress
from ._recovery import read_recovered
from ._runner import BulkRunner
from ._spend import reuse_queued, saved_total
from ._states import State
from ._values import BulkInput, BulkOptions, BulkSummary

if TYPE_CHECKING:
    from .._client import KetchupClient

__all__ = [
    "MANIFEST_FILE",
    "BulkError",
    "BulkInput",
    "BulkOptions",
    "BulkProgress",
    "BulkSummary",
    "request_json",
    "resume_bulk",
    "run_bulk",
]

logger = logging.getLogger("ketchup_async")

_INGEST_BATCH = 2000


def request_json(request: GenerateRequest, *, default_model: str) -> str:
    """The canonical JSON of a request as journaled (without its callback URL)."""
    body = request_to_dict(request, default_model=default_model)
    body.pop("callback_url", None)  # a secret token: run configuration, never on disk
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def _aiter(inputs: Iterable[object] | AsyncIterable[object]) -> AsyncIterator[object]:
    if isinstance(inputs, AsyncIterable):
        async for item in inputs:
            yield item
    else:
        for item in inputs:
            yield item


def _as_input(item: object, position: int, options: BulkOptions, max_images: int) -> BulkInput:
    try:
        if isinstance(item, BulkInput):
            entry = item
        elif isinstance(item, GenerateRequest):
            entry = BulkInput(str(position), item)
        elif isinstance(item, str):
            entry = BulkInput(str(position), GenerateRequest(item, max_images=max_images))
        else:
            raise BulkError(
                f"input {position}: must be a prompt, a GenerateRequest or a BulkInput, "
                f"got {type(item).__name__}"
            )
    except ValidationError as exc:
        raise BulkError(f"input {position}: {exc}") from None
    url = entry.request.callback_url
    if url is not None and url != options.callback_url:
        raise BulkError(
            f"input {position}: a bulk run takes its callback URL once, as "
            "BulkOptions(callback_url=...), so that its secret token is never journaled"
        )
    return entry


async def _ingest(
    client: KetchupClient,
    journal: Journal,
    inputs: Iterable[object] | AsyncIterable[object],
    options: BulkOptions,
) -> int:
    seen: set[str] = set()
    batch: list[tuple[str, str]] = []
    added = 0
    position = 0
    async for item in _aiter(inputs):
        position += 1
        entry = _as_input(item, position, options, client.max_images)
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
    if stored == client.base_url:
        return
    if stored is not None and await journal.has_tasks():
        raise BulkError(
            f"this run's tasks belong to {stored}, but the client talks to {client.base_url}: "
            "resume it against the same API"
        )
    await journal.set_meta("base_url", client.base_url)  # no task yet: (re)bind the run


async def _apply_recovered(journal: Journal, out_dir: Path) -> None:
    path = _outdir.run_dir(out_dir) / _outdir.RECOVERY_FILE
    entries = await anyio.to_thread.run_sync(read_recovered, path)
    if not entries:
        return
    left = await journal.attach_recovered(entries)
    for entry in left:
        logger.error(
            "recovered task %s of input %s does not match the journal; kept in %s",
            entry.task_id,
            entry.key,
            path,
        )
    logger.warning("re-attached %d task id(s) from %s", len(entries) - len(left), path)
    if not left:
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))


async def _finish(journal: Journal, out_dir: Path, *, failing: bool) -> None:
    """Write the manifest and close; while another error propagates, only log their errors."""
    try:
        try:
            await journal.write_manifest(out_dir / MANIFEST_FILE)
        finally:
            try:
                await anyio.to_thread.run_sync(_outdir.clean_stale, out_dir)
            finally:
                await journal.close()
    except (KetchupError, OSError) as exc:
        if not failing:
            raise
        logger.error("the manifest of %s could not be written: %s", out_dir, exc)


async def _execute(
    client: KetchupClient,
    out_dir: Path,
    inputs: Iterable[object] | AsyncIterable[object] | None,
    options: BulkOptions,
) -> BulkSummary:
    started = time.monotonic()
    queries = client.queries_sent
    if inputs is not None:
        _outdir.refuse_foreign(out_dir)
        _outdir.prepare(out_dir)
    elif not journal_path(out_dir).exists():
        raise BulkError(f"there is no bulk run to resume in {str(out_dir)!r}")
    journal = await _open(out_dir, create=inputs is not None)
    failing = True
    try:
        await anyio.to_thread.run_sync(_outdir.clean_stale, out_dir)
        await _check_base_url(client, journal)
        await _apply_recovered(journal, out_dir)
        if inputs is not None:
            await _ingest(client, journal, inputs, options)
        await journal.recover(resubmit_uncertain=options.resubmit_uncertain)
        reused = await reuse_queued(journal, out_dir, options.reuse)
        runner = BulkRunner(client, journal, out_dir, options)
        await runner.drive()
        counts = await journal.counts()
        missing = await journal.missing_files()
        consumed = await journal.consumed_total()
        saved = await saved_total(journal)
        failing = False
    finally:
        await _finish(journal, out_dir, failing=failing)
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
        download=options.download,
        reused=counts[State.REUSED],
        spent_before=runner.spent_before,
        max_credits=options.max_credits,
        budget_reached=runner.gate.reached,
        reused_now=reused,
        saved=saved,
    )


def _options(options: BulkOptions | None, changes: dict[str, Any]) -> BulkOptions:
    if options is not None and not isinstance(options, BulkOptions):
        raise ValidationError("options", f"must be BulkOptions, got {type(options).__name__}")
    fields = attrs.fields_dict(BulkOptions)
    for name in changes:
        if name not in fields:
            raise ValidationError(name, f"is not a bulk option (one of {', '.join(fields)})")
    return attrs.evolve(options or BulkOptions(), **changes)


async def run_bulk(
    client: KetchupClient,
    inputs: Iterable[Any] | AsyncIterable[Any],
    out_dir: str | os.PathLike[str],
    options: BulkOptions | None = None,
    **changes: Any,
) -> BulkSummary:
    """Generate every input into ``out_dir``, durably; running it again resumes.

    Inputs (prompts, ``GenerateRequest`` or ``BulkInput`` objects, from an iterable or an
    async iterable) are journaled first, in batches, under their key (a prompt's or request's
    key is its 1-based position). Inputs already in the journal are not submitted again.

    Args:
        client: An open client.
        inputs: What to generate.
        out_dir: Where the files, ``manifest.jsonl`` and the journal (``.ketchup/``) go: a new
            or empty directory, or one of an earlier run.
        options: How to run (``BulkOptions``; default ``BulkOptions()``).
        **changes: Any ``BulkOptions`` field, overriding ``options`` (e.g.
            ``concurrency=16, download=False``).

    Returns:
        The summary; ``summary.ok`` when every input succeeded.

    Raises:
        ValidationError: A bad option.
        BulkError: A bad or duplicate input, an unusable or foreign output directory, or a
            journal whose tasks belong to another API.
        JournalError: The journal is locked by another run, damaged (``JournalCorruptError``)
            or cannot be written; ``UnjournaledTasksError`` when task ids could only be saved
            to the recovery file (resume the run once the disk has room).
    """
    return await _execute(client, Path(out_dir), inputs, _options(options, changes))


async def resume_bulk(
    client: KetchupClient,
    out_dir: str | os.PathLike[str],
    options: BulkOptions | None = None,
    **changes: Any,
) -> BulkSummary:
    """Finish the bulk run journaled in ``out_dir`` (options as for ``run_bulk``).

    Task ids saved in the recovery file (a full disk) are put back first; tasks already
    submitted are re-attached with ``client.track()`` (never submitted again), successes
    without their files are downloaded, inputs never sent are submitted; an input whose submit
    was in flight when the run stopped is ``uncertain`` and left alone unless
    ``resubmit_uncertain``. Leftovers of a killed run (partial downloads) are deleted.

    Raises:
        BulkError: There is no journal in ``out_dir``, or its tasks belong to another API.
        JournalError: As for ``run_bulk``.
    """
    return await _execute(client, Path(out_dir), None, _options(options, changes))
