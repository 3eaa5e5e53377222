"""A backend of several worker processes behind one callback address, relaying over Redis.

Each worker is this process: an aiohttp app with its own ``KetchupClient``, a
``WebhookReceiver`` that shares the webhook token with every other worker, and a
``RedisRelay``. The load balancer (here: the kernel, with every worker listening on the same
port through ``SO_REUSEPORT``; in production: your proxy or your pods' service) hands each
callback to any worker. A worker that gets a callback for a job it does not own publishes it
to Redis; the worker that owns the job reads it and resolves the job at once, instead of
waiting for its safety-net poll.

Routes:
    POST /generate     {"prompt": "..."} -> 200 {"task_id", "images", "worker", "resolved_at"}
    GET  /stats        this worker's counters (queries sent, webhooks, relay)
    POST /ketchup/callback/{token}   the API's callbacks

Run four workers on one port (the token must be the same in every worker)::

    export KETCHUP_WEBHOOK_TOKENS=$(python -c \\
        "from ketchup_async.webhooks import new_token; print(new_token())")
    export KETCHUP_API_KEY=dk-... REDIS_URL=redis://127.0.0.1:6379/0 \\
        PUBLIC_BASE_URL=https://hooks.example.com PORT=8080
    for i in 1 2 3 4; do python examples/multiworker/app.py & done

Environment: KETCHUP_API_KEY, KETCHUP_BASE_URL (optional), REDIS_URL, KETCHUP_WEBHOOK_TOKENS
("current[,previous]", shared by every worker), PUBLIC_BASE_URL (where the API reaches the
load balancer), HOST and PORT (default 127.0.0.1:8080).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator

import attrs
from aiohttp import web

from ketchup_async import ClientClosedError, KetchupClient, KetchupError
from ketchup_async.webhooks import RedisRelay, WebhookReceiver

CLIENT = web.AppKey("ketchup_client", KetchupClient)
RECEIVER = web.AppKey("ketchup_receiver", WebhookReceiver)


async def generate(request: web.Request) -> web.Response:
    """Submit one prompt with the shared callback URL and answer once it is done."""
    body = await request.json()
    client, receiver = request.app[CLIENT], request.app[RECEIVER]
    try:
        job = await client.submit(
            body["prompt"], callback_url=receiver.callback_url(os.environ["PUBLIC_BASE_URL"])
        )
        result = await job.wait(timeout=120)
    except ClientClosedError:
        raise web.HTTPServiceUnavailable(text="shutting down") from None
    except KetchupError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    return web.json_response(
        {
            "task_id": result.task_id,
            "images": [image.image for image in result.images],
            "worker": os.getpid(),
            "resolved_at": time.monotonic(),
        }
    )


async def stats(request: web.Request) -> web.Response:
    """This worker's counters: a job resolved by its callback costs no query."""
    receiver = request.app[RECEIVER]
    relay = receiver.relay
    return web.json_response(
        {
            "worker": os.getpid(),
            "queries": request.app[CLIENT].queries_sent,
            "webhooks": receiver.stats.as_dict(),
            "client": request.app[CLIENT].stats().as_dict(),
            "relay": None if relay is None else attrs.asdict(relay.stats),
        }
    )


async def ketchup(app: web.Application) -> AsyncIterator[None]:
    """One client and one receiver (with its relay) per worker, for the app's lifetime."""
    tokens = [t for t in os.environ["KETCHUP_WEBHOOK_TOKENS"].split(",") if t]
    async with KetchupClient() as client:
        receiver = WebhookReceiver(client, tokens=tokens, relay=RedisRelay(os.environ["REDIS_URL"]))
        async with receiver:
            app[CLIENT], app[RECEIVER] = client, receiver
            yield


def make_app() -> web.Application:
    """The worker's aiohttp application."""
    app = web.Application()
    app.cleanup_ctx.append(ketchup)
    app.router.add_post("/generate", generate)
    app.router.add_get("/stats", stats)

    async def callback(request: web.Request) -> web.Response:
        return await request.app[RECEIVER].handle_request(request)

    app.router.add_post("/ketchup/callback/{token}", callback)
    return app


def main() -> None:
    """Serve one worker on HOST:PORT, sharing the port with the other workers."""
    logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))
    web.run_app(make_app(), host=host, port=port, reuse_port=True, access_log=None, print=None)


if __name__ == "__main__":
    main()
