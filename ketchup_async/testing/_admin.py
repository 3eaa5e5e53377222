"""Read-only endpoints of the fake: counters, tasks, the money ledger, and the image CDN."""

from __future__ import annotations

import functools
import json
import time

from aiohttp import web

from ._ledger import FakeLedger
from ._png import prompt_png
from ._state import FakeTask, TaskStore
from ._stats import FakeStats

__all__ = ["AdminHandlers"]

_dumps = functools.partial(json.dumps, separators=(",", ":"))
_monotonic = time.monotonic
_HTML_403 = "<html><body><h1>403 Forbidden</h1><p>Request blocked.</p></body></html>"


class AdminHandlers:
    """``/_fake/...`` endpoints and the CDN; the server provides the state."""

    _store: TaskStore
    _stats: FakeStats
    _ledger: FakeLedger
    _cdn_require_user_agent: bool
    _images_per_task: int
    _consumed: str

    async def _handle_ledger(self, request: web.Request) -> web.StreamResponse:
        # Every task created, oldest first, with its current status and cost.
        now = _monotonic()
        tasks = self._store.tasks
        entries = []
        for entry in self._ledger:
            task = tasks[entry.task_id]
            status = task.status(now)
            consumed = self._consumed if status == "success" else "0.000000"
            entries.append(entry.as_dict(status=status, consumed=consumed))
        return web.json_response({"now": now, "entries": entries}, dumps=_dumps)

    async def _handle_stats(self, request: web.Request) -> web.StreamResponse:
        summary = self._stats.as_dict()
        summary["tasks"] = len(self._store.tasks)
        ledger = self._ledger
        summary["ledger"] = {
            "tasks": len(ledger),
            "hidden": len(ledger.hidden()),
            "answered_again": sum(len(e.answered_prompts) for e in ledger),
        }
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
