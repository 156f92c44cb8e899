"""Field validation: parse user input into canonical values or raise INVALID_ARGUMENT naming the field.

Every function takes the field's full name (``subnet.gateway_ip``) so the error
says exactly what is wrong: ``subnet.gateway_ip: '10.1.0.1' is outside 10.0.0.0/24``.
Parsing is strict: IPv4 in dotted-quad form only, CIDRs with a prefix length,
MACs as six colon- or dash-separated hex octets.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Sequence

from controller.api.errors import invalid
from controller.ipam import MIN_MTU, VLAN_MAX, VLAN_MIN, VNI_MAX, VNI_MIN, bounds, default_pools, int_to_ip
from controller.model import NETWORK_TYPES, PORT_STATUSES

MAX_NAME = 255
MAX_DNS_NAMESERVERS = 5
MAX_HOST_ROUTES = 20
MAX_USER_DATA = 64 * 1024
MAX_METADATA_ITEMS = 128
MAX_PUBLIC_KEYS = 32
MAX_PUBLIC_KEY = 16 * 1024

_CIDR_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def text(field: str, value: str, max_len: int = MAX_NAME) -> str:
    """A free-form name or id: bounded, without control characters."""
    if len(value) > max_len:
        raise invalid(field, f"longer than {max_len} characters")
    if _CONTROL_RE.search(value):
        raise invalid(field, "contains control characters")
    return value


def required(field: str, value: str) -> str:
    if not value:
        raise invalid(field, "is required")
    return value


def ipv4(field: str, value: str) -> int:
    """A dotted-quad IPv4 address, as an integer."""
    try:
        return int(ipaddress.IPv4Address(value))
    except (ValueError, TypeError):
        raise invalid(field, f"{value!r} is not a valid IPv4 address") from None


def cidr(field: str, value: str, min_prefix: int = 0, max_prefix: int = 32) -> ipaddress.IPv4Network:
    """An IPv4 network in a.b.c.d/len form whose host bits are zero."""
    if not _CIDR_RE.match(value):
        raise invalid(field, f"{value!r} is not a valid IPv4 CIDR")
    try:
        iface = ipaddress.IPv4Interface(value)
    except (ValueError, TypeError):
        raise invalid(field, f"{value!r} is not a valid IPv4 CIDR") from None
    net = iface.network
    if iface.ip != net.network_address:
        raise invalid(field, f"{value!r} has host bits set (did you mean {net}?)")
    if not min_prefix <= net.prefixlen <= max_prefix:
        raise invalid(field, f"{value!r}: the prefix length must be between {min_prefix} and {max_prefix}")
    return net


def subnet_cidr(field: str, value: str) -> ipaddress.IPv4Network:
    # /31 and /32 leave no room for a gateway and a host; /0 would swallow every address.
    return cidr(field, required(field, value), min_prefix=1, max_prefix=30)


def ip_version(field: str, value: int) -> int:
    if value in (0, 4):
        return 4
    if value == 6:
        raise invalid(field, "IPv6 subnets are not supported yet")
    raise invalid(field, f"unknown ip_version {value}; must be 4")


def gateway(field: str, value: str | None, net: ipaddress.IPv4Network) -> int | None:
    """None: no gateway (present and empty). Absent is resolved by the caller (first usable)."""
    if not value:
        return None
    ip = ipv4(field, value)
    first, last = bounds(net)
    if not first <= ip <= last:
        raise invalid(field, f"{value!r} is outside {net}")
    if ip in (first, last):
        raise invalid(field, f"{value!r} is the network or broadcast address of {net}")
    return ip


def allocation_pools(
    field: str, pools: Sequence[tuple[str, str]], net: ipaddress.IPv4Network, gw: int | None
) -> list[tuple[int, int]]:
    """Pools inside the subnet's host range, disjoint, not holding the gateway. Empty: the default."""
    if not pools:
        return default_pools(net, gw)
    first, last = bounds(net)
    ranges = []
    for i, (start_text, end_text) in enumerate(pools):
        name = f"{field}[{i}]"
        start = ipv4(f"{name}.start", start_text)
        end = ipv4(f"{name}.end", end_text)
        if start > end:
            raise invalid(name, f"start {start_text} is after end {end_text}")
        if start <= first or end >= last:
            raise invalid(name, f"{start_text}-{end_text} is not inside the host addresses of {net}")
        if gw is not None and start <= gw <= end:
            raise invalid(name, f"{start_text}-{end_text} includes the gateway {int_to_ip(gw)}")
        ranges.append((start, end))
    ranges.sort()
    for (s1, e1), (s2, e2) in itertools.pairwise(ranges):
        if s2 <= e1:
            raise invalid(field, f"{int_to_ip(s1)}-{int_to_ip(e1)} overlaps {int_to_ip(s2)}-{int_to_ip(e2)}")
    return ranges


def dns_nameservers(field: str, values: Sequence[str]) -> tuple[str, ...]:
    if len(values) > MAX_DNS_NAMESERVERS:
        raise invalid(field, f"at most {MAX_DNS_NAMESERVERS} name servers")
    out = [int_to_ip(ipv4(f"{field}[{i}]", v)) for i, v in enumerate(values)]
    if len(set(out)) != len(out):
        raise invalid(field, "lists a name server twice")
    return tuple(out)


def host_routes(field: str, routes: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    if len(routes) > MAX_HOST_ROUTES:
        raise invalid(field, f"at most {MAX_HOST_ROUTES} host routes")
    out = []
    for i, (destination, nexthop) in enumerate(routes):
        dest = cidr(f"{field}[{i}].destination", destination)
        hop = ipv4(f"{field}[{i}].nexthop", nexthop)
        out.append((str(dest), int_to_ip(hop)))
    destinations = [d for d, _ in out]
    if len(set(destinations)) != len(destinations):
        raise invalid(field, "lists a destination twice")
    return tuple(out)


def mac_address(field: str, value: str) -> str:
    """A unicast MAC in canonical form (lowercase, colon-separated)."""
    if not _MAC_RE.match(value):
        raise invalid(field, f"{value!r} is not a valid MAC address")
    octets = [int(x, 16) for x in re.split("[:-]", value)]
    if octets[0] & 1:
        raise invalid(field, f"{value!r} is a multicast MAC address")
    if not any(octets):
        raise invalid(field, f"{value!r} is the all-zero MAC address")
    return ":".join(f"{o:02x}" for o in octets)


def network_type(field: str, value: str) -> str:
    value = value or "vxlan"
    if value not in NETWORK_TYPES:
        raise invalid(field, f"unknown network type {value!r}; must be one of {', '.join(NETWORK_TYPES)}")
    return value


def segmentation(kind: str, network_type: str, segmentation_id: int, physical_network: str) -> tuple[int, str]:
    """Check the segment fields of a network; 0 for a VXLAN network means "allocate"."""
    physical_network = text(f"{kind}.physical_network", physical_network)
    if network_type == "vxlan":
        if physical_network:
            raise invalid(f"{kind}.physical_network", "must be empty for a vxlan network")
        if segmentation_id and not VNI_MIN <= segmentation_id <= VNI_MAX:
            raise invalid(f"{kind}.segmentation_id", f"VNI {segmentation_id} is not in {VNI_MIN}..{VNI_MAX}")
    elif network_type == "vlan":
        required(f"{kind}.physical_network", physical_network)
        if not VLAN_MIN <= segmentation_id <= VLAN_MAX:
            raise invalid(f"{kind}.segmentation_id", f"VLAN id {segmentation_id} is not in {VLAN_MIN}..{VLAN_MAX}")
    else:  # flat
        required(f"{kind}.physical_network", physical_network)
        if segmentation_id:
            raise invalid(f"{kind}.segmentation_id", "must be 0 for a flat network")
    return segmentation_id, physical_network


def external_network(field: str, network_type: str) -> None:
    """Only provider (flat/VLAN) networks can be external: their traffic leaves through a bridge mapping."""
    if network_type not in ("flat", "vlan"):
        raise invalid(field, f"a {network_type} network cannot be external; use a flat or vlan network")


def mtu(field: str, value: int, maximum: int) -> int:
    """0: the largest the network can carry."""
    if value == 0:
        return maximum
    if value < MIN_MTU:
        raise invalid(field, f"{value} is below the IPv4 minimum of {MIN_MTU}")
    if value > maximum:
        raise invalid(field, f"{value} is above the {maximum} this network can carry over the underlay")
    return value


def hostname(field: str, value: str) -> str:
    """A DNS label (RFC 1123): letters, digits and inner hyphens, at most 63; returned lowercase."""
    lowered = value.lower()
    if not _LABEL_RE.match(lowered):
        raise invalid(field, f"{value!r} is not a valid host name (a DNS label: a-z, 0-9, inner '-', <= 63)")
    return lowered


def sanitize_hostname(name: str, fallback: str) -> str:
    """A DNS label derived from a display name; ``fallback`` when nothing usable is left."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    label = re.sub(r"-{2,}", "-", label).strip("-")[:63].rstrip("-")
    return label or fallback


def user_data(field: str, value: bytes) -> bytes:
    if len(value) > MAX_USER_DATA:
        raise invalid(field, f"{len(value)} bytes is more than the {MAX_USER_DATA} allowed")
    return value


def string_map(field: str, items: dict[str, str], max_items: int, max_value: int) -> tuple[tuple[str, str], ...]:
    if len(items) > max_items:
        raise invalid(field, f"at most {max_items} entries")
    out = []
    for key in sorted(items):
        if not key:
            raise invalid(field, "has an empty key")
        text(f"{field}[{key!r}]", key)
        value = items[key]
        if len(value) > max_value:
            raise invalid(f"{field}[{key!r}]", f"longer than {max_value} characters")
        out.append((key, value))
    return tuple(out)


def public_keys(field: str, keys: dict[str, str]) -> tuple[tuple[str, str], ...]:
    out = string_map(field, keys, MAX_PUBLIC_KEYS, MAX_PUBLIC_KEY)
    for name, key in out:
        if not key.strip():
            raise invalid(f"{field}[{name!r}]", "is empty")
        if "\n" in key.strip():
            raise invalid(f"{field}[{name!r}]", "must be one line (an OpenSSH public key)")
    return tuple((name, key.strip()) for name, key in out)


def port_status(field: str, value: str) -> str:
    if value not in PORT_STATUSES:
        raise invalid(field, f"unknown status {value!r}; must be one of {', '.join(PORT_STATUSES)}")
    return value
