"""Secrets stay secret: the API key and the webhook token never leak; downloads stay contained."""

from __future__ import annotations

import hmac
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from ketchup_async import (
    CallbackPayload,
    DownloadError,
    GenerateRequest,
    ImageResult,
    InsecureTransportWarning,
    KetchupClient,
    KetchupError,
    RetryPolicy,
    ServerError,
    TaskStatus,
    ValidationError,
)
from ketchup_async._http import USER_AGENT
from ketchup_async.testing import FakeKetchupServer, Faults
from ketchup_async.webhooks import WebhookReceiver
from ketchup_async.webhooks import _receiver as webhooks_module

from ._accounting import API_KEY, client_for, fake_server, run_many

pytestmark = pytest.mark.anyio

SCALE = 0.005
FAULTS = Faults(error_500=0.1, html_502=0.05, reset=0.05, latency=0.05, latency_seconds=0.3)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [current.__cause__, current.__context__]


def _texts_of(error: BaseException) -> Iterator[str]:
    """Everything an error (and whatever it chains to) would show: str, repr, attributes."""
    for link in _chain(error):
        yield str(link)
        yield repr(link)
        yield repr(vars(link)) if hasattr(link, "__dict__") else ""
        yield repr(getattr(link, "request_info", ""))


@pytest.fixture
async def faulty() -> AsyncIterator[FakeKetchupServer]:
    """A fake with every transient fault on both endpoints, drops after accept on submits."""
    submit_faults = Faults(
        error_500=0.1, html_502=0.05, reset_after_accept=0.05, latency=0.05, latency_seconds=0.3
    )
    async with fake_server(SCALE, submit_faults=submit_faults, query_faults=FAULTS) as server:
        yield server


async def test_key_never_appears_in_debug_logs_reprs_or_errors(
    faulty: FakeKetchupServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A whole faulty run logged at DEBUG: the key is in no record, repr or error text."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ketchup_async")
    texts: list[str] = []
    async with client_for(faulty, SCALE, timeout=0.15) as client:
        ledger = await run_many(client, 150)
        outcomes = ledger.outcomes()
        done = [o for o in outcomes if o.ok]
        assert done
        assert any(not o.ok for o in outcomes)
        result = done[0].result
        assert result is not None
        await client.download(result.images[0], tmp_path / "one")
        faulty.submit_faults = Faults()  # one submit is never retried once sent: make it land
        job = await client.submit("one more")
        texts += [repr(client), repr(job), repr(client._engine)]
        faulty.revoke_key(API_KEY)  # the last error: a 401 for every pending job
        with pytest.raises(KetchupError) as revoked:
            await job
        texts += _texts_of(revoked.value)
    for outcome in outcomes:
        texts += [repr(outcome), repr(outcome.request), repr(outcome.result)]
        if outcome.error is not None:
            texts += _texts_of(outcome.error)
    records = caplog.records
    assert any(r.levelno == logging.DEBUG and r.name == "ketchup_async" for r in records)
    texts += [r.getMessage() for r in records]
    texts += [repr(r.args) for r in records]
    texts += [caplog.text]
    leaks = [t for t in texts if API_KEY in t or API_KEY[3:] in t]
    assert leaks == []


async def test_cdn_downloads_carry_no_key_and_the_sdk_user_agent(
    faulty: FakeKetchupServer, tmp_path: Path
) -> None:
    """Requests to the image host have no Authorization header and the SDK's User-Agent."""
    faulty.query_faults = Faults()
    faulty.submit_faults = Faults()
    async with client_for(faulty, SCALE) as client:
        for i in range(3):
            result = await client.generate(f"cdn {i}")
            await client.download(result.images[0], tmp_path / f"cdn-{i}")
    assert len(faulty.stats.cdn_requests) == 3
    for headers in faulty.stats.cdn_requests:
        assert not any(name.lower() == "authorization" for name in headers)
        assert headers.get("User-Agent") == USER_AGENT
        assert not any(API_KEY in value for value in headers.values())


async def test_callbacks_reach_the_receiver_without_our_key() -> None:
    """The API's callback POST carries no Authorization and no key; the job resolves from it."""
    seen: list[dict[str, str]] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        seen.append(dict(request.headers))
        return await handler(request)

    async with fake_server(SCALE) as server, client_for(server, SCALE) as client:
        receiver = WebhookReceiver(client)
        app = web.Application(middlewares=[record])
        receiver.add_to(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            port = runner.addresses[0][1]
            url = receiver.callback_url(f"http://127.0.0.1:{port}")
            result = await client.generate("with a webhook", callback_url=url, timeout=10)
            assert result.images
        finally:
            await runner.cleanup()
    assert seen
    assert receiver.stats.delivered == 1
    for headers in seen:
        assert not any(name.lower() == "authorization" for name in headers)
        assert not any(API_KEY in value for value in headers.values())


async def test_webhook_token_compared_in_constant_time_and_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong token is refused via hmac.compare_digest; the real token reaches no log."""
    calls: list[tuple[object, object]] = []
    compare = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(webhooks_module.hmac, "compare_digest", recording)  # type: ignore[attr-defined]
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="ketchup_async")
    wrong = "W" * 43
    async with fake_server(SCALE) as server, client_for(server, SCALE) as client:
        receiver = WebhookReceiver(client)
        app = web.Application()
        receiver.add_to(app)
        access = logging.getLogger("aiohttp.access")
        access.addFilter(receiver.log_filter)
        runner = web.AppRunner(app)  # with the access log, which prints request paths
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            good_url = receiver.callback_url(base)
            session = client._open().transport.session
            async with session.post(f"{base}/ketchup/callback/{wrong}", data=b"{}") as response:
                assert response.status == 404
            async with session.post(good_url, data=b"not json") as response:
                assert response.status == 400
        finally:
            access.removeFilter(receiver.log_filter)
            await runner.cleanup()
    assert calls
    assert all(isinstance(a, bytes) for a, _ in calls)
    assert receiver.stats.rejected["token"] == 1
    token = receiver.tokens[0]
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert any(r.name == "aiohttp.access" for r in caplog.records)
    for record in caplog.records:  # the access log masks our token; the SDK logs neither
        assert token not in record.getMessage()
        assert record.name != "ketchup_async" or wrong not in record.getMessage()
    assert token not in repr(receiver)


async def test_downloads_are_capped_and_leave_nothing_behind(
    server_plain: FakeKetchupServer, tmp_path: Path
) -> None:
    """An image over max_download_bytes is refused; no partial or temporary file remains."""
    async with client_for(server_plain, SCALE, max_download_bytes=64) as client:
        result = await client.generate("too big for the cap")
        with pytest.raises(DownloadError, match="cap"):
            await client.download(result.images[0], tmp_path / "big.png")
        uri = "data:image/png;base64," + "iVBORw0KGgo" * 20
        with pytest.raises(DownloadError, match="cap"):
            await client.download(uri, tmp_path / "inline.png")
    assert _files(tmp_path) == []


@pytest.fixture
async def server_plain() -> AsyncIterator[FakeKetchupServer]:
    """A fake without faults."""
    async with fake_server(SCALE) as server:
        yield server


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "javascript:alert(1)", "ftp://cdn.example.com/x.png", "gopher://x"],
)
async def test_downloads_fetch_only_http_or_data(
    server_plain: FakeKetchupServer, tmp_path: Path, url: str
) -> None:
    """A result image with another scheme is refused before any request; nothing is written."""
    async with client_for(server_plain, SCALE) as client:
        with pytest.raises(ValidationError) as caught:
            await client.download(ImageResult(url), tmp_path / "x.png")
    assert caught.value.field == "image"
    assert server_plain.stats.cdn_requests == []
    assert _files(tmp_path) == []


async def test_download_name_from_server_data_stays_in_its_directory(
    server_plain: FakeKetchupServer, tmp_path: Path
) -> None:
    """A suffix-less destination gets its extension in place; nothing is written elsewhere."""
    async with client_for(server_plain, SCALE) as client:
        result = await client.generate("contained")
        path = await client.download(result.images[0], tmp_path / "out" / "name")
    assert path == tmp_path / "out" / "name.png"
    assert _files(tmp_path) == ["out", "out/name.png"]


@pytest.mark.parametrize(
    "base_url",
    ["http://api.example.com", "http://10.0.0.8:8080", "http://[2001:db8::1]", "http://localhostx"],
)
def test_plain_http_to_a_remote_host_warns(base_url: str) -> None:
    """A non-loopback ``http://`` base URL warns that the key would travel in clear."""
    with pytest.warns(InsecureTransportWarning):
        KetchupClient(api_key=API_KEY, base_url=base_url)


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787", "http://127.5.6.7"],
)
def test_plain_http_to_loopback_does_not_warn(base_url: str) -> None:
    """Loopback ``http://`` (the fake server, a local proxy) is fine: no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KetchupClient(api_key=API_KEY, base_url=base_url)


def test_request_and_client_reprs_hold_no_secret() -> None:
    """Neither a request nor a client repr shows the key; the client shows a masked hint."""
    client = KetchupClient(api_key=API_KEY, base_url="https://api.example.com")
    request = GenerateRequest("p", callback_url="https://app.example.com/cb/secret-path")
    assert API_KEY not in repr(client)
    assert API_KEY[3:-2] not in repr(client)
    assert API_KEY not in repr(request)


@pytest.fixture
async def hostile_cdn() -> AsyncIterator[str]:
    """An image host that lies: an endless body, HTML instead of an image, a redirect loop."""

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * 65_528
        for _ in range(1000):  # 64 MB unless the client stops reading
            await response.write(chunk)
        return response

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop.png")

    app = web.Application()
    app.router.add_get("/endless.png", endless)
    app.router.add_get("/page.png", html)
    app.router.add_get("/loop.png", loop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "message"),
    [("/endless.png", "cap"), ("/page.png", "not an image"), ("/loop.png", "download failed")],
)
async def test_a_lying_image_host_is_refused_and_leaves_nothing(
    server_plain: FakeKetchupServer, hostile_cdn: str, tmp_path: Path, path: str, message: str
) -> None:
    """No declared length, HTML or a redirect loop: DownloadError, and no file is left behind."""
    retry = RetryPolicy(max_retries=1).scaled(SCALE)
    async with client_for(server_plain, SCALE, max_download_bytes=1_000_000, retry=retry) as client:
        with pytest.raises(DownloadError, match=message):
            await client.download(hostile_cdn + path, tmp_path / "x")
    assert _files(tmp_path) == []


@pytest.mark.parametrize("consumed", ["1e1000000", "NaN", "-1", "1e12"])
async def test_a_hostile_consumed_is_a_malformed_answer(tmp_path: Path, consumed: str) -> None:
    """A query answer whose ``consumed`` is absurd is a ServerError, never decimal.Overflow."""

    async def query(request: web.Request) -> web.Response:
        data = {"task_id": "ta-1", "status": "success", "consumed": consumed, "result": None}
        return web.json_response({"code": 0, "message": "ok", "data": data})

    app = web.Application()
    app.router.add_get("/api/task/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with KetchupClient(api_key=API_KEY, base_url=base_url) as client:
            with pytest.raises(ServerError, match="malformed query response: consumed"):
                await client.query("ta-1")
    finally:
        await runner.cleanup()


@pytest.fixture
async def internal_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A service on 127.0.0.2 standing in for an internal host; yields its URL and its hits."""
    hits: list[str] = []

    async def secret(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b"\x89PNG\r\n\x1a\n internal secrets", content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.2", 0).start()
    yield f"http://127.0.0.2:{runner.addresses[0][1]}", hits
    await runner.cleanup()


async def test_a_result_url_on_an_internal_host_is_not_fetched(
    internal_host: tuple[str, list[str]], tmp_path: Path
) -> None:
    """By default a download refuses 127.0.0.2 (an internal host), whatever its port state."""
    url, hits = internal_host
    closed = url.rsplit(":", 1)[0] + ":9"
    async with KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:9") as client:
        texts = []
        for target in (f"{url}/latest/meta-data/", f"{closed}/latest/meta-data/"):
            with pytest.raises(DownloadError, match="not a public address") as caught:
                await client.download(target, tmp_path / "x")
            texts.append(str(caught.value))
    assert hits == []
    assert texts[0] == texts[1]
    assert _files(tmp_path) == []


async def test_a_forged_callback_cannot_point_a_download_inside(
    server_plain: FakeKetchupServer, internal_host: tuple[str, list[str]], tmp_path: Path
) -> None:
    """A job resolved by a forged callback with an internal URL: the download is refused."""
    url, hits = internal_host
    async with client_for(server_plain, SCALE) as client:
        job = await client.submit("a harmless prompt")
        forged = CallbackPayload(
            task_id=job.task_id, status=TaskStatus.SUCCESS, images=(ImageResult(f"{url}/x"),)
        )
        assert client.deliver(forged)
        result = await job.wait(5)
        with pytest.raises(DownloadError, match=r"'127\.0\.0\.2' is not a public address"):
            await client.download(result.images[0], tmp_path / "x")
    assert hits == []


async def test_download_hosts_lets_a_client_reach_an_internal_host(
    internal_host: tuple[str, list[str]], tmp_path: Path
) -> None:
    """With ``download_hosts=["127.0.0.2"]`` the same URL is downloaded."""
    url, hits = internal_host
    async with KetchupClient(
        api_key=API_KEY, base_url="http://127.0.0.1:9", download_hosts=["127.0.0.2"]
    ) as client:
        path = await client.download(f"{url}/x", tmp_path / "x")
    assert path.name == "x.png"
    assert hits == ["/x"]


@pytest.mark.parametrize("hosts", [["http://x"], ["10.0.0.0/99"], [""], "127.0.0.1", [3]])
def test_a_bad_download_hosts_entry_is_a_validation_error(hosts: object) -> None:
    """A URL, a bad network, an empty entry, a lone string or a number: ValidationError."""
    with pytest.raises(ValidationError) as caught:
        KetchupClient(api_key=API_KEY, download_hosts=hosts)  # type: ignore[arg-type]
    assert caught.value.field == "download_hosts"


async def test_download_hosts_falls_back_to_the_environment(
    internal_host: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``KETCHUP_DOWNLOAD_HOSTS`` (comma-separated) is the allow-list when none is passed."""
    url, hits = internal_host
    monkeypatch.setenv("KETCHUP_DOWNLOAD_HOSTS", "cdn.example.com, 127.0.0.0/8")
    async with KetchupClient(api_key=API_KEY, base_url="http://127.0.0.1:9") as client:
        await client.download(f"{url}/y", tmp_path / "y")
    assert hits == ["/y"]
