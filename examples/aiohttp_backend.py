"""An aiohttp backend that starts image generations and receives the API's callbacks.

Routes:
    POST /generate            {"prompt": "...", "images": [...]}  -> 202 {"task_id": ...}
    GET  /jobs/{task_id}      ?wait=SECONDS (default 30, max 60)  -> 200 {"images": [...]}
                              (202 while still running, 200 {"status": "failed"} on failure,
                              404 for a task id this backend did not issue, 503 while
                              shutting down)
    GET  /jobs/{task_id}/events   the job's status changes as Server-Sent Events
    POST /ketchup/callback/{token}   the API's callbacks (WebhookReceiver)

One ``KetchupClient`` per app, opened on startup and closed on cleanup (``cleanup_ctx``). Jobs
are submitted with the receiver's callback URL, so each resolves the moment its callback
arrives; the client's poller keeps a late safety-net schedule in case a callback is lost.

Only task ids this backend issued are looked up (``JOBS``, a server-side mapping): a route that
called ``client.track(any_id)`` would let anyone spend queries on your API key.

Shutdown (SIGINT/SIGTERM): the site stops accepting, then ``on_shutdown`` closes the client, so
every waiting request gets ``ClientClosedError`` and answers 503 (and event streams end) before
aiohttp's bounded drain (``shutdown_timeout``) would cancel them.

Run it (the API must be able to reach PUBLIC_BASE_URL, e.g. through a tunnel or proxy)::

    KETCHUP_API_KEY=dk-... PUBLIC_BASE_URL=https://hooks.example.com \\
        python examples/aiohttp_backend.py

Environment: KETCHUP_API_KEY, KETCHUP_BASE_URL (optional), PUBLIC_BASE_URL,
KETCHUP_WEBHOOK_TOKENS (optional "current[,previous]": keeps callback URLs valid across
restarts; a fresh token is drawn otherwise), HOST and PORT (default 127.0.0.1:8080).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from ketchup_async import (
    APIConnectionError,
    APIError,
    ClientClosedError,
    Job,
    KetchupClient,
    KetchupError,
    TaskFailedError,
    TaskNotFoundError,
    ValidationError,
)
from ketchup_async.webhooks import DEFAULT_PATH, WebhookReceiver

CLIENT = web.AppKey("ketchup_client", KetchupClient)
RECEIVER = web.AppKey("ketchup_receiver", WebhookReceiver)
JOBS = web.AppKey("ketchup_jobs", OrderedDict)
PUBLIC_BASE_URL = web.AppKey("public_base_url", str)

MAX_JOBS_KEPT = 10_000  # recent jobs kept for GET /jobs/{task_id}
MAX_WAIT = 60.0
DRAIN_SECONDS = 10.0  # shutdown: submits on the wire, then requests still answering


def env_tokens() -> list[str] | None:
    """The webhook tokens from ``KETCHUP_WEBHOOK_TOKENS`` ("current[,previous]"), if set."""
    value = os.environ.get("KETCHUP_WEBHOOK_TOKENS", "").strip()
    return [token.strip() for token in value.split(",") if token.strip()] or None


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _remember(app: web.Application, job: Job) -> None:
    jobs: OrderedDict[str, Job] = app[JOBS]
    jobs[job.task_id] = job
    jobs.move_to_end(job.task_id)
    while len(jobs) > MAX_JOBS_KEPT:
        jobs.popitem(last=False)


async def generate(request: web.Request) -> web.Response:
    """Start one generation with the receiver's callback URL; answer its task id."""
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body must be JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        return _error(400, "prompt: is required and must be a string")
    client, receiver = request.app[CLIENT], request.app[RECEIVER]
    try:
        job = await client.submit(
            prompt,
            images=body.get("images") or (),
            callback_url=receiver.callback_url(request.app[PUBLIC_BASE_URL]),
        )
    except ValidationError as exc:
        return _error(400, str(exc))
    except ClientClosedError:
        return _shutting_down()
    except APIConnectionError as exc:
        return _error(502, str(exc), may_have_been_processed=exc.may_have_been_processed)
    except APIError as exc:
        return _error(502, str(exc))
    _remember(request.app, job)
    return web.json_response({"task_id": job.task_id, "status": job.status.value}, status=202)


async def get_job(request: web.Request) -> web.Response:
    """Wait (at most ``?wait=`` seconds) for a job and answer its image URL(s)."""
    task_id = request.match_info["task_id"]
    try:
        wait = min(MAX_WAIT, max(0.0, float(request.query.get("wait", "30"))))
    except ValueError:
        return _error(400, "wait must be a number of seconds")
    job = request.app[JOBS].get(task_id)
    if job is None:  # never track an id a caller made up: each would cost queries on our key
        return _error(404, f"task {task_id} not found")
    try:
        result = await job.wait(wait)
    except asyncio.TimeoutError:
        return web.json_response({"task_id": task_id, "status": job.status.value}, status=202)
    except ClientClosedError:
        return _shutting_down()
    except TaskFailedError as exc:
        return web.json_response({"task_id": task_id, "status": "failed", "reason": exc.reason})
    except TaskNotFoundError:
        return _error(404, f"task {task_id} not found")
    except KetchupError as exc:
        return _error(502, str(exc))
    images = [image.image for image in result.images]
    return web.json_response({"task_id": task_id, "status": "success", "images": images})


def _shutting_down() -> web.Response:
    return web.json_response(
        {"error": "shutting down, try again"}, status=503, headers={"Retry-After": "5"}
    )


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def job_events(request: web.Request) -> web.StreamResponse:
    """Stream a job's status changes as Server-Sent Events (``EventSource`` in a browser).

    One ``status`` event per change (``queued -> rendering -> done`` in a UI), then ``result``
    or ``failed``; ``error`` when the job cannot finish here (e.g. the server shuts down). The
    changes come from the shared poller and the callbacks: following a job sends no query.
    """
    task_id = request.match_info["task_id"]
    job = request.app[JOBS].get(task_id)
    if job is None:
        return _error(404, f"task {task_id} not found")
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    async for status in job.updates():
        await response.write(_event("status", {"task_id": task_id, "status": status.value}))
    try:
        result = await job
    except TaskFailedError as exc:
        await response.write(_event("failed", {"task_id": task_id, "reason": exc.reason}))
    except ClientClosedError:
        await response.write(_event("error", {"task_id": task_id, "error": "shutting down"}))
    except KetchupError as exc:
        await response.write(_event("error", {"task_id": task_id, "error": str(exc)}))
    else:
        images = [image.image for image in result.images]
        await response.write(_event("result", {"task_id": task_id, "images": images}))
    await response.write_eof()
    return response


async def callback(request: web.Request) -> web.Response:
    """The API's callbacks, handed to this app's receiver."""
    return await request.app[RECEIVER].handle_request(request)


def create_app(
    *,
    public_base_url: str | None = None,
    tokens: Sequence[str] | None = None,
    verify: bool = False,
    **client_options: Any,
) -> web.Application:
    """Build the app; the client (``KetchupClient(**client_options)``) opens on startup.

    Args:
        public_base_url: Where the API reaches this app (default: ``PUBLIC_BASE_URL``).
        tokens: The receiver's tokens (default: ``KETCHUP_WEBHOOK_TOKENS``, else a fresh one).
        verify: Re-query each task instead of trusting its callback.
        client_options: Passed to ``KetchupClient`` (api_key, base_url, polling...).
    """
    base = public_base_url or os.environ.get("PUBLIC_BASE_URL")
    if not base:
        raise ValidationError(
            "public_base_url", "set PUBLIC_BASE_URL to the URL the API can reach this app at"
        )
    tokens = tokens if tokens is not None else env_tokens()

    async def close_client(app: web.Application) -> None:
        # on_shutdown runs once the site stopped accepting and before aiohttp drains the
        # handlers: pending jobs fail with ClientClosedError now, so waiters answer 503.
        await app[CLIENT].aclose(timeout=DRAIN_SECONDS)

    async def ketchup_ctx(app: web.Application) -> AsyncIterator[None]:
        async with KetchupClient(**client_options) as client:
            receiver = WebhookReceiver(client, tokens=tokens, verify=verify)
            receiver.callback_url(base)  # a bad PUBLIC_BASE_URL fails at startup
            app[CLIENT], app[RECEIVER], app[JOBS] = client, receiver, OrderedDict()
            access_log = logging.getLogger("aiohttp.access")
            access_log.addFilter(receiver.log_filter)  # the path holds the token
            try:
                yield
            finally:
                access_log.removeFilter(receiver.log_filter)

    app = web.Application()
    app[PUBLIC_BASE_URL] = base
    app.cleanup_ctx.append(ketchup_ctx)
    app.on_shutdown.append(close_client)
    app.router.add_post("/generate", generate)
    app.router.add_get("/jobs/{task_id}", get_job)
    app.router.add_get("/jobs/{task_id}/events", job_events)
    app.router.add_post(f"{DEFAULT_PATH}/{{token}}", callback)
    return app


def main() -> None:
    """Serve the app on HOST:PORT until interrupted."""
    logging.basicConfig(level=logging.INFO)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    # SIGINT/SIGTERM: stop accepting, on_shutdown closes the client (waiters answer 503), then
    # at most shutdown_timeout for the handlers still answering.
    web.run_app(create_app(), host=host, port=port, shutdown_timeout=DRAIN_SECONDS)


if __name__ == "__main__":
    main()
