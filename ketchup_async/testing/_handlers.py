"""aiohttp request handlers of the fake Ketchup API and its image CDN (mixed into the server)."""

from __future__ import annotations

import asyncio
import functools
import json
import random
import time
from typing import Any

from aiohttp import web

from ._callbacks import CallbackDispatcher
from ._png import png_data_uri, prompt_png
from ._state import SUPPORTED_MODELS, FakeTask, Faults, TaskStore, TokenBucket
from ._stats import FakeStats

__all__ = ["ServerHandlers"]

_dumps = functools.partial(json.dumps, separators=(",", ":"))
_monotonic = time.monotonic

HTML_502 = "<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>"
_HTML_403 = "<html><body><h1>403 Forbidden</h1><p>Request blocked.</p></body></html>"
_EXTRA_TOP = {"x_fake_trace": {"region": "fake-1", "shard": 7}, "x_fake_version": "2.1"}
_EXTRA_DATA = {"x_fake_progress": None, "x_fake_queue": {"position": 0}}
_EXTRA_ITEM = {"x_fake_meta": {"width": 64, "height": 64, "format": "png"}}
_UNAUTHORIZED_SUBMIT = {"code": 1, "message": "Invalid API key"}
_UNAUTHORIZED_QUERY = {"code": 401, "message": "Invalid API key"}
_NOT_FOUND = {"code": 1, "message": "task not found"}
_RATE_LIMITED = {"code": 1, "message": "rate limit exceeded"}
_INTERNAL = {"code": 1, "message": "internal server error"}
#: Counted (as nginx logs it) when a client closed the connection before its submit body
#: arrived; no task is created.
_CLIENT_GONE = 499


def _bad_request(detail: str) -> dict[str, Any]:
    return {"code": 1, "message": "failed", "detail": detail}


class ServerHandlers:
    """The HTTP handlers; :class:`~ketchup_async.testing.FakeKetchupServer` provides the state."""

    submit_faults: Faults
    query_faults: Faults
    _rng: random.Random
    _store: TaskStore
    _stats: FakeStats
    _keys: set[str]
    _query_bucket: TokenBucket | None
    _submit_bucket: TokenBucket | None
    _retry_after: str
    _extra_fields: bool
    _omit_consumed: bool
    _data_uri: bool
    _images_per_task: int
    _max_images: int
    _cdn_require_user_agent: bool
    _cdn_base: str
    _consumed: str
    _callbacks: CallbackDispatcher

    # -- helpers ---------------------------------------------------------------------------

    def _create(
        self, prompt: str, model: str, images: tuple[str, ...], callback_url: str | None
    ) -> FakeTask:
        task = self._store.create(
            prompt, model, now=_monotonic(), images=images, callback_url=callback_url
        )
        self._stats.created_per_prompt[prompt] += 1
        if callback_url is not None:
            self._callbacks.schedule(task)
        return task

    def _result(self, task: FakeTask) -> list[dict[str, Any]]:
        n = self._images_per_task
        if self._data_uri:
            uri = png_data_uri(task.prompt)
            items: list[dict[str, Any]] = [{"image": uri} for _ in range(n)]
        else:
            base = f"{self._cdn_base}/images/{task.task_id}-"
            items = [{"image": f"{base}{i}.png"} for i in range(n)]
        if self._extra_fields:
            for item in items:
                item.update(_EXTRA_ITEM)
        return items

    def _task_data(self, task: FakeTask, now: float) -> dict[str, Any]:
        status = task.status(now)
        success = status == "success"
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "status": status,
            "result": self._result(task) if success else None,
        }
        if not self._omit_consumed:
            data["consumed"] = self._consumed if success else "0.000000"
        data["status_reason"] = {"message": task.reason if status == "failed" else None}
        if self._extra_fields:
            data.update(_EXTRA_DATA)
        return data

    def _callback_payload(self, task: FakeTask) -> dict[str, Any]:
        success = task.outcome == "success"
        return {
            "result": self._result(task) if success else None,
            "status": task.outcome,
            "task_id": task.task_id,
            "consumed": self._consumed if success else "0.000000",
            "status_reason": {"message": None if success else task.reason},
        }

    def _json(
        self,
        endpoint: str,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        self._stats.requests[(endpoint, status)] += 1
        if self._extra_fields:
            body = {**body, **_EXTRA_TOP}
        return web.Response(
            status=status,
            body=_dumps(body).encode(),
            content_type="application/json",
            headers=headers,
        )

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization")
        return auth is not None and auth[:7].lower() == "bearer " and auth[7:].strip() in self._keys

    def _rate_limited(self, endpoint: str) -> web.Response:
        self._stats.rate_limited += 1
        return self._json(endpoint, 429, _RATE_LIMITED, {"Retry-After": self._retry_after})

    def _abort(self, endpoint: str, request: web.Request, kind: str) -> web.Response:
        self._stats.faults_injected[kind] += 1
        self._stats.resets += 1
        self._stats.requests[(endpoint, 0)] += 1
        transport = request.transport
        if transport is not None:
            transport.abort()
        # Writing to the aborted transport raises ConnectionError, which aiohttp swallows.
        return web.Response(status=500)

    async def _inject_faults(
        self, endpoint: str, faults: Faults, request: web.Request
    ) -> web.StreamResponse | None:
        rng, stats = self._rng, self._stats
        if faults.latency and faults.latency_seconds and rng.random() < faults.latency:
            stats.faults_injected["latency"] += 1
            await asyncio.sleep(faults.latency_seconds)
        if faults.reset and rng.random() < faults.reset:
            return self._abort(endpoint, request, "reset")
        if faults.error_500 and rng.random() < faults.error_500:
            stats.faults_injected["error_500"] += 1
            return self._json(endpoint, 500, _INTERNAL)
        if faults.html_502 and rng.random() < faults.html_502:
            stats.faults_injected["html_502"] += 1
            stats.requests[(endpoint, 502)] += 1
            return web.Response(status=502, text=HTML_502, content_type="text/html")
        return None

    # -- API endpoints ---------------------------------------------------------------------

    async def _handle_query(self, request: web.Request) -> web.StreamResponse:
        now = _monotonic()
        task_id = request.query.get("task_id")
        self._stats.record_query(task_id, now)
        faults = self.query_faults
        if faults.active:
            faulted = await self._inject_faults("query", faults, request)
            if faulted is not None:
                return faulted
            now = _monotonic()
        bucket = self._query_bucket
        if bucket is not None and not bucket.try_acquire(now):
            return self._rate_limited("query")
        if not self._authorized(request):
            return self._json("query", 401, _UNAUTHORIZED_QUERY)
        if not task_id:
            return self._json("query", 400, _bad_request("task_id is required"))
        task = self._store.tasks.get(task_id)
        if task is None or now < task.visible_at:
            return self._json("query", 404, _NOT_FOUND)
        return self._json(
            "query", 200, {"code": 0, "message": "ok", "data": self._task_data(task, now)}
        )

    async def _handle_submit(self, request: web.Request) -> web.StreamResponse:
        faults = self.submit_faults
        if faults.active:
            faulted = await self._inject_faults("submit", faults, request)
            if faulted is not None:
                return faulted
        bucket = self._submit_bucket
        if bucket is not None and not bucket.try_acquire(_monotonic()):
            return self._rate_limited("submit")
        if not self._authorized(request):
            return self._json("submit", 401, _UNAUTHORIZED_SUBMIT)
        try:
            raw = await request.read()
        except ConnectionResetError:  # the client gave up before its body arrived: no task
            self._stats.requests[("submit", _CLIENT_GONE)] += 1
            return web.Response(status=_CLIENT_GONE)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._json("submit", 400, _bad_request("invalid JSON body"))
        error, images = self._validate_submit(body)
        if error is not None:
            return self._json("submit", 400, _bad_request(error))
        task = self._create(body["prompt"], body["model"], images, body.get("callback_url"))
        if faults.reset_after_accept and self._rng.random() < faults.reset_after_accept:
            return self._abort("submit", request, "reset_after_accept")
        data = {"task_id": task.task_id}
        return self._json("submit", 200, {"code": 0, "message": "ok", "data": data})

    def _validate_submit(self, body: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
        prompt, model = body.get("prompt"), body.get("model")
        if not isinstance(prompt, str) or not prompt.strip():
            return "prompt is required", ()
        if not isinstance(model, str) or not model:
            return "model is required", ()
        if model not in SUPPORTED_MODELS:
            return f"unsupported model: {model}", ()
        images = body.get("images")
        if images is None:
            images = []
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            return "images must be a list of strings", ()
        if len(images) > self._max_images:
            return f"images: at most {self._max_images} reference images", ()
        callback_url = body.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            return "callback_url must be a string", ()
        return None, tuple(images)

    async def _handle_stats(self, request: web.Request) -> web.StreamResponse:
        summary = self._stats.as_dict()
        summary["tasks"] = len(self._store.tasks)
        return web.json_response(summary, dumps=_dumps)

    async def _handle_tasks(self, request: web.Request) -> web.StreamResponse:
        # For benchmarks: when each task is (or will be) final, on this host's monotonic clock,
        # and its drawn render time in API seconds.
        now = _monotonic()
        tasks = {
            task_id: {
                "completed_at": task.completed_at,
                "render_seconds": task.render_seconds,
                "status": task.status(now),
            }
            for task_id, task in self._store.tasks.items()
        }
        return web.json_response({"now": now, "tasks": tasks}, dumps=_dumps)

    # -- CDN -------------------------------------------------------------------------------

    async def _handle_image(self, request: web.Request) -> web.StreamResponse:
        stats = self._stats
        stats.record_cdn_request(request.headers)
        if self._cdn_require_user_agent:
            agent = request.headers.get("User-Agent", "")
            if not agent or agent.startswith("Python/"):
                stats.requests[("cdn", 403)] += 1
                return web.Response(status=403, text=_HTML_403, content_type="text/html")
        task = self._image_task(request.match_info["name"])
        if task is None:
            stats.requests[("cdn", 404)] += 1
            raise web.HTTPNotFound()
        stats.requests[("cdn", 200)] += 1
        return web.Response(
            body=prompt_png(task.prompt),
            content_type="image/png",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    def _image_task(self, name: str) -> FakeTask | None:
        if not name.endswith(".png"):
            return None
        task_id, _, index = name[:-4].rpartition("-")
        if not index.isdigit() or int(index) >= self._images_per_task:
            return None
        task = self._store.tasks.get(task_id)
        if task is None or task.status(_monotonic()) != "success":
            return None
        return task
