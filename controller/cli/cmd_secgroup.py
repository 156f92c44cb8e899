"""``loomctl security-group ...`` and ``loomctl security-group-rule ...``: Neutron's security groups.

    loomctl security-group create web --project demo
    loomctl security-group-rule create web --ingress --protocol tcp --dst-port 80 --remote-ip 0.0.0.0/0
    loomctl security-group-rule create web --ingress --protocol tcp --dst-port 5432 --remote-group db
    loomctl port update vm1 --security-group web --security-group default

Groups are named by id or name (``--project`` narrows a name, e.g. each
project's ``default``); rules by id.
"""

from __future__ import annotations

import argparse

from google.protobuf.field_mask_pb2 import FieldMask

from controller.cli.client import Cli
from controller.cli.output import Lines, print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2, security_pb2

GROUP_COLUMNS = [
    ("ID", lambda g: g.id),
    ("NAME", lambda g: g.name),
    ("PROJECT", lambda g: g.project_id),
    ("RULES", lambda g: len(g.rules)),
    ("DESCRIPTION", lambda g: g.description),
]


def _ports(r: resources_pb2.SecurityGroupRule) -> str:
    if r.HasField("port_range_min"):
        if r.port_range_min == r.port_range_max:
            return str(r.port_range_min)
        return f"{r.port_range_min}:{r.port_range_max}"
    if r.HasField("icmp_type"):
        return f"type {r.icmp_type}" + (f" code {r.icmp_code}" if r.HasField("icmp_code") else "")
    return "any"


def _remote(r: resources_pb2.SecurityGroupRule) -> str:
    if r.remote_group_id:
        return f"group {r.remote_group_id}"
    return r.remote_ip_prefix or "0.0.0.0/0"


RULE_COLUMNS = [
    ("ID", lambda r: r.id),
    ("GROUP", lambda r: r.security_group_id),
    ("DIRECTION", lambda r: r.direction),
    ("ETHERTYPE", lambda r: r.ethertype),
    ("PROTOCOL", lambda r: r.protocol or "any"),
    ("PORTS", _ports),
    ("REMOTE", _remote),
    ("DESCRIPTION", lambda r: r.description),
]


def rule_line(r: resources_pb2.SecurityGroupRule) -> str:
    side = "from" if r.direction == "ingress" else "to"
    return f"{r.id}  {r.direction:<7} {r.ethertype} {r.protocol or 'any'} {_ports(r)} {side} {_remote(r)}"


def show_group(cli: Cli, g: resources_pb2.SecurityGroup) -> None:
    if cli.json:
        print_json(g)
        return
    print_fields(
        [
            ("id", g.id),
            ("name", g.name),
            ("description", g.description),
            ("project_id", g.project_id),
            ("rules", Lines(rule_line(r) for r in g.rules)),
            ("tag", g.tag),
            ("revision_number", g.revision_number),
            ("created_at", timestamp(g.created_at)),
            ("updated_at", timestamp(g.updated_at)),
        ]
    )


def show_rule(cli: Cli, r: resources_pb2.SecurityGroupRule) -> None:
    if cli.json:
        print_json(r)
        return
    print_fields(
        [
            ("id", r.id),
            ("security_group_id", r.security_group_id),
            ("project_id", r.project_id),
            ("direction", r.direction),
            ("ethertype", r.ethertype),
            ("protocol", r.protocol or "any"),
            ("ports", _ports(r)),
            ("remote_ip_prefix", r.remote_ip_prefix),
            ("remote_group_id", r.remote_group_id),
            ("description", r.description),
            ("tag", r.tag),
            ("revision_number", r.revision_number),
            ("created_at", timestamp(r.created_at)),
        ]
    )


# ---------------------------------------------------------------- groups


def group_create(args: argparse.Namespace, cli: Cli) -> int:
    group = resources_pb2.SecurityGroup(name=args.name, description=args.description, project_id=args.project)
    request = security_pb2.CreateSecurityGroupRequest(security_group=group)
    show_group(cli, cli.security.CreateSecurityGroup(request, timeout=cli.timeout))
    return 0


def group_list(args: argparse.Namespace, cli: Cli) -> int:
    request = security_pb2.ListSecurityGroupsRequest(name=args.name, project_id=args.project)
    cli.print_list(list(cli.list_all(cli.security.ListSecurityGroups, request, "security_groups")), GROUP_COLUMNS)
    return 0


def group_show(args: argparse.Namespace, cli: Cli) -> int:
    gid = cli.resolve("security group", args.group, args.project)
    show_group(cli, cli.security.GetSecurityGroup(network_pb2.GetRequest(id=gid), timeout=cli.timeout))
    return 0


def group_update(args: argparse.Namespace, cli: Cli) -> int:
    group = resources_pb2.SecurityGroup(id=cli.resolve("security group", args.group, args.project))
    paths = []
    if args.name is not None:
        group.name = args.name
        paths.append("name")
    if args.description is not None:
        group.description = args.description
        paths.append("description")
    request = security_pb2.UpdateSecurityGroupRequest(security_group=group, update_mask=FieldMask(paths=paths))
    show_group(cli, cli.security.UpdateSecurityGroup(request, timeout=cli.timeout))
    return 0


def group_delete(args: argparse.Namespace, cli: Cli) -> int:
    for ref in args.groups:
        gid = cli.resolve("security group", ref, args.project)
        response = cli.security.DeleteSecurityGroup(network_pb2.DeleteRequest(id=gid), timeout=cli.timeout)
        if cli.json:
            print_json(response)
        else:
            print(f"deleted security group {ref} (revision {response.revision})")
    return 0


# ---------------------------------------------------------------- rules


def parse_port_range(text: str) -> tuple[int, int]:
    """``22`` or ``8000:8080`` (``8000-8080`` too)."""
    low, sep, high = text.replace("-", ":").partition(":")
    try:
        lo = int(low)
        return lo, int(high) if sep else lo
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PORT or MIN:MAX") from None


def rule_create(args: argparse.Namespace, cli: Cli) -> int:
    rule = resources_pb2.SecurityGroupRule(
        security_group_id=cli.resolve("security group", args.group, args.project),
        direction="egress" if args.egress else "ingress",
        ethertype=args.ethertype,
        protocol=args.protocol,
        remote_ip_prefix=args.remote_ip or "",
        description=args.description,
    )
    if args.remote_group:
        rule.remote_group_id = cli.resolve("security group", args.remote_group, args.project)
    if args.dst_port is not None:
        rule.port_range_min, rule.port_range_max = args.dst_port
    if args.icmp_type is not None:
        rule.icmp_type = args.icmp_type
    if args.icmp_code is not None:
        rule.icmp_code = args.icmp_code
    request = security_pb2.CreateSecurityGroupRuleRequest(security_group_rule=rule)
    show_rule(cli, cli.security.CreateSecurityGroupRule(request, timeout=cli.timeout))
    return 0


def rule_list(args: argparse.Namespace, cli: Cli) -> int:
    request = security_pb2.ListSecurityGroupRulesRequest(
        security_group_id=cli.resolve("security group", args.group, args.project) if args.group else "",
        direction=args.direction,
        project_id=args.project if not args.group else "",
    )
    rules = list(cli.list_all(cli.security.ListSecurityGroupRules, request, "security_group_rules"))
    cli.print_list(rules, RULE_COLUMNS)
    return 0


def rule_show(args: argparse.Namespace, cli: Cli) -> int:
    show_rule(cli, cli.security.GetSecurityGroupRule(network_pb2.GetRequest(id=args.rule), timeout=cli.timeout))
    return 0


def rule_delete(args: argparse.Namespace, cli: Cli) -> int:
    for rid in args.rules:
        response = cli.security.DeleteSecurityGroupRule(network_pb2.DeleteRequest(id=rid), timeout=cli.timeout)
        if cli.json:
            print_json(response)
        else:
            print(f"deleted security group rule {rid} (revision {response.revision})")
    return 0


# ---------------------------------------------------------------- parsers


def configure_groups(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="create a security group (it starts with a rule allowing all egress)")
    p.add_argument("name")
    p.add_argument("--description", default="")
    p.add_argument("--project", default="")
    p.set_defaults(handler=group_create)

    p = sub.add_parser("list", help="list security groups (a project's listing creates its default group)")
    p.add_argument("--project", default="")
    p.add_argument("--name", default="")
    p.set_defaults(handler=group_list)

    p = sub.add_parser("show", help="show a security group and its rules")
    p.add_argument("group", help="id or name")
    p.add_argument("--project", default="", help="the project whose group a name means")
    p.set_defaults(handler=group_show)

    p = sub.add_parser("update", help="rename or describe a security group")
    p.add_argument("group", help="id or name")
    p.add_argument("--project", default="", help="the project whose group a name means")
    p.add_argument("--name")
    p.add_argument("--description")
    p.set_defaults(handler=group_update)

    p = sub.add_parser("delete", help="delete security groups (not while a port uses one or a rule names it)")
    p.add_argument("groups", nargs="+", metavar="group", help="id or name")
    p.add_argument("--project", default="", help="the project whose group a name means")
    p.set_defaults(handler=group_delete)


def configure_rules(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="add an allow rule to a security group")
    p.add_argument("group", help="id or name of the group the rule belongs to")
    p.add_argument("--project", default="", help="the project whose groups names mean")
    way = p.add_mutually_exclusive_group()
    way.add_argument("--ingress", action="store_true", help="traffic to the port (the default)")
    way.add_argument("--egress", action="store_true", help="traffic from the port")
    p.add_argument("--ethertype", default="IPv4")
    p.add_argument("--protocol", default="", help="tcp, udp, icmp, any or an IP protocol number (default any)")
    p.add_argument("--dst-port", type=parse_port_range, metavar="PORT[:MAX]", help="tcp/udp destination port(s)")
    p.add_argument("--icmp-type", type=int)
    p.add_argument("--icmp-code", type=int)
    remote = p.add_mutually_exclusive_group()
    remote.add_argument("--remote-ip", metavar="CIDR", help="the other side's prefix (default: anywhere)")
    remote.add_argument("--remote-group", metavar="GROUP", help="the other side is a member of this group")
    p.add_argument("--description", default="")
    p.set_defaults(handler=rule_create)

    p = sub.add_parser("list", help="list security group rules")
    p.add_argument("--group", default="", help="id or name")
    p.add_argument("--project", default="")
    p.add_argument("--direction", default="", choices=["", "ingress", "egress"])
    p.set_defaults(handler=rule_list)

    p = sub.add_parser("show", help="show one rule")
    p.add_argument("rule", help="id")
    p.set_defaults(handler=rule_show)

    p = sub.add_parser("delete", help="delete rules")
    p.add_argument("rules", nargs="+", metavar="rule", help="id")
    p.set_defaults(handler=rule_delete)


GROUPS = [
    CommandGroup("security-group", "security groups: named sets of allow rules ports are members of", configure_groups),
    CommandGroup(
        "security-group-rule", "allow rules of security groups (created and deleted, never changed)", configure_rules
    ),
]
