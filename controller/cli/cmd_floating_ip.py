"""``loomctl floating-ip create|list|show|associate|disassociate|delete``."""

from __future__ import annotations

import argparse

from controller.cli.client import Cli
from controller.cli.output import print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2

COLUMNS = [
    ("ID", lambda f: f.id),
    ("FLOATING IP", lambda f: f.floating_ip_address),
    ("FIXED IP", lambda f: f.fixed_ip_address),
    ("PORT", lambda f: f.port_id),
    ("ROUTER", lambda f: f.router_id),
    ("HOST", lambda f: f.host),
    ("STATUS", lambda f: f.status),
]


def show(cli: Cli, f: resources_pb2.FloatingIp) -> None:
    if cli.json:
        print_json(f)
        return
    print_fields(
        [
            ("id", f.id),
            ("floating_ip_address", f.floating_ip_address),
            ("floating_network_id", f.floating_network_id),
            ("mac_address", f.mac_address),
            ("port_id", f.port_id),
            ("fixed_ip_address", f.fixed_ip_address),
            ("router_id", f.router_id),
            ("host", f.host),
            ("status", f.status),
            ("description", f.description),
            ("project_id", f.project_id),
            ("floating_port_id", f.floating_port_id),
            ("tag", f.tag),
            ("revision_number", f.revision_number),
            ("created_at", timestamp(f.created_at)),
            ("updated_at", timestamp(f.updated_at)),
        ]
    )


def _get(cli: Cli, ref: str) -> str:
    """A floating IP by id or by address."""
    for fip in cli.list_all(cli.routers.ListFloatingIps, router_pb2.ListFloatingIpsRequest(), "floating_ips"):
        if ref in (fip.id, fip.floating_ip_address):
            return fip.id
    return ref


def create(args: argparse.Namespace, cli: Cli) -> int:
    fip = resources_pb2.FloatingIp(
        floating_network_id=cli.resolve("network", args.network),
        floating_ip_address=args.address,
        description=args.description,
        project_id=args.project,
    )
    if args.port:
        fip.port_id = cli.resolve("port", args.port)
        fip.fixed_ip_address = args.fixed_ip
    request = router_pb2.CreateFloatingIpRequest(floating_ip=fip)
    show(cli, cli.routers.CreateFloatingIp(request, timeout=cli.timeout))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = router_pb2.ListFloatingIpsRequest(
        floating_network_id=cli.resolve("network", args.network) if args.network else "",
        port_id=cli.resolve("port", args.port) if args.port else "",
    )
    cli.print_list(list(cli.list_all(cli.routers.ListFloatingIps, request, "floating_ips")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    show(cli, cli.routers.GetFloatingIp(network_pb2.GetRequest(id=_get(cli, args.floating_ip)), timeout=cli.timeout))
    return 0


def associate(args: argparse.Namespace, cli: Cli) -> int:
    request = router_pb2.AssociateFloatingIpRequest(
        id=_get(cli, args.floating_ip), port_id=cli.resolve("port", args.port), fixed_ip_address=args.fixed_ip
    )
    show(cli, cli.routers.AssociateFloatingIp(request, timeout=cli.timeout))
    return 0


def disassociate(args: argparse.Namespace, cli: Cli) -> int:
    request = network_pb2.GetRequest(id=_get(cli, args.floating_ip))
    show(cli, cli.routers.DisassociateFloatingIp(request, timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    for ref in args.floating_ips:
        response = cli.routers.DeleteFloatingIp(network_pb2.DeleteRequest(id=_get(cli, ref)), timeout=cli.timeout)
        if cli.json:
            print_json(response)
        else:
            print(f"deleted floating IP {ref} (revision {response.revision})")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="allocate a floating IP (and associate it)")
    p.add_argument("--network", required=True, help="the external network (id or name)")
    p.add_argument("--address", default="", help="default: any free address of the network")
    p.add_argument("--port", default="", help="associate with this port (id or name)")
    p.add_argument("--fixed-ip", default="", help="which of the port's addresses (default: its first)")
    p.add_argument("--description", default="")
    p.add_argument("--project", default="")
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list floating IPs")
    p.add_argument("--network", default="")
    p.add_argument("--port", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="one floating IP (id or address)")
    p.add_argument("floating_ip")
    p.set_defaults(handler=show_)

    p = sub.add_parser("associate", help="NAT the floating IP to a port's fixed IP")
    p.add_argument("floating_ip", help="id or address")
    p.add_argument("--port", required=True, help="id or name")
    p.add_argument("--fixed-ip", default="", help="which of the port's addresses (default: its first)")
    p.set_defaults(handler=associate)

    p = sub.add_parser("disassociate", help="stop NATing the floating IP (its open connections end)")
    p.add_argument("floating_ip", help="id or address")
    p.set_defaults(handler=disassociate)

    p = sub.add_parser("delete", help="release floating IPs")
    p.add_argument("floating_ips", nargs="+", metavar="floating_ip", help="id or address")
    p.set_defaults(handler=delete)


GROUPS = [CommandGroup("floating-ip", "floating IPs: 1:1 NAT on the port's own hypervisor", configure)]
