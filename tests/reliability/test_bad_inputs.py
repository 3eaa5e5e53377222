"""Hostile and malformed input at every public entry point: a specific error, nothing sent.

Each row names the entry point, the input and the ``ValidationError.field`` it must get; the
fake server behind the client must have seen no request at all afterwards.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ketchup_async import GenerateRequest, ImageResult, KetchupClient, ValidationError
from ketchup_async._converter import request_from_dict
from ketchup_async.testing import FakeKetchupServer
from ketchup_async.webhooks import WebhookReceiver, parse_callback

from ._accounting import API_KEY, client_for, fake_server

pytestmark = pytest.mark.anyio

URL = "https://images.example.com/ref.png"
PNG_URI = "data:image/png;base64,iVBORw0KGgo="
HUGE_URI = "data:image/png;base64," + "A" * (16 * 1024 * 1024)
# Any printable id the API could issue is accepted (and URL-encoded); these never are.
BAD_IDS = ["", "   ", "a" * 257, "ta\n1", "ta\x001", "\t", "ta\x7f"]
NOT_STRINGS: list[object] = [None, 5, b"bytes", ["a list"], 1.5]

Call = Callable[[KetchupClient], Any]

CASES: list[Any] = [
    # prompts
    *(
        pytest.param(lambda c, p=p: c.submit(p), "prompt", id=f"submit-prompt-{i}")
        for i, p in enumerate(["", "   \n\t ", "x" * 100_001, "nul\x00byte", *NOT_STRINGS])
    ),
    pytest.param(lambda c: c.generate(""), "prompt", id="generate-empty"),
    pytest.param(lambda c: c.generate(None), "prompt", id="generate-none"),
    # reference images
    pytest.param(lambda c: c.submit("p", images=[URL] * 5), "images", id="five-images"),
    pytest.param(lambda c: c.submit("p", images=URL), "images", id="images-a-string"),
    pytest.param(lambda c: c.submit("p", images=None), "images", id="images-none"),
    pytest.param(lambda c: c.submit("p", images=5), "images", id="images-int"),
    pytest.param(lambda c: c.submit("p", images=b"x"), "images", id="images-bytes"),
    *(
        pytest.param(lambda c, u=u: c.submit("p", images=[URL, u]), "images[1]", id=f"image-{i}")
        for i, u in enumerate(
            [
                "file:///etc/passwd",
                "javascript:alert(1)",
                "ftp://example.com/x.png",
                "http://",
                "//example.com/x.png",
                "https://exa mple.com/x.png",
                "https://example.com:99999/x.png",
                "data:image/png;base64,!!!not base64!!!",
                "data:image/png;base64,",
                "data:text/html;base64,PGgxPmhpPC9oMT4=",
                HUGE_URI,
                None,
                5,
                b"https://example.com/x.png",
            ]
        )
    ),
    # callback URL and model
    *(
        pytest.param(lambda c, u=u: c.submit("p", callback_url=u), "callback_url", id=f"cb-{i}")
        for i, u in enumerate(["file:///tmp/x", "javascript:alert(1)", "not a url", 5, b"x"])
    ),
    *(
        pytest.param(lambda c, m=m: c.submit("p", model=m), "model", id=f"model-{i}")
        for i, m in enumerate(["", " google/gempix2", "google gempix2", 5, b"m"])
    ),
    pytest.param(lambda c: c.submit_request("a prompt"), "request", id="submit-request-str"),
    pytest.param(lambda c: c.submit_request(None), "request", id="submit-request-none"),
    pytest.param(
        lambda c: c.submit_request(GenerateRequest("p", images=[URL] * 5, max_images=5)),
        "images",
        id="submit-request-over-client-limit",
    ),
    # task ids that are empty, blank, too long or carry control characters
    *(
        pytest.param(lambda c, t=t: c.query(t), "task_id", id=f"query-{i}")
        for i, t in enumerate([*BAD_IDS, *NOT_STRINGS])
    ),
    *(
        pytest.param(lambda c, t=t: c.track(t), "task_id", id=f"track-{i}")
        for i, t in enumerate([*BAD_IDS, *NOT_STRINGS])
    ),
    # webhook payloads handed to deliver()
    *(
        pytest.param(lambda c, p=p: c.deliver(p), field, id=f"deliver-{i}")
        for i, (p, field) in enumerate(
            [
                (None, "payload"),
                ("ta123", "payload"),
                ({"task_id": "ta123", "status": "success"}, "result"),  # a dict body: parsed
                (b"{}", "task_id"),  # the raw body: parsed
            ]
        )
    ),
    # downloads: http(s) and data: only
    *(
        pytest.param(lambda c, u=u: c.download(u, "out/x.png"), "image", id=f"download-{i}")
        for i, u in enumerate(
            [
                "file:///etc/passwd",
                "javascript:alert(1)",
                "ftp://example.com/x.png",
                "/etc/passwd",
                ImageResult("file:///etc/passwd"),
                None,
                5,
                b"https://example.com/x.png",
            ]
        )
    ),
    pytest.param(lambda c: c.download(URL, None), "dest", id="download-dest-none"),
    # generate_many: the inputs object itself
    *(
        pytest.param(lambda c, x=x: c.generate_many(x), "inputs", id=f"many-{i}")
        for i, x in enumerate(["a red bicycle", b"prompts", None, 5])
    ),
    pytest.param(lambda c: c.generate_many(["p"], concurrency=0), "concurrency", id="many-conc"),
]


async def _drain(result: Any) -> None:
    if inspect.isawaitable(result):
        await result
    elif isinstance(result, AsyncIterator):
        async for _ in result:
            pass


@pytest.fixture
async def server() -> AsyncIterator[FakeKetchupServer]:
    """A fake API that counts every request it sees."""
    async with fake_server(0.01) as fake:
        yield fake


@pytest.mark.parametrize(("call", "field"), CASES)
async def test_bad_input_is_refused_before_any_request(
    server: FakeKetchupServer, call: Call, field: str
) -> None:
    """Each hostile input gets a ValidationError naming its field; nothing reaches the API."""
    async with client_for(server, 0.01) as client:
        with pytest.raises(ValidationError) as caught:
            await _drain(call(client))
    assert caught.value.field == field, str(caught.value)
    assert caught.value.problem
    assert sum(server.stats.requests.values()) == 0


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (None, "inputs"),
        (5, "inputs"),
        (b"bytes", "inputs"),
        ({"prompt": "a dict"}, "inputs"),
        ("", "prompt"),
        ("  \t", "prompt"),
        ("x" * 100_001, "prompt"),
    ],
    ids=["none", "int", "bytes", "dict", "empty", "blank", "huge"],
)
async def test_bad_item_in_generate_many_is_an_outcome(
    server: FakeKetchupServer, item: object, field: str
) -> None:
    """A bad item among the inputs is its own outcome with a ValidationError; none is sent."""
    async with client_for(server, 0.01) as client:
        outcomes = [o async for o in client.generate_many([item, item])]  # type: ignore[list-item]
    assert [o.index for o in outcomes] == [0, 1]
    for outcome in outcomes:
        assert isinstance(outcome.error, ValidationError)
        assert outcome.error.field == field
        assert outcome.task_id is None
    assert sum(server.stats.requests.values()) == 0


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"api_key": 5}, "api_key"),
        ({"api_key": b"dk-bytes"}, "api_key"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "  "}, "api_key"),
        ({"api_key": "dk-two words"}, "api_key"),
        ({"api_key": "dk-key\r\nX-Injected: 1"}, "api_key"),
        ({"base_url": "file:///etc"}, "base_url"),
        ({"base_url": "javascript:alert(1)"}, "base_url"),
        ({"base_url": "ftp://api.example.com"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": 5}, "base_url"),
        ({"model": ""}, "model"),
        ({"model": None}, "model"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": None}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"submit_rate": 0}, "submit_rate"),
        ({"submit_rate": "fast"}, "submit_rate"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_images": -1}, "max_images"),
        ({"max_download_bytes": 0}, "max_download_bytes"),
        ({"download_timeout": 0}, "download_timeout"),
        ({"download_timeout": float("nan")}, "download_timeout"),
        ({"max_download_concurrency": 0}, "max_download_concurrency"),
        ({"max_download_concurrency": 2.5}, "max_download_concurrency"),
        ({"download_hosts": "10.0.0.0/8"}, "download_hosts"),
        ({"download_hosts": ["https://cdn.example.com"]}, "download_hosts"),
        ({"download_hosts": 5}, "download_hosts"),
        ({"polling": "fast"}, "polling"),
        ({"retry": 3}, "retry"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None,
)
def test_bad_client_configuration_is_refused(
    options: dict[str, object], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each bad constructor argument gets a ValidationError naming it."""
    monkeypatch.delenv("KETCHUP_API_KEY", raising=False)
    monkeypatch.delenv("KETCHUP_BASE_URL", raising=False)
    kwargs: dict[str, object] = {"api_key": API_KEY, "base_url": "https://api.example.com"}
    kwargs.update(options)
    with pytest.raises(ValidationError) as caught:
        KetchupClient(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field, str(caught.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "request"),
        (["prompt"], "request"),
        ("prompt", "request"),
        ({}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "p", "images": URL}, "images"),
        ({"prompt": "p", "images": 5}, "images"),
        ({"prompt": "p", "images": ["file:///x"]}, "images[0]"),
        ({"prompt": "p", "images": [URL] * 5}, "images"),
        ({"prompt": "p", "model": 3}, "model"),
        ({"prompt": "p", "callback_url": "javascript:x"}, "callback_url"),
    ],
)
def test_bad_jsonl_record_is_refused(data: object, field: str) -> None:
    """``request_from_dict`` (one JSONL line of a bulk input) names the bad field."""
    with pytest.raises(ValidationError) as caught:
        request_from_dict(data)
    assert caught.value.field == field, str(caught.value)


def test_generator_of_images_is_kept_not_dropped() -> None:
    """Reference images given as a generator are stored as a tuple (not silently lost)."""
    request = GenerateRequest("p", images=(u for u in [URL, PNG_URI]))
    assert request.images == (URL, PNG_URI)


_OK = {
    "result": [{"image": URL}],
    "status": "success",
    "task_id": "ta123",
    "consumed": "0.500000",
    "status_reason": {"message": None},
}


def _body(**changes: object) -> bytes:
    data = {**_OK, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


CALLBACK_CASES = [
    (b"", "body"),
    (b"not json", "body"),
    (b"\xff\xfe\x00", "body"),
    (b"[]", "body"),
    (b"null", "body"),
    (b'{"task_id": "ta1", "status": NaN}', "body"),
    (b"[" * 50_000 + b"]" * 50_000, "body"),
    (b" " * (64 * 1024 + 1), "body"),
    (_body(task_id=...), "task_id"),
    (_body(task_id="ta\n1"), "task_id"),
    (_body(task_id="x" * 257), "task_id"),
    (_body(task_id=5), "task_id"),
    (_body(status=...), "status"),
    (_body(status="weird"), "status"),
    (_body(status="in_progress"), "status"),
    (_body(result=None), "result"),
    (_body(result="x"), "result"),
    (_body(result=[5]), "result"),
    (_body(result=[{"image": "javascript:alert(1)"}]), "result[0].image"),
    (_body(result=[{"image": "file:///etc/passwd"}]), "result[0].image"),
    (_body(consumed="abc"), "consumed"),
    (_body(consumed=[1]), "consumed"),
    (b'{"task_id":"ta1","status":"success","consumed":1e999,"result":[]}', "consumed"),
]


@pytest.mark.parametrize(("body", "field"), CALLBACK_CASES, ids=lambda v: repr(v)[:30])
def test_malformed_callback_body_is_refused(body: bytes, field: str) -> None:
    """``parse_callback`` names the bad part of a malformed webhook body."""
    with pytest.raises(ValidationError) as caught:
        parse_callback(body)
    assert caught.value.field == field, str(caught.value)


@pytest.mark.parametrize(("body", "field"), CALLBACK_CASES, ids=lambda v: repr(v)[:30])
async def test_malformed_callback_is_answered_4xx_and_resolves_nothing(
    server: FakeKetchupServer, body: bytes, field: str
) -> None:
    """The receiver answers 400/413 to a malformed body and neither sends nor resolves."""
    async with client_for(server, 0.01) as client:
        receiver = WebhookReceiver(client)
        status, reply = receiver.handle(receiver.tokens[0], body)
        assert status in (400, 413), reply
        assert receiver.stats.delivered == 0
        assert client.pending() == 0
    assert sum(server.stats.requests.values()) == 0
