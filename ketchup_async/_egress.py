"""Where downloads may connect: a guarded resolver and a per-hop URL check.

A result URL comes from the server (or from a forged callback), so a download must not become a
way into the caller's network (server-side request forgery). By default it may reach public
addresses only. The check runs after DNS resolution, inside the connection pool's resolver, so
the addresses checked are the addresses connected to (no second lookup an attacker's DNS could
answer differently); a host written as an IP address, which aiohttp does not resolve, is checked
on the URL before the request. Both run for the first request and for every redirect hop.

A refused host gets one fixed message that names it, raised before any connection is attempted,
so its text cannot tell an open port from a closed one.
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from ._addresses import HostAllowList, ip_literal, is_local_name, looks_numeric
from .errors import DownloadError

__all__ = ["GuardedResolver", "check_target", "refusal"]


def refusal(host: str) -> DownloadError:
    """The one error for a host downloads may not reach, whatever its port state."""
    return DownloadError(
        f"image host {host!r} is not a public address: downloads from it are refused "
        "(allow it with download_hosts=)"
    )


def check_target(url: str | URL, allow: HostAllowList) -> URL:
    """Return ``url`` parsed if a download may request it, before any connection.

    Raises:
        DownloadError: Not http(s), no host, ``localhost``, or an IP address that is neither
            public nor allow-listed. A host name is checked later, on its resolved addresses.
    """
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError):
        raise DownloadError("image URL cannot be parsed") from None
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"image URL scheme {parsed.scheme!r} is not http or https")
    host = parsed.raw_host
    if not host:
        raise DownloadError("image URL has no host")
    if allow.allows_name(host):
        return parsed
    address = ip_literal(host)
    if address is not None:
        if not allow.allows_address(address):
            raise refusal(host)
    elif is_local_name(host) or looks_numeric(host):
        raise refusal(host)
    return parsed


class GuardedResolver(AbstractResolver):
    """A resolver that hands the connection pool only addresses downloads may reach.

    Wraps another resolver (aiohttp's default unless given). Addresses that are not public and
    not allow-listed are dropped; a host left with none is refused with ``refusal``. Allowed
    host names pass whatever they resolve to.
    """

    def __init__(self, allow: HostAllowList, inner: AbstractResolver | None = None) -> None:
        """Wrap ``inner`` (owned and closed when it is the default) with the ``allow`` list."""
        self._allow = allow
        self._owns_inner = inner is None
        self._inner: AbstractResolver = inner or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve ``host`` and keep the addresses a download may connect to."""
        if self._allow.allows_name(host):
            return await self._inner.resolve(host, port, family)
        if is_local_name(host) or looks_numeric(host):
            raise refusal(host)
        results = await self._inner.resolve(host, port, family)
        kept = []
        for result in results:
            address = ip_literal(result["host"])
            if address is not None and self._allow.allows_address(address):
                kept.append(result)
        if not kept:
            raise refusal(host)
        return kept

    async def close(self) -> None:
        """Close the wrapped resolver if it is ours."""
        if self._owns_inner:
            await self._inner.close()
