"""Address classification: which hosts are loopback, which addresses are public. Pure, no I/O.

One place for the question "where does this host live?", asked by the client (a plain-HTTP base
URL warns unless it is loopback), the webhook receiver (the same question for callback URLs) and
downloads (result images are fetched only from public addresses unless allow-listed; see
``HostAllowList``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

import attrs

from .errors import ValidationError

__all__ = [
    "IPAddress",
    "IPNetwork",
    "HostAllowList",
    "ENV_DOWNLOAD_HOSTS",
    "hosts_from_env",
    "ip_literal",
    "is_local_name",
    "is_loopback_host",
    "is_public_address",
    "looks_numeric",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges Python's ``is_global`` counts as global that no image host should be at.
_NOT_PUBLIC = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT (shared address space)
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use IPv4/IPv6 translation
)
# A host whose last label is a number (decimal, octal or hex) is an address in disguise
# ("2130706433", "127.1", "0x7f.1"): no DNS name ends with a numeric label.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_HOSTNAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*"
)


#: The environment variable with comma-separated ``download_hosts``.
ENV_DOWNLOAD_HOSTS = "KETCHUP_DOWNLOAD_HOSTS"


def hosts_from_env(environ: Mapping[str, str]) -> list[str]:
    """The ``download_hosts`` in ``environ`` (``KETCHUP_DOWNLOAD_HOSTS``, comma-separated)."""
    return [
        entry.strip() for entry in environ.get(ENV_DOWNLOAD_HOSTS, "").split(",") if entry.strip()
    ]


def _normal(host: str) -> str:
    return host.strip().rstrip(".").lower()


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells (``[::1]`` brackets and an IPv6 zone allowed), else None."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def looks_numeric(host: str) -> bool:
    """True for a host whose last label is a number: an IPv4 address in a non-canonical form."""
    name = _normal(host)
    return ":" not in name and _NUMERIC_LABEL.fullmatch(name.rsplit(".", 1)[-1]) is not None


def is_local_name(host: str) -> bool:
    """True for ``localhost`` and its subdomains (RFC 6761: they always mean this machine)."""
    name = _normal(host)
    return name == "localhost" or name.endswith(".localhost")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127/8, ``::1``, IPv4-mapped loopback)."""
    if _normal(host) == "localhost":
        return True
    address = ip_literal(host)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_public_address(address: IPAddress) -> bool:
    """True for a globally routable unicast address.

    False for loopback, link-local (169.254/16, fe80::/10), private (10/8, 172.16/12,
    192.168/16), unique-local (fc00::/7), unspecified, multicast, reserved, carrier-grade NAT
    (100.64/10) and documentation ranges; an IPv4 address embedded in IPv6 (mapped, 6to4) is
    judged as itself.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public_address(embedded)
        if address.scope_id:
            return False
    if (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or any(address in network for network in _NOT_PUBLIC)
    ):
        return False
    return address.is_global


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _unmapped(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network as the IPv4 network it maps (``::ffff:10.0.0.0/104``)."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return network


@attrs.frozen
class HostAllowList:
    """Hosts downloads may reach although they are not public (``download_hosts=``).

    Attributes:
        names: Host names allowed whatever they resolve to (lower case, no trailing dot).
        networks: Address ranges allowed whichever name led there (an address is a /32 or /128).
    """

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[object], *, field: str = "download_hosts") -> HostAllowList:
        """Build from host names, addresses and CIDR networks (strings or ``ip_network`` values).

        Raises:
            ValidationError: An entry is neither a host name nor an address or network.
        """
        if isinstance(entries, (str, bytes)):
            raise ValidationError(field, "must be a list of hosts or networks, not one string")
        try:
            items = list(entries)
        except TypeError:
            raise ValidationError(
                field, f"must be a list of hosts or networks, got {type(entries).__name__}"
            ) from None
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for item in items:
            if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                networks.append(item)
                continue
            if isinstance(item, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
                networks.append(ipaddress.ip_network(item))
                continue
            if not isinstance(item, str) or not item.strip():
                raise ValidationError(field, f"entries must be non-empty strings, got {item!r}")
            text = item.strip()
            address = ip_literal(text)
            if address is not None:
                networks.append(ipaddress.ip_network(address))
                continue
            if "/" in text:
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    raise ValidationError(field, f"{text!r} is not a CIDR network") from None
                continue
            name = _normal(text)
            if not _HOSTNAME.fullmatch(name) or looks_numeric(name):
                raise ValidationError(
                    field, f"{text!r} is not a host name, an address or a CIDR network"
                )
            names.add(name)
        return cls(names=frozenset(names), networks=tuple(_unmapped(n) for n in networks))

    def allows_name(self, host: str) -> bool:
        """True if ``host`` is an allowed host name."""
        return _normal(host) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        """True if ``address`` is public or inside an allowed network."""
        plain = address
        if isinstance(address, ipaddress.IPv6Address):
            plain = address.ipv4_mapped or ipaddress.IPv6Address(address.packed)
        return is_public_address(address) or any(
            plain.version == network.version and plain in network for network in self.networks
        )
