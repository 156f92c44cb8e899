"""Packet traces through a hypervisor's br-int, with every step named.

Wraps ``ovs-appctl ofproto/trace`` and annotates each flow it hit with its
pipeline table's name and the object that owns the flow (from its cookie), so
a trace reads as "classify: binding of port vm1 -> port_security: port vm1 ->
l2_lookup: port vm2 -> deliver: binding of port vm2".
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dataplane.common.constants import BR_INT
from dataplane.contract.cookie import describe_cookie
from dataplane.contract.pipeline import table_name

_STEP = re.compile(r"^(\s*)(\d+)\.\s(.*?)(?:,\s*cookie (0x[0-9a-f]+))?\s*$")


@dataclass(frozen=True)
class Endpoint:
    """One side of a traced packet: an OpenFlow port, MAC and IPv4 address."""

    mac: str
    ip: str = ""
    ofport: int = 0


def vswitchd_target(rundir: str) -> str:
    """The ovs-vswitchd control socket in ``rundir`` (what ``ovs-appctl -t`` takes)."""
    pid = Path(rundir, "ovs-vswitchd.pid").read_text().strip()
    return str(Path(rundir, f"ovs-vswitchd.{pid}.ctl"))


def build_flow(src: Endpoint, dst: Endpoint | None, proto: str, dport: int = 0, dst_ip: str = "") -> str:
    """An ofproto/trace flow from ``src`` towards ``dst`` (or ``dst_ip``)."""
    target_ip = dst.ip if dst else dst_ip
    parts = [f"in_port={src.ofport}", f"dl_src={src.mac}"]
    if proto == "arp":
        parts += ["dl_dst=ff:ff:ff:ff:ff:ff", "arp", "arp_op=1", f"arp_sha={src.mac}", f"arp_spa={src.ip}"]
        parts.append(f"arp_tpa={target_ip}")
        return ",".join(parts)
    parts.append(f"dl_dst={dst.mac if dst else 'ff:ff:ff:ff:ff:ff'}")
    parts += [proto if proto in ("icmp", "tcp", "udp") else "ip", f"nw_src={src.ip}", f"nw_dst={target_ip}"]
    if proto in ("tcp", "udp"):
        parts += ["tp_src=40000", f"tp_dst={dport or 80}"]
    if proto == "tcp":
        parts.append("tcp_flags=+syn")
    return ",".join(parts)


def annotate(trace: str, owners: dict[int, str]) -> str:
    """Add the table name and the owning object to every step of an ofproto/trace output."""
    out = []
    for line in trace.splitlines():
        m = _STEP.match(line)
        if m is None:
            out.append(line)
            continue
        indent, table, rest, cookie = m.groups()
        note = f"[{table_name(int(table))}"
        if cookie:
            value = int(cookie, 16)
            note += ": " + owners.get(value, describe_cookie(value))
        out.append(f"{indent}{table}. {rest}{', cookie ' + cookie if cookie else ''}  {note}]")
    return "\n".join(out)


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
