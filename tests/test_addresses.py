"""Address classification (``ketchup_async._addresses``): pure, no network."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async import ValidationError
from ketchup_async._addresses import (
    HostAllowList,
    hosts_from_env,
    ip_literal,
    is_local_name,
    is_loopback_host,
    is_public_address,
    looks_numeric,
)

NOT_PUBLIC = [
    "127.0.0.1",
    "127.0.0.2",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "fec0::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:0a00:0001::1",
    "2001:db8::1",
    "64:ff9b:1::a00:1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("text", NOT_PUBLIC)
def test_internal_addresses_are_not_public(text: str) -> None:
    """Loopback, private, link-local, unique-local, CGNAT, multicast, reserved...: not public."""
    address = ip_literal(text)
    assert address is not None
    assert not is_public_address(address)


@pytest.mark.parametrize("text", PUBLIC)
def test_internet_addresses_are_public(text: str) -> None:
    """Globally routable unicast addresses (an IPv4-mapped one too) are public."""
    address = ip_literal(text)
    assert address is not None
    assert is_public_address(address)


@given(st.ip_addresses() | st.ip_addresses(v=4).map(lambda a: ipaddress.ip_address(f"::ffff:{a}")))
def test_public_never_includes_a_special_range(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """Public implies global and no special range (an embedded IPv4 address judged as itself)."""
    if isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address.sixtofour or address
    if is_public_address(address):
        assert address.is_global
        assert not any(
            (address.is_loopback, address.is_private, address.is_multicast, address.is_reserved)
        )
        assert not any((address.is_link_local, address.is_unspecified))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.9", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhostx", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    """localhost and loopback addresses are loopback; nothing else is."""
    assert is_loopback_host(host) is expected


def test_localhost_names_and_numeric_forms() -> None:
    """``*.localhost`` is local; hosts ending in a numeric label are addresses in disguise."""
    assert [is_local_name(h) for h in ("api.localhost", "localhost.", "localhost.example")] == [
        True,
        True,
        False,
    ]
    assert all(looks_numeric(h) for h in ("2130706433", "127.1", "0x7f.0x1"))
    assert not any(looks_numeric(h) for h in ("cdn.example.com", "1.example"))


def test_the_allow_list_parses_names_addresses_and_networks() -> None:
    """Names are normalised; addresses become single-address networks; mapped ones IPv4."""
    allow = HostAllowList.parse(
        ["CDN.internal.", "127.0.0.2", "10.0.0.0/8", "[fd00::1]", "::ffff:192.168.0.0/112"]
    )
    assert allow.names == frozenset({"cdn.internal"})
    assert allow.allows_name("cdn.Internal")
    for text in ("127.0.0.2", "10.9.8.7", "fd00::1", "192.168.3.4", "::ffff:10.0.0.1", "8.8.8.8"):
        assert allow.allows_address(ipaddress.ip_address(text)), text
    for text in ("127.0.0.3", "fd00::2", "169.254.169.254"):
        assert not allow.allows_address(ipaddress.ip_address(text)), text


@pytest.mark.parametrize(
    "entries", [["http://cdn"], ["cdn:8080"], ["10.0.0.0/33"], ["127.1"], [""], [None], "cdn", 7]
)
def test_a_bad_allow_list_is_a_validation_error(entries: object) -> None:
    """URLs, ports, bad networks, numeric forms, empty entries, a lone string: ValidationError."""
    with pytest.raises(ValidationError) as caught:
        HostAllowList.parse(entries)  # type: ignore[arg-type]
    assert caught.value.field == "download_hosts"


def test_hosts_from_env() -> None:
    """``KETCHUP_DOWNLOAD_HOSTS`` is a comma-separated list; blanks are skipped."""
    assert hosts_from_env({"KETCHUP_DOWNLOAD_HOSTS": " a.test, 10.0.0.0/8,,"}) == [
        "a.test",
        "10.0.0.0/8",
    ]
    assert hosts_from_env({}) == []
