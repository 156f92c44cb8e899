"""The OpenFlow match fields Loom uses, declared once as data.

Each field knows its OXM class and number, its width and how to print it, so the
encoder, the text formatter and the flow-table simulator agree on one definition.
Names follow os-ken / OVS (``eth_dst``, ``ipv4_src``, ``reg6``, ``tun_ipv4_dst``).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from enum import Enum

OXM_CLASS_NXM0 = 0x0000
OXM_CLASS_NXM1 = 0x0001
OXM_CLASS_OPENFLOW_BASIC = 0x8000


class FieldKind(Enum):
    """How a field's value is written for humans."""

    INT = "int"
    HEX = "hex"
    MAC = "mac"
    IPV4 = "ipv4"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One match/set-field field: where it lives in OXM and how wide it is."""

    name: str
    oxm_class: int
    oxm_field: int
    n_bytes: int
    kind: FieldKind
    maskable: bool
    # The name ovs-ofctl prints, so our text matches `ovs-ofctl dump-flows`.
    ofctl_name: str

    @property
    def all_ones(self) -> int:
        return (1 << (8 * self.n_bytes)) - 1

    @property
    def n_bits(self) -> int:
        return 8 * self.n_bytes


def _f(name: str, cls: int, num: int, n: int, kind: FieldKind, maskable: bool, ofctl: str | None = None) -> FieldSpec:
    return FieldSpec(name, cls, num, n, kind, maskable, ofctl or name)


_B = OXM_CLASS_OPENFLOW_BASIC
_N0 = OXM_CLASS_NXM0
_N1 = OXM_CLASS_NXM1

FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in [
        _f("in_port", _B, 0, 4, FieldKind.INT, False),
        _f("metadata", _B, 2, 8, FieldKind.HEX, True),
        _f("eth_dst", _B, 3, 6, FieldKind.MAC, True, "dl_dst"),
        _f("eth_src", _B, 4, 6, FieldKind.MAC, True, "dl_src"),
        _f("eth_type", _B, 5, 2, FieldKind.HEX, False, "dl_type"),
        # ovs-ofctl reads dl_vlan as the bare 12-bit VID; vlan_vid carries the OFPVID_PRESENT bit.
        _f("vlan_vid", _B, 6, 2, FieldKind.HEX, True),
        _f("ip_proto", _B, 10, 1, FieldKind.INT, False, "nw_proto"),
        _f("ipv4_src", _B, 11, 4, FieldKind.IPV4, True, "nw_src"),
        _f("ipv4_dst", _B, 12, 4, FieldKind.IPV4, True, "nw_dst"),
        _f("tcp_src", _B, 13, 2, FieldKind.INT, True, "tp_src"),
        _f("tcp_dst", _B, 14, 2, FieldKind.INT, True, "tp_dst"),
        _f("udp_src", _B, 15, 2, FieldKind.INT, True, "tp_src"),
        _f("udp_dst", _B, 16, 2, FieldKind.INT, True, "tp_dst"),
        _f("icmpv4_type", _B, 19, 1, FieldKind.INT, False, "icmp_type"),
        _f("icmpv4_code", _B, 20, 1, FieldKind.INT, False, "icmp_code"),
        _f("arp_op", _B, 21, 2, FieldKind.INT, False),  # 16 bits on the wire; OVS accepts only 0-255
        _f("arp_spa", _B, 22, 4, FieldKind.IPV4, True),
        _f("arp_tpa", _B, 23, 4, FieldKind.IPV4, True),
        _f("arp_sha", _B, 24, 6, FieldKind.MAC, True),
        _f("arp_tha", _B, 25, 6, FieldKind.MAC, True),
        _f("tunnel_id", _B, 38, 8, FieldKind.HEX, True, "tun_id"),
        _f("nw_ttl", _N1, 29, 1, FieldKind.INT, False),
        _f("tun_ipv4_src", _N1, 31, 4, FieldKind.IPV4, True, "tun_src"),
        _f("tun_ipv4_dst", _N1, 32, 4, FieldKind.IPV4, True, "tun_dst"),
        _f("pkt_mark", _N1, 33, 4, FieldKind.HEX, True),
        _f("conj_id", _N1, 37, 4, FieldKind.INT, False),
        _f("ct_state", _N1, 105, 4, FieldKind.HEX, True),
        _f("ct_zone", _N1, 106, 2, FieldKind.INT, False),
        _f("ct_mark", _N1, 107, 4, FieldKind.HEX, True),
        _f("ct_label", _N1, 108, 16, FieldKind.HEX, True),
        *[_f(f"reg{i}", _N1, i, 4, FieldKind.HEX, True) for i in range(16)],
    ]
}

# eth_type values used by the compiler.
ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
IP_PROTO_ICMP = 1
IP_PROTO_TCP = 6
IP_PROTO_UDP = 17

# Special OpenFlow 1.3 port numbers.
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF


def mac_to_int(mac: str) -> int:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"malformed MAC address {mac!r}")
    return int("".join(p.zfill(2) for p in parts), 16)


def int_to_mac(value: int) -> str:
    raw = f"{value:012x}"
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def ipv4_to_int(ip: str) -> int:
    # inet_pton: strict dotted quad, and ~10x cheaper than ipaddress on the compiler's hot path.
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except OSError:
        raise ValueError(f"{ip!r} is not an IPv4 address") from None


def int_to_ipv4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def to_int(spec: FieldSpec, value: int | str) -> int:
    """Normalise a field value given as int, MAC text or IPv4 text."""
    if isinstance(value, int):
        if value < 0 or value > spec.all_ones:
            raise ValueError(f"value {value:#x} does not fit field {spec.name}")
        return value
    if spec.kind is FieldKind.MAC:
        return mac_to_int(value)
    if spec.kind is FieldKind.IPV4:
        return ipv4_to_int(value)
    return int(value, 0)


def format_value(spec: FieldSpec, value: int) -> str:
    if spec.kind is FieldKind.MAC:
        return int_to_mac(value)
    if spec.kind is FieldKind.IPV4:
        return int_to_ipv4(value)
    if spec.kind is FieldKind.HEX:
        return hex(value)
    return str(value)
