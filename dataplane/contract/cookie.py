"""Flow cookies that say why a flow exists.

Layout (64 bits), readable straight from `ovs-ofctl dump-flows`::

    0x4c KK TTTTTTTTTTTT
      |  |  +-- tag of the owning object (48 bits)
      |  +----- kind of the owning object (see CookieKind)
      +-------- 0x4c ("L"): a Loom flow

So ``cookie=0x4c03000000000007`` is owned by the port whose tag is 7
(``loomctl port list`` shows tags). A flow whose cookie lacks the Loom marker was
not installed by Loom.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

LOOM_MARKER = 0x4C
TAG_BITS = 48
TAG_MASK = (1 << TAG_BITS) - 1


class CookieKind(IntEnum):
    PIPELINE = 0x01  # table defaults, not owned by any object (tag 0)
    NETWORK = 0x02  # per-network flows: tunnel classification, flooding
    PORT = 0x03  # per-port logical flows: port security, L2 entry, ARP responder
    PORT_BINDING = 0x04  # rendered by the agent: in_port classification and delivery
    LOCALPORT = 0x05  # rendered by the agent: the DHCP/metadata namespace's port
    ROUTER = 0x06
    SECURITY_GROUP = 0x07  # a referenced remote group's conj_id flow, one direction (tag: group tag * 2 + dir)
    FLOATING_IP = 0x08
    SG_PORT = 0x09  # a port's security-group flows: its conntrack entry and its rules (tag: the port's tag)
    SG_ADDRESS = 0x0A  # remote groups' member flows for one address (tag: prefix length << 32 | IPv4 address)
    # L3, NAT and provider networks (0x07, 0x09-0x0B belong to security groups).
    NEIGHBOR = 0x0C  # a routed port's address -> its MAC and location (tag: the port's)
    PROVIDER = 0x0D  # a flat/VLAN network's physical-bridge classification and egress (tag: the network's)
    EXTERNAL_NEIGHBOR = 0x0E  # rendered by the agent: an external next hop's MAC it resolved (tag: the network's)
    ROUTER_GATEWAY = 0x0F  # a router's external gateway: SNAT, redirection to the gateway host (tag: the router's)
    NETWORK_FLOOD = 0x10  # a network's flooding on one host: its local ports and tunnels to its other hosts


def make_cookie(kind: CookieKind, tag: int = 0) -> int:
    if not 0 <= tag <= TAG_MASK:
        raise ValueError(f"tag {tag} does not fit in a cookie")
    return (LOOM_MARKER << 56) | (int(kind) << TAG_BITS) | tag


def is_loom_cookie(cookie: int) -> bool:
    return (cookie >> 56) == LOOM_MARKER


def split_cookie(cookie: int) -> tuple[CookieKind, int]:
    """Return (kind, tag); ValueError when the cookie is not a Loom cookie."""
    if not is_loom_cookie(cookie):
        raise ValueError(f"cookie {cookie:#x} is not a Loom cookie")
    return CookieKind((cookie >> TAG_BITS) & 0xFF), cookie & TAG_MASK


def describe_cookie(cookie: int) -> str:
    try:
        kind, tag = split_cookie(cookie)
    except ValueError:
        return f"foreign cookie {cookie:#x}"
    if kind is CookieKind.SG_ADDRESS:
        address = ".".join(str((tag >> s) & 0xFF) for s in (24, 16, 8, 0))
        return f"security group members at {address}/{tag >> 32}"
    return kind.name.lower() if kind is CookieKind.PIPELINE else f"{kind.name.lower()} tag {tag}"


def owner_labels(
    networks: Iterable[tuple[int, str]],
    ports: Iterable[tuple[int, str]],
    localports: Iterable[tuple[int, str]] = (),
    *,
    security_groups: Iterable[tuple[int, str]] = (),
    routers: Iterable[tuple[int, str]] = (),
    floating_ips: Iterable[tuple[int, str]] = (),
) -> dict[int, str]:
    """Cookie -> who owns the flow, from (tag, label) pairs of networks, ports, localports, security groups,
    routers and floating IPs.

    A label names the object for people, e.g. ``network blue``; a localport's is the
    label of the network it serves (its flows read "localport of network blue").
    """
    names: dict[int, str] = {make_cookie(CookieKind.PIPELINE): "pipeline"}
    for tag, label in networks:
        names[make_cookie(CookieKind.NETWORK, tag)] = label
        names[make_cookie(CookieKind.NETWORK_FLOOD, tag)] = "flooding of " + label
        names[make_cookie(CookieKind.PROVIDER, tag)] = "provider bridge of " + label
        names[make_cookie(CookieKind.EXTERNAL_NEIGHBOR, tag)] = "external next hop of " + label
    for tag, label in ports:
        names[make_cookie(CookieKind.PORT, tag)] = label
        names[make_cookie(CookieKind.PORT_BINDING, tag)] = "binding of " + label
        names[make_cookie(CookieKind.SG_PORT, tag)] = "security groups of " + label
        names[make_cookie(CookieKind.NEIGHBOR, tag)] = "routing to " + label
    for tag, label in localports:
        names[make_cookie(CookieKind.LOCALPORT, tag)] = "localport of " + label
    for tag, label in security_groups:
        # A referenced remote group's conjunctions, one per direction (conj_id = tag * 2 + direction).
        names[make_cookie(CookieKind.SECURITY_GROUP, tag * 2)] = f"{label} as remote group, ingress rules"
        names[make_cookie(CookieKind.SECURITY_GROUP, tag * 2 + 1)] = f"{label} as remote group, egress rules"
    for tag, label in routers:
        names[make_cookie(CookieKind.ROUTER, tag)] = label
        names[make_cookie(CookieKind.ROUTER_GATEWAY, tag)] = "gateway of " + label
    for tag, label in floating_ips:
        names[make_cookie(CookieKind.FLOATING_IP, tag)] = label
    return names
