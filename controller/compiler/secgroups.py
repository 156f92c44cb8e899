"""Security groups in conntrack and conjunction: the flows of tables 15/20/21 (egress) and 55/60/61 (ingress).

Semantics (Neutron's OVS firewall, OVN's ACLs):

* Every bound VIF port with port security enabled is *filtered*: its IP
  packets go through conntrack in the port's own zone (its OpenFlow port
  number, unique per host) on the way out (``egress_ct``) and on the way in
  (``ingress_ct``). Overlapping tenants never share conntrack state.
* ``egress_acl`` / ``ingress_acl`` judge them: ``+inv`` drops; replies
  (``+est+rpl``) and related packets (``+rel``, ICMP errors) pass unless the
  connection's ``ct_mark`` blocked bit is set; every *request-direction*
  packet (``+new``, or ``+est`` and not a reply) is judged by the current
  rules, so changing rules changes what an open connection may do at once.
  Allowed: on to ``*_accept``, which commits a new connection and clears the
  blocked bit of an old one. Not allowed: dropped; an established connection
  is also committed with the blocked bit, so its replies drop too (cut both
  ways). No conntrack entry of any other connection is touched.
* Exempt whatever the rules say (as in Neutron): ARP (never tracked), DHCP
  requests out and DHCP replies in (never tracked), and the metadata service
  (TCP to 169.254.169.254:80, committed so its replies pass).
* A destination port that is not filtered sees no conntrack state at all:
  ``ingress_ct`` clears what the source port's zone (or a router's) left.
* Rules with a remote group use conjunctive matches: dimension 1 is the
  group's member addresses (fixed IPs and allowed address pairs of its
  ports), shared by every local port whose rules reference the group in that
  direction; dimension 2 is the local port's tag with the protocol and port
  range. The conj id is the remote group's tag and the direction, so a host
  holds one member flow per address however many local ports and rules use
  it, and only hosts with such a port hold it at all.

Groups of flows (``GroupKey``) and their cookies:

* ``("sg-port", port id)`` on the port's host: its two conntrack entries,
  its rules and its dimension-2 flows (``SG_PORT``, the port's tag).
* ``("sg-remote", "<group>/<direction>")`` on hosts referencing it: the
  conj_id flow (``SECURITY_GROUP``, group tag * 2 + direction).
* The member flows are not compiled per host: a host whose rules reference a
  group holds the group's *address set* (``address_set_refs``: which groups,
  with which conj ids), the members go to its agent as data, and the agent
  renders ONE flow per address and direction with a conjunction action for
  every held set containing it (``SG_ADDRESS``; dataplane/contract/address_sets.py).
  A port joining the default group every host references is then one small
  record per host, and the distributor sends the same one to every holder.
  For a whole-host compile (tracing, tests) ``address_groups`` renders them
  as groups ``("sg-address", "a.b.c.d/len")``. Dimension-2 flows of one port
  are merged like the member flows (same match, one flow).
* ``("host", "secgroups")``: the guards, exemptions and commits, the same
  on every host (pipeline cookie, tag 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from controller.compiler.feature import HOST_KIND, Feature, GroupKey, HostGroups, touch
from controller.compiler.sg_index import (
    SecGroupIndex,
    canonical_prefix,
    filtered,
    remote_refs_of_port,
)
from controller.compiler.topology import Topology, is_vif_port
from controller.model import DIRECTIONS, Port, Resource, SecurityGroup, SecurityGroupRule
from dataplane.common.constants import METADATA_IP, METADATA_PORT
from dataplane.contract import address_sets
from dataplane.contract import pipeline as p
from dataplane.contract.address_sets import PRIO_CONJ, address_cookie, prefix_match
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.fields import ETH_TYPE_IPV4, IP_PROTO_ICMP, IP_PROTO_TCP, IP_PROTO_UDP
from dataplane.contract.flow import Action, Conjunction, Ct, CtClear, Flow, Match, SetField

# ct_state bits (ovs-fields(7)).
CS_NEW = 0x01
CS_EST = 0x02
CS_REL = 0x04
CS_RPL = 0x08
CS_INV = 0x10
CS_TRK = 0x20
CT_MARK_BLOCKED = 0x1

# Priorities in the ACL tables (20, 60): guards above rules above the default drops.
PRIO_INVALID = 1010
PRIO_REPLY_RELATED = 1000
PRIO_BLOCKED_RELATED = 990
PRIO_BLOCKED_REPLY = 989
PRIO_METADATA = 900
PRIO_RULE = 100
PRIO_BLOCK_ESTABLISHED = 10
PRIO_DROP_TRACKED = 5
# In the ct tables (15, 55) and the accept tables (21, 61).
PRIO_DHCP = 60
PRIO_PORT_CT = 50
PRIO_CT_CLEAR = 1
PRIO_COMMIT = 100

PROTOCOL_NUMBERS = {"tcp": IP_PROTO_TCP, "udp": IP_PROTO_UDP, "icmp": IP_PROTO_ICMP}
_DIRECTION_BIT = {"ingress": 0, "egress": 1}
# Per direction: (ct table, ACL table, accept table, port register, remote address field, next stage).
_TABLES = {
    "egress": (p.EGRESS_CT, p.EGRESS_ACL, p.EGRESS_ACCEPT, p.REG_SRC_PORT, "ipv4_dst", p.ARP_RESPONDER),
    "ingress": (p.INGRESS_CT, p.INGRESS_ACL, p.INGRESS_ACCEPT, p.REG_DST_PORT, "ipv4_src", p.DELIVER),
}

# A rule as the flows see it: (direction, IP protocol or 0, port min, port max, ICMP type, ICMP code,
# remote prefix or "", conj id or 0). -1 stands for "any" in the integer slots (so specs sort).
RuleSpec = tuple[str, int, int, int, int, int, str, int]


def protocol_number(protocol: str) -> int:
    """0 for any; the number of a named or numeric protocol."""
    if not protocol:
        return 0
    return PROTOCOL_NUMBERS.get(protocol) or int(protocol)


def conj_id(group: SecurityGroup, direction: str) -> int:
    return group.tag * 2 + _DIRECTION_BIT[direction]


def remote_key(group_id: str, direction: str) -> GroupKey:
    return ("sg-remote", f"{group_id}/{direction}")


def port_range_masks(low: int, high: int) -> list[tuple[int, int]]:
    """Cover ``low..high`` with (value, mask) pairs of a 16-bit port; [] means every port."""
    if low <= 1 and high >= 0xFFFF:
        return []
    out = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        out.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return out


def rule_spec(index: SecGroupIndex, rule: SecurityGroupRule) -> RuleSpec | None:
    """The flow-relevant part of a rule; None when it cannot apply (IPv6, or a remote group not known yet)."""
    if rule.ethertype != "IPv4":
        return None
    cid = 0
    if rule.remote_group_id:
        remote = index.groups.get(rule.remote_group_id)
        if remote is None:
            return None
        cid = conj_id(remote, rule.direction)
    proto = protocol_number(rule.protocol)
    lo, hi, itype, icode = -1, -1, -1, -1
    if proto in (IP_PROTO_TCP, IP_PROTO_UDP) and rule.port_range_min is not None:
        lo = rule.port_range_min
        hi = rule.port_range_max if rule.port_range_max is not None else lo
    if proto == IP_PROTO_ICMP and rule.icmp_type is not None:
        itype = rule.icmp_type
        icode = rule.icmp_code if rule.icmp_code is not None else -1
    prefix = canonical_prefix(rule.remote_ip_prefix) if rule.remote_ip_prefix else ""
    return (rule.direction, proto, lo, hi, itype, icode, prefix, cid)


def _l4_matches(spec: RuleSpec) -> list[dict[str, int | tuple[int, int]]]:
    """The match fields of a rule besides the port and the remote side, one dict per flow."""
    _, proto, lo, hi, itype, icode, _, _ = spec
    base: dict[str, int | tuple[int, int]] = {"eth_type": ETH_TYPE_IPV4}
    if proto:
        base["ip_proto"] = proto
    if proto in (IP_PROTO_TCP, IP_PROTO_UDP) and lo >= 0:
        field = "tcp_dst" if proto == IP_PROTO_TCP else "udp_dst"
        masks = port_range_masks(lo, hi)
        if masks:
            return [{**base, field: vm} for vm in masks]
    if proto == IP_PROTO_ICMP and itype >= 0:
        base["icmpv4_type"] = itype
        if icode >= 0:
            base["icmpv4_code"] = icode
    return [base]


@lru_cache(maxsize=1 << 15)
def _port_flows(tag: int, zone: int, specs: tuple[RuleSpec, ...]) -> tuple[Flow, ...]:
    cookie = make_cookie(CookieKind.SG_PORT, tag)
    flows: list[Flow] = []
    direct: dict[tuple[int, Match], int] = {}  # (table, match) -> goto
    conj: dict[tuple[int, Match], set[int]] = {}
    for direction in DIRECTIONS:
        ct_table, acl, accept, reg, _, _ = _TABLES[direction]
        flows.append(
            Flow(
                ct_table,
                PRIO_PORT_CT,
                Match.of(**{reg: tag, "eth_type": ETH_TYPE_IPV4}),
                (SetField(p.REG_CT_ZONE, zone), Ct(zone=zone, table=acl)),
                cookie=cookie,
            )
        )
    for spec in specs:
        direction, prefix, cid = spec[0], spec[6], spec[7]
        _, acl, accept, reg, remote_field, _ = _TABLES[direction]
        remote = prefix_match(prefix) if prefix else None
        for fields in _l4_matches(spec):
            fields[reg] = tag
            if cid:
                conj.setdefault((acl, Match.of(**fields)), set()).add(cid)
                continue
            if remote is not None:
                fields[remote_field] = remote
            direct[(acl, Match.of(**fields))] = accept
    for (table, match), goto in sorted(direct.items(), key=_flow_order):
        flows.append(Flow(table, PRIO_RULE, match, goto=goto, cookie=cookie))
    for (table, match), cids in sorted(conj.items(), key=_flow_order):
        actions: tuple[Action, ...] = tuple(Conjunction(c, 2, 2) for c in sorted(cids))
        flows.append(Flow(table, PRIO_CONJ, match, actions, cookie=cookie))
    return tuple(flows)


def _flow_order(item: tuple[tuple[int, Match], object]) -> tuple[int, str]:
    (table, match), _ = item
    return table, match.text()


def port_flows(topo: Topology, port_id: str, host: str) -> tuple[Flow, ...]:
    """A filtered port's conntrack entries, rule flows and dimension-2 flows, on its own host only."""
    port = topo.ports.get(port_id)
    if port is None or not is_vif_port(port) or port.binding_host_id != host or not filtered(port):
        return ()
    if not port.binding_ofport:
        return ()
    index = topo.secgroups
    specs = {s for r in index.port_rules(port) if (s := rule_spec(index, r)) is not None}
    return _port_flows(port.tag, port.binding_ofport, tuple(sorted(specs)))


def remote_flows(topo: Topology, key: str, host: str) -> tuple[Flow, ...]:
    group_id, _, direction = key.rpartition("/")
    index = topo.secgroups
    group = index.groups.get(group_id)
    if group is None or direction not in _DIRECTION_BIT or not index.ref_count(group_id, direction, host):
        return ()
    return _remote_flow(conj_id(group, direction), direction)


@lru_cache(maxsize=1 << 14)
def _remote_flow(cid: int, direction: str) -> tuple[Flow, ...]:
    _, acl, accept, _, _, _ = _TABLES[direction]
    cookie = make_cookie(CookieKind.SECURITY_GROUP, cid)
    return (Flow(acl, PRIO_CONJ, Match.of(conj_id=cid), goto=accept, cookie=cookie),)


def address_set_refs(topo: Topology, host: str) -> dict[str, tuple[int, int]]:
    """The address sets ``host`` holds: remote group id -> (ingress conj id, egress conj id), 0 where that
    direction is not referenced there. Their members go to the agent as data (``AddressSet``)."""
    index = topo.secgroups
    out: dict[str, tuple[int, int]] = {}
    for group_id, direction in index.referenced_on(host):
        group = index.groups.get(group_id)
        if group is None:
            continue
        ingress, egress = out.get(group_id, (0, 0))
        cid = conj_id(group, direction)
        out[group_id] = (cid, egress) if direction == "ingress" else (ingress, cid)
    return out


def address_groups(topo: Topology, host: str) -> dict[GroupKey, tuple[Flow, ...]]:
    """The member flows the agent of ``host`` renders from its address sets, as groups ``("sg-address", cidr)``
    (for a whole-host compile: tracing, tests)."""
    held = address_sets.held_sets(address_set_refs(topo, host), topo.secgroups.addresses_of)
    rendered = address_sets.render(held)
    return {("sg-address", address): flows for address, flows in rendered.items()}


@lru_cache(maxsize=1)
def host_flows() -> tuple[Flow, ...]:
    """The same on every host: conntrack guards, exemptions, commits."""
    c = make_cookie(CookieKind.PIPELINE, SecGroupsFeature.number)
    ip = {"eth_type": ETH_TYPE_IPV4}
    flows = [
        # DHCP requests leave untracked; DHCP replies arrive untracked (Neutron exempts both).
        Flow(
            p.EGRESS_CT,
            PRIO_DHCP,
            Match.of(**ip, ip_proto=IP_PROTO_UDP, udp_src=68, udp_dst=67),
            goto=p.EGRESS_ACL,
            cookie=c,
        ),
        Flow(
            p.INGRESS_CT,
            PRIO_DHCP,
            Match.of(**ip, ip_proto=IP_PROTO_UDP, udp_src=67, udp_dst=68),
            (CtClear(),),
            goto=p.INGRESS_ACL,
            cookie=c,
        ),
        # A destination without port security is judged by no zone: forget the source's (or a router's).
        Flow(p.INGRESS_CT, PRIO_CT_CLEAR, Match(), (CtClear(),), goto=p.INGRESS_ACL, cookie=c),
        # The metadata service works whatever the egress rules say; committed, so its replies pass.
        Flow(
            p.EGRESS_ACL,
            PRIO_METADATA,
            Match.of(**ip, ip_proto=IP_PROTO_TCP, ipv4_dst=METADATA_IP, tcp_dst=METADATA_PORT),
            goto=p.EGRESS_ACCEPT,
            cookie=c,
        ),
    ]
    for direction in DIRECTIONS:
        _, acl, accept, _, _, nxt = _TABLES[direction]
        flows += [
            Flow(acl, PRIO_INVALID, Match.of(ct_state=(CS_TRK | CS_INV, CS_TRK | CS_INV)), cookie=c),
            Flow(
                acl,
                PRIO_REPLY_RELATED,
                Match.of(ct_state=(CS_TRK | CS_REL, CS_TRK | CS_REL), ct_mark=(0, CT_MARK_BLOCKED)),
                goto=nxt,
                cookie=c,
            ),
            Flow(
                acl,
                PRIO_REPLY_RELATED,
                Match.of(ct_state=(CS_TRK | CS_EST | CS_RPL, CS_TRK | CS_EST | CS_RPL), ct_mark=(0, CT_MARK_BLOCKED)),
                goto=nxt,
                cookie=c,
            ),
            Flow(acl, PRIO_BLOCKED_RELATED, Match.of(ct_state=(CS_TRK | CS_REL, CS_TRK | CS_REL)), cookie=c),
            Flow(acl, PRIO_BLOCKED_REPLY, Match.of(ct_state=(CS_TRK | CS_RPL, CS_TRK | CS_RPL)), cookie=c),
            # An established request no rule allows any more: block the connection (replies too), drop.
            Flow(
                acl,
                PRIO_BLOCK_ESTABLISHED,
                Match.of(**ip, ct_state=(CS_TRK | CS_EST, CS_TRK | CS_EST)),
                (Ct(commit=True, zone_field=p.REG_CT_ZONE, actions=(SetField("ct_mark", CT_MARK_BLOCKED),)),),
                cookie=c,
            ),
            Flow(acl, PRIO_DROP_TRACKED, Match.of(ct_state=(CS_TRK, CS_TRK)), cookie=c),
            Flow(
                accept,
                PRIO_COMMIT,
                Match.of(**ip, ct_state=(CS_TRK | CS_NEW, CS_TRK | CS_NEW)),
                (Ct(commit=True, zone_field=p.REG_CT_ZONE),),
                goto=nxt,
                cookie=c,
            ),
            Flow(
                accept,
                PRIO_COMMIT,
                Match.of(**ip, ct_state=(CS_TRK | CS_EST, CS_TRK | CS_EST), ct_mark=(CT_MARK_BLOCKED, CT_MARK_BLOCKED)),
                (Ct(commit=True, zone_field=p.REG_CT_ZONE, actions=(SetField("ct_mark", 0),)),),
                goto=nxt,
                cookie=c,
            ),
        ]
    return tuple(flows)


class SecGroupsFeature(Feature):
    """Security groups: per-port conntrack zones, stateful allow rules, remote groups by conjunction."""

    name = p.SECGROUPS
    group_kinds = ("sg-port", "sg-remote", "sg-address")  # "sg-address": rendered from address sets, see above
    number = 2
    shapes_host_specs = False  # rules and members are flows only: no tunnel peer, no router

    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        kind, obj_id = key
        if kind == HOST_KIND:
            return host_flows()
        if kind == "sg-port":
            return port_flows(topo, obj_id, host)
        if kind == "sg-remote":
            return remote_flows(topo, obj_id, host)
        return address_groups(topo, host).get(key, ())

    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        kind, obj_id = key
        if kind == HOST_KIND:
            return make_cookie(CookieKind.PIPELINE, self.number)
        if kind == "sg-port":
            port = topo.ports.get(obj_id)
            return make_cookie(CookieKind.SG_PORT, port.tag) if port else None
        if kind == "sg-remote":
            group_id, _, direction = obj_id.rpartition("/")
            group = topo.secgroups.groups.get(group_id)
            if group is None or direction not in _DIRECTION_BIT:
                return None
            return make_cookie(CookieKind.SECURITY_GROUP, conj_id(group, direction))
        return address_cookie(obj_id)

    def host_groups(self, topo: Topology, host: str) -> Iterable[GroupKey]:
        yield (HOST_KIND, self.name)
        for port_id in topo.vif_ports_by_host.get(host, {}):
            yield ("sg-port", port_id)
        for group_id, direction in topo.secgroups.referenced_on(host):
            yield remote_key(group_id, direction)

    # ------------------------------------------------------------ dependencies

    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        out: HostGroups = {}
        for obj in (old, new):
            if isinstance(obj, Port):
                _port_affects(topo, obj, out)
            elif isinstance(obj, SecurityGroupRule):
                _rule_affects(topo, obj, out)
            elif isinstance(obj, SecurityGroup):
                _group_affects(topo, obj.id, out)
        return out


def _touch_remote(out: HostGroups, host: str, group_id: str, direction: str) -> None:
    """``host`` starts or stops referencing (group, direction): its conj_id flow (and its address sets, which
    the distributor recomputes for every host it touches)."""
    touch(out, host, remote_key(group_id, direction))


def _port_affects(topo: Topology, port: Port, out: HostGroups) -> None:
    if not is_vif_port(port):
        return
    host = port.binding_host_id
    touch(out, host, ("sg-port", port.id))
    if not filtered(port):
        return
    index = topo.secgroups
    held = _counted(topo.ports.get(port.id), port)
    # As a member, it changes its groups' address sets: the index notes that, and the distributor sends the
    # change to every host holding them (SecGroupIndex.take_member_changes).
    # As a referrer: where it alone makes its host reference a group, the group's flows come or go there.
    for (group_id, direction), n in remote_refs_of_port(index, port).items():
        if index.ref_count(group_id, direction, host) - (n if held else 0) == 0:
            _touch_remote(out, host, group_id, direction)


def _counted(held: Port | None, port: Port) -> bool:
    """Whether the index counts ``port``'s contribution: the topology holds a version of it that is the same in
    everything the index reads. (Not plain equality: the distributor skips status-only updates, so the
    topology's copy of a port may be older than the event's, in status and stages only.)"""
    return held is not None and _index_view(held) == _index_view(port)


def _index_view(port: Port) -> tuple[object, ...]:
    return (
        port.binding_host_id,
        port.device_owner,
        port.port_security_enabled,
        port.security_groups,
        port.fixed_ips,
        port.allowed_address_pairs,
    )


def _rule_affects(topo: Topology, rule: SecurityGroupRule, out: HostGroups) -> None:
    index = topo.secgroups
    stored = index.rules.get(rule.id)
    held = stored is not None and (stored.security_group_id, stored.direction, stored.remote_group_id) == (
        rule.security_group_id,
        rule.direction,
        rule.remote_group_id,
    )
    ports_on: dict[str, int] = {}
    for port in index.ports_by_group.get(rule.security_group_id, {}).values():
        touch(out, port.binding_host_id, ("sg-port", port.id))
        ports_on[port.binding_host_id] = ports_on.get(port.binding_host_id, 0) + 1
    if rule.remote_group_id:
        for host, n in ports_on.items():
            if index.ref_count(rule.remote_group_id, rule.direction, host) - (n if held else 0) == 0:
                _touch_remote(out, host, rule.remote_group_id, rule.direction)


def _group_affects(topo: Topology, group_id: str, out: HostGroups) -> None:
    """A group's tag names its conjunctions: whatever uses them (nothing, while the API keeps its promises)."""
    index = topo.secgroups
    for direction in DIRECTIONS:
        for host in index.hosts_referencing(group_id, direction):
            _touch_remote(out, host, group_id, direction)
    for rule in index.rules_by_remote.get(group_id, {}).values():
        for port in index.ports_by_group.get(rule.security_group_id, {}).values():
            touch(out, port.binding_host_id, ("sg-port", port.id))


# ---------------------------------------------------------------- explaining flows (loomctl trace)

# Why a packet ends in a host-wide drop of an ACL table, by priority.
DROP_REASONS = {
    PRIO_INVALID: "conntrack finds it invalid (+inv): no connection it could start or belong to",
    PRIO_BLOCKED_RELATED: "its connection is blocked: the rule that allowed it was removed",
    PRIO_BLOCKED_REPLY: "its connection is blocked: the rule that allowed it was removed",
    PRIO_BLOCK_ESTABLISHED: "no rule of the port's security groups allows it any more: its connection is now "
    "blocked both ways",
    PRIO_DROP_TRACKED: "no rule of the port's security groups allows it (default deny)",
}


def rules_behind(topo: Topology, flow: Flow) -> list[SecurityGroupRule]:
    """The rules a port's rule flow (``SG_PORT`` cookie, priority PRIO_RULE or PRIO_CONJ) was compiled from."""
    if flow.priority not in (PRIO_RULE, PRIO_CONJ) or flow.table not in (p.EGRESS_ACL, p.INGRESS_ACL):
        return []
    direction = "egress" if flow.table == p.EGRESS_ACL else "ingress"
    reg = _TABLES[direction][3]
    tag_field = flow.match.get(reg)
    if tag_field is None:
        return []
    port = next((q for q in topo.ports.values() if q.tag == tag_field.value), None)
    if port is None:
        return []
    index = topo.secgroups
    out = []
    for rule in index.port_rules(port):
        spec = rule_spec(index, rule)
        if spec is None or spec[0] != direction:
            continue
        remote_field = _TABLES[direction][4]
        remote = prefix_match(spec[6]) if spec[6] else None
        for fields in _l4_matches(spec):
            fields[reg] = port.tag
            if remote is not None and not spec[7]:
                fields[remote_field] = remote
            if Match.of(**fields) == flow.match and bool(spec[7]) == (flow.priority == PRIO_CONJ):
                out.append(rule)
                break
    return out
