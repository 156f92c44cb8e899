"""Field validation: canonical values for good input, INVALID_ARGUMENT naming the field for bad input."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api import validation as v
from controller.api.errors import ApiError, ErrorCode
from controller.ipam import ip_to_int

NET = ipaddress.IPv4Network("10.0.0.0/24")


def invalid_message(fn, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as info:
        fn(*args)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    return info.value.message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10.0.0.0/33", "is not a valid IPv4 CIDR"),
        ("10.0.0.0", "is not a valid IPv4 CIDR"),
        ("10.0.0/24", "is not a valid IPv4 CIDR"),
        ("10.0.0.0/255.255.255.0", "is not a valid IPv4 CIDR"),
        ("fd00::/64", "is not a valid IPv4 CIDR"),
        ("300.0.0.0/24", "is not a valid IPv4 CIDR"),
        ("10.0.0.5/24", "has host bits set (did you mean 10.0.0.0/24?)"),
        ("10.0.0.0/31", "prefix length must be between 1 and 30"),
        ("0.0.0.0/0", "prefix length must be between 1 and 30"),
        ("", "is required"),
    ],
)
def test_subnet_cidr_rejects(value: str, reason: str) -> None:
    message = invalid_message(v.subnet_cidr, "subnet.cidr", value)
    assert message.startswith("subnet.cidr: ")
    assert reason in message


def test_subnet_cidr_message_matches_the_issue() -> None:
    assert invalid_message(v.subnet_cidr, "subnet.cidr", "10.0.0.0/33") == (
        "subnet.cidr: '10.0.0.0/33' is not a valid IPv4 CIDR"
    )


def test_subnet_cidr_accepts() -> None:
    assert str(v.subnet_cidr("subnet.cidr", "192.168.128.0/17")) == "192.168.128.0/17"


def test_ip_version() -> None:
    assert v.ip_version("subnet.ip_version", 0) == 4
    assert v.ip_version("subnet.ip_version", 4) == 4
    assert "not supported" in invalid_message(v.ip_version, "subnet.ip_version", 6)
    assert "unknown ip_version 5" in invalid_message(v.ip_version, "subnet.ip_version", 5)


def test_gateway() -> None:
    assert v.gateway("subnet.gateway_ip", "10.0.0.254", NET) == ip_to_int("10.0.0.254")
    assert v.gateway("subnet.gateway_ip", "", NET) is None
    assert "outside 10.0.0.0/24" in invalid_message(v.gateway, "subnet.gateway_ip", "10.0.1.1", NET)
    assert "network or broadcast" in invalid_message(v.gateway, "subnet.gateway_ip", "10.0.0.255", NET)
    assert "network or broadcast" in invalid_message(v.gateway, "subnet.gateway_ip", "10.0.0.0", NET)
    assert "not a valid IPv4 address" in invalid_message(v.gateway, "subnet.gateway_ip", "10.0.0.1.1", NET)


def test_pools_default_and_explicit() -> None:
    gw = ip_to_int("10.0.0.1")
    assert v.allocation_pools("p", [], NET, gw) == [(ip_to_int("10.0.0.2"), ip_to_int("10.0.0.254"))]
    pools = v.allocation_pools("p", [("10.0.0.100", "10.0.0.110"), ("10.0.0.10", "10.0.0.20")], NET, gw)
    assert pools == [
        (ip_to_int("10.0.0.10"), ip_to_int("10.0.0.20")),
        (ip_to_int("10.0.0.100"), ip_to_int("10.0.0.110")),
    ]


@pytest.mark.parametrize(
    ("pools", "reason"),
    [
        ([("10.0.0.20", "10.0.0.10")], "is after end"),
        ([("10.0.0.200", "10.0.1.10")], "not inside the host addresses"),
        ([("10.0.0.0", "10.0.0.10")], "not inside the host addresses"),
        ([("10.0.0.250", "10.0.0.255")], "not inside the host addresses"),
        ([("10.0.0.1", "10.0.0.10")], "includes the gateway 10.0.0.1"),
        ([("10.0.0.10", "10.0.0.20"), ("10.0.0.20", "10.0.0.30")], "overlaps"),
        ([("10.0.0.x", "10.0.0.20")], "allocation_pools[0].start: '10.0.0.x' is not a valid IPv4 address"),
    ],
)
def test_pools_rejected(pools: list[tuple[str, str]], reason: str) -> None:
    message = invalid_message(v.allocation_pools, "subnet.allocation_pools", pools, NET, ip_to_int("10.0.0.1"))
    assert reason in message and message.startswith("subnet.allocation_pools")


@pytest.mark.parametrize(
    ("mac", "canonical"),
    [("FA:16:3E:00:00:01", "fa:16:3e:00:00:01"), ("02-00-00-00-00-01", "02:00:00:00:00:01")],
)
def test_mac_accepted_and_canonical(mac: str, canonical: str) -> None:
    assert v.mac_address("port.mac_address", mac) == canonical


@pytest.mark.parametrize(
    ("mac", "reason"),
    [
        ("fa:16:3e:00:00", "is not a valid MAC"),
        ("fa:16:3e:00:00:0g", "is not a valid MAC"),
        ("fa:16:3e-00:00:01", "is not a valid MAC"),
        ("fa163e000001", "is not a valid MAC"),
        ("01:00:5e:00:00:01", "is a multicast MAC"),
        ("ff:ff:ff:ff:ff:ff", "is a multicast MAC"),
        ("00:00:00:00:00:00", "all-zero"),
    ],
)
def test_mac_rejected(mac: str, reason: str) -> None:
    message = invalid_message(v.mac_address, "port.mac_address", mac)
    assert message.startswith("port.mac_address: ") and reason in message


def test_dns_and_routes() -> None:
    assert v.dns_nameservers("d", ["8.8.8.8", "1.1.1.1"]) == ("8.8.8.8", "1.1.1.1")
    assert "twice" in invalid_message(v.dns_nameservers, "d", ["8.8.8.8", "8.8.8.8"])
    assert "at most 5" in invalid_message(v.dns_nameservers, "d", [f"1.1.1.{i}" for i in range(6)])
    assert "d[1]" in invalid_message(v.dns_nameservers, "d", ["8.8.8.8", "dns.example"])
    assert v.host_routes("r", [("0.0.0.0/0", "10.0.0.1")]) == (("0.0.0.0/0", "10.0.0.1"),)
    assert "r[0].destination" in invalid_message(v.host_routes, "r", [("10.0.0.1/24", "10.0.0.1")])
    assert "r[0].nexthop" in invalid_message(v.host_routes, "r", [("10.1.0.0/16", "gw")])
    assert "twice" in invalid_message(v.host_routes, "r", [("10.1.0.0/16", "10.0.0.1"), ("10.1.0.0/16", "10.0.0.2")])


def test_segmentation() -> None:
    assert v.segmentation("network", "vxlan", 0, "") == (0, "")
    assert v.segmentation("network", "vlan", 100, "physnet1") == (100, "physnet1")
    assert v.segmentation("network", "flat", 0, "physnet1") == (0, "physnet1")
    assert "network.physical_network" in invalid_message(v.segmentation, "network", "vxlan", 5, "physnet1")
    assert "VNI 16777216" in invalid_message(v.segmentation, "network", "vxlan", 2**24, "")
    assert "VLAN id 4095" in invalid_message(v.segmentation, "network", "vlan", 4095, "p")
    assert "VLAN id 0" in invalid_message(v.segmentation, "network", "vlan", 0, "p")
    assert "network.physical_network: is required" in invalid_message(v.segmentation, "network", "flat", 0, "")
    assert "must be 0" in invalid_message(v.segmentation, "network", "flat", 3, "p")
    assert "unknown network type 'gre'" in invalid_message(v.network_type, "network.network_type", "gre")
    assert v.network_type("network.network_type", "") == "vxlan"


def test_mtu() -> None:
    assert v.mtu("network.mtu", 0, 1450) == 1450
    assert v.mtu("network.mtu", 1400, 1450) == 1400
    assert "above the 1450" in invalid_message(v.mtu, "network.mtu", 1500, 1450)
    assert "below the IPv4 minimum" in invalid_message(v.mtu, "network.mtu", 60, 1450)


def test_hostnames() -> None:
    assert v.sanitize_hostname("My VM #1", "x") == "my-vm-1"
    assert v.sanitize_hostname("--web_server--", "x") == "web-server"
    assert v.sanitize_hostname("###", "instance-1234") == "instance-1234"
    long = v.sanitize_hostname("a" * 62 + "-b" * 10, "x")
    assert len(long) <= 63 and not long.endswith("-")
    assert v.hostname("instance.hostname", "Web-1") == "web-1"
    assert "not a valid host name" in invalid_message(v.hostname, "instance.hostname", "web_1")
    assert "not a valid host name" in invalid_message(v.hostname, "instance.hostname", "-web")
    assert "not a valid host name" in invalid_message(v.hostname, "instance.hostname", "a" * 64)


def test_user_data_keys_and_metadata() -> None:
    assert v.user_data("u", b"\x00" * 65536) == b"\x00" * 65536
    assert "65537 bytes" in invalid_message(v.user_data, "instance.user_data", b"x" * 65537)
    assert v.public_keys("k", {"b": "ssh-ed25519 AAAA b\n", "a": "ssh-rsa AAAA a"}) == (
        ("a", "ssh-rsa AAAA a"),
        ("b", "ssh-ed25519 AAAA b"),
    )
    assert "is empty" in invalid_message(v.public_keys, "k", {"a": " "})
    assert "one line" in invalid_message(v.public_keys, "k", {"a": "ssh-rsa A\nssh-rsa B"})
    assert "empty key" in invalid_message(v.string_map, "m", {"": "x"}, 10, 10)
    assert "longer than 10" in invalid_message(v.string_map, "m", {"k": "x" * 11}, 10, 10)
    assert "at most 1 entries" in invalid_message(v.string_map, "m", {"a": "1", "b": "2"}, 1, 10)


def test_text() -> None:
    assert v.text("network.name", "blue net") == "blue net"
    assert "longer than 255" in invalid_message(v.text, "network.name", "x" * 256)
    assert "control characters" in invalid_message(v.text, "network.name", "a\nb")


VALIDATORS = [
    lambda s: v.subnet_cidr("f", s),
    lambda s: v.cidr("f", s),
    lambda s: v.ipv4("f", s),
    lambda s: v.gateway("f", s, NET),
    lambda s: v.mac_address("f", s),
    lambda s: v.hostname("f", s),
    lambda s: v.network_type("f", s),
    lambda s: v.text("f", s),
    lambda s: v.allocation_pools("f", [(s, s)], NET, None),
    lambda s: v.host_routes("f", [(s, s)]),
]

ADDRESSY = st.text(alphabet="0123456789./:-abcdefABCDEFx ", max_size=24)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, len(VALIDATORS) - 1), st.one_of(ADDRESSY, st.text(max_size=40)))
def test_validators_only_ever_raise_invalid_argument(which: int, text: str) -> None:
    try:
        VALIDATORS[which](text)
    except ApiError as exc:
        assert exc.code is ErrorCode.INVALID_ARGUMENT
        assert exc.message.startswith("f")
