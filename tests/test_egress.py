"""Downloads never reach internal hosts (``ketchup_async._egress``): checked after DNS, every hop.

Safety of these tests: the only traffic they send goes to loopback. Internal addresses outside
loopback (10.x, 169.254.x, fd00::...) come from literal URLs or from a fake DNS; a ``Tripwire``
aborts any request to a non-loopback literal and any connection after a fake name resolved to a
non-loopback address, so even a broken guard sends nothing there (and the test fails).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from ketchup_async import DownloadError, ImageResult, RetryPolicy
from ketchup_async._addresses import HostAllowList
from ketchup_async._download import MAX_REDIRECTS, Downloader
from ketchup_async._egress import GuardedResolver
from ketchup_async.testing import make_png

pytestmark = pytest.mark.anyio

PNG = make_png(4, 4, (10, 200, 10))
FAST = RetryPolicy(max_retries=1, base=0.001, cap=0.002)
REFUSED = "is not a public address: downloads from it are refused"


class FakeDNS(AbstractResolver):
    """A resolver answering from a table, recording every name it was asked."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The table's addresses for ``host``."""
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        """Nothing to release."""


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Tripwire:
    """Records requests and resolutions; aborts anything that would leave loopback."""

    def __init__(self, dns: FakeDNS) -> None:
        self.requests: list[str] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._request)
        self.config.on_dns_resolvehost_end.append(self._resolved)
        self.dns = dns

    async def _request(
        self, _: object, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        host = params.url.raw_host or ""
        self.requests.append(host)
        if host not in self.dns.table and not _loopback(host):
            raise AssertionError(f"a request to {host} was about to be sent")

    async def _resolved(
        self, _: object, __: object, params: aiohttp.TraceDnsResolveHostEndParams
    ) -> None:
        addresses = self.dns.table.get(params.host, [])
        if not all(_loopback(a) for a in addresses):
            raise AssertionError(f"{params.host} passed the guard to {addresses}")


DNS_TABLE = {
    "cdn.internal.test": ["10.0.0.1"],
    "metadata.internal.test": ["169.254.169.254"],
    "ula.internal.test": ["fd00::1"],
    "mapped.internal.test": ["::ffff:192.168.1.1"],
    "loop.internal.test": ["127.0.0.2"],
    "images.internal.test": ["127.0.0.2"],
}


@pytest.fixture
def dns() -> FakeDNS:
    """A fake DNS with internal names."""
    return FakeDNS(dict(DNS_TABLE))


@pytest.fixture
def tripwire(dns: FakeDNS) -> Tripwire:
    """The safety net for the fake DNS."""
    return Tripwire(dns)


def _files(folder: Path) -> list[Path]:
    return list(folder.iterdir())


async def _get(
    url: str, dest: Path, dns: FakeDNS, tripwire: Tripwire, allow: list[str] | None = None
) -> Path:
    downloader = Downloader(
        allow=HostAllowList.parse(allow if allow is not None else ["127.0.0.1"]),
        retry=FAST,
        timeout=5.0,
        resolver=dns,
        trace_configs=(tripwire.config,),
    )
    try:
        return await downloader.download(ImageResult(url), dest)
    finally:
        await downloader.aclose()


class Site:
    """An aiohttp app on one loopback address, counting hits."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.hits = 0
        self.base_url = ""
        self.redirect_to = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        name = request.match_info["name"]
        if name == "hop":
            raise web.HTTPFound(self.redirect_to)
        if name == "loop":
            raise web.HTTPFound("/loop")
        if name == "relative":
            raise web.HTTPFound("/png")
        return web.Response(body=PNG, content_type="image/png")


@pytest.fixture
async def sites() -> AsyncIterator[SimpleNamespace]:
    """``public`` (127.0.0.1: the allowed image host) and ``internal`` (127.0.0.2)."""
    runners, made = [], {}
    for label, host in (("public", "127.0.0.1"), ("internal", "127.0.0.2")):
        site = Site(host)
        app = web.Application()
        app.router.add_get("/{name}", site.handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        site.base_url = f"http://{host}:{runner.addresses[0][1]}"
        runners.append(runner)
        made[label] = site
    yield SimpleNamespace(**made)
    for runner in runners:
        await runner.cleanup()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://172.16.5.4/x.png",
        "http://192.168.1.1/x.png",
        "http://100.64.0.1/x.png",
        "http://0.0.0.0/x.png",
        "http://224.0.0.1/x.png",
        "http://240.0.0.1/x.png",
        "http://[fd00::1]/x.png",
        "http://[fe80::1]/x.png",
        "http://[::]/x.png",
        "http://[::1]/x.png",
        "http://[::ffff:10.0.0.1]/x.png",
        "http://[::ffff:127.0.0.2]/x.png",
        "http://localhost:2375/containers/json",
        "http://api.localhost/x.png",
        "http://2130706433/x.png",
        "http://127.1/x.png",
        "http://0x7f000001/x.png",
        "http://127.0.0.2/x.png",
    ],
)
async def test_an_internal_address_is_refused_before_any_request(
    dns: FakeDNS, tripwire: Tripwire, tmp_path: Path, url: str
) -> None:
    """Loopback, private, link-local, unique-local, CGNAT...: refused, nothing sent or resolved."""
    with pytest.raises(DownloadError, match=REFUSED):
        await _get(url, tmp_path / "x", dns, tripwire)
    assert tripwire.requests == []
    assert dns.asked == []
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "name",
    [
        "cdn.internal.test",
        "metadata.internal.test",
        "ula.internal.test",
        "loop.internal.test",
        "mapped.internal.test",
    ],
)
async def test_a_name_resolving_to_an_internal_address_is_refused_after_dns(
    dns: FakeDNS, tripwire: Tripwire, tmp_path: Path, name: str
) -> None:
    """The check runs on the resolved addresses: the name was resolved, nothing connected."""
    with pytest.raises(DownloadError, match=f"'{name}' {REFUSED}"):
        await _get(f"http://{name}/x.png", tmp_path / "x", dns, tripwire)
    assert dns.asked == [name]


async def test_only_public_addresses_of_a_mixed_answer_are_kept() -> None:
    """A name resolving to a public and an internal address connects to the public one only."""
    dns = FakeDNS({"mixed.example": ["93.184.216.34", "10.0.0.1", "fe80::1", "2606:4700::1"]})
    guard = GuardedResolver(HostAllowList(), dns)
    kept = [r["host"] for r in await guard.resolve("mixed.example", 443)]
    assert kept == ["93.184.216.34", "2606:4700::1"]


async def test_redirect_to_an_internal_host_is_refused_and_never_reached(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path
) -> None:
    """A 302 from the allowed image host to 127.0.0.2 is refused; 127.0.0.2 gets no request."""
    sites.public.redirect_to = f"{sites.internal.base_url}/png"
    with pytest.raises(DownloadError, match=f"'127.0.0.2' {REFUSED}"):
        await _get(f"{sites.public.base_url}/hop", tmp_path / "x", dns, tripwire)
    assert sites.internal.hits == 0
    assert sites.public.hits == 1
    assert tripwire.requests == ["127.0.0.1"]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://[fd00::1]:8080/x",
        "http://localhost:6379/",
        "http://loop.internal.test/png",
        "http://cdn.internal.test/png",
    ],
)
async def test_every_redirect_hop_is_checked(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path, target: str
) -> None:
    """A hop to a link-local, unique-local, localhost or internally-resolving host is refused."""
    sites.public.redirect_to = target
    with pytest.raises(DownloadError, match=REFUSED):
        await _get(f"{sites.public.base_url}/hop", tmp_path / "x", dns, tripwire)
    assert [host for host in tripwire.requests if host not in DNS_TABLE] == ["127.0.0.1"]


async def test_a_redirect_to_another_scheme_is_refused(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path
) -> None:
    """A hop to ``file:`` is refused, not followed."""
    sites.public.redirect_to = "file:///etc/passwd"
    with pytest.raises(DownloadError, match="scheme 'file' is not http"):
        await _get(f"{sites.public.base_url}/hop", tmp_path / "x", dns, tripwire)


async def test_redirects_within_allowed_hosts_are_followed(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path
) -> None:
    """A relative redirect on the image host is followed to the image."""
    path = await _get(f"{sites.public.base_url}/relative", tmp_path / "x", dns, tripwire)
    assert path.read_bytes() == PNG
    assert sites.public.hits == 2


async def test_a_redirect_loop_stops_after_the_hop_limit(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path
) -> None:
    """An endless redirect is a DownloadError after MAX_REDIRECTS hops, not retried."""
    with pytest.raises(DownloadError, match=f"more than {MAX_REDIRECTS} redirects"):
        await _get(f"{sites.public.base_url}/loop", tmp_path / "x", dns, tripwire)
    assert sites.public.hits == MAX_REDIRECTS + 1


async def test_the_refusal_does_not_depend_on_the_port_state(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path
) -> None:
    """An open and a closed port of a blocked host give the same error text (no port scan)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        closed = sock.getsockname()[1]
    texts = []
    for url in (f"{sites.internal.base_url}/png", f"http://127.0.0.2:{closed}/png"):
        with pytest.raises(DownloadError) as caught:
            await _get(url, tmp_path / "x", dns, tripwire)
        texts.append(str(caught.value))
    assert texts[0] == texts[1]
    assert sites.internal.hits == 0


@pytest.mark.parametrize("allow", [["127.0.0.2"], ["127.0.0.0/8"], ["::ffff:127.0.0.0/104"]])
async def test_the_allow_list_reaches_an_internal_address(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path, allow: list[str]
) -> None:
    """An address or network in the allow-list is reachable."""
    url = f"{sites.internal.base_url}/png"
    path = await _get(url, tmp_path / "x", dns, tripwire, allow=allow)
    assert path.read_bytes() == PNG
    assert sites.internal.hits == 1


async def test_an_allowed_name_may_resolve_to_an_internal_address(
    dns: FakeDNS, tripwire: Tripwire, sites: SimpleNamespace, tmp_path: Path
) -> None:
    """A host name in the allow-list passes whatever it resolves to; others still do not."""
    port = sites.internal.base_url.rsplit(":", 1)[1]
    allow = ["Images.Internal.Test."]
    path = await _get(
        f"http://images.internal.test:{port}/png", tmp_path / "x", dns, tripwire, allow
    )
    assert path.read_bytes() == PNG
    with pytest.raises(DownloadError, match=REFUSED):
        await _get(f"http://loop.internal.test:{port}/png", tmp_path / "y", dns, tripwire, allow)
    assert sites.internal.hits == 1
