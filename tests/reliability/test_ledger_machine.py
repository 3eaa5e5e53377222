"""A hypothesis state machine: generate_many, run_bulk, cancel and aclose under adversarial faults.

Each example starts a seeded ``FakeKetchupServer`` with a random set of the faults of issue 10
(proxy pages after the task was created, 2xx without a task id, two submits with one id,
undocumented statuses, empty successes, HTML 404 blips, nested and huge bodies, drops after
accept), then drives one client at random: ``generate_many`` runs (slow consumers, ``break``,
``aclose()`` mid-iteration), single submits awaited or cancelled, durable ``run_bulk`` /
``resume_bulk`` runs. The invariant is the fake's money ledger audited against everything the
SDK reported (``_invariant``), plus one outcome per input and no caller waiting forever.

One test per fault, so each can be marked ``xfail(strict=True)`` while its fix is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ketchup_async import (
    Job,
    KetchupClient,
    KetchupError,
    Outcome,
    PollPolicy,
    TaskNotFoundError,
    resume_bulk,
    run_bulk,
)
from ketchup_async.testing import FakeKetchupServer, Faults

from ._accounting import API_KEY, client_for
from ._invariant import Capture, journal_reports, report_error, report_outcome

pytestmark = [pytest.mark.slow, pytest.mark.own_money_check]

T = TypeVar("T")

SCALE = 0.005
#: Real seconds one rule may take; beyond it a caller "waits forever". Generous next to the
#: scaled schedule (a job renders in ~10 ms here) and to a poller deadline at this scale.
RULE_DEADLINE = 3.0

SUBMIT_FAULTS = (
    "gateway_after_accept",
    "missing_task_id",
    "duplicate_task_id",
    "stuck_status",
    "empty_success",
    "reset_after_accept",
    "html_502",
)
QUERY_FAULTS = ("html_404", "undocumented_status", "nested_body", "huge_body")
#: For deadline-based fixes: the job deadline, if this PollPolicy has one, in API seconds.
_DEADLINE_FIELDS = ("deadline", "job_deadline", "max_wait", "max_job_duration", "job_timeout")


#: The rate of the faults a machine always has on (a random fault uses the drawn rate).
ALWAYS_ON_RATE = 0.5


def _faults(rates: dict[str, float], kinds: tuple[str, ...]) -> Faults:
    options: dict[str, Any] = {name: rate for name, rate in rates.items() if name in kinds}
    if "huge_body" in options:
        options["huge_body_bytes"] = 256 * 1024
    return Faults(**options)


def _polling() -> PollPolicy:
    policy = PollPolicy(not_found_grace=2.0).scaled(SCALE)
    names = {f.name for f in attrs.fields(PollPolicy)}
    for name in _DEADLINE_FIELDS:  # a job deadline (issue 10, case 15), when the SDK has one
        if name in names:
            policy = attrs.evolve(policy, **{name: 400.0 * SCALE})
    return policy


def empty_successes(out_dir: Path) -> list[str]:
    """Journal rows of ``out_dir`` that succeeded without any image."""
    path = out_dir / ".ketchup" / "journal.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT key, task_id, images FROM inputs WHERE state = 'succeeded'")
        return [
            f"bulk input {key} ({task_id}): succeeded without any image"
            for key, task_id, images in rows.fetchall()
            if not json.loads(images or "[]")
        ]


@attrs.define
class ManyRun:
    """One ``generate_many`` call: its inputs and how often each index came out."""

    prompts: list[str]
    seen: Counter[int] = attrs.field(factory=Counter)
    finished: bool = False
    closed: bool = False


class LedgerMachine(RuleBasedStateMachine):
    """Drives one client against one faulty fake; the ledger is audited at the end."""

    #: Faults always on in this machine.
    FAULTS: ClassVar[tuple[str, ...]] = ()
    #: Faults each example may add at random (up to three).
    RANDOM: ClassVar[tuple[str, ...]] = ()
    #: Whether a generate_many caller may ``break`` early / ``aclose()`` the client mid-loop.
    BREAKS: ClassVar[bool] = False
    CLOSES: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="ketchup-machine-"))
        self.capture = Capture()
        self.handler = self.capture.log_handler()
        logging.getLogger("ketchup_async").addHandler(self.handler)
        self.server: FakeKetchupServer | None = None
        self.client: KetchupClient | None = None
        self.jobs: list[Job] = []
        self.runs: list[ManyRun] = []
        self.bulk_dirs: list[Path] = []
        self.resubmitted: set[Path] = set()
        self.names = itertools.count()
        self.problems: list[str] = []

    # -- plumbing ---------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def within_deadline(self, coro: Awaitable[T], what: str) -> T:
        async def bounded() -> T:
            try:
                return await asyncio.wait_for(coro, RULE_DEADLINE)
            except asyncio.TimeoutError:
                raise AssertionError(f"{what} did not return: a caller waits forever") from None

        return self.run(bounded())

    def prompts(self, n: int) -> list[str]:
        return [f"machine prompt {next(self.names)}" for _ in range(n)]

    @property
    def open_client(self) -> KetchupClient:
        assert self.server is not None
        if self.client is None or self.client.closed:
            self.client = client_for(self.server, SCALE, max_retries=3, polling=_polling())
        return self.client

    # -- rules ------------------------------------------------------------------------------

    @initialize(
        picks=st.sets(st.integers(0, 100), max_size=3),
        rate=st.sampled_from([0.2, 0.5]),
        seed=st.integers(0, 2**16),
    )
    def start(self, picks: set[int], rate: float, seed: int) -> None:
        chosen = {self.RANDOM[i % len(self.RANDOM)] for i in picks} if self.RANDOM else set()
        rates = {name: rate for name in chosen} | dict.fromkeys(self.FAULTS, ALWAYS_ON_RATE)
        self.server = FakeKetchupServer(
            api_keys=(API_KEY,),
            time_scale=SCALE,
            render_time=2.0,
            render_sigma=0.3,
            seed=seed,
            submit_faults=_faults(rates, SUBMIT_FAULTS),
            query_faults=_faults(rates, QUERY_FAULTS),
        )
        self.run(self.server.start())
        self.capture.servers.append(self.server)

    @rule(
        n=st.integers(1, 6),
        concurrency=st.integers(1, 4),
        take=st.none() | st.integers(0, 5),
        close_at=st.none() | st.integers(1, 5),
        slow=st.booleans(),
    )
    def generate_many(
        self, n: int, concurrency: int, take: int | None, close_at: int | None, slow: bool
    ) -> None:
        """Iterate generate_many; maybe slowly, maybe break early, maybe aclose() mid-way."""
        client = self.open_client
        run = ManyRun(self.prompts(n))
        self.runs.append(run)

        async def consume() -> None:
            taken = 0
            async for outcome in client.generate_many(run.prompts, concurrency=concurrency):
                self.capture.add(report_outcome(outcome))
                run.seen[outcome.index] += 1
                self.judge(outcome)
                taken += 1
                if slow:
                    await asyncio.sleep(0.01)
                if self.CLOSES and close_at is not None and taken == close_at:
                    await client.aclose()  # the iteration must still end, with outcomes
                    run.closed = True
                if self.BREAKS and take is not None and taken >= take:
                    return  # like `break`: the generator is left to the garbage collector
            run.finished = True

        self.within_deadline(consume(), "generate_many")

    @rule(n=st.integers(1, 3))
    def submit(self, n: int) -> None:
        """Submit single jobs and keep them to await or cancel later."""
        client = self.open_client

        async def go() -> None:
            for prompt in self.prompts(n):
                try:
                    job = await client.submit(prompt)
                except KetchupError as exc:
                    self.capture.add(report_error(prompt, exc))
                    continue
                self.capture.add_job(prompt, job)
                self.jobs.append(job)

        self.within_deadline(go(), "submit")

    @precondition(lambda self: any(not j.done() for j in self.jobs))
    @rule(index=st.integers(0, 10))
    def cancel(self, index: int) -> None:
        """Job.cancel() on a pending job (it stays reported by its task id)."""
        pending = [j for j in self.jobs if not j.done()]
        pending[index % len(pending)].cancel()

    @precondition(lambda self: bool(self.jobs))
    @rule()
    def await_jobs(self) -> None:
        """Await every job handed out so far: each must resolve (or have been cancelled)."""

        async def settle(job: Job) -> None:
            assert job.request is not None
            try:
                result = await job
            except KetchupError as exc:
                self.judge(Outcome(job.request, job.task_id, error=exc))
            except asyncio.CancelledError:
                pass
            else:
                self.judge(Outcome(job.request, job.task_id, result))

        async def go() -> None:
            await asyncio.gather(*(settle(job) for job in self.jobs))

        self.within_deadline(go(), "awaiting a job")

    @rule(n=st.integers(1, 5))
    def bulk(self, n: int) -> None:
        """A durable run over fresh prompts (no downloads)."""
        out = self.tmp / f"bulk{len(self.bulk_dirs)}"
        self.bulk_dirs.append(out)
        client = self.open_client
        coro = run_bulk(client, self.prompts(n), out, concurrency=3, download=False)
        with contextlib.suppress(KetchupError):
            self.within_deadline(coro, "run_bulk")

    @precondition(lambda self: bool(self.bulk_dirs))
    @rule(index=st.integers(0, 10), resubmit=st.booleans())
    def resume(self, index: int, resubmit: bool) -> None:
        """Resume an earlier durable run, maybe resubmitting its uncertain inputs."""
        out = self.bulk_dirs[index % len(self.bulk_dirs)]
        if resubmit:
            self.resubmitted.add(out)
        coro = resume_bulk(
            self.open_client, out, concurrency=3, download=False, resubmit_uncertain=resubmit
        )
        with contextlib.suppress(KetchupError):
            self.within_deadline(coro, "resume_bulk")

    @rule()
    def aclose(self) -> None:
        """Close the client (a new one is opened by the next rule that needs one)."""
        if self.client is not None:
            self.within_deadline(self.client.aclose(), "aclose")

    # -- the invariant ------------------------------------------------------------------------

    def judge(self, outcome: Outcome) -> None:
        """An outcome must not contradict the server: no empty success, no live task lost."""
        if outcome.ok and outcome.result is not None and not outcome.result.images:
            self.problems.append(f"{outcome.task_id}: ok without any image")
        server = self.server
        lost = isinstance(outcome.error, TaskNotFoundError)
        if lost and server is not None and outcome.task_id in server.ledger:
            self.problems.append(f"{outcome.task_id}: the server has it, reported not found")

    def teardown(self) -> None:
        try:
            if self.server is not None:
                self.check()
        finally:
            with contextlib.suppress(Exception):
                if self.client is not None:
                    self.run(self.client.aclose())
                self.run(self.loop.shutdown_asyncgens())
                if self.server is not None:
                    self.run(self.server.close())
            self.loop.close()
            logging.getLogger("ketchup_async").removeHandler(self.handler)
            shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self) -> None:
        if self.client is not None:
            self.within_deadline(self.client.aclose(), "aclose")
        self.run(asyncio.sleep(0.02))  # let abandoned generators' last callbacks run
        extra = []
        for out in self.bulk_dirs:
            if (out / ".ketchup" / "journal.sqlite3").is_file():
                extra.extend(journal_reports(out, resubmit=out in self.resubmitted))
                self.problems.extend(empty_successes(out))
        problems = self.problems + self.capture.violations(extra=extra)
        for run in self.runs:
            twice = sorted(i for i, k in run.seen.items() if k > 1)
            if twice:
                problems.append(f"generate_many yielded inputs {twice} more than once")
            if run.finished and not run.closed:  # after aclose(), unread inputs have none
                missing = sorted(set(range(len(run.prompts))) - set(run.seen))
                if missing:
                    problems.append(f"generate_many ended without outcomes for inputs {missing}")
        assert not problems, "money invariant broken:\n" + "\n".join(problems)


SETTINGS = settings(
    max_examples=5,
    stateful_step_count=5,
    deadline=None,
    derandomize=True,  # the same examples every run: a strict xfail stays meaningful
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
#: While a test is marked xfail: stop at the first failing example (shrinking a hang costs
#: minutes). Unmarked, the machine shrinks and prints the minimal reproduction.
NO_SHRINK = settings(SETTINGS, phases=[Phase.explicit, Phase.reuse, Phase.generate])


def fixed_by(case: str, expected: str) -> pytest.MarkDecorator:
    """Mark a test failing today until ``case`` of issue 10 is merged (strict: XPASS is red)."""
    return pytest.mark.xfail(reason=f"fixed by issue 10 {case}: {expected}", strict=True)


def check(request: pytest.FixtureRequest, machine: type[LedgerMachine]) -> None:
    """Run ``machine`` as a test (without shrinking while the test is marked xfail)."""
    xfail = request.node.get_closest_marker("xfail") is not None
    run_state_machine_as_test(machine, settings=NO_SHRINK if xfail else SETTINGS)


#: Faults under which the machine passes today: the random-mix test draws from these. Add a
#: fault here when its test below loses its xfail mark.
FIXED = (
    "reset_after_accept",
    "html_502",
    "huge_body",
    "undocumented_status",
    "duplicate_task_id",
    "stuck_status",
    "empty_success",
    "html_404",
    "nested_body",
    "gateway_after_accept",
    "missing_task_id",
)


def machine_with(
    *faults: str, random: tuple[str, ...] = (), breaks: bool = False, closes: bool = False
) -> type[LedgerMachine]:
    """The machine with ``faults`` always on, plus up to three of ``random`` per example."""
    name = f"LedgerMachine_{'_'.join(faults) or 'mixed'}"
    options = {"FAULTS": faults, "RANDOM": random, "BREAKS": breaks, "CLOSES": closes}
    return type(name, (LedgerMachine,), options)


def test_ledger_holds_without_faults(request: pytest.FixtureRequest) -> None:
    """No fault: every task reported, none paid twice, nobody waits forever."""

    check(request, machine_with())


def test_ledger_holds_when_the_caller_breaks_then_closes(request: pytest.FixtureRequest) -> None:
    """``break`` out of generate_many, then aclose(): sent submits are reported (case 2)."""
    check(request, machine_with(breaks=True))


def test_ledger_holds_when_the_client_closes_mid_iteration(request: pytest.FixtureRequest) -> None:
    """aclose() while generate_many is being iterated: outcomes, not a crash (cases 2, 11)."""
    check(request, machine_with(closes=True))


def test_ledger_holds_under_drops_and_proxy_502s(
    request: pytest.FixtureRequest,
) -> None:
    """Resets after the task was created, HTML 502s before: uncertain or reported, never twice."""
    check(request, machine_with("reset_after_accept", "html_502"))


def test_ledger_holds_under_huge_bodies(request: pytest.FixtureRequest) -> None:
    """Query answers padded with a quarter megabyte: nothing lost."""
    check(request, machine_with("huge_body"))


def test_ledger_holds_under_gateway_pages_after_accept(request: pytest.FixtureRequest) -> None:
    """502/504 proxy pages after the task was created: never resent (issue 10, case 4)."""
    check(request, machine_with("gateway_after_accept"))


def test_ledger_holds_under_missing_task_ids(request: pytest.FixtureRequest) -> None:
    """2xx submit answers without a task id: uncertain, never resent (issue 10, case 4)."""
    check(request, machine_with("missing_task_id"))


def test_ledger_holds_under_repeated_task_ids(request: pytest.FixtureRequest) -> None:
    """Two submits answered with one task id: one outcome per input (issue 10, case 14)."""
    check(request, machine_with("duplicate_task_id"))


def test_ledger_holds_under_undocumented_stuck_statuses(request: pytest.FixtureRequest) -> None:
    """A task stuck in 'cancelled': the job fails at its deadline (issue 10, case 15)."""
    check(request, machine_with("stuck_status"))


def test_ledger_holds_under_undocumented_status_blips(request: pytest.FixtureRequest) -> None:
    """'queued_for_gpu' now and then while rendering: not final, nothing lost."""
    check(request, machine_with("undocumented_status"))


def test_ledger_holds_under_empty_successes(request: pytest.FixtureRequest) -> None:
    """success with an empty result: reported as an error, never ok (issue 10, case 15)."""
    check(request, machine_with("empty_success"))


def test_ledger_holds_under_html_404_blips(request: pytest.FixtureRequest) -> None:
    """HTML 404 pages for existing tasks: transient (issue 10, case 3)."""
    check(request, machine_with("html_404"))


def test_ledger_holds_under_nested_bodies(request: pytest.FixtureRequest) -> None:
    """JSON nested beyond the recursion limit: the job is rescheduled, never orphaned (case 8)."""
    check(request, machine_with("nested_body"))


def test_ledger_holds_under_random_faults(request: pytest.FixtureRequest) -> None:
    """Any mix of up to three FIXED faults, with generate_many, bulk runs, cancel and aclose."""
    check(request, machine_with(random=FIXED))
