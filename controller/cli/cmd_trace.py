"""``loomctl trace``: trace a packet through a hypervisor's br-int, each step named by its owner.

    loomctl trace --from-port vm1 --to-port vm2 --proto tcp --dport 22 --ovs-rundir /run/hv1
    loomctl trace --from-port vm1 --to-ip 10.0.0.77 --proto arp
    loomctl trace --flow 'in_port=100,dl_src=...,...' --ovs-rundir /run/hv1

Run it where the hypervisor's OVS control sockets are reachable (its rundir).
"""

from __future__ import annotations

import argparse
import subprocess

from controller.cli.client import Cli, CliError
from controller.cli.registry import CommandGroup
from dataplane.contract.cookie import owner_labels
from dataplane.trace import Endpoint, annotate, build_flow, run_trace
from protos.loom.v1 import network_pb2, resources_pb2


def _endpoint(cli: Cli, ref: str) -> tuple[resources_pb2.Port, Endpoint]:
    port = cli.network.GetPort(network_pb2.GetRequest(id=cli.resolve("port", ref)), timeout=cli.timeout)
    ip = port.fixed_ips[0].ip_address if port.fixed_ips else ""
    return port, Endpoint(port.mac_address, ip, int(port.binding_vif_details.get("ofport", "0") or 0))


def _owners(cli: Cli) -> dict[int, str]:
    nets = cli.list_all(cli.network.ListNetworks, network_pb2.ListNetworksRequest(), "networks")
    ports = cli.list_all(cli.network.ListPorts, network_pb2.ListPortsRequest(), "ports")
    return owner_labels(
        ((n.tag, f"network {n.name or n.id}") for n in nets),
        ((p.tag, f"port {p.name or p.device_owner or p.id}") for p in ports),
    )


def trace(args: argparse.Namespace, cli: Cli) -> int:
    if args.flow:
        flow = args.flow
    else:
        if not args.from_port:
            raise CliError("give --from-port (and --to-port or --to-ip), or a raw --flow")
        src_port, src = _endpoint(cli, args.from_port)
        if args.in_port:
            src = Endpoint(src.mac, src.ip, args.in_port)
        if not src.ofport:
            raise CliError(f"port {args.from_port} is not bound to a host: give --in-port")
        dst = _endpoint(cli, args.to_port)[1] if args.to_port else None
        if dst is None and not args.to_ip:
            raise CliError("give --to-port or --to-ip")
        flow = build_flow(src, dst, args.proto, args.dport, args.to_ip)
        print(f"# {src_port.name or src_port.id} on {src_port.binding_host_id}: {flow}")
    try:
        raw = run_trace(flow, args.ovs_rundir)
    except subprocess.CalledProcessError as exc:
        raise CliError(f"ofproto/trace failed: {(exc.stderr or exc.stdout).strip()}") from exc
    except FileNotFoundError as exc:
        raise CliError(f"no ovs-vswitchd in {args.ovs_rundir}: {exc}") from exc
    print(annotate(raw, _owners(cli)))
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-port", help="the sending port (id or name)")
    parser.add_argument("--to-port", help="the receiving port (id or name)")
    parser.add_argument("--to-ip", default="", help="destination IP when there is no receiving port")
    parser.add_argument("--proto", default="icmp", choices=["icmp", "tcp", "udp", "arp", "ip"])
    parser.add_argument("--dport", type=int, default=0, help="TCP/UDP destination port")
    parser.add_argument("--in-port", type=int, default=0, help="override the sender's OpenFlow port")
    parser.add_argument("--flow", default="", help="a raw ofproto/trace flow instead of --from-port")
    parser.add_argument("--ovs-rundir", default="/var/run/openvswitch", help="the hypervisor's OVS run directory")
    parser.set_defaults(handler=trace)


GROUPS = [CommandGroup("trace", "trace a packet through a hypervisor's br-int, naming each step's owner", configure)]
