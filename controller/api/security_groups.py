"""Security groups and their rules (Neutron's API), and the security fields of ports.

A group is a named set of allow rules owned by a project; rules are objects of
their own, immutable once created. Every project has a ``default`` group,
created on first use (its first port, or its first listing of groups) with
Neutron's default rules: all egress, and ingress from members of the group
itself. A new group of any other name starts with the all-egress rule.

Validation names the field: a port range only with tcp/udp and min <= max,
ICMP type/code in 0..255 and only with icmp, a remote prefix of the rule's
ethertype, a remote prefix or a remote group but not both, and a rule equal to
one the group has is ALREADY_EXISTS. A group still used by a port, or named
as remote group by another group's rule, cannot be deleted
(FAILED_PRECONDITION naming them); the default group cannot be deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from controller.api import validation as v
from controller.api.core import ApiCore, ResourceApi, new_id
from controller.api.errors import already_exists, failed_precondition, invalid, not_found
from controller.api.masks import UpdateRules
from controller.api.paging import Page, paginate
from controller.model import (
    DEFAULT_SECURITY_GROUP,
    DIRECTIONS,
    AddressPair,
    Port,
    Resource,
    SecurityGroup,
    SecurityGroupRule,
)
from dataplane.common.logs import get_logger

log = get_logger(__name__)

MAX_ADDRESS_PAIRS = 10  # Neutron's max_allowed_address_pair
MAX_DESCRIPTION = 255
PROTOCOL_NAMES = {"tcp": 6, "udp": 17, "icmp": 1}
_NAME_OF = {n: name for name, n in PROTOCOL_NAMES.items()}
_ANY = ("", "any")
_MAX_USERS_NAMED = 5  # users an error message lists before "and N more"

SECURITY_GROUP_RULES = UpdateRules(
    "security_group",
    mutable=frozenset({"name", "description"}),
    immutable=frozenset({"project_id"}),
    output_only=frozenset({"rules"}),
)


# ---------------------------------------------------------------- validation


def protocol(field: str, value: str) -> str:
    """The canonical protocol: "" (any), "tcp", "udp", "icmp" or another IP protocol number as text."""
    text = value.strip().lower()
    if text in _ANY:
        return ""
    if text in PROTOCOL_NAMES:
        return text
    if text.isdigit() and 1 <= int(text) <= 255:
        return _NAME_OF.get(int(text), str(int(text)))
    raise invalid(field, f"{value!r} is not a protocol: tcp, udp, icmp, any, or an IP protocol number 1..255")


def direction(field: str, value: str) -> str:
    if value not in DIRECTIONS:
        raise invalid(field, f"{value!r} must be one of {', '.join(DIRECTIONS)}")
    return value


def ethertype(field: str, value: str) -> str:
    if value in ("", "IPv4"):
        return "IPv4"
    if value == "IPv6":
        raise invalid(field, "IPv6 rules are not supported yet (Loom carries IPv4 only)")
    raise invalid(field, f"{value!r} must be IPv4")


def remote_prefix(field: str, value: str) -> str:
    """A CIDR of the rule's ethertype (IPv4); host bits refused; 0.0.0.0/0 means any, written as ""."""
    if not value:
        return ""
    if ":" in value:
        raise invalid(field, f"{value!r} is an IPv6 prefix; the rule's ethertype is IPv4")
    net = v.cidr(field, value if "/" in value else f"{value}/32")
    return "" if net.prefixlen == 0 else str(net)


def address_pairs(field: str, pairs: Sequence[tuple[str, str]]) -> tuple[AddressPair, ...]:
    """Allowed address pairs: an IPv4 address or CIDR (host bits zero) and an optional unicast MAC."""
    if len(pairs) > MAX_ADDRESS_PAIRS:
        raise invalid(field, f"at most {MAX_ADDRESS_PAIRS} allowed address pairs")
    out: list[AddressPair] = []
    for i, (ip_text, mac_text) in enumerate(pairs):
        name = f"{field}[{i}]"
        if not ip_text:
            raise invalid(f"{name}.ip_address", "is required")
        if ":" in ip_text:
            raise invalid(f"{name}.ip_address", f"{ip_text!r}: IPv6 is not supported")
        net = v.cidr(f"{name}.ip_address", ip_text if "/" in ip_text else f"{ip_text}/32")
        ip = str(net.network_address) if net.prefixlen == 32 else str(net)
        mac = v.mac_address(f"{name}.mac_address", mac_text) if mac_text else ""
        pair = AddressPair(ip, mac)
        if pair in out:
            raise invalid(name, f"{ip} {mac or '(the port MAC)'} is listed twice")
        out.append(pair)
    return tuple(out)


def _users(kind: str, ids: list[str]) -> str:
    shown = ", ".join(ids[:_MAX_USERS_NAMED])
    more = f" and {len(ids) - _MAX_USERS_NAMED} more" if len(ids) > _MAX_USERS_NAMED else ""
    return f"{kind} {shown}{more}"


def _opt_int(field: str, fields: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    if name not in fields or fields[name] is None:
        return None
    value = int(fields[name])
    if not low <= value <= high:
        raise invalid(f"{field}.{name}", f"{value} is not in {low}..{high}")
    return value


def rule_key(rule: SecurityGroupRule) -> tuple[object, ...]:
    """What makes two rules of a group the same rule (everything but ids and the description)."""
    return (
        rule.direction,
        rule.ethertype,
        rule.protocol,
        rule.port_range_min,
        rule.port_range_max,
        rule.icmp_type,
        rule.icmp_code,
        rule.remote_ip_prefix,
        rule.remote_group_id,
    )


def new_rule(group: SecurityGroup, direction: str, **fields: Any) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=new_id(), security_group_id=group.id, project_id=group.project_id, direction=direction, **fields
    )


# ---------------------------------------------------------------- groups


class SecurityGroupResource(ResourceApi):
    """Security group CRUD; the default group of each project."""

    def get(self, group_id: str) -> SecurityGroup:
        return self._get("security_group", group_id)

    def rules_of(self, group_id: str) -> list[SecurityGroupRule]:
        rules = (self.store.get("security_group_rule", rid) for rid in self.core.secgroups.rules_of(group_id))
        return [r for r in rules if isinstance(r, SecurityGroupRule)]

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[SecurityGroup]:
        project = filters.get("project_id") or ""
        if project and self.core.secgroups.default_group(project) is None:
            self.ensure_default(project)  # Neutron: a project's first look at its groups creates "default"
        revision, objs = self.store.snapshot("security_group")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def ensure_default(self, project_id: str) -> SecurityGroup:
        """The project's default group, created (and committed) if it has none yet."""
        with self.lock:
            group, puts = self.default_group(project_id)
            if puts:
                self._commit(puts)
                log.info("default security group created", security_group_id=group.id, project_id=project_id)
            return group

    def default_group(self, project_id: str) -> tuple[SecurityGroup, list[Resource]]:
        """The project's default group, and what to commit to create it (empty when it exists). Hold the lock."""
        existing = self.core.secgroups.default_group(project_id)
        if existing is not None:
            group = self.store.get("security_group", existing)
            if isinstance(group, SecurityGroup):
                return group, []
        group = SecurityGroup(
            id=new_id(), name=DEFAULT_SECURITY_GROUP, description="Default security group", project_id=project_id
        )
        rules = [new_rule(group, "egress"), new_rule(group, "ingress", remote_group_id=group.id)]
        return group, [group, *rules]

    def create(self, fields: Mapping[str, Any]) -> SecurityGroup:
        name = v.text("security_group.name", fields.get("name", ""))
        description = v.text("security_group.description", fields.get("description", ""), MAX_DESCRIPTION)
        project_id = v.text("security_group.project_id", fields.get("project_id", ""))
        with self.lock:
            if name == DEFAULT_SECURITY_GROUP:
                group, puts = self.default_group(project_id)
                if not puts:
                    raise already_exists(
                        "security_group.name", f"project {project_id!r} already has its default group {group.id}"
                    )
                group = dataclasses.replace(group, description=description or group.description)
                puts[0] = group
            else:
                group = SecurityGroup(id=new_id(), name=name, description=description, project_id=project_id)
                puts = [group, new_rule(group, "egress")]  # Neutron: a new group lets everything out
            self._commit(puts)
            log.info("security group created", security_group_id=group.id, name=name, project_id=project_id)
            return self._get("security_group", group.id)

    def update(self, group_id: str, changes: Mapping[str, Any]) -> SecurityGroup:
        SECURITY_GROUP_RULES.check(changes)
        with self.lock:
            group: SecurityGroup = self._get("security_group", group_id)
            updates: dict[str, Any] = {}
            if "name" in changes:
                name = v.text("security_group.name", changes["name"])
                if (group.name == DEFAULT_SECURITY_GROUP) != (name == DEFAULT_SECURITY_GROUP):
                    raise invalid("security_group.name", "a project's default group keeps the name 'default'")
                updates["name"] = name
            if "description" in changes:
                updates["description"] = v.text("security_group.description", changes["description"], MAX_DESCRIPTION)
            new = dataclasses.replace(group, **updates)
            if new != group:
                self._commit([new])
            return self._get("security_group", group_id)

    def delete(self, group_id: str) -> int:
        with self.lock:
            group: SecurityGroup = self._get("security_group", group_id)
            index = self.core.secgroups
            if index.default_group(group.project_id) == group.id:
                raise failed_precondition(
                    f"security group {group_id} is the default group of project {group.project_id!r}; it stays"
                )
            ports = index.ports_of(group_id)
            if ports:
                raise failed_precondition(f"security group {group_id} is used by {_users('port', ports)}")
            own = set(index.rules_of(group_id))
            naming = [r for r in index.rules_naming(group_id) if r not in own]
            if naming:
                groups = list(
                    dict.fromkeys(
                        f"{r.security_group_id} (rule {r.id})"
                        for rid in naming
                        if isinstance(r := self.store.get("security_group_rule", rid), SecurityGroupRule)
                    )
                )
                raise failed_precondition(
                    f"security group {group_id} is the remote group of {_users('security group', groups)}"
                )
            deletes = [("security_group_rule", rid) for rid in index.rules_of(group_id)]
            deletes.append(("security_group", group_id))
            revision = self._commit(deletes=deletes)
            log.info("security group deleted", security_group_id=group_id, rules=len(deletes) - 1, revision=revision)
            return revision


# ---------------------------------------------------------------- rules


class SecurityGroupRuleResource(ResourceApi):
    """Rules: created and deleted, never changed (Neutron's model)."""

    def get(self, rule_id: str) -> SecurityGroupRule:
        return self._get("security_group_rule", rule_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[SecurityGroupRule]:
        revision, objs = self.store.snapshot("security_group_rule")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create(self, fields: Mapping[str, Any]) -> SecurityGroupRule:
        f = "security_group_rule"
        group_id = v.required(f"{f}.security_group_id", fields.get("security_group_id", ""))
        dir_ = direction(f"{f}.direction", fields.get("direction", ""))
        ether = ethertype(f"{f}.ethertype", fields.get("ethertype", ""))
        proto = protocol(f"{f}.protocol", fields.get("protocol", ""))
        pmin = _opt_int(f, fields, "port_range_min", 1, 65535)
        pmax = _opt_int(f, fields, "port_range_max", 1, 65535)
        if pmin is not None or pmax is not None:
            if proto not in ("tcp", "udp"):
                raise invalid(f"{f}.port_range_min", f"a port range needs protocol tcp or udp, not {proto or 'any'}")
            pmin = pmax if pmin is None else pmin
            pmax = pmin if pmax is None else pmax
            assert pmin is not None and pmax is not None
            if pmin > pmax:
                raise invalid(f"{f}.port_range_max", f"{pmax} is below port_range_min {pmin}")
        itype = _opt_int(f, fields, "icmp_type", 0, 255)
        icode = _opt_int(f, fields, "icmp_code", 0, 255)
        if itype is not None or icode is not None:
            if proto != "icmp":
                raise invalid(f"{f}.icmp_type", f"ICMP type and code need protocol icmp, not {proto or 'any'}")
            if itype is None:
                raise invalid(f"{f}.icmp_code", "an ICMP code needs an ICMP type")
        prefix = remote_prefix(f"{f}.remote_ip_prefix", fields.get("remote_ip_prefix", ""))
        remote_group_id = fields.get("remote_group_id", "")
        if fields.get("remote_ip_prefix") and remote_group_id:
            raise invalid(f"{f}.remote_group_id", "remote_ip_prefix and remote_group_id exclude each other")
        description = v.text(f"{f}.description", fields.get("description", ""), MAX_DESCRIPTION)
        with self.lock:
            group: SecurityGroup = self._get("security_group", group_id, f"{f}.security_group_id")
            if remote_group_id:
                self._get("security_group", remote_group_id, f"{f}.remote_group_id")
            rule = new_rule(
                group,
                dir_,
                ethertype=ether,
                protocol=proto,
                port_range_min=pmin,
                port_range_max=pmax,
                icmp_type=itype,
                icmp_code=icode,
                remote_ip_prefix=prefix,
                remote_group_id=remote_group_id,
                description=description,
            )
            key = rule_key(rule)
            for rid in self.core.secgroups.rules_of(group.id):
                other = self.store.get("security_group_rule", rid)
                if isinstance(other, SecurityGroupRule) and rule_key(other) == key:
                    raise already_exists(f, f"security group {group.id} already has this rule: {other.id}")
            self._commit([rule])
            log.info(
                "security group rule created",
                rule_id=rule.id,
                security_group_id=group.id,
                direction=dir_,
                protocol=proto or "any",
            )
            return self._get("security_group_rule", rule.id)

    def delete(self, rule_id: str) -> int:
        with self.lock:
            rule: SecurityGroupRule = self._get("security_group_rule", rule_id)
            revision = self._commit(deletes=[("security_group_rule", rule_id)])
            log.info(
                "security group rule deleted",
                rule_id=rule_id,
                security_group_id=rule.security_group_id,
                revision=revision,
            )
            return revision


# ---------------------------------------------------------------- ports


class PortSecurity:
    """The security fields of a port, for the port API: groups, the default group, allowed address pairs."""

    def __init__(self, core: ApiCore, groups: SecurityGroupResource) -> None:
        self.core = core
        self.groups = groups

    def check_groups(self, field: str, ids: Sequence[str], project_id: str) -> tuple[str, ...]:
        """Existing groups of the port's project, each once, in the order given. Hold the lock."""
        out: list[str] = []
        for i, gid in enumerate(ids):
            group = self.core.store.get("security_group", gid) if gid else None
            if not isinstance(group, SecurityGroup):
                raise not_found("security_group", gid, f"{field}[{i}]")
            if group.project_id != project_id:
                raise invalid(
                    f"{field}[{i}]", f"security group {gid} belongs to project {group.project_id!r}, not {project_id!r}"
                )
            if gid not in out:
                out.append(gid)
        return tuple(out)

    def for_new_port(
        self,
        fields: Mapping[str, Any],
        project_id: str,
        device_owner: str,
        port_security: bool,
        defaults_made: dict[str, str] | None = None,
        field: str = "port",
    ) -> tuple[tuple[str, ...], tuple[AddressPair, ...], list[Resource]]:
        """(groups, address pairs, objects to commit with the port: a default group created now). Hold the lock.

        ``defaults_made``: project -> default group id this request already makes (one request can make
        several ports, e.g. an instance's): those are used, not made again; a group made now is added.
        """
        pairs = address_pairs(f"{field}.allowed_address_pairs", fields.get("allowed_address_pairs", ()))
        puts: list[Resource] = []
        made = defaults_made if defaults_made is not None else {}
        if fields.get("security_groups"):
            groups = self.check_groups(f"{field}.security_groups", fields["security_groups"], project_id)
        elif fields.get("no_security_groups") or not port_security or device_owner.startswith("network:"):
            groups = ()
        elif project_id in made:
            groups = (made[project_id],)
        else:
            default, puts = self.groups.default_group(project_id)
            if puts:
                made[project_id] = default.id
            groups = (default.id,)
        if not port_security and groups:
            raise invalid(f"{field}.security_groups", "a port without port security has no security groups")
        if not port_security and pairs:
            raise invalid(f"{field}.allowed_address_pairs", "a port without port security has no allowed address pairs")
        return groups, pairs, puts

    def check_update(self, port: Port, changes: Mapping[str, Any], updates: dict[str, Any]) -> None:
        """Add the security fields of an update to ``updates``, refusing a port security off with groups left."""
        if "security_groups" in changes:
            updates["security_groups"] = self.check_groups(
                "port.security_groups", changes["security_groups"], port.project_id
            )
        if "allowed_address_pairs" in changes:
            updates["allowed_address_pairs"] = address_pairs(
                "port.allowed_address_pairs", changes["allowed_address_pairs"]
            )
        secure = updates.get("port_security_enabled", port.port_security_enabled)
        if secure:
            return
        for name, what in (("security_groups", "security groups"), ("allowed_address_pairs", "allowed address pairs")):
            if not updates.get(name, getattr(port, name)):
                continue
            if name in changes:
                raise invalid(f"port.{name}", f"a port without port security has no {what}")
            raise failed_precondition(
                f"port.port_security_enabled: port {port.id} still has {what}; clear port.{name} in the same update"
            )
