"""The Redis relay: a callback received by one worker resolves the job of another."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from ketchup_async import Job, PollPolicy
from ketchup_async.errors import ValidationError
from ketchup_async.testing import FakeKetchupServer
from ketchup_async.webhooks import RedisRelay, WebhookReceiver, new_token

from .._redis import RedisServer
from ..conftest import SCALE, make_client

pytestmark = pytest.mark.anyio

#: The safety net far away, so only a callback can resolve a job.
NO_SAFETY_NET = PollPolicy(callback_grace=1000.0).scaled(SCALE)
#: Where the fake sends its own callbacks: a closed loopback port (only the tests deliver).
HOOK = "http://127.0.0.1:9/ketchup/callback/"


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def callback_body(task_id: str) -> bytes:
    """The body the API would POST for ``task_id`` once it succeeded."""
    image = f"https://cdn.example.com/{task_id}.png"
    return json.dumps(
        {"task_id": task_id, "status": "success", "result": [{"image": image}], "consumed": "0.5"}
    ).encode()


async def test_a_callback_for_another_workers_job_resolves_it_through_redis(
    server: FakeKetchupServer, redis_url: str, stream: str
) -> None:
    """Worker A gets the callback of worker B's job; B's job resolves without a query."""
    token = new_token()
    async with (
        make_client(server, polling=NO_SAFETY_NET) as client_a,
        make_client(server, polling=NO_SAFETY_NET) as client_b,
        WebhookReceiver(
            client_a, tokens=[token], relay=RedisRelay(redis_url, stream=stream)
        ) as worker_a,
        WebhookReceiver(
            client_b, tokens=[token], relay=RedisRelay(redis_url, stream=stream)
        ) as worker_b,
    ):
        job: Job = await client_b.submit("a red bicycle", callback_url=HOOK + token)
        status, reply = worker_a.handle(token, callback_body(job.task_id))
        assert (status, reply) == (200, {"status": "relayed"})
        result = await asyncio.wait_for(job.wait(), 10)
        assert result.task_id == job.task_id
        assert client_b.queries_sent == 0
        assert worker_b.stats.relayed_in == 1
        assert worker_b.relay is not None
        assert worker_b.relay.stats.delivered == 1
        assert worker_a.relay is not None
        assert worker_a.relay.stats.published == 1


async def test_a_worker_skips_the_callbacks_it_published_itself(
    server: FakeKetchupServer, redis_url: str, stream: str
) -> None:
    """Entries a worker published are read back by the others only."""
    token = new_token()
    async with (
        make_client(server) as client_a,
        make_client(server) as client_b,
        WebhookReceiver(client_a, tokens=[token], relay=RedisRelay(redis_url, stream=stream)) as a,
        WebhookReceiver(client_b, tokens=[token], relay=RedisRelay(redis_url, stream=stream)) as b,
    ):
        body = json.dumps({"task_id": "ta-nobody", "status": "failed", "result": None}).encode()
        a.handle(token, body)
        assert a.relay is not None
        assert b.relay is not None
        await wait_for(lambda: b.relay is not None and b.relay.stats.received == 1)
        await a.aclose()  # publishing finished; nothing more can arrive
        assert a.relay.stats.received == 0
        assert b.relay.stats.delivered == 0


async def test_a_matched_callback_is_not_relayed(
    server: FakeKetchupServer, redis_url: str, stream: str
) -> None:
    """A callback for one of the receiving worker's own jobs never goes to Redis."""
    token = new_token()
    async with (
        make_client(server, polling=NO_SAFETY_NET) as client,
        WebhookReceiver(client, tokens=[token], relay=RedisRelay(redis_url, stream=stream)) as a,
    ):
        job = await client.submit("a cat", callback_url=HOOK + token)
        assert a.handle(token, callback_body(job.task_id)) == (200, {"status": "accepted"})
        await job
        assert a.relay is not None
        assert a.relay.stats.published == 0


async def test_redis_down_warns_once_and_local_callbacks_still_resolve(
    server: FakeKetchupServer, tmp_path: Path, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis unreachable: start() works, one WARNING for many callbacks, local jobs resolve."""
    redis = RedisServer(tmp_path)  # never started: nothing listens on its port
    token = new_token()
    caplog.set_level(logging.WARNING, logger="ketchup_async")
    async with (
        make_client(server, polling=NO_SAFETY_NET) as client,
        WebhookReceiver(
            client, tokens=[token], relay=RedisRelay(redis.url, stream=stream, backoff=(0.05, 0.1))
        ) as receiver,
    ):
        for i in range(5):
            body = json.dumps({"task_id": f"ta-other{i}", "status": "failed"}).encode()
            assert receiver.handle(token, body)[0] == 200
        job = await client.submit("a dog", callback_url=HOOK + token)
        assert receiver.handle(token, callback_body(job.task_id))[1] == {"status": "accepted"}
        await job
        relay = receiver.relay
        assert relay is not None
        await wait_for(lambda: relay.stats.publish_failures == 5)
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert str(redis.port) in warnings[0].getMessage()


async def test_the_relay_reconnects_and_delivers_after_redis_comes_back(
    server: FakeKetchupServer, tmp_path: Path, stream: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped, then started again on the same port: relaying goes on by itself."""
    redis = RedisServer(tmp_path)
    redis.start()
    token = new_token()
    caplog.set_level(logging.INFO, logger="ketchup_async")
    try:
        async with (
            make_client(server, polling=NO_SAFETY_NET) as client_a,
            make_client(server, polling=NO_SAFETY_NET) as client_b,
            WebhookReceiver(
                client_a,
                tokens=[token],
                relay=RedisRelay(redis.url, stream=stream, backoff=(0.05, 0.1)),
            ) as a,
            WebhookReceiver(
                client_b,
                tokens=[token],
                relay=RedisRelay(redis.url, stream=stream, backoff=(0.05, 0.1)),
            ) as b,
        ):
            assert a.relay is not None
            assert b.relay is not None
            redis.stop()
            await wait_for(lambda: b.relay is not None and b.relay._down)
            redis.start()
            await wait_for(lambda: a.relay is not None and a.relay.stats.reconnects >= 1)
            await wait_for(lambda: b.relay is not None and b.relay.stats.reconnects >= 1)
            job = await client_b.submit("a boat", callback_url=HOOK + token)
            a.handle(token, callback_body(job.task_id))
            await asyncio.wait_for(job.wait(), 10)
            assert client_b.queries_sent == 0
    finally:
        redis.stop()
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_relay_refuses_a_url_that_is_not_redis() -> None:
    """Only redis://, rediss:// and unix:// URLs are accepted, named in the error."""
    with pytest.raises(ValidationError) as info:
        RedisRelay("http://127.0.0.1:6379")
    assert info.value.field == "url"


def test_relay_repr_masks_the_password() -> None:
    """A password in the URL never appears in the relay's repr."""
    relay = RedisRelay("redis://:s3cret-pass@127.0.0.1:6379/0")
    assert "s3cret-pass" not in repr(relay)
    assert "***" in repr(relay)


async def test_a_redis_that_never_answers_cannot_hang_start_or_aclose(
    server: FakeKetchupServer, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: start() and aclose() still end, bounded."""
    from ketchup_async.webhooks import _relay

    monkeypatch.setattr(_relay, "_SOCKET_TIMEOUT", 0.3)
    accepted: list[asyncio.StreamWriter] = []

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    silent = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        async with make_client(server) as client:
            relay = RedisRelay(f"redis://127.0.0.1:{port}/0", stream=stream, backoff=(0.05, 0.1))
            with anyio.fail_after(20):  # a regression fails here instead of hanging the suite
                async with WebhookReceiver(client, tokens=[new_token()], relay=relay):
                    pass
    finally:
        for writer in accepted:
            writer.close()
        silent.close()
        await silent.wait_closed()
    assert time.monotonic() - started < 6.0
