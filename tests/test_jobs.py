"""Job: a read-only handle; its timeout error carries the task id; its repr tells the end."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import ketchup_async
from ketchup_async import (
    CallbackPayload,
    ImageResult,
    Job,
    KetchupClient,
    KetchupError,
    TaskStatus,
)
from ketchup_async.errors import JobTimeoutError
from ketchup_async.testing import FakeKetchupServer

pytestmark = pytest.mark.anyio

PACKAGE = Path(ketchup_async.__file__).parent


async def test_wait_timeout_raises_a_ketchup_error_with_the_task_id(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """wait(timeout) raises JobTimeoutError (a KetchupError and a TimeoutError) naming the task."""
    job = client.track(server.create_task("slow"))
    with pytest.raises(JobTimeoutError) as caught:
        await job.wait(0.01)
    assert isinstance(caught.value, KetchupError)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.task_id == job.task_id
    assert not job.done()  # still tracked


async def test_generate_timeout_raises_with_the_task_id(server: FakeKetchupServer) -> None:
    """generate(timeout=) raises JobTimeoutError carrying the paid task's id."""
    from .conftest import make_client

    async with make_client(server) as client:
        with pytest.raises(JobTimeoutError) as caught:
            await client.generate("slow", timeout=0.001)
        assert caught.value.task_id in server.tasks
        assert client.pending() == 1  # the job goes on being tracked


async def test_job_attributes_are_read_only(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """No attribute of a Job can be set by its user."""
    job = client.track(server.create_task("x"))
    for name, value in (("status", TaskStatus.SUCCESS), ("task_id", "ta2"), ("request", None)):
        with pytest.raises(AttributeError):
            setattr(job, name, value)
    with pytest.raises(AttributeError):
        job.due = 0.0  # type: ignore[attr-defined]


def test_job_slots_hold_no_poller_bookkeeping() -> None:
    """Job.__slots__ has no schedule state (due, polls, errors, last_poll...)."""
    bookkeeping = {"due", "polls", "errors", "last_poll", "last_running", "learn", "submitted_at"}
    assert not bookkeeping & {slot.lstrip("_") for slot in Job.__slots__}


def test_jobs_module_imports_nothing_of_the_poller() -> None:
    """_jobs imports no module of the poller, not even under TYPE_CHECKING."""
    tree = ast.parse((PACKAGE / "_jobs.py").read_text())
    imported = {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert not any("poller" in name or "watch" in name for name in imported)


async def test_repr_says_which_end_the_job_reached(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """A job's repr says pending status, succeeded, failed or cancelled."""
    ok, bad, dropped = (client.track(server.create_task(p)) for p in ("a", "b", "c"))
    assert repr(ok) == f"<Job {ok.task_id} pending>"
    image = (ImageResult("https://cdn.test/a.png"),)
    client.deliver(CallbackPayload(ok.task_id, TaskStatus.SUCCESS, image))
    client.deliver(CallbackPayload(bad.task_id, TaskStatus.FAILED, reason="policy"))
    dropped.cancel()
    await asyncio.sleep(0)
    assert repr(ok) == f"<Job {ok.task_id} succeeded>"
    assert repr(bad) == f"<Job {bad.task_id} failed: TaskFailedError>"
    assert repr(dropped) == f"<Job {dropped.task_id} cancelled>"
