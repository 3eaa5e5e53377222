"""Downloads of result images: streamed, capped, atomic, never with the API key.

URL results live on a CDN (another host than the API): they are fetched with the SDK's
User-Agent only, on a connection pool of their own, from public addresses only (``_egress``),
within a total deadline, streamed to a temporary file next to the destination, and renamed into
place once complete. Data URIs are decoded under the same size cap.

Retries stay hand-written (as in ``_http``): the loop is a few lines and its decisions come from
``_retry``, shared with the API path. The final rename runs in a thread through anyio, whose
``to_thread`` waits for the thread even when the caller is cancelled (see ``ketchup_async.bulk``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import anyio
import attrs
from aiohttp.abc import AbstractResolver
from yarl import URL

from . import _retry, _validate
from ._addresses import HostAllowList, hosts_from_env
from ._egress import GuardedResolver, check_target
from ._http import USER_AGENT
from ._models import ImageResult, RetryPolicy
from ._telemetry import Recorder
from .errors import DownloadError, ValidationError

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BYTES",
    "MAX_REDIRECTS",
    "Downloader",
    "extension_for",
]

logger = logging.getLogger("ketchup_async")

#: Default cap on one image, bytes.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Default seconds for one whole download (redirects, retries and back-off included).
DEFAULT_DEADLINE = 120.0
#: Redirect hops followed per request.
MAX_REDIRECTS = 5

_TYPES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/avif": ".avif",
}
# Statuses of the image host worth another attempt.
_RETRY_STATUSES = frozenset({408, 425, 429})


def extension_for(content_type: str | None, head: bytes) -> str | None:
    """The file extension for a content type, else from the PNG/JPEG/WebP/GIF magic bytes."""
    if content_type:
        ext = _TYPES.get(content_type.split(";", 1)[0].strip().lower())
        if ext:
            return ext
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if head[4:12] == b"ftypavif":
        return ".avif"
    return None


def _target(dest: Path, ext: str) -> Path:
    return dest if dest.suffix else dest.with_name(dest.name + ext)


def _part_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.{random.getrandbits(32):08x}.part")


def _write_atomically(target: Path, data: bytes | None, part: Path | None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if data is not None:
        part = _part_path(target)
        try:
            with open(part, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
    else:
        assert part is not None
        with open(part, "rb+") as handle:
            os.fsync(handle.fileno())
    os.replace(part, target)


async def _decode_data_uri(image: ImageResult, dest: Path, max_bytes: int) -> Path:
    header, _, payload = image.image.partition(",")
    if len(payload) * 3 // 4 > max_bytes:
        raise DownloadError(f"data URI image is larger than the {max_bytes:,}-byte cap")
    try:
        data = image.decode()
    except ValidationError as exc:
        raise DownloadError(f"data URI result cannot be decoded: {exc.problem}") from None
    ext = extension_for(image.media_type, data[:16])
    if ext is None:
        raise DownloadError(f"data URI is not a known image type ({header[:40]!r})")
    target = _target(dest, ext)
    await anyio.to_thread.run_sync(_write_atomically, target, data, None)
    return target


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def _fetch_once(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    allow: HostAllowList,
    max_bytes: int,
    timeout: float,
    telemetry: Recorder,
    attempt: int,
) -> Path:
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "image/*"}
    target = check_target(url, allow)
    for hop in range(MAX_REDIRECTS + 1):
        with telemetry.download_call(str(target), attempt + hop) as call:
            async with session.get(
                target, headers=headers, timeout=client_timeout, allow_redirects=False
            ) as response:
                call.status = response.status
                if response.status in _REDIRECTS:
                    # Followed by hand: every hop's URL and resolved addresses are checked again.
                    location = response.headers.get("Location", "")
                    try:
                        next_url = response.url.join(URL(location))
                    except (ValueError, TypeError):
                        next_url = None
                    if not location or next_url is None:
                        raise DownloadError(f"image host answered HTTP {response.status} badly")
                    target = check_target(next_url, allow)
                    continue
                return await _save(response, dest, max_bytes)
    raise DownloadError(f"image download failed: more than {MAX_REDIRECTS} redirects")


async def _save(response: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> Path:
    if response.status >= 400:
        raise DownloadError(
            f"image host answered HTTP {response.status}", status_code=response.status
        )
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise DownloadError(f"image is {declared:,} bytes; the cap is {max_bytes:,}")
    content_type = response.headers.get("Content-Type", "")
    if content_type and not content_type.lower().startswith(("image/", "application/octet")):
        raise DownloadError(f"image host sent {content_type!r}, not an image")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    size = 0
    head = b""
    try:
        with open(part, "wb") as handle:  # noqa: ASYNC230 - small chunked writes
            async for chunk in response.content.iter_chunked(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadError(f"image exceeds the {max_bytes:,}-byte cap")
                if len(head) < 16:
                    head += chunk[:16]
                handle.write(chunk)
        ext = extension_for(content_type, head)
        if ext is None:
            raise DownloadError(f"downloaded data is not a known image type ({content_type!r})")
        target = _target(dest, ext)
        await anyio.to_thread.run_sync(_write_atomically, target, None, part)
        return target
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise


@attrs.define(eq=False, kw_only=True)
class Downloader:
    """Downloads result images on a connection pool of its own, never into the local network.

    The pool (``max_connections``) is separate from the API's, so submits and queries never
    wait behind a slow image host; a download waits for a free connection, then has
    ``deadline`` seconds in all (redirects, retries and their back-off included). Hosts are
    checked as ``_egress`` describes. ``aclose()`` closes the pool.

    Attributes:
        allow: Hosts and networks reachable although not public.
        max_connections: Downloads in flight at once.
        max_bytes: Size cap of one image.
        retry: Retries of connection errors, 5xx, 408, 425 and 429.
        timeout: Seconds to connect, and between two reads.
        deadline: Seconds for one whole download.
        resolver: The resolver to guard (aiohttp's default when None).
        trace_configs: aiohttp request tracing for the pool's session.
        telemetry: Where a span per download request goes (see ``_telemetry``).
    """

    allow: HostAllowList = attrs.field(factory=HostAllowList)
    max_connections: int = 16
    max_bytes: int = DEFAULT_MAX_BYTES
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    timeout: float = 30.0
    deadline: float = DEFAULT_DEADLINE
    resolver: AbstractResolver | None = None
    trace_configs: tuple[aiohttp.TraceConfig, ...] = ()
    rng: random.Random = attrs.field(factory=random.Random)
    telemetry: Recorder = attrs.field(factory=Recorder.off)
    _session: aiohttp.ClientSession | None = attrs.field(default=None, init=False)
    _guard: GuardedResolver | None = attrs.field(default=None, init=False)
    _slots: asyncio.Semaphore | None = attrs.field(default=None, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    @classmethod
    def configure(
        cls,
        *,
        hosts: Iterable[object] | None,
        deadline: float,
        max_connections: int,
        max_bytes: int,
        retry: RetryPolicy,
        timeout: float,
        telemetry: Recorder | None = None,
    ) -> Downloader:
        """A downloader from ``KetchupClient``'s options, validated under their names.

        ``hosts`` None means ``KETCHUP_DOWNLOAD_HOSTS`` (comma-separated), else none.

        Raises:
            ValidationError: ``download_hosts``, ``download_timeout`` or
                ``max_download_concurrency`` is bad.
        """
        _validate.check_positive(deadline, field="download_timeout")
        _validate.check_positive(max_connections, field="max_download_concurrency", integer=True)
        _validate.check_positive(max_bytes, field="max_download_bytes", integer=True)
        entries = hosts_from_env(os.environ) if hosts is None else hosts
        downloader = cls(
            allow=HostAllowList.parse(entries, field="download_hosts"),
            max_connections=max_connections,
            max_bytes=max_bytes,
            retry=retry,
            timeout=timeout,
            deadline=deadline,
        )
        if telemetry is not None:
            downloader.telemetry = telemetry
        return downloader

    def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._closed:
            raise DownloadError("the downloader is closed")
        if self._session is None or self._slots is None:
            self._guard = GuardedResolver(self.allow, self.resolver)
            connector = aiohttp.TCPConnector(limit=self.max_connections, resolver=self._guard)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # an environment proxy would connect for us, unchecked
                cookie_jar=aiohttp.DummyCookieJar(),
                trace_configs=list(self.trace_configs) or None,
            )
            self._slots = asyncio.Semaphore(self.max_connections)
        return self._session, self._slots

    async def aclose(self) -> None:
        """Close the pool; later downloads raise ``DownloadError``."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
        if self._guard is not None:
            await self._guard.close()

    async def download(self, image: ImageResult, dest: Path, *, overwrite: bool = True) -> Path:
        """Write ``image`` to ``dest`` (suffix added from the content type if ``dest`` has none).

        Raises:
            ValidationError: The image is neither an http(s) URL nor a data URI.
            DownloadError: The host is not public (and not allowed), refused, the body is too
                large or not an image, the deadline passed, or the connection kept failing.
        """
        if not overwrite and dest.suffix and dest.exists():  # noqa: ASYNC240
            return dest
        if image.is_data_uri:
            return await _decode_data_uri(image, dest, self.max_bytes)
        url = _validate.check_http_url(image.image, field="image")
        check_target(url, self.allow)  # an internal address is refused before any waiting
        session, slots = self._open()
        async with slots:
            try:
                return await asyncio.wait_for(self._attempts(session, url, dest), self.deadline)
            except asyncio.TimeoutError:
                raise DownloadError(
                    f"image download did not finish within its {self.deadline:g} s deadline"
                ) from None

    async def _attempts(self, session: aiohttp.ClientSession, url: str, dest: Path) -> Path:
        policy = self.retry
        for attempt in range(policy.max_retries + 1):
            try:
                return await _fetch_once(
                    session,
                    url,
                    dest,
                    allow=self.allow,
                    max_bytes=self.max_bytes,
                    timeout=self.timeout,
                    telemetry=self.telemetry,
                    attempt=attempt,
                )
            except DownloadError as exc:
                status = exc.status_code
                retryable = status is not None and (status >= 500 or status in _RETRY_STATUSES)
                if not retryable or attempt >= policy.max_retries:
                    raise
                error: Exception = exc
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if attempt >= policy.max_retries:
                    raise DownloadError(f"image download failed: {type(exc).__name__}") from None
                error = exc
            delay = _retry.backoff_delay(attempt, policy, self.rng)
            logger.debug("download failed (%s); retrying in %.2f s", error, delay)
            await asyncio.sleep(delay)
        raise DownloadError("image download failed")  # pragma: no cover
