"""The one request path: error mapping, retries, the submit-is-money rule, no key in logs."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from ketchup_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    SubmitHooks,
    TaskNotFoundError,
)
from ketchup_async._http import USER_AGENT, Transport
from ketchup_async._submit import SubmitGate, Submitter
from ketchup_async._submit_rate import SubmitController
from ketchup_async.testing import FakeKetchupServer, Faults

from ._scripted import Scripted, scripted_server
from .conftest import API_KEY

pytestmark = pytest.mark.anyio


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    """A scripted server on 127.0.0.1 port 0 and its base URL."""
    async with scripted_server() as pair:
        yield pair


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as http:
        yield http


def transport(
    session: aiohttp.ClientSession, base_url: str, sleeps: list[float], retries: int = 3
) -> Transport:
    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    return Transport(
        session=session,
        base_url=base_url,
        api_key=API_KEY,
        retry=RetryPolicy(max_retries=retries, base=0.5, cap=8.0, retry_after_cap=60.0),
        timeout=5.0,
        max_concurrency=8,
        sleep=record,
        rng=random.Random(0),
    )


async def submit(
    http: Transport, body: Any, *, on_send: Callable[[], Awaitable[None]] | None = None
) -> dict[str, str]:
    """Send ``body`` through the submit path (``Submitter``) with fast back-offs."""
    retry = http.retry.scaled(0.001)
    gate = SubmitGate(SubmitController(base=retry.base, cap=retry.cap))
    submitter = Submitter(http, gate, retry, rng=random.Random(0))
    return {"task_id": await submitter.submit(body, SubmitHooks(on_send=on_send))}


async def test_400_maps_to_bad_request_with_fields(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """The documented 400 body becomes BadRequestError with code, message and detail."""
    http = transport(session, server.base_url, [])
    with pytest.raises(BadRequestError) as exc:
        await submit(http, {"model": "google/gempix2"})
    assert (exc.value.status_code, exc.value.code, exc.value.message, exc.value.detail) == (
        400,
        1,
        "failed",
        "prompt is required",
    )
    assert exc.value.request_id


async def test_401_on_submit_has_code_1(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """A refused key on submit maps to AuthenticationError with envelope code 1."""
    http = transport(session, server.base_url, [])
    http.set_api_key("dk-wrong")
    with pytest.raises(AuthenticationError) as exc:
        await submit(http, {"model": "google/gempix2", "prompt": "p"})
    assert (exc.value.status_code, exc.value.code, exc.value.message) == (401, 1, "Invalid API key")


async def test_401_on_query_has_code_401(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """A refused key on query maps to AuthenticationError with envelope code 401."""
    http = transport(session, server.base_url, [])
    http.set_api_key("dk-wrong")
    with pytest.raises(AuthenticationError) as exc:
        await http.request("GET", "/api/task/query", params={"task_id": "ta1"})
    assert (exc.value.status_code, exc.value.code) == (401, 401)


async def test_404_maps_to_task_not_found(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """An unknown task is TaskNotFoundError with the documented message."""
    http = transport(session, server.base_url, [])
    with pytest.raises(TaskNotFoundError) as exc:
        await http.request(
            "GET",
            "/api/task/query",
            params={"task_id": "ta-nope"},
            not_found=TaskNotFoundError,
        )
    assert (exc.value.code, exc.value.message) == (1, "task not found")


async def test_500_maps_to_server_error_after_retries(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """Persistent 500s are retried max_retries times, then raise ServerError."""
    server.query_faults = Faults(error_500=1.0)
    sleeps: list[float] = []
    http = transport(session, server.base_url, sleeps)
    with pytest.raises(ServerError) as exc:
        await http.request("GET", "/api/task/query", params={"task_id": "ta1"})
    assert exc.value.status_code == 500
    assert server.stats.requests[("query", 500)] == 4
    assert len(sleeps) == 3


async def test_html_502_maps_to_server_error(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """A proxy's HTML 502 page is a ServerError describing the body, not a JSON crash."""
    server.query_faults = Faults(html_502=1.0)
    http = transport(session, server.base_url, [], retries=0)
    with pytest.raises(ServerError) as exc:
        await http.request("GET", "/api/task/query", params={"task_id": "ta1"})
    assert exc.value.status_code == 502
    assert "non-JSON" in exc.value.message
    assert exc.value.code is None


async def test_429_honours_retry_after(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """A submit answered 429 with Retry-After waits that long before it is sent again."""
    script, url = scripted
    script.replies = [
        (429, {"code": 1, "message": "rate limit exceeded"}, {"Retry-After": "0.2"}),
        (200, {"code": 0, "message": "ok", "data": {"task_id": "ta1"}}, {}),
    ]
    started = time.monotonic()
    data = await submit(transport(session, url, []), {})
    assert data == {"task_id": "ta1"}
    assert time.monotonic() - started >= 0.2


async def test_429_after_retries_is_rate_limit_error(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """Persistent 429s raise RateLimitError carrying the server's Retry-After."""
    script, url = scripted
    script.replies = [(429, {"code": 1, "message": "slow down"}, {"Retry-After": "2"})] * 3
    with pytest.raises(RateLimitError) as exc:
        await transport(session, url, [], retries=2).request("GET", "/q")
    assert exc.value.retry_after == 2.0
    assert len(script.requests) == 3


async def test_submit_is_retried_after_explicit_500(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """A submit answered 500 did not charge: it is retried and succeeds."""
    script, url = scripted
    script.replies = [
        (500, {"code": 1, "message": "internal"}, {}),
        (503, "<html>busy</html>", {}),
        (200, {"code": 0, "message": "ok", "data": {"task_id": "ta2"}}, {}),
    ]
    sleeps: list[float] = []
    data = await submit(transport(session, url, sleeps), {"prompt": "p"})
    assert data["task_id"] == "ta2"
    assert len(script.requests) == 3


async def test_on_send_runs_before_each_attempt(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """on_send is awaited before each attempt reaches the server, retries included."""
    script, url = scripted
    script.replies = [
        (500, {"code": 1, "message": "internal"}, {}),
        (200, {"code": 0, "message": "ok", "data": {"task_id": "ta3"}}, {}),
    ]
    seen: list[int] = []

    async def on_send() -> None:
        seen.append(len(script.requests))

    await submit(transport(session, url, []), {"prompt": "p"}, on_send=on_send)
    assert seen == [0, 1]
    assert len(script.requests) == 2


async def test_a_failing_on_send_sends_nothing(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """If on_send raises (the journal could not commit), the request never leaves."""
    script, url = scripted

    async def on_send() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await submit(transport(session, url, []), {"prompt": "p"}, on_send=on_send)
    assert script.requests == []


async def test_submit_is_not_resent_after_connection_drop(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """A submit whose connection died after sending is never resent."""
    script, url = scripted
    script.replies = ["reset"]
    with pytest.raises(APIConnectionError) as exc:
        await submit(transport(session, url, []), {"prompt": "p"})
    assert exc.value.may_have_been_processed is True
    assert len(script.requests) == 1


async def test_submit_drop_after_accept_creates_one_task(
    server: FakeKetchupServer, session: aiohttp.ClientSession
) -> None:
    """Against the fake: the accepted-then-dropped submit created exactly one task."""
    server.submit_faults = Faults(reset_after_accept=1.0)
    with pytest.raises(APIConnectionError, match="may have been processed"):
        await submit(
            transport(session, server.base_url, []), {"model": "google/gempix2", "prompt": "once"}
        )
    assert server.stats.created_per_prompt["once"] == 1


async def test_query_is_retried_after_connection_drop(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """A GET whose connection died is retried freely."""
    script, url = scripted
    script.replies = ["reset", (200, {"code": 0, "message": "ok", "data": {"x": 1}}, {})]
    assert await transport(session, url, []).request("GET", "/q") == {"x": 1}


async def test_connect_error_is_retried_even_for_submit(session: aiohttp.ClientSession) -> None:
    """A refused connection never carried the submit: retried, then not-processed error."""
    sleeps: list[float] = []
    with pytest.raises(APIConnectionError) as exc:
        await submit(transport(session, "http://127.0.0.1:9", sleeps, retries=2), {})
    assert exc.value.may_have_been_processed is False


async def test_malformed_200_on_submit_is_may_have_been_processed(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """A submit answered 200 with an unreadable body is not resent and says so."""
    script, url = scripted
    script.replies = [(200, "<html>ok?</html>", {})]
    with pytest.raises(APIConnectionError) as exc:
        await submit(transport(session, url, []), {})
    assert exc.value.may_have_been_processed
    assert len(script.requests) == 1


async def test_headers_carry_auth_and_user_agent(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    """Every request has the bearer key and the SDK's own User-Agent."""
    script, url = scripted
    await transport(session, url, []).request("GET", "/q")
    headers = script.requests[0]["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("ketchup-async/")


async def test_key_never_logged_at_debug(
    server: FakeKetchupServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG logs name method, path, status and attempt, and never the key."""
    server.query_faults = Faults(error_500=1.0)
    caplog.set_level(logging.DEBUG, logger="ketchup_async")
    with pytest.raises(ServerError) as exc:
        await transport(session, server.base_url, [], retries=1).request(
            "GET", "/api/task/query", params={"task_id": "ta1"}
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /api/task/query -> 500" in text
    assert "attempt 2" in text
    assert API_KEY not in text
    assert API_KEY not in str(exc.value)
    assert API_KEY not in repr(exc.value)
