"""The real Open vSwitch as an oracle for the flow-table simulator (used by test_simulator_vs_ovs.py).

A :class:`Sandbox` is a private ovsdb-server + ovs-vswitchd (userspace
datapath) in its own network namespace, so its connection table, routes and
neighbour cache belong to the tests alone: rows can flush conntrack, and
tunnels route over an underlay bridge ``lvphy`` (198.51.100.1/24, with
neighbour entries for .2-.9) without touching the system OVS.

Each row gets a :class:`ScratchBridge`: veth ports 1..N (the OVS side in the
bridge, the peer up in the namespace) and the flow-based VXLAN port 65200.
Flows go in through Loom's own encoder and installer (so the bytes are
checked too), groups through ``ovs-ofctl add-group`` of ``GroupDef.text()``.
Two ways to ask the switch:

* :meth:`ScratchBridge.trace` runs ``ovs-appctl ofproto/trace`` on the
  packet's bytes (``--ct-next`` for conntrack states) and reads it into
  :class:`PassView` s: where each pass started, its ct_state/zone/mark, the
  cookies of the flows it hit, its ct actions and its outputs, each output's
  headers obtained by replaying the datapath actions on the packet.
* :meth:`ScratchBridge.send` sends the packet's bytes into a veth and
  captures what comes out of every other veth; conntrack runs for real.

:func:`sim_views` turns a simulator Trace into the same PassViews, so a test
compares like with like.
"""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from controller.compiler.sim import Packet, Trace
from controller.compiler.sim.switch import CtEvent
from dataplane.common import netns as ns
from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract.encode import FlowEncoder
from dataplane.contract.fields import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    IP_PROTO_ICMP,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    int_to_ipv4,
    int_to_mac,
    ipv4_to_int,
    mac_to_int,
)
from dataplane.contract.flow import Flow, GroupDef
from dataplane.openflow.connection import OFConnection, mgmt_target
from dataplane.openflow.installer import FlowInstaller
from lab.mininet.ovs_instance import OvsInstance

UNDERLAY_IP = "198.51.100.1"
UNDERLAY_PEERS = [f"198.51.100.{i}" for i in range(2, 10)]

# The header fields compared at every output; tunnel outputs add tunnel_id and tun_ipv4_dst.
COMPARED = (
    "eth_src",
    "eth_dst",
    "vlan_vid",  # shown only when the packet carries a tag
    "eth_type",
    "ipv4_src",
    "ipv4_dst",
    "nw_ttl",
    "ip_proto",
    "tcp_src",
    "tcp_dst",
    "udp_src",
    "udp_dst",
    "icmpv4_type",
    "icmpv4_code",
    "arp_op",
    "arp_spa",
    "arp_tpa",
    "arp_sha",
    "arp_tha",
    "inner_ipv4_src",
    "inner_ipv4_dst",
    "inner_sport",
    "inner_dport",
)


# ---------------------------------------------------------------- packet bytes


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_header(src: int, dst: int, proto: int, ttl: int, payload_len: int) -> bytes:
    head = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + payload_len, 0, 0x4000, ttl, proto, 0, src, dst)
    return head[:10] + struct.pack("!H", _csum(head)) + head[12:]


def _l4_with_csum(src: int, dst: int, proto: int, segment: bytes, csum_offset: int) -> bytes:
    pseudo = struct.pack("!IIBBH", src, dst, 0, proto, len(segment))
    csum = _csum(pseudo + segment)
    if proto == IP_PROTO_UDP and csum == 0:
        csum = 0xFFFF
    return segment[:csum_offset] + struct.pack("!H", csum) + segment[csum_offset + 2 :]


def _tcp_segment(pkt: Packet) -> bytes:
    options = b""
    if "tcp_wscale" in pkt:
        options = struct.pack("!BBBB", 1, 3, 3, pkt["tcp_wscale"])  # NOP, window scale
    offset = (20 + len(options)) // 4
    head = struct.pack(
        "!HHIIBBHHH",
        pkt["tcp_src"],
        pkt["tcp_dst"],
        pkt.get("tcp_seq", 0),
        pkt.get("tcp_ack", 0),
        offset << 4,
        pkt.get("tcp_flags", 0),
        pkt.get("tcp_win", 0),
        0,
        0,
    )
    return head + options + bytes(pkt.get("l4_payload", 0))


def _icmp_body(pkt: Packet) -> bytes:
    icmp_type = pkt["icmpv4_type"]
    if "inner_ipv4_src" not in pkt:
        return struct.pack(
            "!BBHHH", icmp_type, pkt.get("icmpv4_code", 0), 0, pkt.get("icmp_id", 0), pkt.get("icmp_seq", 0)
        )
    proto = pkt["inner_ip_proto"]
    if proto == IP_PROTO_TCP:
        inner_l4 = struct.pack("!HHI", pkt["inner_sport"], pkt["inner_dport"], pkt.get("inner_tcp_seq", 0))
    elif proto == IP_PROTO_UDP:
        inner_l4 = struct.pack("!HHHH", pkt["inner_sport"], pkt["inner_dport"], 8, 0)
    else:
        inner_l4 = struct.pack(
            "!BBHHH",
            pkt["inner_icmp_type"],
            pkt.get("inner_icmp_code", 0),
            0,
            pkt.get("inner_icmp_id", 0),
            pkt.get("inner_icmp_seq", 0),
        )
    inner = _ip_header(pkt["inner_ipv4_src"], pkt["inner_ipv4_dst"], proto, 63, len(inner_l4)) + inner_l4
    return struct.pack("!BBHI", icmp_type, pkt.get("icmpv4_code", 0), 0, 0) + inner


VLAN_PRESENT = 0x1000  # OFPVID_PRESENT in a simulator packet's vlan_vid


def to_bytes(pkt: Packet) -> bytes:
    """An Ethernet frame for a simulator packet (checksums right: userspace conntrack checks them)."""
    eth = struct.pack("!6s6s", pkt["eth_dst"].to_bytes(6, "big"), pkt["eth_src"].to_bytes(6, "big"))
    if pkt.get("vlan_vid", 0) & VLAN_PRESENT:
        eth += struct.pack("!HH", 0x8100, pkt["vlan_vid"] & 0xFFF)
    eth += struct.pack("!H", pkt["eth_type"])
    if pkt["eth_type"] == ETH_TYPE_ARP:
        return eth + struct.pack(
            "!HHBBH6sI6sI",
            1,
            ETH_TYPE_IPV4,
            6,
            4,
            pkt["arp_op"],
            pkt["arp_sha"].to_bytes(6, "big"),
            pkt["arp_spa"],
            pkt["arp_tha"].to_bytes(6, "big"),
            pkt["arp_tpa"],
        )
    if pkt["eth_type"] != ETH_TYPE_IPV4:
        return eth + bytes(46)
    src, dst, proto = pkt["ipv4_src"], pkt["ipv4_dst"], pkt["ip_proto"]
    if proto == IP_PROTO_TCP:
        l4 = _l4_with_csum(src, dst, proto, _tcp_segment(pkt), 16)
    elif proto == IP_PROTO_UDP:
        payload = bytes(pkt.get("l4_payload", 0))
        l4 = _l4_with_csum(
            src, dst, proto, struct.pack("!HHHH", pkt["udp_src"], pkt["udp_dst"], 8 + len(payload), 0) + payload, 6
        )
    elif proto == IP_PROTO_ICMP:
        body = _icmp_body(pkt)
        l4 = body[:2] + struct.pack("!H", _csum(body)) + body[4:]
    else:
        l4 = b""
    return eth + _ip_header(src, dst, proto, pkt.get("nw_ttl", 64), len(l4)) + l4


def from_bytes(frame: bytes) -> Packet:
    """A captured frame as a simulator packet (the keys :func:`to_bytes` writes)."""
    dst, src, eth_type = struct.unpack_from("!6s6sH", frame)
    pkt: Packet = {"eth_dst": int.from_bytes(dst, "big"), "eth_src": int.from_bytes(src, "big"), "eth_type": eth_type}
    if eth_type == ETH_TYPE_ARP:
        op, sha, spa, tha, tpa = struct.unpack_from("!6xH6sI6sI", frame, 14)
        pkt.update(arp_op=op, arp_sha=int.from_bytes(sha, "big"), arp_spa=spa, arp_tha=int.from_bytes(tha, "big"))
        pkt["arp_tpa"] = tpa
        return pkt
    if eth_type != ETH_TYPE_IPV4:
        return pkt
    ihl = (frame[14] & 0xF) * 4
    total, ttl, proto, ip_src, ip_dst = struct.unpack_from("!2xH4xBB2xII", frame, 14)
    pkt.update(ipv4_src=ip_src, ipv4_dst=ip_dst, ip_proto=proto, nw_ttl=ttl)
    l4 = frame[14 + ihl : 14 + total]
    if proto == IP_PROTO_TCP:
        sport, dport, seq, ack, offset, flags, win = struct.unpack_from("!HHIIBBH", l4)
        hlen = (offset >> 4) * 4
        pkt.update(tcp_src=sport, tcp_dst=dport, tcp_seq=seq, tcp_ack=ack, tcp_flags=flags, tcp_win=win)
        pkt["l4_payload"] = len(l4) - hlen
        opts = l4[20:hlen]
        i = 0
        while i < len(opts):
            kind = opts[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if kind == 3:
                pkt["tcp_wscale"] = opts[i + 2]
            i += max(opts[i + 1], 2)
    elif proto == IP_PROTO_UDP:
        sport, dport, length = struct.unpack_from("!HHH", l4)
        pkt.update(udp_src=sport, udp_dst=dport, l4_payload=length - 8)
    elif proto == IP_PROTO_ICMP:
        icmp_type, code = l4[0], l4[1]
        pkt.update(icmpv4_type=icmp_type, icmpv4_code=code)
        if icmp_type in (0, 8, 13, 14, 15, 16):
            pkt["icmp_id"], pkt["icmp_seq"] = struct.unpack_from("!HH", l4, 4)
        else:
            inner = l4[8:]
            iihl = (inner[0] & 0xF) * 4
            iproto, isrc, idst = struct.unpack_from("!9xB2xII", inner)
            pkt.update(inner_ipv4_src=isrc, inner_ipv4_dst=idst, inner_ip_proto=iproto)
            il4 = inner[iihl:]
            if iproto == IP_PROTO_TCP:
                pkt["inner_sport"], pkt["inner_dport"], pkt["inner_tcp_seq"] = struct.unpack_from("!HHI", il4)
            elif iproto == IP_PROTO_UDP:
                pkt["inner_sport"], pkt["inner_dport"] = struct.unpack_from("!HH", il4)
            elif iproto == IP_PROTO_ICMP:
                pkt["inner_icmp_type"], pkt["inner_icmp_code"] = il4[0], il4[1]
                pkt["inner_icmp_id"], pkt["inner_icmp_seq"] = struct.unpack_from("!HH", il4, 4)
    return pkt


# ---------------------------------------------------------------- what both sides are reduced to


@dataclass(frozen=True)
class Out:
    port: int
    fields: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:
        return f"Out({self.port}: {', '.join(f'{k}={v}' for k, v in self.fields)})"


@dataclass(frozen=True)
class PassView:
    """One pass through the pipeline, as both the simulator and ofproto/trace can tell it."""

    table: int
    ct_state: str
    ct_zone: int
    ct_mark: int
    cookies: tuple[int, ...]
    cts: tuple[tuple[int, bool], ...]  # (zone, commit) of each ct action
    outputs: tuple[Out, ...]


def _show(name: str, value: int) -> str:
    if name in ("eth_src", "eth_dst", "arp_sha", "arp_tha"):
        return int_to_mac(value)
    if name in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa", "tun_ipv4_dst", "inner_ipv4_src", "inner_ipv4_dst"):
        return int_to_ipv4(value)
    if name in ("eth_type", "tunnel_id"):
        return hex(value)
    return str(value)


def out_of(port: int, pkt: Packet) -> Out:
    if not pkt.get("vlan_vid", 0) & VLAN_PRESENT:
        pkt = {k: v for k, v in pkt.items() if k != "vlan_vid"}
    names = list(COMPARED)
    if port == TUNNEL_OFPORT:
        names += ["tunnel_id", "tun_ipv4_dst"]
    return Out(port, tuple((n, _show(n, pkt[n])) for n in names if n in pkt))


def sim_views(trace: Trace) -> list[PassView]:
    from controller.compiler.sim import ct_state_text

    views = []
    for p in trace.passes:
        cts = tuple((e.zone, e.commit) for e in p.events if isinstance(e, CtEvent))
        views.append(
            PassView(
                p.table,
                ct_state_text(p.ct_state),
                p.ct_zone,
                p.ct_mark,
                tuple(f.cookie for f in p.hits),
                cts,
                tuple(out_of(e.port, e.packet) for e in p.emitted),
            )
        )
    return views


# ---------------------------------------------------------------- reading ofproto/trace

_RULE = re.compile(r"^\s*\d+\. (?:.*, )?priority \d+(?:, cookie (0x[0-9a-f]+))?$")
_RESUME = re.compile(r"Resuming from table (\d+)")
_RECIRC = re.compile(r"^recirc\(0x[0-9a-f]+\)(?: - resume conntrack with ct_state=(\S+))?")


def _split_top(text: str) -> list[str]:
    """Split datapath actions at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        parts.append(cur)
    return parts


def _args(text: str) -> dict[str, str]:
    """``k=v,k=v`` at top level (values may hold parentheses)."""
    out = {}
    for part in _split_top(text):
        key, _, value = part.partition("=")
        out[key] = value
    return out


_SET_FIELDS = {
    "eth": {"src": "eth_src", "dst": "eth_dst"},
    "ipv4": {"src": "ipv4_src", "dst": "ipv4_dst", "ttl": "nw_ttl"},
    "tcp": {"src": "tcp_src", "dst": "tcp_dst"},
    "udp": {"src": "udp_src", "dst": "udp_dst"},
    "arp": {"sip": "arp_spa", "tip": "arp_tpa", "op": "arp_op", "sha": "arp_sha", "tha": "arp_tha"},
}


def _parse_value(name: str, text: str) -> int:
    if name in ("eth_src", "eth_dst", "arp_sha", "arp_tha"):
        return mac_to_int(text)
    if name in ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"):
        return ipv4_to_int(text)
    return int(text, 0)


def _replay(actions: str, pkt: Packet, dp_to_of: dict[int, int], outs: list[Out], cts: list[tuple[int, bool]]) -> None:
    """Apply datapath actions to ``pkt``, recording outputs and ct actions."""
    for act in _split_top(actions):
        act = act.strip()
        if act.isdigit():
            outs.append(out_of(dp_to_of[int(act)], pkt))
        elif act.startswith("set(") or act.startswith("set_masked("):
            inner = act[act.index("(") + 1 : -1]
            header, _, body = inner.partition("(")
            names = _SET_FIELDS.get(header)
            if names is None:
                raise AssertionError(f"unexpected datapath set: {act}")
            for key, value in _args(body[:-1]).items():
                name = names[key]
                raw, _, mask = value.partition("/")
                new = _parse_value(name, raw)
                if mask:
                    m = _parse_value(name, mask)
                    new = (pkt.get(name, 0) & ~m) | (new & m)
                pkt[name] = new
        elif act.startswith("clone("):
            body = act[len("clone(") : -1]
            inner = dict(pkt)
            sub = _split_top(body)
            if sub and sub[0].startswith("tnl_push("):
                header = sub[0]
                vni = re.search(r"vni=(0x[0-9a-f]+)", header)
                dst = re.search(r"ipv4\(src=[0-9.]+,dst=([0-9.]+)", header)
                assert vni and dst, header
                inner.update(tunnel_id=int(vni.group(1), 16), tun_ipv4_dst=ipv4_to_int(dst.group(1)))
                outs.append(out_of(TUNNEL_OFPORT, inner))  # what follows is the underlay bridge's business
            else:
                _replay(body, inner, dp_to_of, outs, cts)
        elif act.startswith("push_vlan("):
            vid = _args(act[len("push_vlan(") : -1])["vid"]
            pkt["vlan_vid"] = VLAN_PRESENT | int(vid)
        elif act == "pop_vlan":
            pkt.pop("vlan_vid", None)
        elif act.startswith("ct(") or act == "ct":
            args = _args(act[3:-1]) if act != "ct" else {}
            cts.append((int(args.get("zone", "0")), "commit" in args))
        elif act.startswith("hash("):
            continue  # a select group's dp_hash: OVS recirculates and picks the bucket there (see parse_trace)
        elif act.startswith("recirc(") or act in ("ct_clear", "drop") or act.startswith("userspace("):
            continue  # recirculations are read from their own sections; userspace = dec_ttl's packet-in
        else:
            raise AssertionError(f"unexpected datapath action {act!r} (not compared yet)")


def parse_trace(text: str, packet: Packet, dp_to_of: dict[int, int]) -> list[PassView]:
    """ofproto/trace output -> one PassView per pass (the first, then each recirculation)."""
    sections: list[list[str]] = [[]]
    headers: list[str] = [""]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("=" * 20) and i + 1 < len(lines) and lines[i + 1].startswith("recirc("):
            j = i + 1
            head = []
            while not lines[j].startswith("=" * 20):
                head.append(lines[j])
                j += 1
            headers.append("\n".join(head))
            sections.append([])
            i = j + 1
            continue
        sections[-1].append(lines[i])
        i += 1
    views = []
    for head, body in zip(headers, sections, strict=True):
        table = 0
        fields: dict[str, str] = {}
        cookies = []
        dp_actions = ""
        for line in body:
            if line.startswith("Flow: "):
                for part in line[len("Flow: ") :].split(","):
                    key, _, value = part.partition("=")
                    fields[key] = value
            elif m := _RESUME.search(line):
                table = int(m.group(1))
            elif (m := _RULE.match(line)) and m.group(1):
                # Flows without a cookie are not the row's: the underlay bridge's, or OVS's hidden ones.
                cookies.append(int(m.group(1), 16))
            elif line.startswith("Datapath actions: "):
                dp_actions = line[len("Datapath actions: ") :]
        start = dict(packet)
        if head:  # a recirculation resumes with the (possibly NAT-faked) flow the trace printed
            for name, key in (("ipv4_src", "nw_src"), ("ipv4_dst", "nw_dst")):
                if key in fields:
                    start[name] = ipv4_to_int(fields[key])
            for proto, prefix in ((IP_PROTO_TCP, "tcp"), (IP_PROTO_UDP, "udp")):
                if start.get("ip_proto") == proto:
                    for side in ("src", "dst"):
                        if f"tp_{side}" in fields:
                            start[f"{prefix}_{side}"] = int(fields[f"tp_{side}"])
        outs: list[Out] = []
        cts: list[tuple[int, bool]] = []
        _replay(dp_actions, start, dp_to_of, outs, cts)
        state = fields.get("ct_state", "")
        views.append(
            PassView(
                table,
                state,
                int(fields.get("ct_zone", "0")),
                int(fields.get("ct_mark", "0"), 0),
                tuple(cookies),
                tuple(cts),
                tuple(outs),
            )
        )
    return views


# ---------------------------------------------------------------- the sandbox switch


class Sandbox:
    """A private ovs-vswitchd in namespace ``netns``, with an underlay bridge for tunnels."""

    def __init__(self, root: str) -> None:
        self.netns = "lv-sb" + uuid.uuid4().hex[:8]
        self.instance = OvsInstance(root, self.netns, self.netns)
        self.env = {**os.environ, **self.instance.paths.env}

    def start(self) -> None:
        ns.create(self.netns)
        # No IPv6 on the scratch links: no router solicitations or MLD reports among the captured packets.
        self.sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1", netns=True)
        self.instance.start()
        self.vsctl("add-br", "lvphy", "--", "set", "bridge", "lvphy", "datapath_type=netdev", "fail_mode=secure")
        self.sh("ip", "addr", "add", f"{UNDERLAY_IP}/24", "dev", "lvphy", netns=True)
        self.sh("ip", "link", "set", "lvphy", "up", netns=True)
        self.sh("ip", "link", "add", "lvphyp", "type", "veth", "peer", "name", "lvphyq", netns=True)
        for dev in ("lvphyp", "lvphyq"):
            self.sh("ip", "link", "set", dev, "up", netns=True)
        self.vsctl("add-port", "lvphy", "lvphyp", "--", "set", "interface", "lvphyp", "ofport_request=1")
        self.sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", "lvphy", "priority=0,actions=output:1")
        deadline = time.monotonic() + 10
        while "198.51.100.0/24 dev lvphy" not in self.sh("ovs-appctl", "ovs/route/show"):
            if time.monotonic() > deadline:
                raise AssertionError("OVS never learnt the underlay route")
            time.sleep(0.05)
        for peer in UNDERLAY_PEERS:
            last = int(peer.rsplit(".", 1)[1])
            self.sh("ovs-appctl", "tnl/arp/set", "lvphy", peer, f"02:00:00:00:01:{last:02x}")

    def stop(self) -> None:
        try:
            self.instance.stop()
        finally:
            for pid in ns.pids(self.netns):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            ns.delete(self.netns)

    def sh(self, *argv: str, netns: bool = False, check: bool = True) -> str:
        cmd = ["ip", "netns", "exec", self.netns, *argv] if netns else list(argv)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=False, timeout=60)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def vsctl(self, *args: str) -> str:
        return self.sh("ovs-vsctl", "--timeout=10", *args)

    def conntrack(self) -> list[str]:
        """``dpctl/dump-conntrack`` lines, sorted (the whole datapath: the sandbox runs one row at a time)."""
        out = self.sh("ovs-appctl", "dpctl/dump-conntrack")
        return sorted(line.strip() for line in out.splitlines() if line.strip())

    def flush_conntrack(self) -> None:
        self.sh("ovs-appctl", "dpctl/flush-conntrack")

    @contextmanager
    def bridge(self, n_ports: int = 4) -> Iterator[ScratchBridge]:
        br = ScratchBridge(self, n_ports)
        try:
            br.create()
            yield br
        finally:
            br.destroy()


class ScratchBridge:
    """A netdev bridge lvXXXXXX with veth ports 1..n and the flow-based VXLAN port 65200."""

    def __init__(self, box: Sandbox, n_ports: int) -> None:
        self.box = box
        tag = uuid.uuid4().hex[:6]
        self.name = f"lvb{tag}"
        self.ovs_side = {p: f"lv{tag}o{p}" for p in range(1, n_ports + 1)}
        self.peer_side = {p: f"lv{tag}p{p}" for p in range(1, n_ports + 1)}
        self.dp_to_of: dict[int, int] = {}
        self._sockets: dict[int, socket.socket] = {}

    def create(self) -> None:
        box = self.box
        box.vsctl("add-br", self.name, "--", "set", "bridge", self.name, "datapath_type=netdev", "fail_mode=secure")
        for port, dev in self.ovs_side.items():
            peer = self.peer_side[port]
            box.sh("ip", "link", "add", dev, "type", "veth", "peer", "name", peer, netns=True)
            for d in (dev, peer):
                box.sh("ip", "link", "set", d, "up", netns=True)
            box.vsctl("add-port", self.name, dev, "--", "set", "interface", dev, f"ofport_request={port}")
        tun = f"{self.name}t"
        box.vsctl(
            "add-port",
            self.name,
            tun,
            "--",
            "set",
            "interface",
            tun,
            "type=vxlan",
            "options:remote_ip=flow",
            "options:key=flow",
            f"ofport_request={TUNNEL_OFPORT}",
        )
        self.wait_links({p: True for p in self.ovs_side})
        for line in box.sh("ovs-appctl", "dpif/show").splitlines():
            m = re.match(r"\s+(\S+) (\d+)/(\d+):", line)
            if m and (m.group(1) in self.ovs_side.values() or m.group(1) == tun):
                self.dp_to_of[int(m.group(3))] = int(m.group(2))
        with ns.entered(box.netns):
            for port, peer in self.peer_side.items():
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
                sock.bind((peer, 0))
                sock.setblocking(False)
                self._sockets[port] = sock

    def forget_peer(self, port: int) -> None:
        """Stop capturing on ``port``'s peer (it is about to move into another namespace)."""
        self._sockets.pop(port).close()

    def destroy(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self.box.vsctl("--if-exists", "del-br", self.name)
        for dev in self.ovs_side.values():
            self.box.sh("ip", "link", "del", dev, netns=True, check=False)

    # -- configuration

    def install(self, flows: Sequence[Flow], groups: Iterable[GroupDef] = ()) -> None:
        """Groups by ovs-ofctl (checked against GroupDef.text()), then flows by Loom's encoder and installer."""
        for group in groups:
            self.box.sh("ovs-ofctl", "-O", "OpenFlow13", "add-group", self.name, group.text())
        dumped = self.box.sh("ovs-ofctl", "-O", "OpenFlow13", "dump-groups", self.name)
        for group in groups:
            assert group.text() in dumped, f"OVS reads {group.text()!r} differently:\n{dumped}"
        encoder = FlowEncoder()
        with OFConnection(mgmt_target(self.name, self.box.instance.paths.rundir)) as conn:
            FlowInstaller(conn).sync([encoder.to_wire(f) for f in flows])
        self.settle()

    def settle(self) -> None:
        """Make the datapath forget cached flows, so the next packet is translated with the tables as they are."""
        self.box.sh("ovs-appctl", "revalidator/purge")

    def wait_links(self, up: dict[int, bool]) -> None:
        for port, state in up.items():
            self.box.sh("ip", "link", "set", self.peer_side[port], "up" if state else "down", netns=True)
        deadline = time.monotonic() + 10
        while True:
            show = self.box.sh("ovs-ofctl", "-O", "OpenFlow13", "show", self.name)
            states = dict(re.findall(r"^ (\d+)\(.*?\n(?:.*\n)*?\s+state:\s+(\S+)", show, re.M))
            if all((states.get(str(p)) == "LIVE") == s for p, s in up.items()):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"ports never reached {up}:\n{show}")
            time.sleep(0.05)
        self.settle()

    # -- asking the switch

    def trace(self, in_port: int, packet: Packet, ct_next: Sequence[str] = ()) -> tuple[list[PassView], str]:
        flow = f"in_port={in_port}"
        if in_port == TUNNEL_OFPORT:
            flow += f",tun_id={packet.get('tunnel_id', 0):#x},tun_src={int_to_ipv4(packet.get('tun_ipv4_src', 0))}"
            flow += f",tun_dst={int_to_ipv4(packet.get('tun_ipv4_dst', 0))}"
        argv = ["ovs-appctl", "ofproto/trace", self.name, flow, to_bytes(packet).hex()]
        for state in ct_next:
            argv += ["--ct-next", state]
        text = self.box.sh(*argv)
        return parse_trace(text, packet, self.dp_to_of), text

    def send(self, in_port: int, packet: Packet, expect: int, grace: float = 0.1) -> list[tuple[int, Packet]]:
        """Send the packet into ``in_port``'s veth; every packet that leaves another veth, as (port, packet).

        Waits (up to 5 s, for a loaded machine) for the ``expect`` packets the simulator predicts, then
        ``grace`` seconds more for any it did not.
        """
        for sock in self._sockets.values():
            _drain(sock)
        self._sockets[in_port].send(to_bytes(packet))
        got: list[tuple[int, Packet]] = []
        by_fd = {sock.fileno(): port for port, sock in self._sockets.items()}
        give_up = time.monotonic() + 5.0
        deadline = give_up if expect else time.monotonic() + grace
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(self._sockets.values()), [], [], left)
            for sock in ready:
                while True:
                    try:
                        frame, addr = sock.recvfrom(65535)
                    except (BlockingIOError, OSError):
                        break
                    if addr[2] == socket.PACKET_OUTGOING:
                        continue  # what we sent ourselves
                    got.append((by_fd[sock.fileno()], from_bytes(frame)))
            if len(got) >= expect and deadline == give_up:
                deadline = time.monotonic() + grace
        return got

    def flow_stats(self) -> dict[int, int]:
        """n_packets per cookie (after pushing the datapath's counters up)."""
        self.settle()
        out = self.box.sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", self.name)
        stats: dict[int, int] = {}
        for m in re.finditer(r"cookie=(0x[0-9a-f]+),.*?n_packets=(\d+)", out):
            cookie = int(m.group(1), 16)
            stats[cookie] = stats.get(cookie, 0) + int(m.group(2))
        return stats


_SO_TIMESTAMPNS = 35  # Linux asm-generic/socket.h; Python's socket module does not name it


@dataclass(frozen=True)
class Captured:
    """A frame seen on a peer veth: ``sent`` by the host behind it (so it entered OVS), or received."""

    when: float
    port: int
    sent: bool
    packet: Packet


class KernelHosts:
    """Real network stacks behind bridge ports: each peer veth moved into its own namespace with an address.

    Every frame on those veths is captured with its kernel timestamp, so the frames the stacks sent can be
    replayed into the simulator in the order OVS received them.
    """

    def __init__(self, bridge: ScratchBridge, addresses: dict[int, str]) -> None:
        self.bridge = bridge
        self.addresses = addresses
        self.netns = {port: "lv-k" + uuid.uuid4().hex[:8] for port in addresses}
        self._sockets: dict[int, socket.socket] = {}

    def __enter__(self) -> KernelHosts:
        box, br = self.bridge.box, self.bridge
        for port, address in self.addresses.items():
            name, dev = self.netns[port], br.peer_side[port]
            ns.create(name)
            br.forget_peer(port)
            box.sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            box.sh("ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            box.sh("ip", "link", "set", dev, "netns", name, netns=True)
            box.sh("ip", "netns", "exec", name, "ethtool", "-K", dev, "tx", "off")  # the userspace datapath needs it
            box.sh("ip", "netns", "exec", name, "ip", "addr", "add", f"{address}/24", "dev", dev)
            box.sh("ip", "netns", "exec", name, "ip", "link", "set", dev, "up")
            with ns.entered(name):
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                sock.bind((dev, 0))
                sock.setblocking(False)
                self._sockets[port] = sock
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self._sockets.values():
            sock.close()
        for name in self.netns.values():
            for pid in ns.pids(name):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            ns.delete(name)

    def run(self, port: int, script: str) -> subprocess.Popen[str]:
        """Start ``python3 -c script`` in the namespace behind ``port``."""
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns[port], "python3", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def captured(self) -> list[Captured]:
        """Everything captured so far, in kernel timestamp order."""
        out = []
        for port, sock in self._sockets.items():
            while True:
                try:
                    frame, anc, _, addr = sock.recvmsg(65535, socket.CMSG_SPACE(16))
                except BlockingIOError:
                    break
                when = 0.0
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", data[:16])
                        when = sec + nsec / 1e9
                out.append(Captured(when, port, addr[2] == socket.PACKET_OUTGOING, from_bytes(frame)))
        return sorted(out, key=lambda c: c.when)


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(65535)
        except (BlockingIOError, OSError):  # OSError: ENETDOWN on a veth the row took down
            return
