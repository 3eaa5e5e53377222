"""The poller on a fake clock and a scripted transport: odd answers never orphan a job."""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from ketchup_async import (
    APIConnectionError,
    CallbackPayload,
    GenerateRequest,
    ImageResult,
    KetchupError,
    PollPolicy,
    RetryPolicy,
    TaskFailedError,
    TaskNotFoundError,
    TaskStatus,
)
from ketchup_async._early import EarlyCallbacks
from ketchup_async._poller import COMPACT_SLACK, Poller
from ketchup_async._telemetry import Recorder
from ketchup_async.errors import JobDeadlineError

pytestmark = pytest.mark.anyio

#: A budget large enough that the (wall-clock) query limiter never waits in these tests.
POLICY = PollPolicy(min_interval=1.0, max_interval=4.0, rate=1e6, expected_duration=2.0)


def policy(**changes: float) -> PollPolicy:
    """POLICY with ``changes``."""
    return attrs.evolve(POLICY, **changes)


HTML_404 = TaskNotFoundError("non-JSON response body (9 bytes): 'not found'", status_code=404)
JSON_404 = TaskNotFoundError("task not found", status_code=404, code=1)


class FakeClock:
    """Virtual time: timers fire only when the test advances the clock.

    It also becomes the running loop's clock (``loop.time``), as aiolimiter's own tests patch
    it: the query budget's leaky bucket reads the loop's time, so it must run on the same
    virtual time as the poller (the ``_loop_clock`` fixture restores the loop afterwards).
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        loop = asyncio.get_running_loop()
        loop.time = self.time  # type: ignore[method-assign]
        _PATCHED_LOOPS.append(loop)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[Any], None], arg: Any, /) -> _Timer:
        timer = _Timer(callback, arg)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    async def advance(self, seconds: float, *, step: float = 0.25) -> None:
        """Move time forward by ``seconds`` in small steps, letting the loop run at each."""
        end = self.now + seconds
        while True:
            await settle()
            while self._timers and self._timers[0][0] <= self.now:
                _, _, timer = heapq.heappop(self._timers)
                timer.fire()
                await settle()
            if self.now >= end:
                return
            self.now = min(end, self.now + step)


class _Timer:
    def __init__(self, callback: Callable[[Any], None], arg: Any) -> None:
        self.callback, self.arg, self.cancelled = callback, arg, False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        if not self.cancelled:
            self.callback(self.arg)


async def settle() -> None:
    """Let every ready callback and task run (no wall time passes for the poller)."""
    for _ in range(30):
        await asyncio.sleep(0)


_PATCHED_LOOPS: list[asyncio.AbstractEventLoop] = []


@pytest.fixture(autouse=True)
def _loop_clock() -> Iterator[None]:
    """Give each loop a ``FakeClock`` took over its own clock back after the test."""
    yield
    while _PATCHED_LOOPS:
        vars(_PATCHED_LOOPS.pop()).pop("time", None)


def data(task_id: str, status: str, images: list[str] | None = None) -> dict[str, Any]:
    """A query answer's data object."""
    result = None if images is None else [{"image": url} for url in images]
    return {"task_id": task_id, "status": status, "result": result, "consumed": "0.5"}


class Script:
    """A transport answering each task's queries from a list (the last answer repeats)."""

    def __init__(self, **answers: list[Any]) -> None:
        self.retry = RetryPolicy()
        self.telemetry = Recorder.off()
        self.answers = answers
        self.queries: list[str] = []

    async def request(self, method: str, path: str, *, params: dict[str, str], **_: Any) -> Any:
        task_id = params["task_id"]
        self.queries.append(task_id)
        script = self.answers[task_id]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def make(script: Script, policy: PollPolicy = POLICY) -> tuple[Poller, FakeClock]:
    clock = FakeClock()
    return Poller(script, policy, clock=clock), clock  # type: ignore[arg-type]


async def test_a_closed_session_fails_the_job_with_a_ketchup_error() -> None:
    """A query raising RuntimeError (a session closed by its owner) ends with a KetchupError."""
    poller, clock = await make(Script(ta1=[RuntimeError("Session is closed")]))
    job = poller.add("ta1", None, has_callback=False, learn=False)
    await clock.advance(60)
    assert job.done()
    assert isinstance(job.exception(), APIConnectionError)
    assert "Session is closed" in str(job.exception())
    await poller.close()


async def test_a_recursion_error_is_retried_and_the_job_still_resolves() -> None:
    """A deeply nested body (RecursionError) is one transient error; the next answer counts."""
    script = Script(ta1=[RecursionError("too deep"), data("ta1", "success", ["https://c/a.png"])])
    poller, clock = await make(script)
    job = poller.add("ta1", None, has_callback=False, learn=False)
    await clock.advance(10)
    assert job.result().images == (ImageResult("https://c/a.png"),)
    assert script.queries == ["ta1", "ta1"]
    await poller.close()


async def test_a_404_for_a_task_seen_running_never_fails_it() -> None:
    """404s (JSON or HTML) for a task the API answered before keep it polled until it ends."""
    answers = [data("ta1", "in_progress"), JSON_404, HTML_404, JSON_404, JSON_404, JSON_404]
    script = Script(ta1=[*answers, data("ta1", "success", ["https://c/a.png"])])
    poller, clock = await make(script, policy(min_interval=1.0, not_found_grace=1.0))
    job = poller.add("ta1", None, has_callback=False, learn=False)
    await clock.advance(120)
    assert job.result().task_id == "ta1"
    await poller.close()


async def test_an_html_404_after_the_grace_is_transient() -> None:
    """A proxy's HTML 404 page, past the grace, for a task never seen: still not final."""
    script = Script(ta0=[data("ta0", "pending")], ta1=[HTML_404])
    poller, clock = await make(script, policy(min_interval=1.0, not_found_grace=1.0))
    poller.add("ta0", None, has_callback=False, learn=False)  # the API answered this client
    job = poller.add("ta1", None, has_callback=False, learn=False)
    await clock.advance(300)
    assert not job.done()
    assert script.queries.count("ta1") >= 10
    await poller.close()


async def test_a_never_seen_task_fails_after_repeated_json_404s() -> None:
    """A JSON 'not found' past the grace, repeated, fails the job with TaskNotFoundError."""
    poller, clock = await make(Script(ta1=[JSON_404]), policy(not_found_grace=5.0))
    job = poller.add("ta1", None, has_callback=False, learn=False)
    await clock.advance(120)
    assert isinstance(job.exception(), TaskNotFoundError)
    await poller.close()


async def test_an_undocumented_status_ends_at_the_deadline_naming_it() -> None:
    """'cancelled' forever: the job fails at job_deadline with JobDeadlineError('cancelled')."""
    deadline = policy(job_deadline=100.0)
    poller, clock = await make(Script(ta1=[data("ta1", "cancelled")]), deadline)
    job = poller.add("ta1", None, has_callback=True)  # a late, rare safety net: still ends
    await clock.advance(99)
    assert not job.done()
    await clock.advance(2)
    error = job.exception()
    assert isinstance(error, JobDeadlineError)
    assert error.last_status == "cancelled"
    assert error.task_id == "ta1"
    await poller.close()


async def test_a_success_without_images_fails() -> None:
    """An answered success with an empty result fails with TaskFailedError."""
    poller, clock = await make(Script(ta1=[data("ta1", "success", [])]))
    job = poller.add("ta1", None, has_callback=False, learn=False)
    await clock.advance(5)
    error = job.exception()
    assert isinstance(error, TaskFailedError)
    assert error.reason == "success without any image"
    assert job.status is TaskStatus.SUCCESS  # what the API said, kept visible
    await poller.close()


async def test_jobs_resolved_by_webhook_are_freed_at_once() -> None:
    """deliver() frees a job's record and result now, not at its safety-net time."""
    poller, _ = await make(Script())
    refs = []
    for i in range(2000):
        job = poller.add(f"ta{i}", GenerateRequest("p"), has_callback=True)
        images = (ImageResult(f"https://c/{i}.png"),)
        assert poller.deliver(CallbackPayload(f"ta{i}", TaskStatus.SUCCESS, images))
        refs.append(weakref.ref(job.result()))
    del job
    gc.collect()
    assert len(poller) == 0
    assert poller.heap_size <= COMPACT_SLACK
    assert all(ref() is None for ref in refs)
    await poller.close()


async def test_cancelled_jobs_are_freed_at_once() -> None:
    """Job.cancel() drops the poller's record and the heap entry goes with the next compaction."""
    poller, _ = await make(Script())
    jobs = [poller.add(f"ta{i}", None, has_callback=True) for i in range(500)]
    refs = [weakref.ref(job) for job in jobs]
    for job in jobs:
        assert job.cancel()
    del jobs, job
    gc.collect()
    assert len(poller) == 0
    assert poller.heap_size <= COMPACT_SLACK
    assert all(ref() is None for ref in refs)
    await poller.close()


async def test_an_early_callback_is_verified_by_a_query() -> None:
    """A final callback before its job exists makes the job be queried, its payload unused."""
    script = Script(ta1=[data("ta1", "success", ["https://cdn/real.png"])])
    poller, clock = await make(script)
    forged = CallbackPayload("ta1", TaskStatus.SUCCESS, (ImageResult("http://10.0.0.1/"),))
    assert poller.deliver(forged) is False
    job = poller.add("ta1", None, has_callback=True)
    assert not job.done()
    await clock.advance(1)
    assert job.result().images == (ImageResult("https://cdn/real.png"),)
    assert poller.early_callbacks == 0
    await poller.close()


def test_early_callbacks_are_bounded_by_count_and_bytes() -> None:
    """The early-callback memory keeps ids and statuses only, within both bounds."""
    by_count = EarlyCallbacks(max_count=100, max_bytes=10**9)
    for i in range(1000):
        by_count.remember(f"ta{i}", TaskStatus.SUCCESS, False)
    assert len(by_count) == 100
    assert by_count.pop("ta999") == (TaskStatus.SUCCESS, False)
    assert by_count.pop("ta0") is None  # the oldest went first
    by_bytes = EarlyCallbacks(max_count=10**6, max_bytes=50_000)
    for i in range(1000):
        by_bytes.remember(f"ta{i:0>200}", TaskStatus.FAILED, True)
    assert by_bytes.size <= 50_000
    assert 0 < len(by_bytes) < 1000
    by_bytes.remember("t" * 10_000, TaskStatus.FAILED, True)  # no id the client could track
    assert by_bytes.pop("t" * 10_000) is None


async def test_every_outcome_of_a_query_ends_in_a_ketchup_error_or_a_result() -> None:
    """Whatever each query raises, every job ends by its deadline with a KetchupError at worst."""
    errors: list[BaseException] = [
        ValueError("odd"),
        KeyError("x"),
        RecursionError("deep"),
        TypeError("bug"),
        HTML_404,
        JSON_404,
    ]
    script = Script(**{f"ta{i}": [error] for i, error in enumerate(errors)})
    poller, clock = await make(script, policy(job_deadline=300.0))
    jobs = [poller.add(f"ta{i}", None, has_callback=False) for i in range(len(errors))]
    await clock.advance(301, step=1.0)
    for job in jobs:
        assert job.done()
        assert isinstance(job.exception(), KetchupError)
    await poller.close()
