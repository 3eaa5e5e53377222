"""The client variants: the SDK (polling and webhooks) and what users would write instead.

Each variant runs one workload (``jobs`` prompts submitted at once against ``base_url``) and
fills a ``Record``: when each input was resolved (``time.monotonic()``, comparable with the
server's ``completed_at``), whether it succeeded, and how many times it was reported.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
import attrs
import requests
from aiohttp import web

from ketchup_async import GenerateRequest, KetchupClient, PollPolicy, RetryPolicy
from ketchup_async.webhooks import WebhookReceiver

__all__ = [
    "THREAD_WORKERS",
    "Record",
    "VariantConfig",
    "prompts",
    "run_ketchup",
    "run_naive",
    "run_threads",
    "run_webhooks",
]

#: Threads in the threads + requests variant: what a user would pick (one thread per job at
#: 2,000 jobs means 2,000 OS threads and stacks; nobody ships that).
THREAD_WORKERS = 64
_MODEL = "google/gempix2"
_FINAL = ("success", "failed")


def prompts(jobs: int) -> Iterator[str]:
    """The workload's inputs: ``jobs`` distinct prompts (so duplicates are detectable)."""
    return (f"benchmark prompt {i:06d}" for i in range(jobs))


@attrs.frozen(kw_only=True)
class VariantConfig:
    """What one variant process runs. Durations in API seconds, scaled by ``scale``.

    Attributes:
        base_url: The fake API.
        api_key: Its key.
        jobs: Inputs submitted at once.
        scale: Real seconds per API second.
        rate: ``PollPolicy.rate`` override (queries per API second), None for the default.
        first_poll_quantile: ``PollPolicy.first_poll_quantile`` override.
        backoff: ``PollPolicy.backoff`` override.
    """

    base_url: str
    api_key: str
    jobs: int
    scale: float
    rate: float | None = None
    first_poll_quantile: float | None = None
    backoff: float | None = None

    def policy(self) -> PollPolicy:
        """The SDK's poll policy (default unless overridden), scaled to the fake's clock."""
        overrides: dict[str, Any] = {
            name: value
            for name in ("rate", "first_poll_quantile", "backoff")
            if (value := getattr(self, name)) is not None
        }
        return PollPolicy(**overrides).scaled(self.scale)


@attrs.define
class Record:
    """When and how each input was resolved."""

    jobs: int
    task_ids: list[str | None] = attrs.field(init=False)
    resolved_at: list[float | None] = attrs.field(init=False)
    ok: list[bool] = attrs.field(init=False)
    reports: list[int] = attrs.field(init=False)
    errors: list[str] = attrs.field(factory=list)
    started_at: float = attrs.field(factory=time.monotonic)
    client_queries: int | None = None
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def __attrs_post_init__(self) -> None:
        self.task_ids = [None] * self.jobs
        self.resolved_at = [None] * self.jobs
        self.ok = [False] * self.jobs
        self.reports = [0] * self.jobs

    def resolve(self, index: int, task_id: str | None, ok: bool, error: str = "") -> None:
        """Input ``index`` is resolved now (thread-safe)."""
        now = time.monotonic()
        with self._lock:
            self.reports[index] += 1
            if self.reports[index] == 1:
                self.task_ids[index] = task_id
                self.resolved_at[index] = now
                self.ok[index] = ok
            if error and len(self.errors) < 10:
                self.errors.append(error)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures of the run."""
        return {
            "jobs": self.jobs,
            "started_at": self.started_at,
            "results": [
                [tid, at, ok]
                for tid, at, ok in zip(self.task_ids, self.resolved_at, self.ok, strict=True)
            ],
            "unresolved": sum(1 for n in self.reports if n == 0),
            "duplicates": sum(n - 1 for n in self.reports if n > 1),
            "errors": self.errors,
            "client_queries": self.client_queries,
        }


# -- the SDK -------------------------------------------------------------------------------


def _client(config: VariantConfig) -> KetchupClient:
    return KetchupClient(
        api_key=config.api_key,
        base_url=config.base_url,
        polling=config.policy(),
        retry=RetryPolicy().scaled(config.scale),
    )


async def _drain(client: KetchupClient, inputs: Iterator[Any], record: Record) -> None:
    async for outcome in client.generate_many(inputs, concurrency=record.jobs):
        error = "" if outcome.error is None else repr(outcome.error)
        record.resolve(outcome.index, outcome.task_id, outcome.ok, error)
    record.client_queries = client.queries_sent


async def run_ketchup(config: VariantConfig) -> Record:
    """``generate_many`` with the shared poller, every job in flight at once."""
    async with _client(config) as client:
        record = Record(config.jobs)
        await _drain(client, prompts(config.jobs), record)
    return record


async def run_webhooks(config: VariantConfig) -> Record:
    """The same, with callbacks delivered to the built-in receiver in this process."""
    async with _client(config) as client:
        receiver = WebhookReceiver(client)
        app = web.Application()
        receiver.add_to(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            url = receiver.callback_url(f"http://127.0.0.1:{port}")
            record = Record(config.jobs)
            requests_ = (GenerateRequest(p, callback_url=url) for p in prompts(config.jobs))
            await _drain(client, requests_, record)
        finally:
            await runner.cleanup()
    return record


# -- what users write instead --------------------------------------------------------------


async def _naive_job(
    session: aiohttp.ClientSession, config: VariantConfig, record: Record, index: int, prompt: str
) -> None:
    # The provider's sample, in Python: submit, then every second ask until final.
    base, interval = config.base_url, 1.0 * config.scale
    while True:  # a refused submit (429, 5xx) is sent again a second later
        async with session.post(
            f"{base}/api/image/gen", json={"model": _MODEL, "prompt": prompt}
        ) as response:
            if response.status == 200:
                task_id = (await response.json())["data"]["task_id"]
                break
        await asyncio.sleep(interval)
    while True:
        await asyncio.sleep(interval)
        async with session.get(f"{base}/api/task/query", params={"task_id": task_id}) as response:
            if response.status != 200:
                continue  # 429, 5xx: try again next second
            data = (await response.json())["data"]
        if data["status"] in _FINAL:
            record.resolve(index, task_id, data["status"] == "success")
            return


async def run_naive(config: VariantConfig) -> Record:
    """One coroutine per job with plain aiohttp and one shared session."""
    headers = {"Authorization": f"Bearer {config.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        record = Record(config.jobs)
        jobs = [
            _naive_job(session, config, record, i, p) for i, p in enumerate(prompts(config.jobs))
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
    record.errors.extend(repr(r) for r in results if isinstance(r, BaseException))
    return record


def run_threads(config: VariantConfig) -> Record:
    """A ``ThreadPoolExecutor`` of blocking ``requests`` calls, polling every second."""
    record = Record(config.jobs)
    local = threading.local()
    headers = {"Authorization": f"Bearer {config.api_key}"}
    base, interval = config.base_url, 1.0 * config.scale

    def job(index: int, prompt: str) -> None:
        session = getattr(local, "session", None)
        if session is None:  # one keep-alive session per thread, like a careful user
            session = local.session = requests.Session()
            session.headers.update(headers)
        response = session.post(f"{base}/api/image/gen", json={"model": _MODEL, "prompt": prompt})
        task_id = response.json()["data"]["task_id"]
        while True:
            time.sleep(interval)
            response = session.get(f"{base}/api/task/query", params={"task_id": task_id})
            if response.status_code != 200:
                continue
            status = response.json()["data"]["status"]
            if status in _FINAL:
                record.resolve(index, task_id, status == "success")
                return

    with ThreadPoolExecutor(max_workers=THREAD_WORKERS) as pool:
        futures = [pool.submit(job, i, p) for i, p in enumerate(prompts(config.jobs))]
    record.errors.extend(repr(f.exception()) for f in futures if f.exception() is not None)
    return record
