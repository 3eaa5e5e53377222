"""A FastAPI backend that starts image generations and receives the API's callbacks.

Routes:
    POST /generate            {"prompt": "...", "images": [...]}  -> 202 {"task_id": ...}
    GET  /jobs/{task_id}      ?wait=SECONDS (default 30, max 60)  -> 200 {"images": [...]}
                              (202 while still running, 200 {"status": "failed"} on failure,
                              404 for a task id this backend did not issue, 503 while
                              shutting down)
    POST /ketchup/callback/{token}   the API's callbacks

One ``KetchupClient`` per app, opened and closed by the lifespan. The callback route hands the
body stream to ``WebhookReceiver.handle_stream``, which checks the token in constant time, reads
the body with a size cap and a deadline, parses it with ``parse_callback`` and resolves the job
with ``client.deliver``; it answers the status and JSON body to send back. Only task ids this
backend issued are looked up: tracking any id a caller sends would spend queries on your key.

Shutdown: uvicorn waits for open requests to finish *before* the lifespan's shutdown, so a
request waiting for a job would hold it until its ``wait`` ran out. ``DrainingServer`` closes
the client as soon as the shutdown starts: waiters get ``ClientClosedError`` and answer 503,
then uvicorn's bounded drain (``timeout_graceful_shutdown``) and the lifespan follow. Run it::

    pip install "ketchup-async[examples]"
    KETCHUP_API_KEY=dk-... PUBLIC_BASE_URL=https://hooks.example.com \\
        python examples/fastapi_webhooks.py

Environment: KETCHUP_API_KEY, KETCHUP_BASE_URL (optional), PUBLIC_BASE_URL,
KETCHUP_WEBHOOK_TOKENS (optional "current[,previous]": keeps callback URLs valid across
restarts; a fresh token is drawn otherwise), HOST and PORT (default 127.0.0.1:8000).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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

MAX_JOBS_KEPT = 10_000  # recent jobs kept for GET /jobs/{task_id}
DRAIN_SECONDS = 10.0  # shutdown: submits on the wire, then requests still answering


class GenerateBody(BaseModel):
    """The body of ``POST /generate``."""

    prompt: str
    images: list[str] = []


def env_tokens() -> list[str] | None:
    """The webhook tokens from ``KETCHUP_WEBHOOK_TOKENS`` ("current[,previous]"), if set."""
    value = os.environ.get("KETCHUP_WEBHOOK_TOKENS", "").strip()
    return [token.strip() for token in value.split(",") if token.strip()] or None


def _remember(jobs: OrderedDict[str, Job], job: Job) -> None:
    jobs[job.task_id] = job
    jobs.move_to_end(job.task_id)
    while len(jobs) > MAX_JOBS_KEPT:
        jobs.popitem(last=False)


async def generate(body: GenerateBody, request: Request) -> JSONResponse:
    """Start one generation with the receiver's callback URL; answer its task id."""
    state = request.app.state
    try:
        job = await state.client.submit(
            body.prompt,
            images=body.images,
            callback_url=state.receiver.callback_url(state.public_base_url),
        )
    except ValidationError as exc:
        raise HTTPException(400, str(exc)) from None
    except ClientClosedError:
        return _shutting_down()
    except APIConnectionError as exc:
        raise HTTPException(502, str(exc)) from None
    except APIError as exc:
        raise HTTPException(502, str(exc)) from None
    _remember(state.jobs, job)
    return JSONResponse({"task_id": job.task_id, "status": job.status.value}, status_code=202)


async def get_job(
    task_id: str, request: Request, wait: Annotated[float, Query(ge=0.0, le=60.0)] = 30.0
) -> JSONResponse:
    """Wait (at most ``?wait=`` seconds) for a job and answer its image URL(s)."""
    state = request.app.state
    job = state.jobs.get(task_id)
    if job is None:  # never track an id a caller made up: each would cost queries on our key
        raise HTTPException(404, f"task {task_id} not found")
    try:
        result = await job.wait(wait)
    except asyncio.TimeoutError:
        return JSONResponse({"task_id": task_id, "status": job.status.value}, status_code=202)
    except ClientClosedError:
        return _shutting_down()
    except TaskFailedError as exc:
        return JSONResponse({"task_id": task_id, "status": "failed", "reason": exc.reason})
    except TaskNotFoundError:
        raise HTTPException(404, f"task {task_id} not found") from None
    except KetchupError as exc:
        raise HTTPException(502, str(exc)) from None
    images = [image.image for image in result.images]
    return JSONResponse({"task_id": task_id, "status": "success", "images": images})


def _shutting_down() -> JSONResponse:
    return JSONResponse(
        {"error": "shutting down, try again"}, status_code=503, headers={"Retry-After": "5"}
    )


async def callback(token: str, request: Request) -> JSONResponse:
    """The API's callbacks: token, then a capped read with a deadline, parse, deliver."""
    receiver: WebhookReceiver = request.app.state.receiver
    length = request.headers.get("content-length")
    status, payload = await receiver.handle_stream(
        token,
        request.stream(),
        content_length=int(length) if length and length.isdigit() else None,
        remote=request.client.host if request.client else None,
    )
    return JSONResponse(payload, status_code=status)


def create_app(
    *,
    public_base_url: str | None = None,
    tokens: Sequence[str] | None = None,
    verify: bool = False,
    **client_options: Any,
) -> FastAPI:
    """Build the app; the client (``KetchupClient(**client_options)``) opens in the lifespan.

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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with KetchupClient(**client_options) as client:
            receiver = WebhookReceiver(client, tokens=tokens, verify=verify)
            receiver.callback_url(base)  # a bad PUBLIC_BASE_URL fails at startup
            app.state.client, app.state.receiver = client, receiver
            app.state.public_base_url, app.state.jobs = base, OrderedDict()
            access_log = logging.getLogger("uvicorn.access")
            access_log.addFilter(receiver.log_filter)  # the path holds the token
            try:
                yield
            finally:
                access_log.removeFilter(receiver.log_filter)

    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/generate", generate, methods=["POST"], status_code=202)
    app.add_api_route("/jobs/{task_id}", get_job, methods=["GET"])
    app.add_api_route(f"{DEFAULT_PATH}/{{token}}", callback, methods=["POST"])
    return app


def main() -> None:
    """Serve the app with uvicorn on HOST:PORT until interrupted (SIGINT/SIGTERM)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        """uvicorn's server, closing the Ketchup client as soon as its shutdown begins."""

        async def shutdown(self, sockets: Any = None) -> None:
            client = getattr(app.state, "client", None)
            if client is not None:  # waiting requests answer 503 now, not after their wait
                await client.aclose(timeout=DRAIN_SECONDS)
            await super().shutdown(sockets=sockets)

    logging.basicConfig(level=logging.INFO)
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    app = create_app()
    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=DRAIN_SECONDS)
    DrainingServer(config).run()


if __name__ == "__main__":
    main()
