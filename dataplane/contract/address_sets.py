"""Remote security groups' member flows, rendered from address sets.

A rule whose remote is a security group matches by conjunction: dimension 1 is
the group's member addresses, dimension 2 the local port and protocol (see
controller/compiler/secgroups.py). The controller sends the members as data
(``AddressSet`` in agent.proto, OVN's address sets): adding a member to a group
every host references is one small record per host, not a compiled flow group
per host. Both sides render the same flows with this module: the agent to
install them, the controller's whole-host compile to trace and test them.

Per address one flow per direction, carrying a conjunction action for every
held set containing it (``SG_ADDRESS`` cookie of the address). Two flows with
the same match and different conj ids would share the installer's key (table,
priority, match) and one would silently vanish; merged, they cannot.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.fields import ETH_TYPE_IPV4
from dataplane.contract.flow import Conjunction, Flow, Match
from protos.loom.v1 import agent_pb2

PRIO_CONJ = 90  # every conjunctive flow and conj_id flow of the ACL tables: a conjunction's clauses share one priority

# Direction -> (ACL table, the field a member address is matched in).
_REMOTE_MATCH = {"egress": (p.EGRESS_ACL, "ipv4_dst"), "ingress": (p.INGRESS_ACL, "ipv4_src")}


@dataclass
class HeldSet:
    """One address set as a host holds it: its conj id per direction (0: not referenced) and its members."""

    ingress_conj_id: int = 0
    egress_conj_id: int = 0
    addresses: set[str] = field(default_factory=set)


def held_sets(refs: Mapping[str, tuple[int, int]], members: Callable[[str], Collection[str]]) -> dict[str, HeldSet]:
    """The sets a host holds, from its references (group id -> (ingress, egress) conj ids) and their members."""
    return {g: HeldSet(ingress, egress, set(members(g))) for g, (ingress, egress) in refs.items()}


def to_proto(group_id: str, held: HeldSet) -> agent_pb2.AddressSet:
    return agent_pb2.AddressSet(
        group_id=group_id,
        ingress_conj_id=held.ingress_conj_id,
        egress_conj_id=held.egress_conj_id,
        addresses=sorted(held.addresses),
    )


def prefix_match(prefix: str) -> tuple[int, int] | None:
    """(address, netmask) of an IPv4 prefix; None for 0.0.0.0/0 (matches anything)."""
    net = ipaddress.IPv4Network(prefix)
    if net.prefixlen == 0:
        return None
    return int(net.network_address), int(net.netmask)


@lru_cache(maxsize=1 << 17)
def address_cookie(address: str) -> int:
    net = ipaddress.IPv4Network(address)
    return make_cookie(CookieKind.SG_ADDRESS, (net.prefixlen << 32) | int(net.network_address))


@lru_cache(maxsize=1 << 17)
def address_flows(address: str, ingress: tuple[int, ...], egress: tuple[int, ...]) -> tuple[Flow, ...]:
    """The member flows of one address, given the sorted conj ids of the held sets containing it per direction."""
    cookie = address_cookie(address)
    value = prefix_match(address)  # None: 0.0.0.0/0 (an allowed address pair may be that wide)
    flows = []
    for direction, cids in (("egress", egress), ("ingress", ingress)):
        if not cids:
            continue
        acl, remote_field = _REMOTE_MATCH[direction]
        fields: dict[str, int | tuple[int, int]] = {"eth_type": ETH_TYPE_IPV4}
        if value is not None:
            fields[remote_field] = value
        flows.append(Flow(acl, PRIO_CONJ, Match.of(**fields), tuple(Conjunction(c, 1, 2) for c in cids), cookie=cookie))
    return tuple(flows)


def flows_of_address(address: str, containing: Iterable[HeldSet]) -> tuple[Flow, ...]:
    """``address``'s flows given the held sets that contain it."""
    sets = list(containing)
    ingress = tuple(sorted({s.ingress_conj_id for s in sets if s.ingress_conj_id}))
    egress = tuple(sorted({s.egress_conj_id for s in sets if s.egress_conj_id}))
    if not ingress and not egress:
        return ()
    return address_flows(address, ingress, egress)


def render(sets: Mapping[str, HeldSet]) -> dict[str, tuple[Flow, ...]]:
    """Every member flow of the held ``sets`` (group id -> set), by address."""
    by_address: dict[str, list[HeldSet]] = {}
    for held in sets.values():
        for address in held.addresses:
            by_address.setdefault(address, []).append(held)
    out = {}
    for address, containing in by_address.items():
        flows = flows_of_address(address, containing)
        if flows:
            out[address] = flows
    return out
