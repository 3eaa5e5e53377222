"""A hypothesis state machine drives the poller against a scripted transport."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from ketchup_async import (
    APIConnectionError,
    CallbackPayload,
    GenerateRequest,
    PollPolicy,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TaskNotFoundError,
    TaskStatus,
)
from ketchup_async._jobs import Job
from ketchup_async._poller import Poller
from ketchup_async._telemetry import Recorder

MIN_INTERVAL = 0.002
ERRORS = {
    "500": lambda: ServerError("boom", status_code=500),
    "429": lambda: RateLimitError("slow", status_code=429, retry_after=0.003),
    "reset": lambda: APIConnectionError("reset", may_have_been_processed=False),
    "404": lambda: TaskNotFoundError("task not found", status_code=404, code=1),
    "malformed": lambda: {"task_id": "x"},
}


class ScriptedTransport:
    """Answers queries from a status table; can fail the next queries on demand."""

    def __init__(self) -> None:
        self.retry = RetryPolicy()
        self.telemetry = Recorder.off()
        self.status: dict[str, str] = {}
        self.next_errors: list[str] = []
        self.spans: dict[str, list[tuple[float, float]]] = defaultdict(list)

    async def request(self, method: str, path: str, *, params: dict[str, str], **_: Any) -> Any:
        loop = asyncio.get_running_loop()
        task_id = params["task_id"]
        start = loop.time()
        await asyncio.sleep(0)
        end = loop.time()
        self.spans[task_id].append((start, end))
        if self.next_errors:
            kind = self.next_errors.pop(0)
            error = ERRORS[kind]()
            if isinstance(error, dict):
                return error
            raise error
        status = self.status.get(task_id, "pending")
        result = [{"image": f"https://cdn.test/{task_id}.png"}] if status == "success" else None
        return {
            "task_id": task_id,
            "status": status,
            "result": result,
            "consumed": "0.5",
            "status_reason": {"message": "bad" if status == "failed" else None},
        }


class PollerMachine(RuleBasedStateMachine):
    """Random submits, statuses, errors, callbacks, cancels and a close."""

    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.transport = ScriptedTransport()
        policy = PollPolicy(
            min_interval=MIN_INTERVAL,
            max_interval=0.01,
            rate=5000,
            expected_duration=0.002,
            not_found_grace=0.02,
            callback_grace=0.01,
        )
        self.poller: Poller = self.loop.run_until_complete(self._make(policy))
        self.ended: dict[str, int] = defaultdict(int)
        self.all_jobs: list[Job] = []
        self.counter = 0
        self.closed = False

    async def _make(self, policy: PollPolicy) -> Poller:
        return Poller(self.transport, policy)  # type: ignore[arg-type]

    def _ended(self, job: Job) -> None:
        self.ended[job.task_id] += 1

    def _run(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    @precondition(lambda self: not self.closed)
    @rule(target=jobs, callback=st.booleans())
    def add_job(self, callback: bool) -> Job:
        self.counter += 1
        task_id = f"ta{self.counter}"
        job = self.poller.add(task_id, GenerateRequest("p"), has_callback=callback)
        job.add_done_callback(self._ended)
        self.all_jobs.append(job)
        return job

    @rule(job=jobs, status=st.sampled_from(["submitted", "in_progress", "success", "failed"]))
    def set_status(self, job: Job, status: str) -> None:
        self.transport.status[job.task_id] = status

    @rule(kinds=st.lists(st.sampled_from(sorted(ERRORS)), min_size=1, max_size=4))
    def fail_next_queries(self, kinds: list[str]) -> None:
        self.transport.next_errors.extend(kinds)

    @rule(
        job=jobs,
        status=st.sampled_from([TaskStatus.SUCCESS, TaskStatus.FAILED]),
        verify=st.booleans(),
    )
    def deliver(self, job: Job, status: TaskStatus, verify: bool) -> None:
        self.poller.deliver(CallbackPayload(job.task_id, status), verify=verify)

    @rule(job=jobs)
    def cancel(self, job: Job) -> None:
        job.cancel()

    @rule(ms=st.integers(min_value=1, max_value=15))
    def advance(self, ms: int) -> None:
        self._run(ms / 1000)

    @precondition(lambda self: not self.closed)
    @rule()
    def close(self) -> None:
        self.loop.run_until_complete(self.poller.close())
        self.closed = True

    @invariant()
    def every_job_ends_at_most_once(self) -> None:
        self._run(0)  # let done callbacks run
        assert all(count == 1 for count in self.ended.values())

    @invariant()
    def no_task_polled_faster_than_its_floor(self) -> None:
        for spans in self.transport.spans.values():
            for (_, prev_end), (start, _) in itertools.pairwise(spans):
                assert start - prev_end >= MIN_INTERVAL * 0.999

    @invariant()
    def closed_means_nothing_pending(self) -> None:
        if self.closed:
            assert all(job.done() for job in self.all_jobs)
            assert len(self.poller) == 0

    def teardown(self) -> None:
        self.loop.run_until_complete(self.poller.close())
        assert all(job.done() for job in self.all_jobs)
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        assert not pending
        self.loop.close()


PollerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestPoller = PollerMachine.TestCase
