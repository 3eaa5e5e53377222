"""The receiver's log filter keeps webhook tokens out of access logs, any token under its path."""

from __future__ import annotations

import asyncio
import io
import logging
import socket

import aiohttp
import pytest

from ketchup_async import KetchupClient
from ketchup_async.webhooks import WebhookReceiver

from ..conftest import API_KEY

pytestmark = pytest.mark.anyio

TOKEN = "A" * 21 + "b"
OLD = "Q" * 40  # a previous process's token: not known to this receiver


@pytest.fixture
def offline_client() -> KetchupClient:
    """A client that is never asked to send anything."""
    return KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:9")


def _record(path: str) -> logging.LogRecord:
    return logging.LogRecord(
        "aiohttp.access", logging.INFO, __file__, 1, '"POST %s HTTP/1.1" 404', (path,), None
    )


def test_a_token_the_receiver_never_knew_is_masked(offline_client: KetchupClient) -> None:
    """A callback path with another process's token is masked too."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN], path="/hooks/ketchup")
    record = _record(f"/hooks/ketchup/{OLD}?x=1")
    assert receiver.log_filter.filter(record)
    assert OLD not in record.getMessage()
    assert "/hooks/ketchup/<token>?x=1" in record.getMessage()


def test_paths_outside_the_prefix_are_left_alone(offline_client: KetchupClient) -> None:
    """Only the segment under the receiver's path is masked."""
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN])
    record = _record(f"/jobs/{OLD}")
    receiver.log_filter.filter(record)
    assert record.getMessage() == f'"POST /jobs/{OLD} HTTP/1.1" 404'


async def test_uvicorn_access_log_through_the_filter(offline_client: KetchupClient) -> None:
    """uvicorn's own access logger, with the README's recipe, never prints a token."""
    uvicorn = pytest.importorskip("uvicorn")
    receiver = WebhookReceiver(offline_client, tokens=[TOKEN])

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    access.addFilter(receiver.log_filter)  # the README's recipe
    level = access.level
    access.setLevel(logging.INFO)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=True)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not serving.done()
            await asyncio.sleep(0.01)
        async with aiohttp.ClientSession() as http:
            for token in (TOKEN, OLD):
                url = f"http://127.0.0.1:{port}/ketchup/callback/{token}"
                async with http.post(url, data=b"{}") as response:
                    assert response.status == 404
    finally:
        server.should_exit = True
        await serving
        sock.close()
        access.removeFilter(receiver.log_filter)
        access.setLevel(level)
        access.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("/ketchup/callback/<token>") == 2
    assert TOKEN not in text
    assert OLD not in text
