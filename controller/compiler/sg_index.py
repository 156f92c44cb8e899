"""Security groups, indexed for the compiler: rules per group, member addresses, and who references whom where.

:class:`SecGroupIndex` lives inside :class:`~controller.compiler.topology.Topology`
(``topo.secgroups``) and is updated by it, so it always agrees with the ports
the topology holds. It answers, in O(1) or O(answer):

* the rules of a group, and the rules whose remote group is a given group;
* the filtered ports of a group (bound VIF ports with port security enabled)
  and the addresses its members contribute (fixed IPs and allowed address
  pairs, as canonical CIDRs), counted so that two members with the same
  address (overlapping tenants) or a port listing it twice keep it alive;
* per remote group and direction, on which hosts a local port has a rule
  that references it, counted as (local port, rule) pairs: a host needs the
  group's member-address flows exactly while that count is above zero.

Updates are order-independent (a rule may arrive before or after the ports of
its group, a group before or after its rules), which is what loading a store
in any kind order, or replaying events, needs.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Collection

from controller.model import Port, SecurityGroup, SecurityGroupRule

# (remote group id, direction)
RefKey = tuple[str, str]


def canonical_prefix(text: str) -> str:
    """``10.0.0.5`` -> ``10.0.0.5/32``; ``10.0.0.0/24`` stays. The key form of every member address."""
    return str(ipaddress.IPv4Network(text, strict=False))


def port_addresses(port: Port) -> tuple[str, ...]:
    """The addresses a port sends from, as canonical CIDRs: its IPv4 fixed IPs and allowed address pairs."""
    out: dict[str, None] = {}
    for f in port.fixed_ips:
        if ":" not in f.ip_address:
            out[f"{f.ip_address}/32"] = None
    for pair in port.allowed_address_pairs:
        out[canonical_prefix(pair.ip_address)] = None
    return tuple(out)


def filtered(port: Port) -> bool:
    """Whether security groups apply to a (VIF) port: port security on. (No groups then means: drop all IP.)"""
    return port.port_security_enabled


class SecGroupIndex:
    """See the module docstring. Mutated only by the Topology that owns it."""

    def __init__(self) -> None:
        self.groups: dict[str, SecurityGroup] = {}
        self.rules: dict[str, SecurityGroupRule] = {}
        self.rules_by_group: dict[str, dict[str, SecurityGroupRule]] = defaultdict(dict)
        self.rules_by_remote: dict[str, dict[str, SecurityGroupRule]] = defaultdict(dict)
        # group -> filtered VIF ports that list it
        self.ports_by_group: dict[str, dict[str, Port]] = defaultdict(dict)
        # group -> member address -> how many members contribute it
        self.members: dict[str, dict[str, int]] = defaultdict(dict)
        # (remote group, direction) -> host -> (local port, rule) pairs referencing it there; and by host
        self.refs: dict[RefKey, dict[str, int]] = defaultdict(dict)
        self.host_refs: dict[str, dict[RefKey, int]] = defaultdict(dict)
        # group -> address -> whether it was a member when first touched since the last take_member_changes()
        self._member_touched: dict[str, dict[str, bool]] = {}

    # ------------------------------------------------------------ mutation

    def put_group(self, group: SecurityGroup) -> None:
        self.groups[group.id] = group

    def delete_group(self, group_id: str) -> None:
        self.groups.pop(group_id, None)

    def put_rule(self, rule: SecurityGroupRule) -> None:
        self.delete_rule(rule.id)
        self.rules[rule.id] = rule
        self.rules_by_group[rule.security_group_id][rule.id] = rule
        if rule.remote_group_id:
            self.rules_by_remote[rule.remote_group_id][rule.id] = rule
            for port in self.ports_by_group.get(rule.security_group_id, {}).values():
                self._ref(rule.remote_group_id, rule.direction, port.binding_host_id, +1)

    def delete_rule(self, rule_id: str) -> None:
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return
        _pop(self.rules_by_group, rule.security_group_id, rule.id)
        if rule.remote_group_id:
            _pop(self.rules_by_remote, rule.remote_group_id, rule.id)
            for port in self.ports_by_group.get(rule.security_group_id, {}).values():
                self._ref(rule.remote_group_id, rule.direction, port.binding_host_id, -1)

    def add_port(self, port: Port) -> None:
        """A bound VIF port the topology now holds."""
        if not filtered(port):
            return
        addresses = port_addresses(port)
        for group in dict.fromkeys(port.security_groups):
            self.ports_by_group[group][port.id] = port
            for address in addresses:
                self._member(group, address, +1)
            for (remote, direction), n in remote_refs_of_group(self, group).items():
                self._ref(remote, direction, port.binding_host_id, n)

    def remove_port(self, port: Port) -> None:
        """A bound VIF port the topology no longer holds (the object it held)."""
        if not filtered(port):
            return
        addresses = port_addresses(port)
        for group in dict.fromkeys(port.security_groups):
            _pop(self.ports_by_group, group, port.id)
            for address in addresses:
                self._member(group, address, -1)
            for (remote, direction), n in remote_refs_of_group(self, group).items():
                self._ref(remote, direction, port.binding_host_id, -n)

    def _member(self, group: str, address: str, step: int) -> None:
        touched = self._member_touched.setdefault(group, {})
        if address not in touched:
            touched[address] = address in self.members.get(group, ())
        _count(self.members, group, address, step)

    def take_member_changes(self) -> dict[str, tuple[list[str], list[str]]]:
        """Groups whose member addresses changed since the last call: group -> (added, removed)."""
        out = {}
        for group, touched in self._member_touched.items():
            now = self.members.get(group, {})
            added = [a for a, was in touched.items() if not was and a in now]
            removed = [a for a, was in touched.items() if was and a not in now]
            if added or removed:
                out[group] = (added, removed)
        self._member_touched = {}
        return out

    def _ref(self, remote: str, direction: str, host: str, step: int) -> None:
        _count(self.refs, (remote, direction), host, step)
        _count(self.host_refs, host, (remote, direction), step)

    # ------------------------------------------------------------ queries

    def ref_count(self, remote: str, direction: str, host: str) -> int:
        return self.refs.get((remote, direction), {}).get(host, 0)

    def hosts_referencing(self, remote: str, direction: str) -> tuple[str, ...]:
        return tuple(self.refs.get((remote, direction), ()))

    def addresses_of(self, group: str) -> Collection[str]:
        """A group's member addresses now: the content of its address set wherever it is held."""
        return self.members.get(group, {}).keys()

    def referenced_on(self, host: str) -> tuple[RefKey, ...]:
        return tuple(self.host_refs.get(host, ()))

    def port_rules(self, port: Port) -> list[SecurityGroupRule]:
        """Every rule of every group of the port (a rule of a group listed twice counts once)."""
        return [r for g in dict.fromkeys(port.security_groups) for r in self.rules_by_group.get(g, {}).values()]


def remote_refs_of_group(index: SecGroupIndex, group: str) -> Counter[RefKey]:
    """How many rules of ``group`` reference each (remote group, direction)."""
    out: Counter[RefKey] = Counter()
    for rule in index.rules_by_group.get(group, {}).values():
        if rule.remote_group_id:
            out[(rule.remote_group_id, rule.direction)] += 1
    return out


def remote_refs_of_port(index: SecGroupIndex, port: Port) -> Counter[RefKey]:
    """What one filtered port contributes to ``index.refs`` on its host."""
    out: Counter[RefKey] = Counter()
    if filtered(port):
        for group in dict.fromkeys(port.security_groups):
            out.update(remote_refs_of_group(index, group))
    return out


def _count(counts: dict, outer: object, inner: object, step: int) -> None:
    by_outer = counts[outer]
    n = by_outer.get(inner, 0) + step
    if n > 0:
        by_outer[inner] = n
    else:
        by_outer.pop(inner, None)
    if not by_outer:
        del counts[outer]


def _pop(table: dict, outer: str, inner: str) -> None:
    by_outer = table.get(outer)
    if by_outer is not None:
        by_outer.pop(inner, None)
        if not by_outer:
            del table[outer]
