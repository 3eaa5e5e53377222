"""The submit path through the client: the classification table, hooks, closing, secrets."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from ketchup_async import (
    APIConnectionError,
    BadRequestError,
    ClientClosedError,
    GenerateRequest,
    KetchupClient,
    RetryPolicy,
    SubmitHooks,
)

from ._scripted import Scripted, scripted_server
from .conftest import API_KEY

pytestmark = pytest.mark.anyio

OK = (200, {"code": 0, "message": "ok", "data": {"task_id": "ta1"}}, {})
HTML_502 = (502, "<html><body>502 Bad Gateway</body></html>", {})
HTML_504 = (504, "<html><body>504 Gateway Time-out</body></html>", {})
LIMITED = (429, {"code": 1, "message": "rate limit exceeded"}, {"Retry-After": "0"})
BUSY = (503, {"code": 1, "message": "busy"}, {"Retry-After": "0"})
FAILED_500 = (500, {"code": 1, "message": "internal server error"}, {})


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    """A scripted server and its base URL."""
    async with scripted_server() as pair:
        yield pair


def client_for(url: str, *, max_retries: int = 3, **kwargs: Any) -> KetchupClient:
    """A client with fast retries (milliseconds) against ``url``."""
    retry = RetryPolicy(max_retries=max_retries).scaled(0.001)
    return KetchupClient(api_key=API_KEY, base_url=url, retry=retry, **kwargs)


def posts(script: Scripted) -> int:
    """How many requests reached the scripted server."""
    return len(script.requests)


@pytest.mark.parametrize(
    "reply",
    [HTML_502, HTML_504, (200, {"code": 0, "message": "ok", "data": {}}, {})],
    ids=["502", "504", "2xx-without-task-id"],
)
async def test_an_ambiguous_answer_is_never_resent(
    scripted: tuple[Scripted, str], reply: Any
) -> None:
    """502, 504 and a 2xx without a task id may hide a task: raised as maybe-processed, once."""
    script, url = scripted
    script.replies = [reply, OK]
    async with client_for(url) as client:
        with pytest.raises(APIConnectionError) as exc:
            await client.submit("a cat")
    assert exc.value.may_have_been_processed is True
    assert posts(script) == 1


async def test_refusals_and_500_are_retried(scripted: tuple[Scripted, str]) -> None:
    """429, 503 and 500 charged nothing: the submit is sent again and succeeds."""
    script, url = scripted
    script.replies = [LIMITED, BUSY, FAILED_500, OK]
    async with client_for(url) as client:
        job = await client.submit("a cat")
        job.cancel()
    assert job.task_id == "ta1"
    assert posts(script) == 4


async def test_refusals_do_not_use_up_retries(scripted: tuple[Scripted, str]) -> None:
    """A submit refused with 429/503 waits for the controller: max_retries=0 still succeeds."""
    script, url = scripted
    script.replies = [LIMITED, BUSY, LIMITED, LIMITED, BUSY, OK]
    async with client_for(url, max_retries=0) as client:
        job = await client.submit("a cat")
        job.cancel()
    assert posts(script) == 6


async def test_500_still_has_a_retry_limit(scripted: tuple[Scripted, str]) -> None:
    """Persistent 500s end after max_retries, as before."""
    script, url = scripted
    script.replies = [FAILED_500] * 5
    async with client_for(url, max_retries=2) as client:
        with pytest.raises(Exception, match="internal server error"):
            await client.submit("a cat")
    assert posts(script) == 3


async def test_hooks_run_around_each_attempt(scripted: tuple[Scripted, str]) -> None:
    """on_send before every attempt on the wire, on_refused after each uncharged refusal."""
    script, url = scripted
    script.replies = [LIMITED, FAILED_500, OK]
    events: list[str] = []

    async def on_send() -> None:
        events.append(f"send@{posts(script)}")

    async def on_refused() -> None:
        events.append(f"refused@{posts(script)}")

    async def on_submitted(task_id: str) -> None:
        events.append(f"submitted {task_id}")

    hooks = SubmitHooks(on_send=on_send, on_refused=on_refused, on_submitted=on_submitted)
    async with client_for(url) as client:
        job = await client.submit_request(GenerateRequest("a cat"), hooks=hooks)
        job.cancel()
    assert events == [
        "send@0",
        "refused@1",
        "send@1",
        "refused@2",
        "send@2",
        "submitted ta1",
    ]


async def test_no_on_refused_for_an_ambiguous_answer(scripted: tuple[Scripted, str]) -> None:
    """A 502 may hide a task: the input is not put back as "not sent"."""
    script, url = scripted
    script.replies = [HTML_502]
    events: list[str] = []

    async def on_send() -> None:
        events.append("send")

    async def on_refused() -> None:
        events.append("refused")

    async with client_for(url) as client:
        with pytest.raises(APIConnectionError):
            await client.submit_request(
                GenerateRequest("a cat"), hooks=SubmitHooks(on_send=on_send, on_refused=on_refused)
            )
    assert events == ["send"]


async def test_waiting_for_a_pooled_connection_is_not_processed(
    scripted: tuple[Scripted, str],
) -> None:
    """A submit that only waited for a pooled connection was never sent: not maybe-processed."""
    script, url = scripted
    script.replies = ["slow"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        holder = asyncio.ensure_future(session.get(url + "/hold"))
        await script.wait_for(1)  # the only connection is taken
        async with client_for(url, max_retries=0, timeout=0.2, session=session) as client:
            with pytest.raises(APIConnectionError) as exc:
                await client.submit("a cat")
        (await holder).release()
    assert exc.value.may_have_been_processed is False
    assert posts(script) == 1  # only the request holding the connection


async def test_closing_ends_a_submit_waiting_out_a_refusal(
    scripted: tuple[Scripted, str],
) -> None:
    """aclose() during a long Retry-After ends the waiting submit at once with ClientClosedError."""
    script, url = scripted
    script.replies = [(429, {"code": 1, "message": "slow down"}, {"Retry-After": "30"})]
    refused = asyncio.Event()

    async def on_refused() -> None:
        refused.set()

    hooks = SubmitHooks(on_refused=on_refused)
    client = client_for(url)
    async with client:
        task = asyncio.ensure_future(client.submit_request(GenerateRequest("a cat"), hooks=hooks))
        await refused.wait()  # answered 429: now waiting for the controller
        started = time.monotonic()
        with anyio.fail_after(5):
            await client.aclose()
            with pytest.raises(ClientClosedError):
                await task
    assert time.monotonic() - started < 2.0
    assert posts(script) == 1


async def test_the_key_is_in_no_captured_frame_local(scripted: tuple[Scripted, str]) -> None:
    """A traceback formatted with capture_locals=True from a request error never shows the key."""
    script, url = scripted
    script.replies = [(400, {"code": 1, "message": "failed", "detail": "bad"}, {})]
    async with client_for(url) as client:
        try:
            await client.submit("a cat")
        except BadRequestError as exc:
            error: BaseException = exc
        else:  # pragma: no cover
            pytest.fail("no error")
    text = "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())
    assert "_attempt" in text or "submit" in text  # the request's own frames are in it
    assert API_KEY not in text
    assert API_KEY[3:] not in text


@pytest.mark.parametrize("header", ["X-Request-Id", "Request-Id", "X-Trace-Id", "CF-Ray"])
async def test_request_id_headers_are_read(scripted: tuple[Scripted, str], header: str) -> None:
    """The common request id headers all end up on the error."""
    script, url = scripted
    script.replies = [(400, {"code": 1, "message": "failed"}, {header: "req-42"})]
    async with client_for(url) as client:
        with pytest.raises(BadRequestError) as exc:
            await client.submit("a cat")
    assert exc.value.request_id == "req-42"
