"""Packet traces through a hypervisor's real br-int, with every step named.

Wraps ``ovs-appctl ofproto/trace`` and annotates each flow it hit with its
pipeline table's name and the object that owns the flow (from its cookie), so
a trace reads as "classify: binding of port vm1 -> port_security: port vm1 ->
l2_lookup: port vm2 -> deliver: binding of port vm2". :func:`parse_trace`
reads where the packet left br-int (local ports, the VXLAN tunnel with its
VNI and destination, or nowhere), so a caller can continue the trace on the
destination hypervisor's switch (:func:`tunnel_flow`).

Which switch: the ovs-vswitchd whose control socket is in the run directory
given, by default ``$OVS_RUNDIR`` as every OVS tool does, else
``/var/run/openvswitch``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from dataplane.common.constants import BR_INT, TUNNEL_OFPORT, TUNNEL_PORT_NAME
from dataplane.contract.cookie import describe_cookie
from dataplane.contract.pipeline import table_name

DEFAULT_RUNDIR = "/var/run/openvswitch"

_STEP = re.compile(r"^(\s*)(\d+)\.\s(.*?)(?:,\s*cookie (0x[0-9a-f]+))?\s*$")
_BRIDGE = re.compile(r'^bridge\("([^"]+)"\)\s*$')
_SET_TUN_ID = re.compile(r"^\s*set_field:(0x[0-9a-f]+|\d+)->tun_id\s*$")
_SET_TUN_DST = re.compile(r"^\s*set_field:([0-9.]+)->tun_dst\s*$")
_OUTPUT = re.compile(r"^\s*output:(\d+)\s*$")
_IN_PORT_ACTION = re.compile(r"^\s*IN_PORT\s*$")
_SKIPPED = ">> skipping output to input port"
_NONEXISTENT = ">> Nonexistent output port"
_FLOW_IN_PORT = re.compile(r"(?:^|,)in_port=(\d+)")


@dataclass(frozen=True)
class Endpoint:
    """One side of a traced packet: an OpenFlow port, MAC and IPv4 address."""

    mac: str
    ip: str = ""
    ofport: int = 0


@dataclass(frozen=True)
class SwitchOutput:
    """Where a traced packet left br-int: a local OpenFlow port, or the tunnel (VNI, remote tunnel IP)."""

    ofport: int
    vni: int = 0
    remote_ip: str = ""

    @property
    def tunnel(self) -> bool:
        return self.ofport == TUNNEL_OFPORT


@dataclass
class SwitchTrace:
    """What one ``ofproto/trace`` on br-int says happened."""

    outputs: list[SwitchOutput] = field(default_factory=list)
    last_table: int | None = None  # the table of the last br-int flow hit
    skipped_in_port: bool = False  # an output to the input port was skipped (OpenFlow never sends back there)
    missing_ports: list[int] = field(default_factory=list)  # outputs to ports the switch does not have

    @property
    def dropped(self) -> bool:
        return not self.outputs


@dataclass(frozen=True)
class SwitchPort:
    """An OpenFlow port of br-int as OVSDB knows it: its interface name and Loom's external_ids."""

    ofport: int
    name: str
    iface_id: str = ""  # the port id of a VIF, or of the network's DHCP port for a localport
    network_id: str = ""  # a localport's network
    owner: str = ""  # loom-owner: localport, tunnel, underlay (VIFs have none)


def default_rundir() -> str:
    """Where the local OVS keeps its sockets: ``$OVS_RUNDIR`` as every OVS tool reads it, else the default."""
    return os.environ.get("OVS_RUNDIR") or DEFAULT_RUNDIR


def vswitchd_target(rundir: str) -> str:
    """The ovs-vswitchd control socket in ``rundir`` (what ``ovs-appctl -t`` takes)."""
    pid = Path(rundir, "ovs-vswitchd.pid").read_text().strip()
    return str(Path(rundir, f"ovs-vswitchd.{pid}.ctl"))


def build_flow(
    src: Endpoint, dst: Endpoint | None, proto: str, dport: int = 0, dst_ip: str = "", sport: int = 0, dst_mac: str = ""
) -> str:
    """An ofproto/trace flow from ``src`` towards ``dst`` (or ``dst_ip``): the packet the controller's trace sends.

    An ICMP echo request, a TCP SYN, a UDP datagram or an ARP request, with the
    same fields ``controller.compiler.trace.build_packet`` sets, so both traces
    follow the same packet. ofproto/trace takes exact values only: the SYN is
    ``tcp_flags=syn``, not the match syntax ``+syn`` (a wildcard it rejects);
    and it refuses ``tp_src`` on a UDP packet ("prerequisites not met"), so
    UDP ports are ``udp_src``/``udp_dst``.
    """
    target_ip = dst.ip if dst else dst_ip
    if proto == "arp":
        parts = [f"in_port={src.ofport}", f"dl_src={src.mac}", f"dl_dst={dst_mac or 'ff:ff:ff:ff:ff:ff'}", "arp"]
        parts += ["arp_op=1", f"arp_sha={src.mac}", f"arp_spa={src.ip}", f"arp_tpa={target_ip}"]
        return ",".join(parts)
    mac = dst_mac or (dst.mac if dst else "ff:ff:ff:ff:ff:ff")
    kind = proto if proto in ("icmp", "tcp", "udp") else "ip"
    parts = [kind, f"in_port={src.ofport}", f"dl_src={src.mac}", f"dl_dst={mac}"]
    parts += [f"nw_src={src.ip}", f"nw_dst={target_ip}", "nw_ttl=64"]
    if proto in ("tcp", "udp"):
        parts += [f"tp_src={sport or 40000}", f"tp_dst={dport or 80}"]
        parts = _udp_ports(parts)
    if proto == "tcp":
        parts.append("tcp_flags=syn")
    if proto == "icmp":
        parts += ["icmp_type=8", "icmp_code=0"]  # an echo request, as ping sends
    return ",".join(parts)


def tunnel_flow(flow: str, vni: int, local_ip: str, remote_ip: str) -> str:
    """``flow`` as it arrives at the remote hypervisor's br-int: on the tunnel port, with its VNI and endpoints."""
    inner = _udp_ports([p for p in flow.split(",") if p and not p.startswith("in_port=")])
    return f"in_port={TUNNEL_OFPORT},tun_id={vni:#x},tun_src={local_ip},tun_dst={remote_ip}," + ",".join(inner)


def _udp_ports(parts: list[str]) -> list[str]:
    """``tp_src``/``tp_dst`` as ``udp_src``/``udp_dst`` in a UDP flow (ofproto/trace prints those, takes these)."""
    if "udp" not in parts:
        return parts
    return [("udp_" + p[3:]) if p.startswith(("tp_src=", "tp_dst=")) else p for p in parts]


def flow_in_port(flow: str) -> int:
    m = _FLOW_IN_PORT.search(flow)
    return int(m.group(1)) if m else 0


def annotate(trace: str, owners: dict[int, str], names: dict[int, str] | None = None) -> str:
    """Add the table name and the owning object to every br-int step of an ofproto/trace output.

    ``names`` (OpenFlow port -> name) also names the ports a step outputs to.
    Steps of other bridges (br-phy, where tunnelled packets continue) are left
    as they are: Loom's tables are br-int's.
    """
    out = []
    bridge = ""
    for line in trace.splitlines():
        header = _BRIDGE.match(line)
        if header:
            bridge = header.group(1)
        m = _STEP.match(line) if bridge == BR_INT else None
        if m is None:
            port = _OUTPUT.match(line) if bridge == BR_INT and names else None
            if port and names and int(port.group(1)) in names:
                line = f"{line}  [{names[int(port.group(1))]}]"
            out.append(line)
            continue
        indent, table, rest, cookie = m.groups()
        note = f"[{table_name(int(table))}"
        if cookie:
            value = int(cookie, 16)
            note += ": " + owners.get(value, describe_cookie(value))
        out.append(f"{indent}{table}. {rest}{', cookie ' + cookie if cookie else ''}  {note}]")
    return "\n".join(out)


def parse_trace(trace: str, in_port: int) -> SwitchTrace:
    """Where the packet left br-int, read from the actions ofproto/trace printed for it, in every pass
    (security groups recirculate through conntrack: the packet leaves in the last one).

    The tunnel's VNI and destination are the last ``set_field`` to ``tun_id``
    and ``tun_dst`` before each ``output:65200`` (one flow-based port for all
    tunnels: a flood sets them anew before every copy). An output the switch
    skipped (to the input port) does not count; ``IN_PORT`` sends back.
    """
    result = SwitchTrace()
    bridge = ""
    vni, remote = 0, ""
    lines = trace.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Final flow:"):
            # The end of one pass. After a ct(table=N) the trace resumes in a pass of its own
            # ("recirc(0x1) - resume conntrack ..."), whose bridge("br-int") header comes next.
            bridge = ""
            continue
        header = _BRIDGE.match(line)
        if header:
            bridge = header.group(1)
            continue
        if bridge != BR_INT:
            continue
        step = _STEP.match(line)
        if step:
            result.last_table = int(step.group(2))
            continue
        if m := _SET_TUN_ID.match(line):
            vni = int(m.group(1), 0)
        elif m := _SET_TUN_DST.match(line):
            remote = m.group(1)
        elif m := _OUTPUT.match(line):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if _SKIPPED in following:
                result.skipped_in_port = True
                continue
            if _NONEXISTENT in following:
                result.missing_ports.append(int(m.group(1)))
                continue
            port = int(m.group(1))
            result.outputs.append(SwitchOutput(port, vni, remote) if port == TUNNEL_OFPORT else SwitchOutput(port))
        elif _IN_PORT_ACTION.match(line):
            result.outputs.append(SwitchOutput(in_port))
    return result


def run_trace(flow: str, rundir: str, bridge: str = BR_INT) -> str:
    """The raw ``ofproto/trace`` output (raises CalledProcessError with OVS's message)."""
    proc = subprocess.run(
        ["ovs-appctl", "-t", vswitchd_target(rundir), "ofproto/trace", bridge, flow],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc.stdout


def _vsctl(rundir: str, *args: str) -> str:
    proc = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{os.path.join(rundir, 'db.sock')}", "--timeout=10", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc.stdout


def switch_ports(rundir: str) -> dict[int, SwitchPort]:
    """br-int's (and every bridge's) OpenFlow ports, by number, from the OVSDB in ``rundir``."""
    raw = json.loads(_vsctl(rundir, "--format=json", "--columns=name,ofport,external_ids", "list", "Interface"))
    out: dict[int, SwitchPort] = {}
    for name, ofport, ids in raw["data"]:
        if not isinstance(ofport, int) or ofport <= 0:
            continue
        ext = dict(ids[1]) if isinstance(ids, list) and ids and ids[0] == "map" else {}
        out[ofport] = SwitchPort(
            ofport, name, ext.get("iface-id", ""), ext.get("loom-network-id", ""), ext.get("loom-owner", "")
        )
    return out


def local_tunnel_ip(rundir: str) -> str:
    """The tunnel endpoint of the switch in ``rundir`` (its VXLAN port's local_ip): which hypervisor it is."""
    try:
        return _vsctl(rundir, "get", "Interface", TUNNEL_PORT_NAME, "options:local_ip").strip().strip('"')
    except subprocess.CalledProcessError:
        return ""
