"""Tests of result downloads (``ketchup_async._download``): capped, atomic, never with the key."""

from __future__ import annotations

import base64
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ketchup_async import DownloadError, ImageResult, KetchupClient, RetryPolicy, ValidationError
from ketchup_async._addresses import HostAllowList
from ketchup_async._download import Downloader, extension_for
from ketchup_async.testing import FakeKetchupServer, make_png

pytestmark = pytest.mark.anyio

PNG = make_png(8, 8, (200, 30, 30))
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
FAST = RetryPolicy(max_retries=2, base=0.001, cap=0.002)


class HostileCDN:
    """An image host that misbehaves on purpose, counting requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.base_url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] += 1
        if name == "png":
            return web.Response(body=PNG, content_type="image/png")
        if name == "big":
            return web.Response(body=PNG + b"\x00" * 10_000, content_type="image/png")
        if name == "html":
            return web.Response(text="<html>login</html>", content_type="text/html")
        if name == "forbidden":
            return web.Response(status=403, text="<h1>403</h1>", content_type="text/html")
        if name == "flaky" and self.hits[name] <= 2:
            return web.Response(status=503, text="busy")
        if name == "flaky":
            return web.Response(body=PNG, content_type="image/png")
        if name == "limited" and self.hits[name] == 1:
            return web.Response(status=429, text="slow down")
        if name == "limited":
            return web.Response(body=PNG, content_type="image/png")
        if name == "down":
            return web.Response(status=502, text="bad gateway")
        if name == "octet":
            return web.Response(body=JPEG, content_type="application/octet-stream")
        if name == "garbage":
            return web.Response(
                body=b"not an image at all", content_type="application/octet-stream"
            )
        if name == "stream":
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(PNG)
            for _ in range(16):
                await response.write(b"\x00" * 1024)
            await response.write_eof()
            return response
        raise web.HTTPNotFound()


@pytest.fixture
async def cdn() -> AsyncIterator[HostileCDN]:
    """A misbehaving image host on 127.0.0.1."""
    host = HostileCDN()
    app = web.Application()
    app.router.add_get("/{name}", host.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield host
    await runner.cleanup()


LOCAL = HostAllowList.parse(["127.0.0.1"])


async def _get(url: str, dest: Path, *, overwrite: bool = True, **kw: object) -> Path:
    """Download ``url`` with a downloader that may reach 127.0.0.1 (the test image hosts)."""
    options: dict[str, object] = {"allow": LOCAL, "retry": FAST, "timeout": 5.0}
    options.update(kw)
    downloader = Downloader(**options)  # type: ignore[arg-type]
    try:
        return await downloader.download(ImageResult(url), dest, overwrite=overwrite)
    finally:
        await downloader.aclose()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_a_result_url_becomes_a_png_file(server: FakeKetchupServer, tmp_path: Path) -> None:
    """The fake CDN's image is written with the extension of its content type."""
    async with KetchupClient(
        api_key="dk-test0123456789", base_url=server.base_url, download_hosts=["127.0.0.1"]
    ) as client:
        task_id = server.create_task("a red bicycle")
        server.complete_now(task_id)
        result = (await client.query(task_id)).images[0]
        path = await client.download(result, tmp_path / "bike")
    assert path == tmp_path / "bike.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


async def test_the_api_key_is_never_sent_to_the_image_host(
    server: FakeKetchupServer, tmp_path: Path
) -> None:
    """The CDN sees the SDK's User-Agent and no Authorization header."""
    async with KetchupClient(
        api_key="dk-test0123456789", base_url=server.base_url, download_hosts=["127.0.0.1"]
    ) as client:
        task_id = server.create_task("a lighthouse")
        server.complete_now(task_id)
        image = (await client.query(task_id)).images[0]
        await client.download(image, tmp_path / "x")
    (headers,) = server.stats.cdn_requests
    assert not any(k.lower() == "authorization" for k in headers)
    assert "dk-test0123456789" not in repr(headers)
    assert headers["User-Agent"].startswith("ketchup-async/")


async def test_a_declared_size_over_the_cap_is_refused(cdn: HostileCDN, tmp_path: Path) -> None:
    """Content-Length above the cap: DownloadError before reading, nothing written."""
    with pytest.raises(DownloadError, match="the cap is 1,000"):
        await _get(f"{cdn.base_url}/big", tmp_path / "x", max_bytes=1000)
    assert _leftovers(tmp_path) == []


async def test_a_streamed_body_over_the_cap_leaves_no_partial_file(
    cdn: HostileCDN, tmp_path: Path
) -> None:
    """A chunked body that grows past the cap is cut off and its temporary file removed."""
    with pytest.raises(DownloadError, match="exceeds the 4,096-byte cap"):
        await _get(f"{cdn.base_url}/stream", tmp_path / "x", max_bytes=4096)
    assert _leftovers(tmp_path) == []


async def test_a_streamed_body_under_the_cap_is_written(cdn: HostileCDN, tmp_path: Path) -> None:
    """The same chunked body fits a larger cap and is renamed into place."""
    path = await _get(f"{cdn.base_url}/stream", tmp_path / "x", max_bytes=64_000)
    assert path.stat().st_size == len(PNG) + 16 * 1024
    assert _leftovers(tmp_path) == ["x.png"]


async def test_an_html_page_is_not_an_image(cdn: HostileCDN, tmp_path: Path) -> None:
    """A 200 text/html answer (a login page) is a DownloadError, not a .html file."""
    with pytest.raises(DownloadError, match="text/html"):
        await _get(f"{cdn.base_url}/html", tmp_path / "x")
    assert _leftovers(tmp_path) == []


async def test_a_403_is_not_retried(cdn: HostileCDN, tmp_path: Path) -> None:
    """The image host's 403 is a DownloadError with its status, after one request."""
    with pytest.raises(DownloadError) as info:
        await _get(f"{cdn.base_url}/forbidden", tmp_path / "x")
    assert info.value.status_code == 403
    assert cdn.hits["forbidden"] == 1


async def test_5xx_is_retried_then_succeeds(cdn: HostileCDN, tmp_path: Path) -> None:
    """Two 503s, then the image: written after three requests."""
    path = await _get(f"{cdn.base_url}/flaky", tmp_path / "x")
    assert path.read_bytes() == PNG
    assert cdn.hits["flaky"] == 3


async def test_a_429_is_retried(cdn: HostileCDN, tmp_path: Path) -> None:
    """The image host's 429 is worth another attempt."""
    path = await _get(f"{cdn.base_url}/limited", tmp_path / "x")
    assert path.read_bytes() == PNG
    assert cdn.hits["limited"] == 2


async def test_5xx_past_the_retries_is_an_error(cdn: HostileCDN, tmp_path: Path) -> None:
    """A host that keeps answering 502 gives up after max_retries."""
    with pytest.raises(DownloadError) as info:
        await _get(f"{cdn.base_url}/down", tmp_path / "x")
    assert info.value.status_code == 502
    assert cdn.hits["down"] == FAST.max_retries + 1


async def test_an_unreachable_host_is_a_download_error(tmp_path: Path) -> None:
    """Connection refused, after retries: DownloadError, not an aiohttp exception."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match="download failed"):
        await _get(f"http://127.0.0.1:{port}/png", tmp_path / "x")


async def test_the_extension_comes_from_magic_bytes_without_a_type(
    cdn: HostileCDN, tmp_path: Path
) -> None:
    """application/octet-stream with JPEG bytes becomes a .jpg."""
    path = await _get(f"{cdn.base_url}/octet", tmp_path / "x")
    assert path.name == "x.jpg"


async def test_unknown_bytes_are_refused_and_removed(cdn: HostileCDN, tmp_path: Path) -> None:
    """No type and no known magic: DownloadError, the temporary file is gone."""
    with pytest.raises(DownloadError, match="not a known image type"):
        await _get(f"{cdn.base_url}/garbage", tmp_path / "x")
    assert _leftovers(tmp_path) == []


async def test_a_destination_suffix_is_kept(cdn: HostileCDN, tmp_path: Path) -> None:
    """A destination with a suffix is used as given."""
    path = await _get(f"{cdn.base_url}/png", tmp_path / "keep.image")
    assert path == tmp_path / "keep.image"


async def test_no_overwrite_skips_an_existing_file(cdn: HostileCDN, tmp_path: Path) -> None:
    """overwrite=False with an existing destination sends no request."""
    dest = tmp_path / "x.png"
    dest.write_bytes(b"old")
    assert await _get(f"{cdn.base_url}/png", dest, overwrite=False) == dest
    assert dest.read_bytes() == b"old"
    assert cdn.hits["png"] == 0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "javascript:alert(1)", "ftp://h/x.png"])
async def test_only_http_and_data_are_accepted(tmp_path: Path, url: str) -> None:
    """Other schemes are a ValidationError naming the image; nothing is written."""
    with pytest.raises(ValidationError, match="image: must be an absolute http"):
        await _get(url, tmp_path / "x")
    assert _leftovers(tmp_path) == []


def _data_uri(data: bytes, media: str = "image/png") -> str:
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


async def test_a_data_uri_is_decoded_to_a_file(tmp_path: Path) -> None:
    """A data URI result is decoded (no request) into a .png."""
    path = await _get(_data_uri(PNG), tmp_path / "inline")
    assert path == tmp_path / "inline.png"
    assert path.read_bytes() == PNG


async def test_a_data_uri_over_the_cap_is_refused(tmp_path: Path) -> None:
    """The size cap applies to data URIs too."""
    with pytest.raises(DownloadError, match="cap"):
        await _get(_data_uri(PNG + b"\x00" * 4000), tmp_path / "x", max_bytes=1000)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("data:image/png;base64,%%%not-base64", "cannot be decoded"),
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "not a known image"),
    ],
)
async def test_a_bad_data_uri_is_a_download_error(tmp_path: Path, uri: str, message: str) -> None:
    """Invalid base64, or bytes that are no image: DownloadError."""
    with pytest.raises(DownloadError, match=message):
        await _get(uri, tmp_path / "x")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "head", "ext"),
    [
        ("image/png", b"", ".png"),
        ("image/jpeg; charset=binary", b"", ".jpg"),
        ("IMAGE/WEBP", b"", ".webp"),
        (None, b"\x89PNG\r\n\x1a\n", ".png"),
        ("application/octet-stream", b"\xff\xd8\xff\xe0", ".jpg"),
        (None, b"RIFF\x00\x00\x00\x00WEBPVP8 ", ".webp"),
        (None, b"GIF89a", ".gif"),
        (None, b"\x00\x00\x00\x1cftypavif", ".avif"),
        ("text/html", b"<html>", None),
    ],
)
def test_extension_for(content_type: str | None, head: bytes, ext: str | None) -> None:
    """The extension comes from the content type, else from the magic bytes."""
    assert extension_for(content_type, head) == ext
