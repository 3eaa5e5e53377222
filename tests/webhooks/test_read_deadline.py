"""A callback body must arrive within the receiver's read deadline, else 408."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ketchup_async import KetchupClient, ValidationError
from ketchup_async.webhooks import WebhookReceiver

from ..conftest import API_KEY

pytestmark = pytest.mark.anyio

TOKEN = "A" * 21 + "b"


@pytest.fixture
def offline_client() -> KetchupClient:
    """A client that is never asked to send anything."""
    return KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:9")


async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    for byte in data:  # 1 B/s
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


async def _post_trickled(port: int, path: str) -> tuple[bytes, float]:
    """POST a 100-byte body at 1 B/s; return the status line and when it came."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    writer.write(head.encode())
    started = time.monotonic()
    trickling = asyncio.create_task(_trickle(writer, b"{" + b" " * 99))
    try:
        status = await asyncio.wait_for(reader.readline(), 10.0)
        return status, time.monotonic() - started
    finally:
        trickling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trickling
        writer.close()


@contextlib.asynccontextmanager
async def _serving(receiver: WebhookReceiver) -> AsyncIterator[int]:
    app = web.Application()
    receiver.add_to(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_a_trickled_body_is_answered_408(offline_client: KetchupClient) -> None:
    """A body trickled at 1 B/s gets 408 once read_timeout passed, not an open connection."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN], read_timeout=0.5)
    async with _serving(receiver) as port:
        status, elapsed = await _post_trickled(port, f"/ketchup/callback/{TOKEN}")
    assert status.startswith(b"HTTP/1.1 408")
    assert elapsed < 3.0
    assert receiver.stats.rejected["timeout"] == 1


async def test_handle_stream_applies_the_deadline(offline_client: KetchupClient) -> None:
    """The framework-neutral handle_stream answers 408 for a body that does not come."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN], read_timeout=0.05)

    async def never() -> AsyncIterator[bytes]:
        yield b"{"
        await asyncio.Event().wait()

    status, answer = await receiver.handle_stream(TOKEN, never())
    assert status == 408
    assert answer == {"error": "request body not received in time"}


async def test_a_wrong_token_is_refused_before_reading(offline_client: KetchupClient) -> None:
    """handle_stream refuses a wrong token without waiting for the body."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN], read_timeout=30.0)

    async def never() -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""

    status, _ = await asyncio.wait_for(receiver.handle_stream("Z" * 43, never()), 1.0)
    assert status == 404


def test_read_timeout_must_be_positive(offline_client: KetchupClient) -> None:
    """read_timeout=0 is a ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        WebhookReceiver(offline_client, read_timeout=0)
    assert info.value.field == "read_timeout"
