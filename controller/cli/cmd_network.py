"""``loomctl network create|list|show|update|delete``."""

from __future__ import annotations

import argparse

from google.protobuf.field_mask_pb2 import FieldMask

from controller.cli.args import add_toggle
from controller.cli.client import Cli
from controller.cli.output import print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2

COLUMNS = [
    ("ID", lambda n: n.id),
    ("NAME", lambda n: n.name),
    ("TYPE", lambda n: n.network_type),
    ("SEGMENT", lambda n: n.segmentation_id if not n.physical_network else f"{n.physical_network}:{n.segmentation_id}"),
    ("MTU", lambda n: n.mtu),
    ("SUBNETS", lambda n: len(n.subnets)),
    ("UP", lambda n: n.admin_state_up),
    ("EXTERNAL", lambda n: n.router_external),
    ("TAG", lambda n: n.tag),
]


def show(cli: Cli, n: resources_pb2.Network) -> None:
    if cli.json:
        print_json(n)
        return
    print_fields(
        [
            ("id", n.id),
            ("name", n.name),
            ("project_id", n.project_id),
            ("network_type", n.network_type),
            ("segmentation_id", n.segmentation_id),
            ("physical_network", n.physical_network),
            ("mtu", n.mtu),
            ("admin_state_up", n.admin_state_up),
            ("port_security_enabled", n.port_security_enabled),
            ("router_external", n.router_external),
            ("status", n.status),
            ("subnets", list(n.subnets)),
            ("tag", n.tag),
            ("revision_number", n.revision_number),
            ("created_at", timestamp(n.created_at)),
            ("updated_at", timestamp(n.updated_at)),
        ]
    )


def create(args: argparse.Namespace, cli: Cli) -> int:
    net = resources_pb2.Network(
        name=args.name,
        project_id=args.project,
        network_type=args.type,
        segmentation_id=args.segmentation_id,
        physical_network=args.physical_network,
        mtu=args.mtu,
        router_external=args.external,
    )
    if args.admin_state is not None:
        net.admin_state_up = args.admin_state
    if args.port_security is not None:
        net.port_security_enabled = args.port_security
    show(cli, cli.network.CreateNetwork(network_pb2.CreateNetworkRequest(network=net), timeout=cli.timeout))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = network_pb2.ListNetworksRequest(name=args.name, project_id=args.project)
    cli.print_list(list(cli.list_all(cli.network.ListNetworks, request, "networks")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    show(
        cli,
        cli.network.GetNetwork(network_pb2.GetRequest(id=cli.resolve("network", args.network)), timeout=cli.timeout),
    )
    return 0


def update(args: argparse.Namespace, cli: Cli) -> int:
    net = resources_pb2.Network(id=cli.resolve("network", args.network))
    paths = []
    if args.name is not None:
        net.name = args.name
        paths.append("name")
    if args.mtu is not None:
        net.mtu = args.mtu
        paths.append("mtu")
    if args.admin_state is not None:
        net.admin_state_up = args.admin_state
        paths.append("admin_state_up")
    if args.port_security is not None:
        net.port_security_enabled = args.port_security
        paths.append("port_security_enabled")
    if args.external is not None:
        net.router_external = args.external
        paths.append("router_external")
    request = network_pb2.UpdateNetworkRequest(network=net, update_mask=FieldMask(paths=paths))
    show(cli, cli.network.UpdateNetwork(request, timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    cli.delete_each("network", cli.network.DeleteNetwork, args.networks)
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="create a network")
    p.add_argument("name")
    p.add_argument("--project", default="")
    p.add_argument("--type", default="", choices=["vxlan", "flat", "vlan"], help="default: vxlan")
    p.add_argument("--segmentation-id", type=int, default=0, help="VNI or VLAN id (vxlan: allocated when omitted)")
    p.add_argument("--physical-network", default="", help="flat and vlan networks")
    p.add_argument("--mtu", type=int, default=0, help="default: the largest the underlay allows")
    add_toggle(p, "admin-state", "administratively up (default) or down")
    add_toggle(p, "port-security", "default port security for its ports (default: on)")
    p.add_argument("--external", action="store_true", help="router:external: routers' gateways, floating IPs")
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list networks")
    p.add_argument("--name", default="")
    p.add_argument("--project", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="show one network")
    p.add_argument("network", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("update", help="change a network's name, MTU, admin state or port security")
    p.add_argument("network", help="id or name")
    p.add_argument("--name")
    p.add_argument("--mtu", type=int)
    add_toggle(p, "admin-state", "administratively up or down")
    add_toggle(p, "port-security", "default port security for new ports")
    add_toggle(p, "external", "router:external (flat and vlan networks only)")
    p.set_defaults(handler=update)

    p = sub.add_parser("delete", help="delete networks (with their subnets and DHCP port)")
    p.add_argument("networks", nargs="+", metavar="network", help="id or name")
    p.set_defaults(handler=delete)


GROUPS = [CommandGroup("network", "networks: L2 segments (VXLAN, flat, VLAN)", configure)]
