"""The fake's adversarial faults and its money ledger, over raw HTTP (no SDK involved)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from _raw_api import AUTH, MODEL, query, slow_server, submit

from ketchup_async.testing import FakeKetchupServer, Faults, Report

pytestmark = pytest.mark.anyio

ALWAYS = 1.0


async def _task_id(http: aiohttp.ClientSession, server: FakeKetchupServer, prompt: str) -> str:
    r = await submit(http, server, {"model": MODEL, "prompt": prompt})
    task_id: str = (await r.json())["data"]["task_id"]
    return task_id


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json()


async def _raw_query(
    http: aiohttp.ClientSession, server: FakeKetchupServer, task_id: str
) -> tuple[int, str, bytes]:
    url = f"{server.base_url}/api/task/query"
    async with http.get(url, params={"task_id": task_id}, headers=AUTH) as r:
        return r.status, r.content_type, await r.read()


async def test_every_created_task_is_in_the_ledger(http: aiohttp.ClientSession) -> None:
    """Each submit that creates a task adds one ledger entry with its prompt and request id."""
    async with FakeKetchupServer() as server:
        r = await submit(http, server, {"model": MODEL, "prompt": "a fox"})
        task_id = (await r.json())["data"]["task_id"]
    (entry,) = list(server.ledger)
    assert (entry.task_id, entry.prompt, entry.answer, entry.origin) == (
        task_id,
        "a fox",
        "ok",
        "submit",
    )
    assert entry.request_id == r.headers["X-Request-Id"]


async def test_refused_submits_create_no_ledger_entry(http: aiohttp.ClientSession) -> None:
    """A 400 or an injected pre-create 500 costs nothing: the ledger stays empty."""
    async with FakeKetchupServer(submit_faults=Faults(error_500=ALWAYS)) as server:
        assert (await submit(http, server)).status == 500
        server.submit_faults = Faults()
        assert (await submit(http, server, {"model": MODEL, "prompt": ""})).status == 400
    assert len(server.ledger) == 0


@pytest.mark.parametrize(
    ("faults", "status", "answer"),
    [
        (Faults(error_500_after_accept=ALWAYS), 500, "error_500_after_accept"),
        (Faults(missing_task_id=ALWAYS), 200, "missing_task_id"),
    ],
    ids=["charged-then-500", "2xx-without-task-id"],
)
async def test_after_accept_faults_create_the_task_and_hide_its_id(
    http: aiohttp.ClientSession, faults: Faults, status: int, answer: str
) -> None:
    """A JSON 500 or a 200 without task id after the task was created: charged, id hidden."""
    async with FakeKetchupServer(submit_faults=faults) as server:
        r = await submit(http, server, {"model": MODEL, "prompt": "hidden"})
        body = await r.json()
    assert r.status == status
    assert "task_id" not in json.dumps(body)
    (entry,) = server.ledger.hidden()
    assert entry.answer == answer
    assert server.stats.faults_injected[answer] == 1
    assert server.stats.created_per_prompt["hidden"] == 1


async def test_gateway_after_accept_is_an_html_502_or_504(http: aiohttp.ClientSession) -> None:
    """A proxy page (502 or 504, text/html) answers submits whose task was created."""
    async with FakeKetchupServer(submit_faults=Faults(gateway_after_accept=ALWAYS)) as server:
        statuses = set()
        for i in range(12):
            r = await submit(http, server, {"model": MODEL, "prompt": f"gw {i}"})
            assert r.content_type == "text/html"
            statuses.add(r.status)
    assert statuses == {502, 504}
    assert len(server.ledger.hidden()) == len(server.ledger) == 12
    assert {e.answer for e in server.ledger} == {
        "gateway_after_accept:502",
        "gateway_after_accept:504",
    }


async def test_duplicate_task_id_answers_two_submits_with_one_task(
    http: aiohttp.ClientSession,
) -> None:
    """The second submit gets the first one's task id and creates nothing."""
    async with FakeKetchupServer() as server:
        first = await _task_id(http, server, "one")
        server.submit_faults = Faults(duplicate_task_id=ALWAYS)
        second = await _task_id(http, server, "two")
    assert first == second
    (entry,) = list(server.ledger)
    assert entry.answered_prompts == ["two"]
    assert server.ledger.audit([Report(prompt="one", task_id=first)]) == []
    assert (
        server.ledger.audit(
            [Report(prompt="one", task_id=first), Report(prompt="two", task_id=first)]
        )
        == []
    )


async def test_stuck_status_reports_an_undocumented_status_forever(
    http: aiohttp.ClientSession,
) -> None:
    """A stuck task answers 'cancelled' (or the configured status) long after it would end."""
    faults = Faults(stuck_status=ALWAYS, undocumented_statuses=("cancelled",))
    async with FakeKetchupServer(submit_faults=faults, render_time=0.0) as server:
        task_id = await _task_id(http, server, "stuck")
        data = (await _json(await query(http, server, task_id)))["data"]
        assert data["status"] == "cancelled"
        server.complete_now(task_id)
        data = (await _json(await query(http, server, task_id)))["data"]
    assert data["status"] == "success"


async def test_empty_success_has_an_empty_result(http: aiohttp.ClientSession) -> None:
    """An empty-success task ends 'success' with ``result: []``."""
    async with FakeKetchupServer(submit_faults=Faults(empty_success=ALWAYS)) as server:
        task_id = await _task_id(http, server, "empty")
        server.complete_now(task_id)
        data = (await _json(await query(http, server, task_id)))["data"]
    assert (data["status"], data["result"]) == ("success", [])


async def test_html_404_blips_on_an_existing_task(http: aiohttp.ClientSession) -> None:
    """A query of a task that exists gets an nginx HTML 404 page when the fault fires."""
    async with slow_server() as server:
        task_id = await _task_id(http, server, "seen")
        assert (await query(http, server, task_id)).status == 200
        server.query_faults = Faults(html_404=ALWAYS)
        r = await query(http, server, task_id)
    assert (r.status, r.content_type) == (404, "text/html")
    assert server.stats.faults_injected["html_404"] == 1


async def test_undocumented_status_blips_while_not_final(http: aiohttp.ClientSession) -> None:
    """A pending task's query answers an undocumented status, a final one never does."""
    faults = Faults(undocumented_status=ALWAYS, undocumented_statuses=("queued_for_gpu",))
    async with slow_server(query_faults=faults) as server:
        task_id = await _task_id(http, server, "odd")
        pending = (await _json(await query(http, server, task_id)))["data"]["status"]
        server.complete_now(task_id)
        final = (await _json(await query(http, server, task_id)))["data"]["status"]
    assert (pending, final) == ("queued_for_gpu", "success")


async def test_nested_body_is_json_nested_beyond_the_recursion_limit(
    http: aiohttp.ClientSession,
) -> None:
    """A nested-body answer is 200 JSON that the stdlib parser refuses with RecursionError."""
    async with slow_server(query_faults=Faults(nested_body=ALWAYS, nested_depth=50_000)) as server:
        task_id = await _task_id(http, server, "deep")
        status, content_type, raw = await _raw_query(http, server, task_id)
    assert (status, content_type) == (200, "application/json")
    with pytest.raises(RecursionError):
        json.loads(raw)


async def test_huge_body_pads_a_valid_answer(http: aiohttp.ClientSession) -> None:
    """A huge-body answer is a valid task answer with megabytes of an unknown field."""
    faults = Faults(huge_body=ALWAYS, huge_body_bytes=2_000_000)
    async with slow_server(query_faults=faults) as server:
        task_id = await _task_id(http, server, "big")
        _, _, raw = await _raw_query(http, server, task_id)
    assert len(raw) > 2_000_000
    assert json.loads(raw)["data"]["task_id"] == task_id


@pytest.mark.parametrize(
    "body",
    [
        {"images": ["not a url"]},
        {"images": ["ftp://x.test/a.png"]},
        {"callback_url": "x"},
        {"callback_url": "javascript:alert(1)"},
    ],
    ids=["image-not-a-url", "image-ftp", "callback-x", "callback-js"],
)
async def test_bad_image_or_callback_url_is_a_400(
    http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    """What the guide asks clients to validate, the API refuses with 400 (no task created)."""
    async with FakeKetchupServer() as server:
        r = await submit(http, server, {"model": MODEL, "prompt": "p", **body})
        answer = await r.json()
    assert r.status == 400
    assert answer["code"] == 1
    assert answer["detail"]
    assert len(server.ledger) == 0


async def test_good_image_refs_and_callback_are_accepted(http: aiohttp.ClientSession) -> None:
    """An https image, a data:image URI and an http callback URL are accepted."""
    body = {
        "model": MODEL,
        "prompt": "p",
        "images": ["https://img.test/a.png", "data:image/png;base64,AAAA"],
        "callback_url": "http://127.0.0.1:1/cb",
    }
    async with FakeKetchupServer() as server:
        assert (await submit(http, server, body)).status == 200


@pytest.mark.parametrize("header", ["Request-Id", "X-Trace-Id", "CF-Ray"])
async def test_request_id_header_is_configurable(http: aiohttp.ClientSession, header: str) -> None:
    """The request id goes out under the configured header, and not under X-Request-Id."""
    async with FakeKetchupServer(request_id_header=header) as server:
        r = await submit(http, server)
    assert r.headers[header].startswith("req_")
    assert "X-Request-Id" not in r.headers


async def test_audit_flags_unreported_and_doubled_tasks(http: aiohttp.ClientSession) -> None:
    """audit: an unreported task or a prompt paid twice is a violation; uncertain covers one."""
    async with FakeKetchupServer() as server:
        a1 = await _task_id(http, server, "a")
        await _task_id(http, server, "a")
        b = await _task_id(http, server, "b")
        server.create_task("another client's")  # not audited
    ledger = server.ledger
    ok_b = Report(prompt="b", task_id=b)
    two_inputs = [ok_b, Report(prompt="a", uncertain=True), Report(prompt="a", task_id=a1)]
    assert ledger.audit(two_inputs) == []  # two inputs of prompt "a": one maybe paid, one known
    problems = ledger.audit([ok_b, Report(prompt="a", task_id=a1)])
    assert any("never reported" in p for p in problems)
    assert any("2 tasks created for 1" in p for p in problems)
    assert ledger.audit([ok_b, Report(prompt="a", task_id=a1, resubmit=True)]) == []
    assert ledger.audit([Report(prompt="b", task_id=a1), ok_b, Report(prompt="a", task_id=a1)])


async def test_ledger_endpoint_and_stats_show_every_task(http: aiohttp.ClientSession) -> None:
    """``/_fake/ledger`` lists each task with its answer, status and cost; stats count them."""
    async with FakeKetchupServer(submit_faults=Faults(error_500_after_accept=ALWAYS)) as server:
        await submit(http, server, {"model": MODEL, "prompt": "x"})
        async with http.get(f"{server.base_url}/_fake/ledger") as r:
            ledger = await r.json()
        async with http.get(f"{server.base_url}/_fake/stats") as r:
            stats = await r.json()
    (entry,) = ledger["entries"]
    assert (entry["prompt"], entry["answer"]) == ("x", "error_500_after_accept")
    assert entry["status"] in ("pending", "submitted", "in_progress")
    assert entry["consumed"] == "0.000000"
    assert stats["ledger"] == {"tasks": 1, "hidden": 1, "answered_again": 0}


def test_fault_options_are_off_by_default_and_validated() -> None:
    """Every new fault defaults to 0; bad values are refused at construction."""
    assert not Faults().active
    assert Faults(html_404=0.5).active
    with pytest.raises(ValueError, match="gateway_after_accept"):
        Faults(gateway_after_accept=2.0)
    with pytest.raises(ValueError, match="undocumented_statuses"):
        Faults(undocumented_statuses=("success",))
    with pytest.raises(ValueError, match="nested_depth"):
        Faults(nested_depth=0)
    with pytest.raises(ValueError, match="request_id_header"):
        FakeKetchupServer(request_id_header="")
