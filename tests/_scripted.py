"""A tiny scripted HTTP server for request-path tests (each request gets the next reply)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

__all__ = ["Reply", "Scripted", "scripted_server"]

Reply = tuple[int, Any, dict[str, str]] | str


class Scripted:
    """A tiny server answering each request with the next scripted reply ("reset" aborts)."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.requests: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    async def wait_for(self, count: int) -> None:
        """Return once ``count`` requests have arrived."""
        while len(self.requests) < count:
            self._arrived.clear()
            await self._arrived.wait()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"headers": dict(request.headers), "body": await request.read()})
        self._arrived.set()
        reply = self.replies.pop(0) if self.replies else (200, {"code": 0, "data": {}}, {})
        if reply == "slow":  # hold the connection a while, then answer like "no reply left"
            await asyncio.sleep(1.0)
            return web.json_response({"code": 0, "data": {}})
        if reply == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        status, body, headers = reply  # type: ignore[misc]
        text = body if isinstance(body, str) else json.dumps(body)
        ctype = "text/html" if isinstance(body, str) else "application/json"
        return web.Response(status=status, text=text, headers=headers, content_type=ctype)


@asynccontextmanager
async def scripted_server() -> AsyncIterator[tuple[Scripted, str]]:
    """A scripted server on 127.0.0.1 port 0 and its base URL."""
    script = Scripted([])
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield script, f"http://127.0.0.1:{port}"
    await runner.cleanup()
