"""Tests of ``FakeKetchupServer`` over real sockets: API shapes, errors, faults, limits, stats."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import pytest
from _raw_api import AUTH, MODEL, query, slow_server, submit

from ketchup_async.testing import FakeKetchupServer, FakeTask, Faults
from ketchup_async.testing._state import FAILURE_REASONS

TASK_ID_RE = re.compile(r"^ta[0-9a-f]{6}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def age(task: FakeTask, seconds: float) -> None:
    """Move a task ``seconds`` into the past (deterministic 'time passing')."""
    task.created_at -= seconds
    task.completed_at -= seconds
    task.visible_at -= seconds


@pytest.mark.anyio
async def test_submit_returns_task_id(http: aiohttp.ClientSession) -> None:
    """Submit answers 200 with a ta-prefixed uuid task id and an X-Request-Id header."""
    async with FakeKetchupServer() as server:
        r = await submit(http, server)
        body = await r.json()
    assert r.status == 200
    assert (body["code"], body["message"]) == (0, "ok")
    assert TASK_ID_RE.match(body["data"]["task_id"])
    assert re.match(r"^req_[0-9a-f]{16}$", r.headers["X-Request-Id"])


@pytest.mark.anyio
async def test_status_phases_follow_the_clock(http: aiohttp.ClientSession) -> None:
    """A task reports pending, submitted, in_progress, then success as its time passes."""
    async with FakeKetchupServer(render_time=100.0, render_sigma=0.0) as server:
        task_id = (await (await submit(http, server)).json())["data"]["task_id"]
        task = server.tasks[task_id]
        seen = []
        for step in (0.0, 10.0, 40.0, 60.0):
            age(task, step)
            seen.append((await (await query(http, server, task_id)).json())["data"]["status"])
    assert seen == ["pending", "submitted", "in_progress", "success"]


@pytest.mark.anyio
async def test_status_progresses_in_real_time(http: aiohttp.ClientSession) -> None:
    """With a tiny time scale a task really progresses to success and records completed_at."""
    async with FakeKetchupServer(render_time=1.0, render_sigma=0.0, time_scale=0.05) as server:
        task_id = (await (await submit(http, server)).json())["data"]["task_id"]
        seen: list[str] = []
        while not seen or seen[-1] != "success":
            seen.append((await (await query(http, server, task_id)).json())["data"]["status"])
            await asyncio.sleep(0.002)
        done = time.monotonic()
    order = ["pending", "submitted", "in_progress", "success"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    assert "in_progress" in seen
    task = server.tasks[task_id]
    assert task.completed_at == pytest.approx(task.created_at + 0.05)
    assert task.completed_at <= done


@pytest.mark.anyio
async def test_success_body_shape(http: aiohttp.ClientSession) -> None:
    """A successful task has a result list of CDN image URLs and a consumed amount."""
    async with slow_server() as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        data = (await (await query(http, server, task_id)).json())["data"]
    assert data == {
        "task_id": task_id,
        "status": "success",
        "result": [{"image": f"{server.cdn_url}/images/{task_id}-0.png"}],
        "consumed": "0.500000",
        "status_reason": {"message": None},
    }


@pytest.mark.anyio
async def test_pending_body_shape(http: aiohttp.ClientSession) -> None:
    """A pending task has a null result, zero consumption and a null reason."""
    async with slow_server() as server:
        task_id = server.create_task("a cat")
        data = (await (await query(http, server, task_id)).json())["data"]
    assert data == {
        "task_id": task_id,
        "status": "pending",
        "result": None,
        "consumed": "0.000000",
        "status_reason": {"message": None},
    }


@pytest.mark.anyio
async def test_failure_rate_produces_failed_tasks(http: aiohttp.ClientSession) -> None:
    """failure_rate=1 ends tasks failed with a reason, null result and zero consumption."""
    async with FakeKetchupServer(failure_rate=1.0, time_scale=0.0) as server:
        task_id = server.create_task("a cat")
        data = (await (await query(http, server, task_id)).json())["data"]
    assert (data["status"], data["result"], data["consumed"]) == ("failed", None, "0.000000")
    assert data["status_reason"]["message"] in FAILURE_REASONS


@pytest.mark.anyio
async def test_complete_now_failed_with_reason(http: aiohttp.ClientSession) -> None:
    """complete_now(status='failed', reason=...) is reported by the next query."""
    async with slow_server() as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id, status="failed", reason="nsfw")
        data = (await (await query(http, server, task_id)).json())["data"]
    assert (data["status"], data["status_reason"]) == ("failed", {"message": "nsfw"})


@pytest.mark.anyio
async def test_submit_with_bad_key_is_401_code_1(http: aiohttp.ClientSession) -> None:
    """A submit with an unknown key gets 401 {"code":1,"message":"Invalid API key"}."""
    async with FakeKetchupServer() as server:
        r = await submit(http, server, headers={"Authorization": "Bearer dk-wrong"})
        assert (r.status, await r.json()) == (401, {"code": 1, "message": "Invalid API key"})


@pytest.mark.anyio
async def test_query_without_key_is_401_code_401(http: aiohttp.ClientSession) -> None:
    """A query without a key gets 401 {"code":401,"message":"Invalid API key"}."""
    async with FakeKetchupServer() as server:
        r = await query(http, server, "ta000000", headers={})
        assert (r.status, await r.json()) == (401, {"code": 401, "message": "Invalid API key"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"model": MODEL}, "prompt is required"),
        ({"prompt": "x"}, "model is required"),
        ({"model": "acme/v1", "prompt": "x"}, "unsupported model: acme/v1"),
        (
            {"model": MODEL, "prompt": "x", "images": ["http://i/1"] * 5},
            "images: at most 4 reference images",
        ),
        ([1, 2], "invalid JSON body"),
    ],
)
async def test_submit_validation_400(http: aiohttp.ClientSession, body: Any, detail: str) -> None:
    """Invalid submits get 400 {"code":1,"message":"failed","detail":...}."""
    async with FakeKetchupServer() as server:
        r = await submit(http, server, body=body)
        assert r.status == 400
        assert await r.json() == {"code": 1, "message": "failed", "detail": detail}
        assert server.tasks == {}


@pytest.mark.anyio
async def test_submit_malformed_json_400(http: aiohttp.ClientSession) -> None:
    """A body that is not JSON at all gets 400 'invalid JSON body'."""
    async with FakeKetchupServer() as server:
        url = f"{server.base_url}/api/image/gen"
        async with http.post(url, data=b"{nope", headers=AUTH) as r:
            assert (r.status, (await r.json())["detail"]) == (400, "invalid JSON body")


@pytest.mark.anyio
async def test_query_without_task_id_400(http: aiohttp.ClientSession) -> None:
    """A query without task_id gets 400 'task_id is required'."""
    async with FakeKetchupServer() as server:
        r = await query(http, server, None)
        body = await r.json()
    assert (r.status, body) == (
        400,
        {"code": 1, "message": "failed", "detail": "task_id is required"},
    )


@pytest.mark.anyio
async def test_unknown_task_404(http: aiohttp.ClientSession) -> None:
    """Querying an unknown task gets 404 {"code":1,"message":"task not found"}."""
    async with FakeKetchupServer() as server:
        r = await query(http, server, "ta823dfb-eaac-44fd-aec2-3e2c7ba8e071")
        assert (r.status, await r.json()) == (404, {"code": 1, "message": "task not found"})


@pytest.mark.anyio
async def test_error_500_fault(http: aiohttp.ClientSession) -> None:
    """An error_500 fault answers 500 {"code":1,"message":"internal server error"}."""
    async with FakeKetchupServer(query_faults=Faults(error_500=1.0)) as server:
        r = await query(http, server, "x")
        body = await r.json()
        assert server.stats.faults_injected["error_500"] == 1
    assert (r.status, body) == (500, {"code": 1, "message": "internal server error"})


@pytest.mark.anyio
async def test_html_502_fault(http: aiohttp.ClientSession) -> None:
    """An html_502 fault answers 502 with an HTML page like a proxy would."""
    async with FakeKetchupServer(submit_faults=Faults(html_502=1.0)) as server:
        url = f"{server.base_url}/api/image/gen"
        async with http.post(url, json={}, headers=AUTH) as r:
            text = await r.text()
        assert server.tasks == {}
    assert (r.status, r.content_type) == (502, "text/html")
    assert text.startswith("<html><body><h1>502 Bad Gateway</h1>")


@pytest.mark.anyio
async def test_reset_fault_aborts_connection(http: aiohttp.ClientSession) -> None:
    """A reset fault drops the connection without an answer."""
    async with FakeKetchupServer(query_faults=Faults(reset=1.0)) as server:
        with pytest.raises(aiohttp.ClientError):
            await query(http, server, "x")
        assert server.stats.resets >= 1
        assert server.stats.requests[("query", 0)] == server.stats.resets


@pytest.mark.anyio
async def test_reset_after_accept_creates_the_task(http: aiohttp.ClientSession) -> None:
    """reset_after_accept creates the task but the client never sees its id."""
    async with FakeKetchupServer(submit_faults=Faults(reset_after_accept=1.0)) as server:
        with pytest.raises(aiohttp.ClientError):
            await submit(http, server, {"model": MODEL, "prompt": "lost"})
        assert len(server.tasks) == 1
        assert server.stats.created_per_prompt["lost"] == 1
        assert server.stats.faults_injected["reset_after_accept"] == 1


@pytest.mark.anyio
async def test_latency_fault_exceeds_client_timeout(http: aiohttp.ClientSession) -> None:
    """Latency is real seconds (not scaled), so it can trip a client's timeout."""
    faults = Faults(latency=1.0, latency_seconds=0.5)
    async with FakeKetchupServer(time_scale=0.001, query_faults=faults) as server:
        url = f"{server.base_url}/api/task/query"
        timeout = aiohttp.ClientTimeout(total=0.1)
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(url, params={"task_id": "x"}, headers=AUTH, timeout=timeout):
                pass
        assert server.stats.faults_injected["latency"] == 1


@pytest.mark.anyio
async def test_submit_abandoned_during_latency_creates_nothing(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that gives up before the fake reads its body: no task, a 499, no traceback."""
    faults = Faults(latency=1.0, latency_seconds=0.3)
    async with FakeKetchupServer(time_scale=0.001, submit_faults=faults) as server:
        url = f"{server.base_url}/api/image/gen"
        body = {"model": MODEL, "prompt": "abandoned"}
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(
                url, json=body, headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.05)
            ):
                pass
        for _ in range(1000):  # the handler wakes from its latency 0.3 s later (10 s bound)
            if server.stats.requests[("submit", 499)]:
                break
            await asyncio.sleep(0.01)
        assert server.stats.requests[("submit", 499)] == 1
        assert server.tasks == {}
    assert not [r for r in caplog.records if r.name == "aiohttp.server"]


@pytest.mark.anyio
async def test_faults_can_be_changed_at_runtime(http: aiohttp.ClientSession) -> None:
    """Assigning server.query_faults takes effect on the next request."""
    async with FakeKetchupServer() as server:
        first = (await query(http, server, "x")).status
        server.query_faults = Faults(error_500=1.0)
        second = (await query(http, server, "x")).status
    assert (first, second) == (404, 500)


@pytest.mark.anyio
async def test_query_rate_limit_429_with_retry_after(http: aiohttp.ClientSession) -> None:
    """Over the query rate the server answers 429 with an integral Retry-After."""
    async with FakeKetchupServer(query_rate_limit=1.0, retry_after=2.0) as server:
        first = await query(http, server, "x")
        second = await query(http, server, "x")
        assert (first.status, second.status) == (404, 429)
        assert await second.json() == {"code": 1, "message": "rate limit exceeded"}
        assert second.headers["Retry-After"] == "2"
        assert server.stats.rate_limited == 1


@pytest.mark.anyio
async def test_submit_rate_limit_scaled_retry_after(http: aiohttp.ClientSession) -> None:
    """Retry-After is scaled to real seconds as a decimal string when not integral."""
    async with FakeKetchupServer(submit_rate_limit=0.001, time_scale=0.05) as server:
        assert (await submit(http, server)).status == 200
        limited = await submit(http, server)
        assert (limited.status, limited.headers["Retry-After"]) == (429, "0.05")
        assert len(server.tasks) == 1


@pytest.mark.anyio
async def test_visibility_delay_answers_404_first(http: aiohttp.ClientSession) -> None:
    """During visibility_delay a fresh task is 404, afterwards it is found."""
    async with slow_server(visibility_delay=0.2, time_scale=1.0) as server:
        task_id = (await (await submit(http, server)).json())["data"]["task_id"]
        early = (await query(http, server, task_id)).status
        age(server.tasks[task_id], 0.2)
        late = (await query(http, server, task_id)).status
    assert (early, late) == (404, 200)


@pytest.mark.anyio
async def test_extra_fields_add_unknown_keys(http: aiohttp.ClientSession) -> None:
    """extra_fields adds unknown keys at the top level, in data and in result items."""
    async with slow_server(extra_fields=True) as server:
        task_id = server.create_task("a cat")
        server.complete_now(task_id)
        body = await (await query(http, server, task_id)).json()
    assert set(body) > {"code", "message", "data"}
    assert set(body["data"]) > {"task_id", "status", "result", "consumed", "status_reason"}
    assert set(body["data"]["result"][0]) > {"image"}


@pytest.mark.anyio
async def test_omit_consumed(http: aiohttp.ClientSession) -> None:
    """omit_consumed leaves consumed out of query responses."""
    async with FakeKetchupServer(omit_consumed=True) as server:
        task_id = server.create_task("a cat")
        data = (await (await query(http, server, task_id)).json())["data"]
    assert "consumed" not in data
