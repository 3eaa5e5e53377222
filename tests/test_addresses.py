"""Address classification (``ketchup_async._addresses``): pure, no network."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketchup_async import ValidationError
from ketchup_async._addresses import (
    ENV_DOWNLOAD_HOSTS,
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


def test_a_trailing_x_is_part_of_the_name() -> None:
    """Normalising strips spaces and trailing dots only, then lowers the case."""
    assert not is_loopback_host("LOCALHOSTX")
    assert is_loopback_host(" LocalHost.. ")
    assert HostAllowList.parse(["CDN.BOX"]).names == frozenset({"cdn.box"})


@pytest.mark.parametrize("text", ["[::1", "::1]", "[nope]", ""])
def test_ip_literal_brackets_only_as_a_pair(text: str) -> None:
    """Brackets are removed only when both are there."""
    assert ip_literal(text) is None
    assert ip_literal("[::1]") == ipaddress.ip_address("::1")
    assert ip_literal(" 10.0.0.1 ") == ipaddress.ip_address("10.0.0.1")


@pytest.mark.parametrize(
    ("host", "numeric"),
    [
        ("cdn.example.1", True),
        ("a.b.0x1F", True),
        ("a.b.0X", True),
        ("a.1.b", False),
        ("::ffff:127.0.0.1", False),
        ("1:2", False),
        ("cdn.example.1.", True),
        ("0xg", False),
    ],
)
def test_looks_numeric_reads_the_last_label_only(host: str, numeric: bool) -> None:
    """Only the last label counts; anything with a colon is not an IPv4 form."""
    assert looks_numeric(host) is numeric


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ("cdn", "must be a list of hosts or networks, not one string"),
        (b"cdn", "must be a list of hosts or networks, not one string"),
        (7, "must be a list of hosts or networks, got int"),
        ([""], "entries must be non-empty strings, got ''"),
        (["  "], "entries must be non-empty strings, got '  '"),
        ([None], "entries must be non-empty strings, got None"),
        (["10.0.0.0/33"], "'10.0.0.0/33' is not a CIDR network"),
        (["http://cdn"], "'http://cdn' is not a CIDR network"),
        (["cdn:8080"], "'cdn:8080' is not a host name, an address or a CIDR network"),
        (["127.1"], "'127.1' is not a host name, an address or a CIDR network"),
        (["-cdn.test"], "'-cdn.test' is not a host name, an address or a CIDR network"),
        (["cdn-.test"], "'cdn-.test' is not a host name, an address or a CIDR network"),
        (
            ["a" * 64 + ".test"],
            f"'{'a' * 64}.test' is not a host name, an address or a CIDR network",
        ),
    ],
)
def test_each_bad_allow_list_entry_names_its_problem(entries: object, problem: str) -> None:
    """Every refusal says what is wrong, naming the entry."""
    with pytest.raises(ValidationError) as caught:
        HostAllowList.parse(entries)  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.problem) == ("download_hosts", problem)


def test_allow_list_errors_name_the_given_field() -> None:
    """parse(field=...) names the caller's field."""
    with pytest.raises(ValidationError) as caught:
        HostAllowList.parse([""], field="--download-host")
    assert caught.value.field == "--download-host"


@pytest.mark.parametrize("name", ["a" * 63 + ".test", "a", "my_cdn.internal", "a-b.c-d", "x1.y2"])
def test_host_name_shapes_accepted(name: str) -> None:
    """Labels up to 63 characters, with dashes inside and underscores, are host names."""
    assert HostAllowList.parse([name]).names == frozenset({name})


def test_allow_list_takes_address_and_network_objects_in_any_order() -> None:
    """ip_network and ip_address values are kept as networks; later entries are read too."""
    net = ipaddress.ip_network("10.0.0.0/8")
    allow = HostAllowList.parse([net, ipaddress.ip_address("fd00::1"), "a.test", "10.1.2.3/16"])
    assert allow.networks == (
        net,
        ipaddress.ip_network("fd00::1/128"),
        ipaddress.ip_network("10.1.0.0/16"),
    )
    assert allow.names == frozenset({"a.test"})


def test_a_mapped_network_is_stored_as_its_ipv4_network() -> None:
    """::ffff:192.168.0.0/112 is 192.168.0.0/16, exactly."""
    allow = HostAllowList.parse(["::ffff:192.168.0.0/112", "fd00::/8"])
    assert allow.networks == (
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("fd00::/8"),
    )


def test_an_empty_allow_list() -> None:
    """No entries allow only public addresses and no names."""
    allow = HostAllowList.parse([])
    assert (allow.names, allow.networks) == (frozenset(), ())
    assert HostAllowList() == allow
    assert not allow.allows_name("localhost")
    assert not allow.allows_address(ipaddress.ip_address("10.0.0.1"))
    assert allow.allows_address(ipaddress.ip_address("8.8.8.8"))


@pytest.mark.parametrize(
    ("text", "public"),
    [
        ("100.63.255.255", True),
        ("100.64.0.0", False),
        ("100.127.255.255", False),
        ("100.128.0.0", True),
        ("192.0.0.255", False),
        ("192.0.1.1", True),
        ("64:ff9b:1::", False),
        ("64:ff9b:1:ffff::1", False),
        ("2a00:1450::1", True),
        ("fe80::1%1", False),
        ("2606:4700::1111%1", False),
    ],
)
def test_special_range_edges(text: str, public: bool) -> None:
    """CGNAT, IETF-assignment and translation ranges end exactly where they should."""
    address = ip_literal(text)
    assert address is not None
    assert is_public_address(address) is public


def test_an_ipv6_address_with_a_zone_is_allowed_only_by_its_network() -> None:
    """A scoped address matches an allowed network by its address alone."""
    allow = HostAllowList.parse(["fe80::/10"])
    assert allow.allows_address(ipaddress.ip_address("fe80::1%eth0"))
    assert not allow.allows_address(ipaddress.ip_address("fec0::1%eth0"))
    assert not allow.allows_address(ipaddress.ip_address("::ffff:10.0.0.1"))


def test_an_ipv4_network_never_matches_an_ipv6_address() -> None:
    """Networks are matched within their own IP version."""
    allow = HostAllowList.parse(["0.0.0.0/0"])
    assert allow.allows_address(ipaddress.ip_address("10.0.0.1"))
    assert allow.allows_address(ipaddress.ip_address("::ffff:10.0.0.1"))
    assert not allow.allows_address(ipaddress.ip_address("fd00::1"))


def test_the_environment_variable_name() -> None:
    """download_hosts come from KETCHUP_DOWNLOAD_HOSTS."""
    assert ENV_DOWNLOAD_HOSTS == "KETCHUP_DOWNLOAD_HOSTS"
    assert hosts_from_env({"KETCHUP_DOWNLOAD_HOST": "a.test"}) == []
    assert hosts_from_env({"KETCHUP_DOWNLOAD_HOSTS": "a.test"}) == ["a.test"]
