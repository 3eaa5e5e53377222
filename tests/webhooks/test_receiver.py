"""Tests of ``ketchup_async.webhooks``: parsing, tokens and the receiver over real sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ketchup_async import (
    CallbackPayload,
    InsecureTransportWarning,
    KetchupClient,
    PollPolicy,
    TaskStatus,
    ValidationError,
)
from ketchup_async.testing import FakeKetchupServer
from ketchup_async.webhooks import (
    MAX_CALLBACK_BYTES,
    WebhookReceiver,
    parse_callback,
    read_body,
)

from ..conftest import API_KEY, SCALE, make_client

pytestmark = pytest.mark.anyio

TOKEN = "A" * 21 + "b"  # 22 url-safe characters: the shortest accepted
OTHER = "Z" * 43
TASK = "ta0123456-89ab-4cde-8f01-23456789abcd"


def body(**fields: Any) -> bytes:
    """A callback body shaped like the API's, with ``fields`` overriding (None drops a key)."""
    data: dict[str, Any] = {
        "result": [{"image": "https://cdn.example.com/images/x-0.png"}],
        "status": "success",
        "task_id": TASK,
        "consumed": "0.500000",
        "status_reason": {"message": None},
    }
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


@asynccontextmanager
async def serving(receiver: WebhookReceiver, **app_options: Any) -> AsyncIterator[str]:
    """Serve ``receiver`` in an aiohttp app on 127.0.0.1:0; yield its base URL."""
    app = web.Application(**app_options)
    receiver.add_to(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def post(http: aiohttp.ClientSession, url: str, data: Any) -> tuple[int, dict[str, Any]]:
    """POST ``data`` to ``url``; return the status and the JSON answer."""
    async with http.post(url, data=data) as response:
        return response.status, await response.json()


@pytest.fixture
def offline_client() -> KetchupClient:
    """A client that is never asked to send anything."""
    return KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:9")


# -- parse_callback -----------------------------------------------------------------------


def test_parse_success_body() -> None:
    """The API's exact success body parses into a CallbackPayload."""
    payload = parse_callback(body())
    assert payload == CallbackPayload(
        task_id=TASK,
        status=TaskStatus.SUCCESS,
        images=payload.images,
        consumed=Decimal("0.500000"),
    )
    assert payload.images[0].url == "https://cdn.example.com/images/x-0.png"


def test_parse_failed_body_with_reason() -> None:
    """A failed callback carries its reason and no images."""
    payload = parse_callback(body(status="failed", result=None, status_reason={"message": "nsfw"}))
    assert (payload.status, payload.images, payload.reason) == (TaskStatus.FAILED, (), "nsfw")


def test_parse_tolerates_unknown_and_missing_optional_keys() -> None:
    """Unknown keys are ignored; a missing consumed is None."""
    payload = parse_callback(body(consumed=..., extra={"x": 1}, status_reason=...))
    assert payload.consumed is None
    assert payload.task_id == TASK


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (b"not json", "body", "not valid JSON"),
        (b"\xff\xfe{}", "body", "not UTF-8"),
        (b"[1, 2]", "body", "got an array"),
        (b'{"task_id": "ta1", "status": "success", "consumed": NaN}', "body", "NaN"),
        (body(task_id=...), "task_id", "missing"),
        (body(task_id=5), "task_id", "must be a string"),
        (body(task_id="ta\n1"), "task_id", "control characters"),
        (body(task_id="t" * 257), "task_id", "the limit is 256"),
        (body(status=...), "status", "missing"),
        (body(status="done"), "status", "unknown task status"),
        (body(status="in_progress"), "status", "final status"),
        (body(consumed="lots"), "consumed", "not a decimal"),
        (body(consumed=True), "consumed", "decimal string"),
        (body(result="x.png"), "result", "must be a list"),
        (body(result=None), "result", "at least one image"),
        (body(result=[{"url": "x"}]), "result", "no 'image'"),
        (body(result=[{"image": "ftp://x/y.png"}]), "result[0].image", "http(s)"),
    ],
)
def test_parse_rejects_malformed(raw: bytes, field: str, fragment: str) -> None:
    """Each malformed body raises a ValidationError naming the field and the problem."""
    with pytest.raises(ValidationError) as info:
        parse_callback(raw)
    assert info.value.field == field
    assert fragment in info.value.problem


def test_parse_rejects_oversized_body() -> None:
    """A body over 64 KiB is refused before it is decoded."""
    raw = body(padding="x" * MAX_CALLBACK_BYTES)
    with pytest.raises(ValidationError, match="the limit is 65,536"):
        parse_callback(raw)


def test_parse_rejects_text() -> None:
    """Only bytes are accepted (the raw request body)."""
    with pytest.raises(ValidationError, match="must be bytes"):
        parse_callback(body().decode())  # type: ignore[arg-type]


async def test_read_body_stops_after_the_limit() -> None:
    """read_body returns at most limit + 1 bytes and closes the stream it stopped early."""
    closed = []

    async def chunks() -> AsyncIterator[bytes]:
        try:
            for _ in range(1000):
                yield b"x" * 10
        finally:
            closed.append(True)

    assert len(await read_body(chunks(), limit=25)) == 26
    assert closed == [True]


# -- configuration ------------------------------------------------------------------------


def test_default_token_is_fresh_and_long(offline_client: KetchupClient) -> None:
    """Without tokens, each receiver draws its own 256-bit token."""
    first, second = WebhookReceiver(offline_client), WebhookReceiver(offline_client)
    assert len(first.tokens) == 1
    assert len(first.tokens[0]) >= 43
    assert first.tokens != second.tokens


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        (["short"], "at least 22"),
        (["x" * 21 + "/"], "url-safe"),
        ([TOKEN, OTHER, "Q" * 30], "one or two"),
        ([], "one or two"),
        (TOKEN, "a list"),
        ([42], "must be a string"),
    ],
)
def test_bad_tokens_are_refused(offline_client: KetchupClient, tokens: Any, fragment: str) -> None:
    """Short, non-url-safe, too many or mistyped tokens raise ValidationError."""
    with pytest.raises(ValidationError, match=fragment):
        WebhookReceiver(offline_client, tokens=tokens)


def test_bad_path_and_client_are_refused(offline_client: KetchupClient) -> None:
    """A path without a leading slash and a non-client are clear errors."""
    with pytest.raises(ValidationError, match="path"):
        WebhookReceiver(offline_client, path="hooks")
    with pytest.raises(ValidationError, match="client"):
        WebhookReceiver("not a client")  # type: ignore[arg-type]


def test_repr_hides_tokens(offline_client: KetchupClient) -> None:
    """The receiver's repr never shows a token."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN])
    assert TOKEN not in repr(receiver)


def test_callback_url_uses_the_current_token(offline_client: KetchupClient) -> None:
    """callback_url joins the public base, the path and the current token."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN, OTHER], path="/hooks/")
    url = receiver.callback_url("https://app.example.com/api/")
    assert url == f"https://app.example.com/api/hooks/{TOKEN}"


def test_callback_url_rejects_query_and_warns_on_plain_http(
    offline_client: KetchupClient,
) -> None:
    """A base URL with a query is refused; plain http to a public host warns."""
    receiver = WebhookReceiver(offline_client)
    with pytest.raises(ValidationError, match="query or fragment"):
        receiver.callback_url("https://app.example.com/?a=1")
    with pytest.warns(InsecureTransportWarning):
        receiver.callback_url("http://app.example.com")


def test_rotate_keeps_the_previous_token(offline_client: KetchupClient) -> None:
    """rotate() makes a new token current, keeps one previous, and drops older ones."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN])
    assert receiver.rotate(OTHER) == OTHER
    assert receiver.tokens == (OTHER, TOKEN)
    fresh = receiver.rotate()
    assert receiver.tokens == (fresh, OTHER)
    receiver.retire_previous()
    assert list(receiver.tokens) == [fresh]


def test_log_filter_masks_tokens(offline_client: KetchupClient) -> None:
    """The log filter masks tokens in messages, arguments and extra fields."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN])
    record = logging.LogRecord(
        "aiohttp.access", logging.INFO, __file__, 1, "POST %s", (f"/h/{TOKEN}",), None
    )
    record.__dict__["first_request_line"] = f"POST /h/{TOKEN} HTTP/1.1"  # an "extra" field
    assert receiver.log_filter.filter(record)
    assert TOKEN not in record.getMessage()
    assert TOKEN not in record.__dict__["first_request_line"]
    assert "<token>" in record.getMessage()


# -- the receiver over HTTP ---------------------------------------------------------------


async def test_callback_from_the_api_resolves_the_job(server: FakeKetchupServer) -> None:
    """A real callback POSTed by the fake resolves the job, with no task query."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client)
        async with serving(receiver) as base:
            job = await client.submit("a red bicycle", callback_url=receiver.callback_url(base))
            result = await job.wait(5)
    assert result.images[0].url == f"{server.cdn_url}/images/{job.task_id}-0.png"
    assert server.stats.polls[job.task_id] == 0
    assert (receiver.stats.received, receiver.stats.delivered) == (1, 1)


async def test_report_joins_the_receivers_and_the_clients_stats(
    server: FakeKetchupServer,
) -> None:
    """``report()``: the receiver's counters and the client's ``stats()``, JSON-able."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client)
        job = await client.submit("a red bicycle")
        payload = {"task_id": job.task_id, "status": "success", "consumed": "0.5"}
        payload["result"] = [{"image": "https://cdn.test/a.png"}]
        assert receiver.handle(receiver.tokens[0], json.dumps(payload).encode())[0] == 200
        await job
        report = json.loads(json.dumps(receiver.report()))
    assert report["webhooks"]["delivered"] == 1
    assert report["client"]["succeeded"] == 1
    assert report["client"]["credits_consumed"] == "0.5"
    assert report["client"]["queries"] == 0


async def test_wrong_token_is_404_and_not_logged(
    server: FakeKetchupServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong or missing token is answered 404, counted, and logged without the token."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        async with serving(receiver) as base:
            with caplog.at_level(logging.WARNING, logger="ketchup_async"):
                wrong = await post(http, f"{base}/ketchup/callback/{OTHER}", body())
                missing = await post(http, f"{base}/ketchup/callback", body())
    assert wrong == missing == (404, {"error": "not found"})
    assert receiver.stats.rejected["token"] == 2
    assert "wrong or missing token" in caplog.text
    assert OTHER not in caplog.text
    assert TOKEN not in caplog.text


async def test_previous_token_still_accepted(
    server: FakeKetchupServer, http: aiohttp.ClientSession
) -> None:
    """After rotate(), callbacks to the previous token's URL are still accepted."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        async with serving(receiver) as base:
            old_url = receiver.callback_url(base)
            receiver.rotate(OTHER)
            status, _ = await post(http, old_url, body())
    assert status == 200
    assert receiver.stats.rejected["token"] == 0


@pytest.mark.parametrize("chunked", [False, True])
async def test_oversized_body_is_413(
    server: FakeKetchupServer, http: aiohttp.ClientSession, chunked: bool
) -> None:
    """A body over 64 KiB is 413, whether declared by Content-Length or only read."""
    raw = body(padding="x" * MAX_CALLBACK_BYTES)

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        # The app accepts far more than the receiver does: the receiver enforces its own cap.
        async with serving(receiver, client_max_size=1024**3) as base:
            url = receiver.callback_url(base)
            status, _ = await post(http, url, stream() if chunked else raw)
    assert status == 413
    assert receiver.stats.rejected["too_large"] == 1


async def test_small_app_body_limit_does_not_matter(
    server: FakeKetchupServer, http: aiohttp.ClientSession
) -> None:
    """The receiver reads bodies itself, so an app's tiny client_max_size does not refuse them."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        async with serving(receiver, client_max_size=16) as base:
            status, _ = await post(http, receiver.callback_url(base), body())
    assert status == 200


async def test_bad_json_is_400_with_a_short_error(
    server: FakeKetchupServer, http: aiohttp.ClientSession
) -> None:
    """A body that is not JSON is 400 with a JSON error naming the problem."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        async with serving(receiver) as base:
            status, error = await post(http, receiver.callback_url(base), b"{oops")
    assert status == 400
    assert error["error"] == "malformed callback"
    assert error["detail"].startswith("body: is not valid JSON")
    assert receiver.stats.rejected["malformed"] == 1


async def test_unknown_task_is_200_and_ignored(
    server: FakeKetchupServer, http: aiohttp.ClientSession
) -> None:
    """A callback for a task the client does not track is answered 200 and counted."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        async with serving(receiver) as base:
            answer = await post(http, receiver.callback_url(base), body())
        assert client.pending() == 0
    assert answer == (200, {"status": "unmatched"})
    assert receiver.stats.unknown == 1


async def test_duplicate_delivery_is_200_and_ignored(server: FakeKetchupServer) -> None:
    """A second delivery of a resolved job's callback is 200 and counted as a duplicate."""
    async with make_client(server) as client:
        receiver = WebhookReceiver(client, tokens=[TOKEN])
        task_id = server.create_task("a cat")
        job = client.track(task_id, has_callback=True)
        raw = body(task_id=task_id)
        first = receiver.handle(TOKEN, raw)
        second = receiver.handle(TOKEN, raw)
        assert job.done()
    assert (first, second) == ((200, {"status": "accepted"}), (200, {"status": "duplicate"}))
    assert (receiver.stats.delivered, receiver.stats.duplicate) == (1, 1)


async def test_handle_is_framework_neutral(offline_client: KetchupClient) -> None:
    """handle(token, body) gives the same answers without any HTTP server."""
    async with offline_client:
        receiver = WebhookReceiver(offline_client, tokens=[TOKEN])
        assert receiver.handle(OTHER, body())[0] == 404
        assert receiver.handle(TOKEN, b"x" * (MAX_CALLBACK_BYTES + 1))[0] == 413
        assert receiver.handle(TOKEN, b"[]")[0] == 400
        assert receiver.handle(TOKEN, body()) == (200, {"status": "unmatched"})
    assert receiver.stats.as_dict() == {
        "received": 4,
        "delivered": 0,
        "duplicate": 0,
        "unknown": 1,
        "rejected": {"token": 1, "too_large": 1, "malformed": 1},
        "relayed_in": 0,
    }


async def test_closed_client_is_503(offline_client: KetchupClient) -> None:
    """Once the client is closed, callbacks are answered 503 (the API may retry)."""
    async with offline_client:
        receiver = WebhookReceiver(offline_client, tokens=[TOKEN])
    assert receiver.handle(TOKEN, body()) == (503, {"error": "client closed"})


async def test_verify_receiver_queries_instead_of_trusting(
    http: aiohttp.ClientSession,
) -> None:
    """With verify=True a callback only triggers a query; the API's answer decides."""
    async with FakeKetchupServer(
        api_keys=(API_KEY,), time_scale=SCALE, render_time=1000.0, render_sigma=0.0
    ) as server:
        polling = PollPolicy(callback_grace=1000.0).scaled(SCALE)
        async with make_client(server, polling=polling) as client:
            receiver = WebhookReceiver(client, tokens=[TOKEN], verify=True)
            async with serving(receiver) as base:
                url = receiver.callback_url(base)
                job = await client.submit("a cat", callback_url=url)
                done_at: list[float] = []
                job.add_done_callback(lambda _: done_at.append(time.monotonic()))
                forged = await post(http, url, body(task_id=job.task_id))
                assert not job.done()  # a trusting receiver would have resolved it by now
                await wait_for(lambda: server.stats.polls[job.task_id] >= 1)
                completed_at = time.monotonic()
                server.complete_now(job.task_id)
                result = await job.wait(5)
    assert forged == (200, {"status": "accepted"})
    assert done_at[0] > completed_at
    assert result.images[0].url == f"{server.cdn_url}/images/{job.task_id}-0.png"
