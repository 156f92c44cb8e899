"""``loomctl trace``: follow a packet hop by hop, every flow named by its table and owner.

Two ways, for two questions:

* by default, **what the controller compiled** (``TracePacket``, what
  ``ovn-trace`` does): the controller pushes the packet through the flows it
  compiled for every host the packet reaches, plus the binding flows each
  agent renders, across the tunnels, and names every step. Runs anywhere
  loomctl reaches the controller; no switch is asked::

      loomctl trace --from-port vm1 --to-port vm2 --proto tcp --dport 22

* with ``--switch``, **what a real switch does** (``ovs-appctl
  ofproto/trace``) on the hypervisor where loomctl runs (its OVS is found by
  ``$OVS_RUNDIR`` or ``--ovs-rundir``); where the packet enters the tunnel,
  the trace continues on the destination hypervisor's switch if its run
  directory is given (``--hv-rundir hv2=/path``, repeatable), else it says
  where it stops and why::

      OVS_RUNDIR=/run/hv1 loomctl trace --switch --from-port vm1 --to-port vm2 --hv-rundir hv2=/run/hv2
      loomctl trace --switch --flow 'in_port=100,dl_src=...,...' --ovs-rundir /run/hv1

When the two disagree, the switch does not hold what the controller compiled
(an agent behind, a VIF on another OpenFlow port than it requested, ...).
"""

from __future__ import annotations

import argparse
import subprocess
from collections import deque
from dataclasses import asdict, dataclass

import grpc

from controller.cli.args import key_value
from controller.cli.client import Cli, CliError
from controller.cli.output import print_json
from controller.cli.registry import CommandGroup
from dataplane.common.constants import OWNER_DHCP, TUNNEL_OFPORT, TUNNEL_PORT_NAME
from dataplane.contract.cookie import owner_labels
from dataplane.contract.pipeline import table_name
from dataplane.trace import (
    Endpoint,
    annotate,
    build_flow,
    default_rundir,
    flow_in_port,
    local_tunnel_ip,
    parse_trace,
    run_trace,
    switch_ports,
    tunnel_flow,
)
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2, security_pb2

PROTOCOLS = ["icmp", "tcp", "udp", "arp"]
# TracePacketRequest fields (errors name them) -> the loomctl options that set them.
_FLAGS = {
    "from_port_id": "--from-port",
    "to_port_id": "--to-port",
    "dst_ip": "--to-ip",
    "dst_mac": "--to-mac",
    "protocol": "--proto",
    "dst_port": "--dport",
    "src_port": "--sport",
}
MAX_SWITCH_HOPS = 16


# ---------------------------------------------------------------- the controller's trace


def controller_trace(args: argparse.Namespace, cli: Cli) -> int:
    for option in ("flow", "in_port", "ovs_rundir", "hv_rundir"):
        if getattr(args, option):
            raise CliError(f"--{option.replace('_', '-')} is for the real switch's trace: add --switch")
    if not args.from_port:
        raise CliError("give --from-port (and --to-port, or --to-ip)")
    request = network_pb2.TracePacketRequest(
        from_port_id=cli.resolve("port", args.from_port),
        to_port_id=cli.resolve("port", args.to_port) if args.to_port else "",
        dst_ip=args.to_ip,
        dst_mac=args.to_mac,
        protocol=args.proto,
        dst_port=args.dport,
        src_port=args.sport,
    )
    try:
        resp = cli.network.TracePacket(request, timeout=cli.timeout)
    except grpc.RpcError as exc:
        field = (exc.details() or "").split(":", 1)[0]
        if field not in _FLAGS:
            raise
        raise CliError(f"{exc.code().name}: {exc.details()} ({_FLAGS[field]} on the command line)") from exc
    if cli.json:
        print_json(resp)
        return 0
    print(f"# {resp.packet}")
    print(f"# the controller's compiled flows at revision {resp.revision}, simulated (--switch: a real switch)")
    for hop in resp.hops:
        print()
        print(f"{hop.host}: in_port {hop.in_port} ({hop.came_from})")
        for s in hop.steps:
            print(f"  {s.table:>2}. {s.table_name}: {s.owner}")
            print(f"      {_without_table(s.flow)}")
        for o in hop.outputs:
            back = " back where it came from" if o.ofport == hop.in_port else ""
            print(f"  -> {_output_text(o)}{back}" + (f" (but {o.warning})" if o.warning else ""))
        if hop.dropped:
            print(f"  -> dropped in table {hop.drop_table} ({table_name(hop.drop_table)}): {hop.drop_reason}")
    print()
    deliveries = [
        Delivery(o.host, o.ofport, o.port_id, o.port_name, back=o.ofport == h.in_port, unplugged=bool(o.warning))
        for h in resp.hops
        for o in h.outputs
        if o.kind == network_pb2.TraceOutput.DELIVERED
    ]
    drops = [
        f"on {h.host} in table {h.drop_table} ({table_name(h.drop_table)}): {h.drop_reason}"
        for h in resp.hops
        if h.dropped
    ]
    lost = [f"lost: {_output_text(o)}" for h in resp.hops for o in h.outputs if o.kind == network_pb2.TraceOutput.LOST]
    print(_summary(deliveries, drops, lost, args.to_port if args.to_port else "", request.to_port_id))
    return 0


def _without_table(flow: str) -> str:
    head, sep, rest = flow.partition(", ")
    return rest if sep and head.startswith("table=") else flow


def _output_text(o: network_pb2.TraceOutput) -> str:
    if o.kind == network_pb2.TraceOutput.TUNNEL:
        return f"tunnel to {o.remote_host} ({o.remote_ip}), VNI {o.vni}"
    if o.kind == network_pb2.TraceOutput.LOST:
        return f"tunnel to {o.remote_ip}, VNI {o.vni}: no registered hypervisor has that tunnel IP"
    return f"delivered to {o.port_name} (ofport {o.ofport})"


@dataclass(frozen=True)
class Delivery:
    """A packet leaving a switch on a local port (the same in both modes, so they can be compared)."""

    host: str
    ofport: int
    port_id: str
    port_name: str
    back: bool = False  # out the port it came in on: an answer (the ARP responder's)
    unplugged: bool = False  # to a VIF its agent has not reported plugged


def _summary(deliveries: list[Delivery], drops: list[str], stops: list[str], to_ref: str, to_id: str) -> str:
    lines = []
    answered = [d for d in deliveries if d.back]
    if to_id and not any(d.port_id == to_id for d in deliveries) and not answered:
        lines.append(f"result: {to_ref} is NOT reached")
    for d in answered:
        lines.append(
            f"{'result: ' if not lines else '        '}answered on {d.host}: the reply goes back to {d.port_name}"
        )
    others = [d for d in deliveries if not d.back]
    if others:
        where = ", ".join(
            f"{d.port_name} on {d.host}" + (" (its VIF is not plugged: lost)" if d.unplugged else "") for d in others
        )
        lines.append(f"{'result: ' if not lines else '        '}delivered to {where}")
    for stop in stops:
        lines.append(f"{'result: ' if not lines else '        '}{stop}")
    if not deliveries:
        for drop in drops:
            lines.append(f"{'result: ' if not lines else '        '}dropped {drop}")
    return "\n".join(lines) or "result: nothing happened to it"


# ---------------------------------------------------------------- the real switches


@dataclass
class Names:
    """What the controller knows, to name what a switch shows: ports, networks, agents."""

    ports: dict[str, str]  # port id -> name
    networks: dict[str, str]  # network id -> name
    owners: dict[int, str]  # cookie -> owner
    host_of_ip: dict[str, str]  # tunnel IP -> host
    ip_of_host: dict[str, str]
    requested: dict[tuple[str, int], tuple[str, str]]  # (host, ofport its VIF requests) -> (port id, name)

    @classmethod
    def load(cls, cli: Cli) -> Names:
        nets = list(cli.list_all(cli.network.ListNetworks, network_pb2.ListNetworksRequest(), "networks"))
        ports = list(cli.list_all(cli.network.ListPorts, network_pb2.ListPortsRequest(), "ports"))
        routers = list(cli.list_all(cli.routers.ListRouters, router_pb2.ListRoutersRequest(), "routers"))
        fips = list(cli.list_all(cli.routers.ListFloatingIps, router_pb2.ListFloatingIpsRequest(), "floating_ips"))
        groups = list(
            cli.list_all(cli.security.ListSecurityGroups, security_pb2.ListSecurityGroupsRequest(), "security_groups")
        )
        agents = cli.network.ListAgents(network_pb2.ListAgentsRequest(), timeout=cli.timeout).agents
        net_names = {n.id: n.name or n.id for n in nets}
        owners = owner_labels(
            ((n.tag, f"network {n.name or n.id}") for n in nets),
            ((p.tag, f"port {_port_label(p)}") for p in ports),
            (
                (p.tag, f"network {net_names.get(p.network_id, p.network_id)}")
                for p in ports
                if p.device_owner == OWNER_DHCP
            ),
            security_groups=((g.tag, f"security group {g.name or g.id}") for g in groups),
            routers=((r.tag, f"router {r.name or r.id}") for r in routers),
            floating_ips=((f.tag, f"floating IP {f.floating_ip_address}") for f in fips),
        )
        return cls(
            {p.id: _port_label(p) for p in ports},
            net_names,
            owners,
            {a.tunnel_ip: a.host for a in agents},
            {a.host: a.tunnel_ip for a in agents},
            {
                (p.binding_host_id, int(p.binding_vif_details["ofport"])): (p.id, _port_label(p))
                for p in ports
                if p.binding_host_id and p.binding_vif_details.get("ofport")
            },
        )

    def port_names(self, rundir: str) -> dict[int, tuple[str, str]]:
        """OpenFlow port -> (port id, name) on the switch in ``rundir``, from its OVSDB."""
        try:
            ports = switch_ports(rundir)
        except (subprocess.CalledProcessError, OSError, ValueError):
            return {}
        out: dict[int, tuple[str, str]] = {}
        for n, sp in ports.items():
            if sp.owner == "localport":
                out[n] = (sp.iface_id, f"localport of network {self.networks.get(sp.network_id, sp.network_id)}")
            elif sp.iface_id:
                out[n] = (sp.iface_id, self.ports.get(sp.iface_id, sp.iface_id))
            elif n == TUNNEL_OFPORT:
                out[n] = ("", "tunnel")
        return out


def _port_label(p: resources_pb2.Port) -> str:
    return p.name or p.device_owner or p.id


def _raw_trace(flow: str, rundir: str, host: str) -> str:
    try:
        return run_trace(flow, rundir)
    except subprocess.CalledProcessError as exc:
        raise CliError(f"ofproto/trace on {host} ({rundir}) failed: {(exc.stderr or exc.stdout).strip()}") from exc
    except FileNotFoundError as exc:
        raise CliError(
            f"no ovs-vswitchd in {rundir} ({exc.filename} is missing): run where the hypervisor's OVS is, "
            "or point $OVS_RUNDIR / --ovs-rundir at its run directory"
        ) from exc


def _first_leg(args: argparse.Namespace, cli: Cli, names: Names, rundirs: dict[str, str]) -> tuple[str, str, str]:
    """(host, rundir, flow) the trace starts with."""
    local = args.ovs_rundir or default_rundir()
    if args.flow:
        host = names.host_of_ip.get(local_tunnel_ip(local), "this host")
        return host, rundirs.get(host, local), args.flow
    if not args.from_port:
        raise CliError("give --from-port (and --to-port or --to-ip), or a raw --flow")
    src = cli.network.GetPort(network_pb2.GetRequest(id=cli.resolve("port", args.from_port)), timeout=cli.timeout)
    host = src.binding_host_id
    if not host:
        raise CliError(f"port {args.from_port} is not bound to a host, so no switch has it")
    rundir = rundirs.get(host, local)
    tunnel_ip = local_tunnel_ip(rundir)
    if not tunnel_ip:
        raise CliError(
            f"the OVS in {rundir} has no Loom tunnel port ({TUNNEL_PORT_NAME}): it is not a Loom hypervisor's. "
            f"Run this on {host} with $OVS_RUNDIR (or --ovs-rundir) pointing at its OVS, or give --hv-rundir {host}=DIR"
        )
    here = names.host_of_ip.get(tunnel_ip, "")
    if here and here != host:
        raise CliError(
            f"the switch in {rundir} is {here}'s, but port {args.from_port} is bound to {host}: "
            f"run this on {host}, or give --hv-rundir {host}=DIR (its OVS run directory)"
        )
    ofport = args.in_port
    if not ofport:
        plugged = [n for n, (pid, _) in names.port_names(rundir).items() if pid == src.id]
        ofport = plugged[0] if plugged else int(src.binding_vif_details.get("ofport", "0") or 0)
    dst = None
    if args.to_port:
        dst_port = cli.network.GetPort(
            network_pb2.GetRequest(id=cli.resolve("port", args.to_port)), timeout=cli.timeout
        )
        dst = Endpoint(dst_port.mac_address, dst_port.fixed_ips[0].ip_address if dst_port.fixed_ips else "")
    if dst is None and not args.to_ip:
        raise CliError("give --to-port or --to-ip")
    if dst is None and args.proto != "arp" and not args.to_mac:
        raise CliError("--to-ip without --to-port needs --to-mac (or --proto arp)")
    src_ip = src.fixed_ips[0].ip_address if src.fixed_ips else ""
    flow = build_flow(
        Endpoint(src.mac_address, src_ip, ofport),
        dst,
        args.proto,
        args.dport,
        args.to_ip,
        sport=args.sport,
        dst_mac=args.to_mac,
    )
    return host, rundir, flow


def switch_trace(args: argparse.Namespace, cli: Cli) -> int:
    rundirs = dict(args.hv_rundir or [])
    names = Names.load(cli)
    host, rundir, flow = _first_leg(args, cli, names, rundirs)
    pending = deque([(host, rundir, flow, "")])
    report: list[dict[str, object]] = []
    deliveries: list[Delivery] = []
    drops: list[str] = []
    stops: list[str] = []
    while pending:
        if len(report) >= MAX_SWITCH_HOPS:
            raise CliError(f"more than {MAX_SWITCH_HOPS} switches: a loop between hosts?")
        host, rundir, flow, came = pending.popleft()
        raw = _raw_trace(flow, rundir, host)
        ports = names.port_names(rundir)
        in_port = flow_in_port(flow)
        parsed = parse_trace(raw, in_port)
        hop: dict[str, object] = {"host": host, "rundir": rundir, "flow": flow, "trace": raw, "outputs": []}
        if not cli.json:
            print(f"== {host}: ovs-appctl ofproto/trace br-int (OVS_RUNDIR={rundir}){came}")
            print(annotate(raw, names.owners, {n: name for n, (_, name) in ports.items()}).rstrip())
        notes = []
        for out in parsed.outputs:
            if not out.tunnel:
                pid, name = ports.get(out.ofport, ("", f"OpenFlow port {out.ofport}"))
                back = out.ofport == in_port
                deliveries.append(Delivery(host, out.ofport, pid, name, back))
                notes.append(
                    f"delivered to {name} (ofport {out.ofport})" + (" back where it came from" if back else "")
                )
                continue
            remote = names.host_of_ip.get(out.remote_ip, "")
            what = f"tunnel to {remote or out.remote_ip} ({out.remote_ip}), VNI {out.vni}"
            if not remote:
                stops.append(f"lost: {what}: no registered hypervisor has that tunnel IP")
                notes.append(stops[-1])
            elif remote in rundirs:
                local_ip = names.ip_of_host.get(host, "") or local_tunnel_ip(rundir)
                inner = _final_packet(raw) or flow
                pending.append(
                    (
                        remote,
                        rundirs[remote],
                        tunnel_flow(inner, out.vni, local_ip, out.remote_ip),
                        f", arriving from {host} through the tunnel (VNI {out.vni})",
                    )
                )
                notes.append(f"{what}: continued on {remote}'s switch below")
            else:
                stops.append(
                    f"stopped at the tunnel to {remote} ({out.remote_ip}, VNI {out.vni}): "
                    f"give --hv-rundir {remote}=DIR (its OVS run directory) to follow it there"
                )
                notes.append(stops[-1])
        for missing in parsed.missing_ports:
            pid, name = names.requested.get((host, missing), ("", ""))
            notes.append(
                f"output to OpenFlow port {missing}, which {host}'s switch does not have"
                + (f" ({name}'s VIF is not plugged?)" if name else "")
            )
        if parsed.dropped:
            last = parsed.last_table if parsed.last_table is not None else 0
            if parsed.missing_ports:
                why = f"OpenFlow port {', '.join(map(str, parsed.missing_ports))} does not exist (a VIF not plugged?)"
            elif parsed.skipped_in_port:
                why = "its only way out was the port it came in on (ofproto/trace: skipping output to input port)"
            else:
                why = "Datapath actions: drop"
            drops.append(f"on {host}'s switch after table {last} ({table_name(last)}): {why}")
            notes.append(f"dropped after table {last} ({table_name(last)})")
        hop["outputs"] = [asdict(o) for o in parsed.outputs]
        hop["dropped"] = parsed.dropped
        hop["missing_ports"] = parsed.missing_ports
        report.append(hop)
        if not cli.json:
            for note in notes:
                print(f"  -> {note}")
            print()
    to_id = cli.resolve("port", args.to_port) if args.to_port else ""
    if cli.json:
        print_json(
            {
                "mode": "switch",
                "hops": report,
                "deliveries": [asdict(d) for d in deliveries],
                "stopped": stops,
                "reached_destination": bool(to_id) and any(d.port_id == to_id for d in deliveries),
            }
        )
        return 0
    print(_summary(deliveries, drops, stops, args.to_port or "", to_id))
    return 0


# The header fields of ofproto/trace's flows (the rest are registers, tunnel and datapath metadata).
_PACKET_FIELDS = ("dl_", "vlan_", "nw_", "tp_", "tcp_", "icmp_", "arp_")


def _final_packet(raw: str) -> str:
    """The packet fields of ofproto/trace's "Final flow" (after rewrites), without registers and tunnel
    metadata: what the tunnel carries to the next hypervisor. Empty when it is "unchanged"."""
    for line in reversed(raw.splitlines()):  # the last pass's (after conntrack recirculations)
        if line.startswith("Final flow:"):
            text = line.removeprefix("Final flow:").strip()
            if text == "unchanged":
                return ""
            # A recirculated pass prints "eth" among the protocol words, which ofproto/trace does not read back.
            parts = [p for p in text.split(",") if p and p != "eth" and ("=" not in p or p.startswith(_PACKET_FIELDS))]
            return ",".join(parts)
    return ""


# ---------------------------------------------------------------- the command


def trace(args: argparse.Namespace, cli: Cli) -> int:
    if args.switch:
        return switch_trace(args, cli)
    return controller_trace(args, cli)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-port", help="the sending port (id or name)")
    parser.add_argument("--to-port", help="the receiving port (id or name)")
    parser.add_argument("--to-ip", default="", help="destination IP (default: the receiving port's)")
    parser.add_argument("--to-mac", default="", help="destination MAC (default: the receiving port's)")
    parser.add_argument("--proto", default="icmp", choices=PROTOCOLS, help="icmp echo, tcp SYN, udp, arp request")
    parser.add_argument("--dport", type=int, default=0, help="TCP/UDP destination port (default 80)")
    parser.add_argument("--sport", type=int, default=0, help="TCP/UDP source port (default 40000)")
    sw = parser.add_argument_group("the real switch (--switch)")
    sw.add_argument(
        "--switch",
        action="store_true",
        help="trace the real switch here (ofproto/trace) instead of the controller's compiled flows",
    )
    sw.add_argument(
        "--ovs-rundir",
        default="",
        help="this hypervisor's OVS run directory (default: $OVS_RUNDIR, else /var/run/openvswitch)",
    )
    sw.add_argument(
        "--hv-rundir",
        action="append",
        type=key_value,
        metavar="HOST=DIR",
        help="another hypervisor's OVS run directory, to follow the packet across the tunnel (repeat)",
    )
    sw.add_argument("--in-port", type=int, default=0, help="override the sender's OpenFlow port")
    sw.add_argument("--flow", default="", help="a raw ofproto/trace flow instead of --from-port")
    parser.set_defaults(handler=trace)


GROUPS = [
    CommandGroup(
        "trace",
        "follow a packet hop by hop: the controller's compiled flows, or (--switch) the real switches",
        configure,
    )
]
