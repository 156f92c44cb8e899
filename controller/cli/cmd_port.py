"""``loomctl port create|list|show|update|delete``."""

from __future__ import annotations

import argparse

from google.protobuf.field_mask_pb2 import FieldMask

from controller.cli.args import add_toggle, key_values
from controller.cli.client import Cli, CliError
from controller.cli.output import Lines, print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2

COLUMNS = [
    ("ID", lambda p: p.id),
    ("NAME", lambda p: p.name),
    ("NETWORK", lambda p: p.network_id),
    ("MAC", lambda p: p.mac_address),
    ("IPS", lambda p: [f.ip_address for f in p.fixed_ips]),
    ("OWNER", lambda p: p.device_owner),
    ("HOST", lambda p: p.binding_host_id),
    ("OFPORT", lambda p: p.binding_vif_details.get("ofport", "")),
    ("STATUS", lambda p: f"{p.status} (binding_failed)" if p.binding_vif_type == "binding_failed" else p.status),
    ("TAG", lambda p: p.tag),
]


def show(cli: Cli, p: resources_pb2.Port) -> None:
    if cli.json:
        print_json(p)
        return
    stages = Lines(
        f"{s.name:<15} {'done' if s.done else 'pending':<8} {timestamp(s.at)} {s.detail}".rstrip() for s in p.stages
    )
    print_fields(
        [
            ("id", p.id),
            ("name", p.name),
            ("network_id", p.network_id),
            ("project_id", p.project_id),
            ("mac_address", p.mac_address),
            ("fixed_ips", Lines(f"{f.ip_address} (subnet {f.subnet_id})" for f in p.fixed_ips)),
            ("device_id", p.device_id),
            ("device_owner", p.device_owner),
            ("binding_host_id", p.binding_host_id),
            ("binding_vif_type", p.binding_vif_type),
            *([("binding_failure_reason", p.binding_failure_reason)] if p.binding_failure_reason else []),
            ("binding_vif_details", ",".join(f"{k}={v}" for k, v in sorted(p.binding_vif_details.items()))),
            ("admin_state_up", p.admin_state_up),
            ("port_security_enabled", p.port_security_enabled),
            ("security_groups", list(p.security_groups)),
            (
                "allowed_address_pairs",
                Lines(f"{a.ip_address} {a.mac_address or '(port MAC)'}" for a in p.allowed_address_pairs),
            ),
            ("status", p.status),
            ("stages", stages),
            ("tag", p.tag),
            ("revision_number", p.revision_number),
            ("created_at", timestamp(p.created_at)),
            ("updated_at", timestamp(p.updated_at)),
        ]
    )


def _fixed_ips(cli: Cli, specs: list[dict[str, str]]) -> list[resources_pb2.FixedIP]:
    out = []
    for spec in specs:
        unknown = set(spec) - {"subnet", "ip"}
        if unknown:
            raise CliError(f"--fixed-ip takes subnet=ID_OR_NAME,ip=ADDRESS, not {sorted(unknown)[0]!r}")
        subnet = cli.resolve("subnet", spec["subnet"]) if spec.get("subnet") else ""
        out.append(resources_pb2.FixedIP(subnet_id=subnet, ip_address=spec.get("ip", "")))
    return out


def _address_pairs(specs: list[dict[str, str]]) -> list[resources_pb2.AddressPair]:
    out = []
    for spec in specs:
        unknown = set(spec) - {"ip-address", "mac-address"}
        if unknown or "ip-address" not in spec:
            raise CliError("--allowed-address-pair takes ip-address=IP_OR_CIDR[,mac-address=MAC]")
        out.append(resources_pb2.AddressPair(ip_address=spec["ip-address"], mac_address=spec.get("mac-address", "")))
    return out


def _groups(cli: Cli, refs: list[str], project: str) -> list[str]:
    return [cli.resolve("security group", ref, project) for ref in refs]


def create(args: argparse.Namespace, cli: Cli) -> int:
    port = resources_pb2.Port(
        network_id=cli.resolve("network", args.network),
        name=args.name or "",
        project_id=args.project,
        mac_address=args.mac or "",
        device_id=args.device_id or "",
        device_owner=args.device_owner or "",
        binding_host_id=args.host or "",
    )
    port.fixed_ips.extend(_fixed_ips(cli, args.fixed_ip or []))
    if args.admin_state is not None:
        port.admin_state_up = args.admin_state
    if args.port_security is not None:
        port.port_security_enabled = args.port_security
    if args.security_group and args.no_security_groups:
        raise CliError("--security-group and --no-security-groups exclude each other")
    project = args.project or cli.network.GetNetwork(network_pb2.GetRequest(id=port.network_id)).project_id
    port.security_groups.extend(_groups(cli, args.security_group or [], project))
    port.allowed_address_pairs.extend(_address_pairs(args.allowed_address_pair or []))
    request = network_pb2.CreatePortRequest(port=port, no_security_groups=args.no_security_groups)
    show(cli, cli.network.CreatePort(request, timeout=cli.timeout))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = network_pb2.ListPortsRequest(
        network_id=cli.resolve("network", args.network) if args.network else "",
        device_id=args.device_id,
        device_owner=args.device_owner,
        binding_host_id=args.host,
        name=args.name,
        mac_address=args.mac,
    )
    cli.print_list(list(cli.list_all(cli.network.ListPorts, request, "ports")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    show(cli, cli.network.GetPort(network_pb2.GetRequest(id=cli.resolve("port", args.port)), timeout=cli.timeout))
    return 0


def update(args: argparse.Namespace, cli: Cli) -> int:
    port = resources_pb2.Port(id=cli.resolve("port", args.port))
    paths = []
    for option, field in (
        ("name", "name"),
        ("mac", "mac_address"),
        ("device_id", "device_id"),
        ("device_owner", "device_owner"),
        ("host", "binding_host_id"),
    ):
        value = getattr(args, option)
        if value is not None:
            setattr(port, field, value)
            paths.append(field)
    if args.unbind:
        if args.host is not None:
            raise CliError("--host and --unbind exclude each other")
        port.binding_host_id = ""
        paths.append("binding_host_id")
    if args.fixed_ip or args.no_fixed_ips:
        if args.fixed_ip and args.no_fixed_ips:
            raise CliError("--fixed-ip and --no-fixed-ips exclude each other")
        port.fixed_ips.extend(_fixed_ips(cli, args.fixed_ip or []))
        paths.append("fixed_ips")
    if args.admin_state is not None:
        port.admin_state_up = args.admin_state
        paths.append("admin_state_up")
    if args.port_security is not None:
        port.port_security_enabled = args.port_security
        paths.append("port_security_enabled")
    if args.security_group or args.no_security_groups:
        if args.security_group and args.no_security_groups:
            raise CliError("--security-group and --no-security-groups exclude each other")
        project = cli.network.GetPort(network_pb2.GetRequest(id=port.id), timeout=cli.timeout).project_id
        port.security_groups.extend(_groups(cli, args.security_group or [], project))
        paths.append("security_groups")
    if args.allowed_address_pair or args.no_allowed_address_pairs:
        if args.allowed_address_pair and args.no_allowed_address_pairs:
            raise CliError("--allowed-address-pair and --no-allowed-address-pairs exclude each other")
        port.allowed_address_pairs.extend(_address_pairs(args.allowed_address_pair or []))
        paths.append("allowed_address_pairs")
    request = network_pb2.UpdatePortRequest(port=port, update_mask=FieldMask(paths=paths))
    show(cli, cli.network.UpdatePort(request, timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    cli.delete_each("port", cli.network.DeletePort, args.ports)
    return 0


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name")
    p.add_argument("--mac", help="MAC address (default on create: generated fa:16:3e:xx:xx:xx)")
    p.add_argument(
        "--fixed-ip",
        action="append",
        type=key_values,
        metavar="subnet=ID,ip=ADDR",
        help="a fixed IP, by subnet and/or address (repeat; default on create: one per subnet)",
    )
    p.add_argument("--device-id")
    p.add_argument("--device-owner", help="e.g. compute:nova")
    p.add_argument("--host", help="bind to this hypervisor (binding_host_id)")
    add_toggle(p, "admin-state", "administratively up or down")
    add_toggle(p, "port-security", "MAC/IP anti-spoofing and security groups")
    p.add_argument(
        "--security-group",
        action="append",
        metavar="GROUP",
        help="a security group, id or name (repeat; default on create: the project's default group)",
    )
    p.add_argument(
        "--no-security-groups",
        action="store_true",
        help="no security group (with port security on, all IP traffic but DHCP and metadata is dropped)",
    )
    p.add_argument(
        "--allowed-address-pair",
        action="append",
        type=key_values,
        metavar="ip-address=IP_OR_CIDR[,mac-address=MAC]",
        help="another address the port may send from (repeat; update: replaces the list)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="create a port")
    p.add_argument("--network", required=True, help="id or name")
    p.add_argument("--project", default="")
    _common_options(p)
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list ports")
    p.add_argument("--network", default="", help="id or name")
    p.add_argument("--device-id", default="")
    p.add_argument("--device-owner", default="")
    p.add_argument("--host", default="")
    p.add_argument("--name", default="")
    p.add_argument("--mac", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="show one port, with the stages it reached")
    p.add_argument("port", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("update", help="change a port")
    p.add_argument("port", help="id or name")
    _common_options(p)
    p.add_argument("--unbind", action="store_true", help="clear the binding host")
    p.add_argument("--no-fixed-ips", action="store_true", help="release every fixed IP")
    p.add_argument("--no-allowed-address-pairs", action="store_true", help="remove every allowed address pair")
    p.set_defaults(handler=update)

    p = sub.add_parser("delete", help="delete ports")
    p.add_argument("ports", nargs="+", metavar="port", help="id or name")
    p.set_defaults(handler=delete)


GROUPS = [CommandGroup("port", "ports: a MAC and fixed IPs on a network, bound to a host", configure)]
