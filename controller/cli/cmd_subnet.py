"""``loomctl subnet create|list|show|update|delete``."""

from __future__ import annotations

import argparse

from google.protobuf.field_mask_pb2 import FieldMask

from controller.cli.args import add_toggle, ip_range, route
from controller.cli.client import Cli, CliError
from controller.cli.output import print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2

COLUMNS = [
    ("ID", lambda s: s.id),
    ("NAME", lambda s: s.name),
    ("NETWORK", lambda s: s.network_id),
    ("CIDR", lambda s: s.cidr),
    ("GATEWAY", lambda s: s.gateway_ip or "-"),
    ("DHCP", lambda s: s.enable_dhcp),
    ("TAG", lambda s: s.tag),
]


def show(cli: Cli, s: resources_pb2.Subnet) -> None:
    if cli.json:
        print_json(s)
        return
    print_fields(
        [
            ("id", s.id),
            ("name", s.name),
            ("network_id", s.network_id),
            ("project_id", s.project_id),
            ("ip_version", s.ip_version),
            ("cidr", s.cidr),
            ("gateway_ip", s.gateway_ip or "(none)"),
            ("allocation_pools", [f"{p.start}-{p.end}" for p in s.allocation_pools]),
            ("dns_nameservers", list(s.dns_nameservers)),
            ("host_routes", [f"{r.destination} via {r.nexthop}" for r in s.host_routes]),
            ("enable_dhcp", s.enable_dhcp),
            ("tag", s.tag),
            ("revision_number", s.revision_number),
            ("created_at", timestamp(s.created_at)),
            ("updated_at", timestamp(s.updated_at)),
        ]
    )


def _apply_common(args: argparse.Namespace, subnet: resources_pb2.Subnet, paths: list[str]) -> None:
    """Options create and update share; records the fields set in ``paths``."""
    if args.name is not None:
        subnet.name = args.name
        paths.append("name")
    if args.gateway is not None and args.no_gateway:
        raise CliError("--gateway and --no-gateway exclude each other")
    if args.gateway is not None or args.no_gateway:
        subnet.gateway_ip = args.gateway or ""
        paths.append("gateway_ip")
    if args.pool:
        subnet.allocation_pools.extend(resources_pb2.AllocationPool(start=a, end=b) for a, b in args.pool)
        paths.append("allocation_pools")
    if args.dns:
        subnet.dns_nameservers.extend(args.dns)
        paths.append("dns_nameservers")
    if args.route:
        subnet.host_routes.extend(resources_pb2.HostRoute(destination=d, nexthop=n) for d, n in args.route)
        paths.append("host_routes")
    if args.dhcp is not None:
        subnet.enable_dhcp = args.dhcp
        paths.append("enable_dhcp")


def create(args: argparse.Namespace, cli: Cli) -> int:
    subnet = resources_pb2.Subnet(
        network_id=cli.resolve("network", args.network), cidr=args.cidr, project_id=args.project
    )
    _apply_common(args, subnet, [])
    show(cli, cli.network.CreateSubnet(network_pb2.CreateSubnetRequest(subnet=subnet), timeout=cli.timeout))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    network_id = cli.resolve("network", args.network) if args.network else ""
    request = network_pb2.ListSubnetsRequest(network_id=network_id, name=args.name, project_id=args.project)
    cli.print_list(list(cli.list_all(cli.network.ListSubnets, request, "subnets")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    show(cli, cli.network.GetSubnet(network_pb2.GetRequest(id=cli.resolve("subnet", args.subnet)), timeout=cli.timeout))
    return 0


def update(args: argparse.Namespace, cli: Cli) -> int:
    subnet = resources_pb2.Subnet(id=cli.resolve("subnet", args.subnet))
    paths: list[str] = []
    _apply_common(args, subnet, paths)
    if args.no_dns:
        paths.append("dns_nameservers")
    if args.no_routes:
        paths.append("host_routes")
    request = network_pb2.UpdateSubnetRequest(subnet=subnet, update_mask=FieldMask(paths=sorted(set(paths))))
    show(cli, cli.network.UpdateSubnet(request, timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    cli.delete_each("subnet", cli.network.DeleteSubnet, args.subnets)
    return 0


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name")
    p.add_argument("--gateway", help="gateway address (default on create: the first usable)")
    p.add_argument("--no-gateway", action="store_true", help="no gateway")
    p.add_argument("--pool", action="append", type=ip_range, metavar="START-END", help="allocation pool (repeat)")
    p.add_argument("--dns", action="append", metavar="IP", help="DNS name server (repeat)")
    p.add_argument("--route", action="append", type=route, metavar="DEST,NEXTHOP", help="host route (repeat)")
    add_toggle(p, "dhcp", "serve DHCP on this subnet (default on create: yes)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="create a subnet")
    p.add_argument("cidr", help="e.g. 10.0.0.0/24")
    p.add_argument("--network", required=True, help="id or name")
    p.add_argument("--project", default="")
    _common_options(p)
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list subnets")
    p.add_argument("--network", default="", help="id or name")
    p.add_argument("--name", default="")
    p.add_argument("--project", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="show one subnet")
    p.add_argument("subnet", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("update", help="change a subnet (CIDR and network are fixed)")
    p.add_argument("subnet", help="id or name")
    _common_options(p)
    p.add_argument("--no-dns", action="store_true", help="remove every DNS name server")
    p.add_argument("--no-routes", action="store_true", help="remove every host route")
    p.set_defaults(handler=update)

    p = sub.add_parser("delete", help="delete subnets")
    p.add_argument("subnets", nargs="+", metavar="subnet", help="id or name")
    p.set_defaults(handler=delete)


GROUPS = [CommandGroup("subnet", "subnets: IPv4 ranges of a network, with DHCP options", configure)]
