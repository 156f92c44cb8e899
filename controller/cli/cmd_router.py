"""``loomctl router create|list|show|update|delete|add-interface|remove-interface|set-gateway|clear-gateway``."""

from __future__ import annotations

import argparse

from google.protobuf.field_mask_pb2 import FieldMask

from controller.cli.args import add_toggle
from controller.cli.client import Cli, CliError
from controller.cli.output import Lines, print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2


def _gateway(r: resources_pb2.Router) -> str:
    if not r.HasField("external_gateway_info"):
        return ""
    ips = ",".join(f.ip_address for f in r.external_gateway_info.external_fixed_ips)
    return f"{r.external_gateway_info.network_id} ({ips})"


COLUMNS = [
    ("ID", lambda r: r.id),
    ("NAME", lambda r: r.name),
    ("GATEWAY", _gateway),
    ("SNAT", lambda r: r.external_gateway_info.enable_snat if r.HasField("external_gateway_info") else ""),
    ("INTERFACES", lambda r: len(r.interfaces)),
    ("ACTIVE GATEWAY", lambda r: r.active_gateway_host),
    ("UP", lambda r: r.admin_state_up),
    ("TAG", lambda r: r.tag),
]


def show(cli: Cli, r: resources_pb2.Router) -> None:
    if cli.json:
        print_json(r)
        return
    gw = r.external_gateway_info if r.HasField("external_gateway_info") else resources_pb2.ExternalGatewayInfo()
    hosts = Lines(
        f"{g.host:<12} priority {g.priority:<4} {'alive' if g.alive else 'down':<5}"
        + ("  ACTIVE (SNAT here)" if g.active else "")
        for g in r.gateway_hosts
    )
    print_fields(
        [
            ("id", r.id),
            ("name", r.name),
            ("project_id", r.project_id),
            ("admin_state_up", r.admin_state_up),
            ("status", r.status),
            ("external_network_id", gw.network_id),
            ("external_fixed_ips", Lines(f"{f.ip_address} (subnet {f.subnet_id})" for f in gw.external_fixed_ips)),
            ("enable_snat", gw.enable_snat if gw.network_id else ""),
            ("gateway_port_id", r.gateway_port_id),
            ("active_gateway_host", r.active_gateway_host or "(none reported)"),
            ("gateway_hosts", hosts),
            ("interfaces", list(r.interfaces)),
            ("routes", Lines(f"{x.destination} via {x.nexthop}" for x in r.routes)),
            ("conntrack_zones", f"dnat {r.dnat_zone}, snat {r.snat_zone}"),
            ("tag", r.tag),
            ("revision_number", r.revision_number),
            ("created_at", timestamp(r.created_at)),
            ("updated_at", timestamp(r.updated_at)),
        ]
    )


def _routes(specs: list[str]) -> list[resources_pb2.HostRoute]:
    out = []
    for spec in specs:
        dest, sep, hop = spec.partition(",")
        if not sep:
            raise CliError(f"--route {spec!r}: use DESTINATION_CIDR,NEXTHOP")
        out.append(resources_pb2.HostRoute(destination=dest, nexthop=hop))
    return out


def _gateway_info(cli: Cli, network: str, snat: bool | None, ips: list[str]) -> resources_pb2.ExternalGatewayInfo:
    info = resources_pb2.ExternalGatewayInfo(network_id=cli.resolve("network", network))
    if snat is not None:
        info.enable_snat = snat
    for ip in ips:
        info.external_fixed_ips.append(resources_pb2.FixedIP(ip_address=ip))
    return info


def create(args: argparse.Namespace, cli: Cli) -> int:
    router = resources_pb2.Router(name=args.name, project_id=args.project, routes=_routes(args.route))
    if args.admin_state is not None:
        router.admin_state_up = args.admin_state
    if args.external_network:
        router.external_gateway_info.CopyFrom(_gateway_info(cli, args.external_network, args.snat, args.external_ip))
    show(cli, cli.routers.CreateRouter(router_pb2.CreateRouterRequest(router=router), timeout=cli.timeout))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = router_pb2.ListRoutersRequest(name=args.name, project_id=args.project)
    cli.print_list(list(cli.list_all(cli.routers.ListRouters, request, "routers")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    router_id = cli.resolve("router", args.router)
    show(cli, cli.routers.GetRouter(network_pb2.GetRequest(id=router_id), timeout=cli.timeout))
    return 0


def _update(cli: Cli, router: resources_pb2.Router, paths: list[str]) -> int:
    request = router_pb2.UpdateRouterRequest(router=router, update_mask=FieldMask(paths=paths))
    show(cli, cli.routers.UpdateRouter(request, timeout=cli.timeout))
    return 0


def update(args: argparse.Namespace, cli: Cli) -> int:
    router = resources_pb2.Router(id=cli.resolve("router", args.router))
    paths = []
    if args.name is not None:
        router.name = args.name
        paths.append("name")
    if args.admin_state is not None:
        router.admin_state_up = args.admin_state
        paths.append("admin_state_up")
    if args.route is not None or args.no_routes:
        router.routes.extend(_routes(args.route or []))
        paths.append("routes")
    return _update(cli, router, paths)


def set_gateway(args: argparse.Namespace, cli: Cli) -> int:
    router = resources_pb2.Router(id=cli.resolve("router", args.router))
    router.external_gateway_info.CopyFrom(_gateway_info(cli, args.external_network, args.snat, args.external_ip))
    return _update(cli, router, ["external_gateway_info"])


def clear_gateway(args: argparse.Namespace, cli: Cli) -> int:
    return _update(cli, resources_pb2.Router(id=cli.resolve("router", args.router)), ["external_gateway_info"])


def _interface(args: argparse.Namespace, cli: Cli, add: bool) -> int:
    if bool(args.subnet) == bool(args.port):
        raise CliError("give exactly one of --subnet and --port")
    request = router_pb2.RouterInterfaceRequest(
        router_id=cli.resolve("router", args.router),
        subnet_id=cli.resolve("subnet", args.subnet) if args.subnet else "",
        port_id=cli.resolve("port", args.port) if args.port else "",
    )
    call = cli.routers.AddRouterInterface if add else cli.routers.RemoveRouterInterface
    info = call(request, timeout=cli.timeout)
    if cli.json:
        print_json(info)
    else:
        verb = "added" if add else "removed"
        print(f"interface {verb}: router {info.router_id}, subnet {info.subnet_id}, port {info.port_id}")
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    for ref in args.routers:
        request = network_pb2.DeleteRequest(id=cli.resolve("router", ref))
        response = cli.routers.DeleteRouter(request, timeout=cli.timeout)
        if cli.json:
            print_json(response)
        else:
            print(f"deleted router {ref} (revision {response.revision})")
    return 0


def _gateway_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--external-network", required=required, default="", help="a router_external network (id or name)")
    p.add_argument("--external-ip", action="append", default=[], help="the router's address there (default: any)")
    add_toggle(p, "snat", "SNAT ports without a floating IP (default: on)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="create a router")
    p.add_argument("name")
    p.add_argument("--project", default="")
    p.add_argument("--route", action="append", default=[], help="a static route: DESTINATION_CIDR,NEXTHOP")
    _gateway_args(p, required=False)
    add_toggle(p, "admin-state", "administratively up (default) or down")
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list routers")
    p.add_argument("--name", default="")
    p.add_argument("--project", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="one router, with its gateway hosts and which is active for SNAT")
    p.add_argument("router", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("update", help="change a router's name, admin state or static routes")
    p.add_argument("router", help="id or name")
    p.add_argument("--name")
    p.add_argument("--route", action="append", help="replaces the static routes: DESTINATION_CIDR,NEXTHOP")
    p.add_argument("--no-routes", action="store_true", help="remove every static route")
    add_toggle(p, "admin-state", "administratively up or down")
    p.set_defaults(handler=update)

    p = sub.add_parser("set-gateway", help="set (or change) the router's external gateway")
    p.add_argument("router", help="id or name")
    _gateway_args(p, required=True)
    p.set_defaults(handler=set_gateway)

    p = sub.add_parser("clear-gateway", help="remove the router's external gateway")
    p.add_argument("router", help="id or name")
    p.set_defaults(handler=clear_gateway)

    for name, add in (("add-interface", True), ("remove-interface", False)):
        p = sub.add_parser(name, help=f"{'add' if add else 'remove'} an interface, by subnet or by port")
        p.add_argument("router", help="id or name")
        p.add_argument("--subnet", default="", help="the router takes the subnet's gateway IP")
        p.add_argument("--port", default="", help="an unbound port of the network")
        p.set_defaults(handler=lambda a, c, add=add: _interface(a, c, add))

    p = sub.add_parser("delete", help="delete routers (without interfaces)")
    p.add_argument("routers", nargs="+", metavar="router", help="id or name")
    p.set_defaults(handler=delete)


GROUPS = [CommandGroup("router", "routers: interfaces, external gateway, static routes (distributed)", configure)]
