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
from ._ledger import FakeLedger, LedgerEntry
from ._pages import (
    HTML_404,
    HTML_502,
    HTML_504,
    check_callback_url,
    check_image,
    nested_json,
    padding,
)
from ._png import png_data_uri
from ._state import SUPPORTED_MODELS, FakeTask, Faults, TaskStore, TokenBucket
from ._stats import FakeStats

__all__ = ["ServerHandlers"]

_dumps = functools.partial(json.dumps, separators=(",", ":"))
_monotonic = time.monotonic

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
    _ledger: FakeLedger
    _request_id_header: str | None

    def _next_request_id(self) -> str:  # provided by the server
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------

    def _create(
        self,
        prompt: str,
        model: str,
        images: tuple[str, ...],
        callback_url: str | None,
        *,
        request_id: str | None = None,
        faults: Faults | None = None,
    ) -> FakeTask:
        stuck: str | None = None
        empty = False
        rng = self._rng
        if faults is not None:
            if faults.stuck_status and rng.random() < faults.stuck_status:
                stuck = rng.choice(faults.undocumented_statuses)
                self._stats.faults_injected["stuck_status"] += 1
            if faults.empty_success and rng.random() < faults.empty_success:
                empty = True
                self._stats.faults_injected["empty_success"] += 1
        now = _monotonic()
        task = self._store.create(
            prompt,
            model,
            now=now,
            images=images,
            callback_url=callback_url,
            stuck_status=stuck,
            empty_result=empty,
        )
        self._stats.created_per_prompt[prompt] += 1
        self._ledger.record(
            LedgerEntry(
                task_id=task.task_id,
                prompt=prompt,
                model=model,
                images=images,
                callback_url=callback_url,
                created_at=now,
                request_id=request_id,
                answer="ok",
                origin="create_task" if request_id is None else "submit",
            )
        )
        if callback_url is not None and stuck is None:
            self._callbacks.schedule(task)
        return task

    def _result(self, task: FakeTask) -> list[dict[str, Any]]:
        if task.empty_result:
            return []
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

    def _html(self, endpoint: str, status: int, page: str, kind: str) -> web.Response:
        self._stats.faults_injected[kind] += 1
        self._stats.requests[(endpoint, status)] += 1
        return web.Response(status=status, text=page, content_type="text/html")

    def _query_fault(
        self, faults: Faults, task: FakeTask | None, now: float
    ) -> web.Response | dict[str, Any] | None:
        """A faulty answer for an authorized query of an existing task, if a fault fires."""
        if task is None or now < task.visible_at:
            return None
        rng, stats = self._rng, self._stats
        if faults.html_404 and rng.random() < faults.html_404:
            return self._html("query", 404, HTML_404, "html_404")
        if faults.nested_body and rng.random() < faults.nested_body:
            stats.faults_injected["nested_body"] += 1
            stats.requests[("query", 200)] += 1
            body = nested_json(faults.nested_depth)
            return web.Response(status=200, body=body, content_type="application/json")
        data = self._task_data(task, now)
        faulted = False
        if (
            faults.undocumented_status
            and not task.is_final(now)
            and rng.random() < faults.undocumented_status
        ):
            data["status"] = rng.choice(faults.undocumented_statuses)
            stats.faults_injected["undocumented_status"] += 1
            faulted = True
        if faults.huge_body and rng.random() < faults.huge_body:
            data["x_fake_padding"] = padding(faults.huge_body_bytes)
            stats.faults_injected["huge_body"] += 1
            faulted = True
        return data if faulted else None

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
        if faults.active:
            answer = self._query_fault(faults, task, now)
            if isinstance(answer, web.Response):
                return answer
            if answer is not None:
                return self._json("query", 200, {"code": 0, "message": "ok", "data": answer})
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
        rng, ledger = self._rng, self._ledger
        last = self._store.last
        duplicate = faults.duplicate_task_id
        if last is not None and duplicate and rng.random() < duplicate:
            self._stats.faults_injected["duplicate_task_id"] += 1
            ledger.answered_again(last.task_id, body["prompt"])
            data = {"task_id": last.task_id}
            return self._json("submit", 200, {"code": 0, "message": "ok", "data": data})
        request_id = self._next_request_id()
        task = self._create(
            body["prompt"],
            body["model"],
            images,
            body.get("callback_url"),
            request_id=request_id,
            faults=faults,
        )
        entry = ledger.get(task.task_id)
        assert entry is not None
        data = {"task_id": task.task_id}
        response = None
        if faults.active:
            hidden = self._after_accept(faults, request)
            if hidden is not None:
                entry.answer, response = hidden
        if response is None:
            response = self._json("submit", 200, {"code": 0, "message": "ok", "data": data})
        if self._request_id_header is not None:  # the id the ledger holds for this task
            response.headers[self._request_id_header] = request_id
        return response

    def _after_accept(
        self, faults: Faults, request: web.Request
    ) -> tuple[str, web.Response] | None:
        """A fault that hides a just-created task from its submitter: (ledger answer, reply)."""
        rng = self._rng
        if faults.reset_after_accept and rng.random() < faults.reset_after_accept:
            return "reset_after_accept", self._abort("submit", request, "reset_after_accept")
        if faults.error_500_after_accept and rng.random() < faults.error_500_after_accept:
            self._stats.faults_injected["error_500_after_accept"] += 1
            return "error_500_after_accept", self._json("submit", 500, _INTERNAL)
        if faults.gateway_after_accept and rng.random() < faults.gateway_after_accept:
            status, page = (502, HTML_502) if rng.random() < 0.5 else (504, HTML_504)
            response = self._html("submit", status, page, "gateway_after_accept")
            return f"gateway_after_accept:{status}", response
        if faults.missing_task_id and rng.random() < faults.missing_task_id:
            self._stats.faults_injected["missing_task_id"] += 1
            body: dict[str, Any] = {"code": 0, "message": "ok", "data": {}}
            return "missing_task_id", self._json("submit", 200, body)
        return None

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
        for image in images:
            if not check_image(image):
                return "images: each must be an http(s) URL or a data:image URI", ()
        callback_url = body.get("callback_url")
        if callback_url is not None and (
            not isinstance(callback_url, str) or not check_callback_url(callback_url)
        ):
            return "callback_url must be an http(s) URL", ()
        return None, tuple(images)
