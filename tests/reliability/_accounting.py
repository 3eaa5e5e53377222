"""Jepsen-style accounting for fault runs: every input resolved exactly once, none paid twice.

A fault test runs N prompts through ``generate_many`` against a faulty ``FakeKetchupServer``
and hands the outcomes to ``Ledger``; ``check`` asserts the invariants:

- resolved exactly once: one outcome per input index, N in all (lost = 0, doubled = 0);
- nothing paid twice: the server created at most one task per prompt;
- no orphans: a successful outcome's task is the server task made for *its* prompt, and a submit
  reported as "not processed" created no task at all;
- nothing left behind: once the client is closed, no job is pending and no task of the SDK runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import attrs

from ketchup_async import (
    APIConnectionError,
    GenerateRequest,
    KetchupClient,
    KetchupError,
    Outcome,
    PollPolicy,
    RetryPolicy,
)
from ketchup_async.testing import FakeKetchupServer, Faults

API_KEY = "dk-reliab1lity0123456789"

OnOutcome = Callable[["Ledger"], Awaitable[None]]


def client_for(
    server: FakeKetchupServer,
    scale: float,
    *,
    max_retries: int = 6,
    **kwargs: object,
) -> KetchupClient:
    """A client pointed at ``server`` with every duration scaled by ``scale``.

    Its downloads may reach the fake's image host (loopback) through the allow-list.
    """
    options: dict[str, object] = {
        "api_key": API_KEY,
        "base_url": server.base_url,
        "download_hosts": [urlsplit(server.cdn_url).hostname or "127.0.0.1"],
        "polling": PollPolicy().scaled(scale),
        "retry": RetryPolicy(max_retries=max_retries).scaled(scale),
    }
    options.update(kwargs)
    return KetchupClient(**options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def fake_server(
    scale: float,
    *,
    seed: int = 1,
    submit_faults: Faults | None = None,
    query_faults: Faults | None = None,
    **kwargs: object,
) -> AsyncIterator[FakeKetchupServer]:
    """A seeded fake at ``scale`` that accepts ``API_KEY``."""
    server = FakeKetchupServer(
        api_keys=(API_KEY,),
        time_scale=scale,
        seed=seed,
        submit_faults=submit_faults,
        query_faults=query_faults,
        **kwargs,  # type: ignore[arg-type]
    )
    async with server:
        yield server


def error_kind(error: BaseException | None) -> str:
    """A short label for an outcome's error: its class, plus ``?`` when it may have been paid."""
    if error is None:
        return "ok"
    if isinstance(error, APIConnectionError) and error.may_have_been_processed:
        return f"{type(error).__name__}?"
    return type(error).__name__


@attrs.define
class Ledger:
    """Every outcome of one run, by input index."""

    prompts: list[str]
    by_index: dict[int, list[Outcome]] = attrs.field(factory=dict)

    @property
    def n(self) -> int:
        """Inputs in the run."""
        return len(self.prompts)

    @property
    def received(self) -> int:
        """Outcomes received (with repeats)."""
        return sum(len(v) for v in self.by_index.values())

    def record(self, outcome: Outcome) -> None:
        """Add one outcome."""
        self.by_index.setdefault(outcome.index, []).append(outcome)

    def outcomes(self) -> list[Outcome]:
        """The first outcome of each resolved index."""
        return [v[0] for v in self.by_index.values()]

    def kinds(self) -> Counter[str]:
        """Outcomes by ``error_kind``."""
        return Counter(error_kind(o.error) for o in self.outcomes())

    def table(self, server: FakeKetchupServer) -> dict[str, int]:
        """The accounting numbers: jobs, resolved once, lost, duplicated (resolved/paid twice)."""
        created = server.stats.created_per_prompt
        return {
            "jobs": self.n,
            "resolved_once": sum(1 for v in self.by_index.values() if len(v) == 1),
            "lost": sum(1 for i in range(self.n) if i not in self.by_index),
            "resolved_twice": sum(1 for v in self.by_index.values() if len(v) > 1),
            "paid_twice": sum(1 for p in self.prompts if created[p] > 1),
        }

    def check(
        self,
        server: FakeKetchupServer,
        *,
        allowed: tuple[type[KetchupError], ...] = (),
    ) -> None:
        """Assert the invariants; errors other than ``allowed`` are failures."""
        table = self.table(server)
        assert table == {
            "jobs": self.n,
            "resolved_once": self.n,
            "lost": 0,
            "resolved_twice": 0,
            "paid_twice": 0,
        }, table
        assert set(self.by_index) == set(range(self.n))
        created = server.stats.created_per_prompt
        for outcome in self.outcomes():
            prompt = self.prompts[outcome.index]
            assert outcome.request is not None
            assert outcome.request.prompt == prompt
            if outcome.task_id is not None:  # its task is the one made for this prompt
                assert server.tasks[outcome.task_id].prompt == prompt
                assert created[prompt] == 1
            if outcome.ok:
                assert outcome.result is not None
                assert outcome.result.task_id == outcome.task_id
                continue
            error = outcome.error
            assert isinstance(error, allowed), (prompt, repr(error))
            if outcome.task_id is None and not (
                isinstance(error, APIConnectionError) and error.may_have_been_processed
            ):
                assert created[prompt] == 0, (prompt, repr(error))  # "not sent" means not paid


async def run_many(
    client: KetchupClient,
    n: int,
    *,
    prefix: str = "job",
    concurrency: int = 64,
    on_outcome: OnOutcome | None = None,
    callback_url: str | None = None,
) -> Ledger:
    """Run ``n`` distinct prompts through ``generate_many`` and record every outcome."""
    ledger = Ledger([f"{prefix} {i}" for i in range(n)])
    inputs: list[str | GenerateRequest] = list(ledger.prompts)
    if callback_url is not None:
        inputs = [GenerateRequest(p, callback_url=callback_url) for p in ledger.prompts]
    async for outcome in client.generate_many(inputs, concurrency=concurrency):
        ledger.record(outcome)
        if on_outcome is not None:
            await on_outcome(ledger)
    return ledger


def sdk_tasks() -> list[asyncio.Task[object]]:
    """Running asyncio tasks whose coroutine belongs to the SDK (not to the fake server)."""
    current = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        if task is current or task.done():
            continue
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "ag_code", None)
        filename = getattr(code, "co_filename", "")
        if "ketchup_async" in filename and "testing" not in filename:
            found.append(task)
    return found


async def check_closed_clean(client: KetchupClient) -> None:
    """Close ``client`` and assert nothing of it is left pending or running."""
    await client.aclose()
    assert client.pending() == 0
    await asyncio.sleep(0)
    assert sdk_tasks() == []
