"""KetchupClient: configuration, lifecycle, submit, query, masking of the key."""

from __future__ import annotations

import aiohttp
import pytest

from ketchup_async import (
    ClientClosedError,
    GenerateRequest,
    InsecureTransportWarning,
    KetchupClient,
    TaskNotFoundError,
    TaskStatus,
    ValidationError,
)
from ketchup_async.testing import FakeKetchupServer

from .conftest import API_KEY, make_client

pytestmark = pytest.mark.anyio


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere: a ValidationError naming api_key and the variable, nothing sent."""
    monkeypatch.delenv("KETCHUP_API_KEY", raising=False)
    with pytest.raises(ValidationError, match=r"api_key: no API key.*KETCHUP_API_KEY"):
        KetchupClient()


def test_key_and_base_url_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """KETCHUP_API_KEY and KETCHUP_BASE_URL are used when no argument is given."""
    monkeypatch.setenv("KETCHUP_API_KEY", "dk-fromenv12345678")
    monkeypatch.setenv("KETCHUP_BASE_URL", "http://127.0.0.1:1234/")
    client = KetchupClient()
    assert client.base_url == "http://127.0.0.1:1234"


def test_default_base_url_is_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without arguments or variables the base URL is https://api.defapi.org."""
    monkeypatch.delenv("KETCHUP_BASE_URL", raising=False)
    assert KetchupClient(api_key=API_KEY).base_url == "https://api.defapi.org"


def test_repr_masks_the_key() -> None:
    """repr(client) never shows the key."""
    text = repr(KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:1"))
    assert API_KEY not in text
    assert "0123456789" not in text


def test_key_with_newline_is_refused() -> None:
    """A key with whitespace (header injection) is refused."""
    with pytest.raises(ValidationError, match="api_key"):
        KetchupClient(api_key="dk-abc\r\nX-Evil: 1")


def test_plain_http_to_remote_host_warns() -> None:
    """A non-loopback http:// base URL warns that the key would travel in clear."""
    with pytest.warns(InsecureTransportWarning, match="not HTTPS"):
        KetchupClient(api_key=API_KEY, base_url="http://api.example.com")


def test_bad_configuration_names_the_argument() -> None:
    """Bad numbers are refused naming the argument."""
    with pytest.raises(ValidationError, match="max_concurrency"):
        KetchupClient(api_key=API_KEY, max_concurrency=0)
    with pytest.raises(ValidationError, match="submit_rate"):
        KetchupClient(api_key=API_KEY, submit_rate=-1)
    with pytest.raises(ValidationError, match="base_url"):
        KetchupClient(api_key=API_KEY, base_url="ftp://x")


async def test_submit_returns_a_job_with_task_id(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """submit() sends one request and returns a Job knowing its task id."""
    job = await client.submit("a red bicycle")
    assert job.task_id in server.tasks
    assert server.tasks[job.task_id].prompt == "a red bicycle"
    assert server.tasks[job.task_id].model == "google/gempix2"


async def test_submit_uses_request_model(client: KetchupClient, server: FakeKetchupServer) -> None:
    """A request's own model overrides the client default."""
    job = await client.submit_request(GenerateRequest("p", model="google/gemini-2.5-flash-image"))
    assert server.tasks[job.task_id].model == "google/gemini-2.5-flash-image"


async def test_invalid_submit_sends_nothing(
    client: KetchupClient, server: FakeKetchupServer
) -> None:
    """Bad input raises ValidationError before any request."""
    with pytest.raises(ValidationError, match="prompt"):
        await client.submit("   ")
    with pytest.raises(ValidationError, match="images"):
        await client.submit("p", images=["https://x.test/a.png"] * 5)
    assert sum(server.stats.requests.values()) == 0


async def test_query_returns_a_task(client: KetchupClient, server: FakeKetchupServer) -> None:
    """query() is one GET answering the task's current status."""
    task_id = server.create_task("elsewhere")
    server.complete_now(task_id)
    task = await client.query(task_id)
    assert task.status is TaskStatus.SUCCESS
    assert task.images


async def test_query_unknown_task_raises(client: KetchupClient) -> None:
    """query() of an unknown id raises TaskNotFoundError."""
    with pytest.raises(TaskNotFoundError):
        await client.query("ta00000000-0000")


async def test_query_refuses_unusable_task_ids(client: KetchupClient) -> None:
    """An empty, blank, over-long or control-character task id is refused locally."""
    for bad in ("", "   ", "ta\n1", "ta\x001", "t" * 257):
        with pytest.raises(ValidationError, match="task_id"):
            await client.query(bad)


async def test_injected_session_is_not_closed(server: FakeKetchupServer) -> None:
    """A caller's session is used and left open by aclose()."""
    async with aiohttp.ClientSession() as session:
        async with make_client(server, session=session) as client:
            await client.submit("p")
        assert not session.closed


async def test_closed_client_refuses_work(server: FakeKetchupServer) -> None:
    """After aclose(), methods raise ClientClosedError."""
    client = make_client(server)
    await client.aclose()
    with pytest.raises(ClientClosedError):
        await client.submit("p")


async def test_client_works_without_async_with(server: FakeKetchupServer) -> None:
    """The session opens lazily inside the loop; aclose() cleans up."""
    client = make_client(server)
    try:
        result = await client.generate("lazy")
        assert result.images
    finally:
        await client.aclose()
