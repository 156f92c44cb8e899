"""`loomctl vif plug|unplug`: plug a VIF by hand or from the controller's binding.

``add_arguments(parser)`` adds the subcommands to a parser loomctl owns;
``run(args)`` executes them and returns the exit status. ``python -m vif.cli``
runs the same thing standalone (e.g. inside a lab hypervisor).

With ``--server HOST:PORT`` and only ``--port-id``, MAC, MTU and ofport come
from the controller (``GetPort``: ``mac_address``, ``binding_vif_details``
``mtu``/``ofport``/``bridge``); flags given on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from dataplane.common.constants import BR_INT
from dataplane.common.logs import setup_logging
from dataplane.ovs.idl import OvsdbError
from vif import plug

DEFAULT_MTU = 1450  # a 1500-byte underlay minus VXLAN_OVERHEAD


class CliError(RuntimeError):
    """A usage or lookup error to print without a traceback."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vif_command", required=True, metavar="{plug,unplug}")

    p = sub.add_parser("plug", help="create a veth (into a namespace) or a tap and add it to br-int")
    p.add_argument("--port-id", required=True, help="the port's id; becomes external_ids:iface-id")
    p.add_argument("--mac", help="the VM's MAC (default: from --server)")
    p.add_argument("--mtu", type=int, help=f"MTU (default: from --server, else {DEFAULT_MTU})")
    p.add_argument("--ofport", type=int, help="OpenFlow port number to request (default: from --server)")
    p.add_argument("--kind", choices=(plug.KIND_VETH, plug.KIND_TAP), default=plug.KIND_VETH)
    p.add_argument("--netns", help="veth: the VM's network namespace (created if missing)")
    p.add_argument("--ifname", default="eth0", help="veth: device name inside the namespace (default eth0)")
    p.add_argument("--device", help="host-side device name (default: tap + first 11 characters of the port id)")
    p.add_argument("--vm-id", default="", help="external_ids:vm-id")
    p.add_argument(
        "--direct",
        action="store_true",
        help="tap: make the tap itself the OVS port (no checksum-finishing veth); TCP then works only for "
        "guests without virtio-net offloads (qemu vnet_hdr=off or csum=off)",
    )
    p.add_argument("--ip", action="append", default=[], help="veth: CIDR to configure in the namespace (repeatable)")
    p.add_argument("--gateway", help="veth: default route in the namespace")
    p.add_argument("--ovsdb", help="ovsdb-server socket or remote (default: $OVS_RUNDIR/db.sock)")
    p.add_argument("--bridge", help=f"integration bridge (default: from --server, else {BR_INT})")
    # dests differ from loomctl's global --server/--json, which a subcommand's defaults would overwrite
    p.add_argument("--server", dest="controller", help="controller address HOST:PORT to read the port's binding from")
    p.add_argument("--json", dest="as_json", action="store_true", help="print the result as JSON")

    u = sub.add_parser("unplug", help="remove a VIF's OVS port and device")
    target = u.add_mutually_exclusive_group(required=True)
    target.add_argument("--port-id", help="unplug every OVS port with this iface-id, and its tap device")
    target.add_argument("--ifname", help="unplug the host-side device of this name")
    u.add_argument("--ovsdb", help="ovsdb-server socket or remote (default: $OVS_RUNDIR/db.sock)")
    u.add_argument("--delete-netns", metavar="NETNS", help="also delete this namespace")


def _from_server(args: argparse.Namespace) -> None:
    """Fill MAC, MTU, ofport and bridge from the controller where the command line left them out."""
    import grpc

    from protos.loom.v1 import network_pb2, network_pb2_grpc

    with grpc.insecure_channel(args.controller) as channel:
        try:
            port = network_pb2_grpc.NetworkServiceStub(channel).GetPort(
                network_pb2.GetRequest(id=args.port_id), timeout=10
            )
        except grpc.RpcError as exc:
            raise CliError(f"GetPort {args.port_id} at {args.controller}: {exc.code().name}: {exc.details()}") from exc
    details = dict(port.binding_vif_details)
    args.mac = args.mac or port.mac_address
    if args.mtu is None and details.get("mtu"):
        args.mtu = int(details["mtu"])
    if args.ofport is None and details.get("ofport"):
        args.ofport = int(details["ofport"])
    args.bridge = args.bridge or details.get("bridge") or None
    if not port.binding_host_id:
        print(f"warning: port {args.port_id} is not bound to a host", file=sys.stderr)


def _plug(args: argparse.Namespace) -> plug.PluggedVif:
    if args.controller:
        _from_server(args)
    if not args.mac:
        raise CliError("plug needs --mac (or --server to read it from the controller)")
    mtu = args.mtu or DEFAULT_MTU
    bridge = args.bridge or BR_INT
    if args.kind == plug.KIND_TAP:
        if args.netns or args.ip or args.gateway:
            raise CliError("--netns, --ip and --gateway apply to --kind veth only")
        return plug.plug_tap(
            args.port_id,
            args.mac,
            mtu,
            ofport=args.ofport,
            ovsdb=args.ovsdb,
            bridge=bridge,
            vm_id=args.vm_id,
            device=args.device,
            direct=args.direct,
        )
    if args.direct:
        raise CliError("--direct applies to --kind tap only")
    if not args.netns:
        raise CliError("--kind veth needs --netns (the VM's namespace)")
    return plug.plug_veth(
        args.port_id,
        args.mac,
        mtu,
        args.netns,
        ifname=args.ifname,
        ofport=args.ofport,
        ovsdb=args.ovsdb,
        bridge=bridge,
        vm_id=args.vm_id,
        ips=args.ip,
        gateway=args.gateway,
        device=args.device,
    )


def run(args: argparse.Namespace) -> int:
    """Execute ``vif plug`` or ``vif unplug``; 0 on success, 1 on failure (message on stderr)."""
    try:
        if args.vif_command == "plug":
            vif = _plug(args)
            if args.as_json:
                print(json.dumps(dataclasses.asdict(vif)))
            else:
                via = f", OVS port {vif.ovs_port}" if vif.ovs_port and vif.ovs_port != vif.device else ""
                print(
                    f"plugged port {vif.port_id} as {vif.device} ({vif.kind}{via}) on {vif.bridge}, ofport {vif.ofport}"
                )
            return 0
        existed = plug.unplug(args.port_id, ifname=args.ifname, ovsdb=args.ovsdb, delete_netns=args.delete_netns)
        print(f"unplugged {args.port_id or args.ifname}" + ("" if existed else " (nothing was plugged)"))
        return 0
    except (CliError, plug.PlugError, OvsdbError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="loomctl vif", description=__doc__.splitlines()[0])
    add_arguments(parser)
    setup_logging("vif")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
