"""The money invariant, checked after every reliability test (see ``conftest.py``).

``capture_reports`` records, while a test runs, every ``FakeKetchupServer`` it starts and
everything the SDK *told its caller* at the public boundary (calls made from inside
``ketchup_async`` itself are not reports: a submit inside ``generate_many`` is reported by the
``Outcome`` the caller receives, not by the job the library got). ``Capture.violations`` then
audits each server's ledger (``FakeLedger.audit``) against those reports and the journals of
durable runs, and checks that no job handed to a caller is still pending (nobody waits
forever). Together with ``_accounting.Ledger.check`` (one outcome per input) this is the
invariant of issue 10:

- every task the server created is reported to the caller (a ``Job``, an ``Outcome``, a journal
  row) or flagged uncertain with its input;
- no input creates two tasks unless the caller asked to resubmit it;
- no caller waits forever.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sqlite3
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest

from ketchup_async import (
    APIConnectionError,
    GenerateRequest,
    Job,
    KetchupClient,
    KetchupError,
    Outcome,
)
from ketchup_async.testing import FakeKetchupServer, Report

T = TypeVar("T")

JOURNAL = Path(".ketchup") / "journal.sqlite3"
#: The fake's task ids (``ta`` + a uuid4 tail), as they appear in the SDK's log messages.
TASK_ID = re.compile(r"\bta[0-9a-f]{6}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")


def maybe_paid(error: BaseException | None) -> bool:
    """Whether ``error`` tells the caller a submit may have been charged without an id."""
    return isinstance(error, APIConnectionError) and error.may_have_been_processed


def report_outcome(outcome: Outcome) -> Report | None:
    """The report an ``Outcome`` makes (None for an invalid input: no request was made)."""
    if outcome.request is None:
        return None
    return Report(
        prompt=outcome.request.prompt, task_id=outcome.task_id, uncertain=maybe_paid(outcome.error)
    )


def report_error(prompt: str, error: BaseException) -> Report:
    """The report an exception from a submit or generate makes about ``prompt``."""
    task_id = getattr(error, "task_id", None)
    return Report(
        prompt=prompt,
        task_id=task_id if isinstance(task_id, str) else None,
        uncertain=maybe_paid(error),
    )


def journal_reports(out_dir: Path, *, resubmit: bool = False) -> list[Report]:
    """One report per journal row of the durable run in ``out_dir``."""
    path = out_dir / JOURNAL
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT state, task_id, request FROM inputs").fetchall()
    return [
        Report(
            prompt=json.loads(request)["prompt"],
            task_id=task_id,
            uncertain=state == "uncertain",
            resubmit=resubmit,
        )
        for state, task_id, request in rows
    ]


def _external(frame: types.FrameType | None) -> bool:
    """Whether a call comes from the caller's code, not from inside the SDK."""
    module = "" if frame is None else str(frame.f_globals.get("__name__", ""))
    inside = module == "ketchup_async" or module.startswith("ketchup_async.")
    return not inside or module.startswith("ketchup_async.testing")


@attrs.define
class Capture:
    """What one test's SDK told its callers, and the fake servers it ran against."""

    servers: list[FakeKetchupServer] = attrs.field(factory=list)
    reports: list[Report] = attrs.field(factory=list)
    jobs: list[Job] = attrs.field(factory=list)
    journals: list[Path] = attrs.field(factory=list)
    logged: set[str] = attrs.field(factory=set)

    def log_handler(self) -> logging.Handler:
        """A handler for the SDK's logger: task ids in WARNING+ records count as reported.

        (After ``break`` and ``aclose()`` the caller has no iterator to receive an outcome
        from: the SDK's documented channel for those task ids is a WARNING.)
        """
        capture = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                capture.logged.update(TASK_ID.findall(record.getMessage()))

        handler = _Handler(logging.WARNING)
        return handler

    def add(self, report: Report | None) -> None:
        """Record one report."""
        if report is not None:
            self.reports.append(report)

    def add_job(self, prompt: str | None, job: Job) -> None:
        """Record a job handed to the caller."""
        self.jobs.append(job)
        if prompt is None:
            prompt = self._prompt_of(job.task_id)
        if prompt is not None:
            self.add(Report(prompt=prompt, task_id=job.task_id))

    def _prompt_of(self, task_id: str) -> str | None:
        for server in self.servers:
            entry = server.ledger.get(task_id)
            if entry is not None:
                return entry.prompt
        return None

    def violations(self, *, extra: Iterable[Report] = ()) -> list[str]:
        """Every breach of the invariant (empty when it holds)."""
        if not self.servers:
            return []  # no fake server: nothing was charged that we can see
        reports = list(self.reports) + list(extra)
        for task_id in sorted(self.logged):
            prompt = self._prompt_of(task_id)
            if prompt is not None:
                reports.append(Report(prompt=prompt, task_id=task_id))
        for out_dir in self.journals:
            if (out_dir / JOURNAL).is_file():
                reports.extend(journal_reports(out_dir))
        problems: list[str] = []
        known = set()
        for server in self.servers:
            known.update(entry.task_id for entry in server.ledger)
            ids = {entry.task_id for entry in server.ledger}
            mine = [r for r in reports if r.task_id is None or r.task_id in ids]
            problems.extend(server.ledger.audit(mine))
        for report in reports:
            if report.task_id is not None and report.task_id not in known:
                problems.append(f"{report} names a task no fake server created")
        for job in self.jobs:
            if not job.done():
                problems.append(f"job {job.task_id} is still pending after the test")
        return problems


def _prompt_arg(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    return args[0] if args else kwargs.get(name)


def _wrap_submit(
    capture: Capture, original: Callable[..., Awaitable[Job]], *, request_arg: bool
) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: KetchupClient, *args: Any, **kwargs: Any) -> Any:
        coro = original(self, *args, **kwargs)
        if not _external(sys._getframe(1)):
            return coro
        first = _prompt_arg(args, kwargs, "request" if request_arg else "prompt")
        prompt = first.prompt if isinstance(first, GenerateRequest) else first
        return _recorded_job(capture, prompt if isinstance(prompt, str) else None, coro)

    return wrapper


async def _recorded_job(capture: Capture, prompt: str | None, coro: Awaitable[Job]) -> Job:
    try:
        job = await coro
    except KetchupError as exc:
        if prompt is not None:
            capture.add(report_error(prompt, exc))
        raise
    capture.add_job(prompt, job)
    return job


def _wrap_generate(capture: Capture, original: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: KetchupClient, *args: Any, **kwargs: Any) -> Any:
        coro = original(self, *args, **kwargs)
        prompt = _prompt_arg(args, kwargs, "prompt")
        if not _external(sys._getframe(1)) or not isinstance(prompt, str):
            return coro
        return _recorded_result(capture, prompt, coro)

    return wrapper


async def _recorded_result(capture: Capture, prompt: str, coro: Awaitable[Any]) -> Any:
    try:
        result = await coro
    except KetchupError as exc:
        capture.add(report_error(prompt, exc))
        raise
    capture.add(Report(prompt=prompt, task_id=result.task_id))
    return result


def _wrap_many(capture: Capture, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: KetchupClient, *args: Any, **kwargs: Any) -> Any:
        outcomes = original(self, *args, **kwargs)
        if not _external(sys._getframe(1)):
            return outcomes
        return _recorded_outcomes(capture, outcomes)

    return wrapper


async def _recorded_outcomes(
    capture: Capture, outcomes: AsyncIterator[Outcome]
) -> AsyncIterator[Outcome]:
    try:
        async for outcome in outcomes:
            capture.add(report_outcome(outcome))
            yield outcome
    finally:
        aclose = getattr(outcomes, "aclose", None)
        if aclose is not None:
            await aclose()


def _wrap_track(capture: Capture, original: Callable[..., Job]) -> Callable[..., Job]:
    @functools.wraps(original)
    def wrapper(self: KetchupClient, *args: Any, **kwargs: Any) -> Job:
        job = original(self, *args, **kwargs)
        if _external(sys._getframe(1)):
            request = job.request
            capture.add_job(None if request is None else request.prompt, job)
        return job

    return wrapper


@contextlib.contextmanager
def capture_reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    """Record every fake server started and every report made while the block runs."""
    capture = Capture()
    start = FakeKetchupServer.start

    async def recording_start(server: FakeKetchupServer) -> None:
        capture.servers.append(server)
        await start(server)

    monkeypatch.setattr(FakeKetchupServer, "start", recording_start)
    client = KetchupClient
    monkeypatch.setattr(client, "submit", _wrap_submit(capture, client.submit, request_arg=False))
    monkeypatch.setattr(
        client, "submit_request", _wrap_submit(capture, client.submit_request, request_arg=True)
    )
    monkeypatch.setattr(client, "generate", _wrap_generate(capture, client.generate))
    monkeypatch.setattr(client, "generate_many", _wrap_many(capture, client.generate_many))
    monkeypatch.setattr(client, "track", _wrap_track(capture, client.track))
    logger = logging.getLogger("ketchup_async")
    handler = capture.log_handler()
    logger.addHandler(handler)
    try:
        yield capture
    finally:
        logger.removeHandler(handler)
