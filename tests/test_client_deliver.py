"""``KetchupClient.deliver`` takes what a web handler has: a payload, the JSON body or its bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ketchup_async import KetchupClient, ValidationError
from ketchup_async.testing import FakeKetchupServer
from ketchup_async.webhooks import MAX_CALLBACK_BYTES

pytestmark = pytest.mark.anyio


def _body(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": "success",
        "consumed": "0.5",
        "result": [{"image": "https://cdn.test/x.png"}],
    }


async def test_deliver_takes_the_decoded_json_body(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """deliver(await request.json()) resolves the job at once, without a query."""
    job = await client.submit("pushed as a dict")
    assert client.deliver(_body(job.task_id)) is True
    assert (await job).images[0].url == "https://cdn.test/x.png"
    assert server.stats.polls[job.task_id] == 0


async def test_deliver_takes_the_raw_body_bytes(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """deliver(await request.body()) resolves the job at once, without a query."""
    job = await client.submit("pushed as bytes")
    assert client.deliver(json.dumps(_body(job.task_id)).encode()) is True
    assert (await job).images[0].url == "https://cdn.test/x.png"
    assert server.stats.polls[job.task_id] == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"status": "success"}, "task_id"),
        ({"task_id": "ta-1", "status": "weird"}, "status"),
        ({"task_id": "ta-1", "status": "success", "result": []}, "result"),
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        ({"task_id": "ta-1", "status": "failed", "x": "y" * MAX_CALLBACK_BYTES}, "body"),
        (b" " * (MAX_CALLBACK_BYTES + 1), "body"),
        (42, "payload"),
    ],
)
async def test_deliver_refuses_a_bad_callback_naming_the_field(
    client: KetchupClient, payload: object, field: str
) -> None:
    """A malformed dict or body is a ValidationError naming the field, as parse_callback's."""
    with pytest.raises(ValidationError) as info:
        client.deliver(payload)  # type: ignore[arg-type]
    assert info.value.field == field
