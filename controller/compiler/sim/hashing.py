"""Open vSwitch's flow hashes, bit for bit, so the simulator picks the bundle member OVS picks.

The ``hrw`` bundle algorithm (lib/bundle.c ``execute_hrw``) hashes some
packet fields (lib/flow.c ``flow_hash_fields``) and gives member *i* the
weight ``hash_2words(i, flow_hash)``; the live member with the highest weight
wins, the first one on a tie. The hashes are Bob Jenkins' lookup3
(``jhash_bytes``) over C structs laid out as on x86-64, and OVS's murmur-style
``hash_add``/``hash_finish`` (lib/hash.h, the build without SSE 4.2, as the
Debian packages are). tests/integration/test_simulator_vs_ovs.py checks the
choice against ``ofproto/trace`` on the real switch.
"""

from __future__ import annotations

import struct

from dataplane.contract.fields import ETH_TYPE_IPV4, IP_PROTO_TCP, IP_PROTO_UDP

_M32 = 0xFFFFFFFF
_IP_PROTO_SCTP = 132


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _jhash_mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _M32
    a ^= _rot(c, 4)
    c = (c + b) & _M32
    b = (b - a) & _M32
    b ^= _rot(a, 6)
    a = (a + c) & _M32
    c = (c - b) & _M32
    c ^= _rot(b, 8)
    b = (b + a) & _M32
    a = (a - c) & _M32
    a ^= _rot(c, 16)
    c = (c + b) & _M32
    b = (b - a) & _M32
    b ^= _rot(a, 19)
    a = (a + c) & _M32
    c = (c - b) & _M32
    c ^= _rot(b, 4)
    b = (b + a) & _M32
    return a, b, c


def _jhash_final(a: int, b: int, c: int) -> int:
    c ^= b
    c = (c - _rot(b, 14)) & _M32
    a ^= c
    a = (a - _rot(c, 11)) & _M32
    b ^= a
    b = (b - _rot(a, 25)) & _M32
    c ^= b
    c = (c - _rot(b, 16)) & _M32
    a ^= c
    a = (a - _rot(c, 4)) & _M32
    b ^= a
    b = (b - _rot(a, 14)) & _M32
    c ^= b
    c = (c - _rot(b, 24)) & _M32
    return c


def jhash_bytes(data: bytes, basis: int) -> int:
    """lib/jhash.c ``jhash_bytes`` (words read little-endian, as on x86)."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + basis) & _M32
    i = 0
    while n >= 12:
        x, y, z = struct.unpack_from("<III", data, i)
        a, b, c = _jhash_mix((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)
        n -= 12
        i += 12
    if n:
        x, y, z = struct.unpack("<III", data[i:] + bytes(12 - n))
        c = _jhash_final((a + x) & _M32, (b + y) & _M32, (c + z) & _M32)
    return c


def hash_add(hash_: int, data: int) -> int:
    """lib/hash.h ``mhash_add``."""
    if data:
        data = (data * 0xCC9E2D51) & _M32
        data = _rot(data, 15)
        data = (data * 0x1B873593) & _M32
        hash_ ^= data
    hash_ = _rot(hash_, 13)
    return (hash_ * 5 + 0xE6546B64) & _M32


def hash_finish(hash_: int, final: int) -> int:
    """lib/hash.h ``mhash_finish(hash ^ final)``."""
    hash_ ^= final
    hash_ ^= hash_ >> 16
    hash_ = (hash_ * 0x85EBCA6B) & _M32
    hash_ ^= hash_ >> 13
    hash_ = (hash_ * 0xC2B2AE35) & _M32
    hash_ ^= hash_ >> 16
    return hash_


def hash_2words(x: int, y: int) -> int:
    return hash_finish(hash_add(hash_add(x, 0), y), 8)


def _be(value: int, n: int) -> bytes:
    return value.to_bytes(n, "big")


def _le_of_be(value: int, n: int) -> int:
    """A big-endian (network order) field read as a host integer on x86, as OVS's casts do."""
    return int.from_bytes(_be(value, n), "little")


def _symmetric_l4(pkt: dict[str, int], basis: int) -> int:
    # struct { union { be32 ipv4; in6_addr ipv6 } (16); be16 eth_type; be16 vlan_tci; be16 tp_port;
    #          eth_addr (6); u8 ip_proto; } padded to 32 bytes, zeroed first.
    eth_type = pkt.get("eth_type", 0)
    addr = bytes(16)
    proto = 0
    tp = 0
    if eth_type == ETH_TYPE_IPV4:
        addr = _be(pkt.get("ipv4_src", 0) ^ pkt.get("ipv4_dst", 0), 4) + bytes(12)
        proto = pkt.get("ip_proto", 0)
        if proto in (IP_PROTO_TCP, _IP_PROTO_SCTP):
            tp = _l4_port(pkt, "src") ^ _l4_port(pkt, "dst")
    eth = _be(pkt.get("eth_src", 0) ^ pkt.get("eth_dst", 0), 6)
    fields = addr + _be(eth_type, 2) + _be(pkt.get("vlan_vid", 0) & 0xFFF, 2) + _be(tp, 2) + eth + bytes([proto])
    return jhash_bytes(fields + bytes(32 - len(fields)), basis)


def _symmetric_l2(pkt: dict[str, int], basis: int) -> int:
    eth = _be(pkt.get("eth_src", 0) ^ pkt.get("eth_dst", 0), 6)
    raw = _be(pkt.get("eth_type", 0), 2) + _be(pkt.get("vlan_vid", 0) & 0xFFF, 2) + eth + bytes(2)
    hash_ = basis
    for (word,) in struct.iter_unpack("<I", raw):
        hash_ = hash_add(hash_, word)
    return hash_finish(hash_, basis)


def _symmetric_l3l4(pkt: dict[str, int], basis: int, udp_ports: bool) -> int:
    if pkt.get("eth_type") != ETH_TYPE_IPV4:
        return _symmetric_l2(pkt, basis)
    hash_ = hash_add(basis, _le_of_be(pkt.get("ipv4_src", 0) ^ pkt.get("ipv4_dst", 0), 4))
    proto = pkt.get("ip_proto", 0)
    hash_ = hash_add(hash_, proto)
    if proto in (IP_PROTO_TCP, _IP_PROTO_SCTP) or (udp_ports and proto == IP_PROTO_UDP):
        hash_ = hash_add(hash_, _le_of_be(_l4_port(pkt, "src") ^ _l4_port(pkt, "dst"), 2))
    return hash_finish(hash_, basis)


def _symmetric_l3(pkt: dict[str, int], basis: int) -> int:
    # struct { union { be32; in6_addr } (16); be16 eth_type; } padded to 20 bytes.
    eth_type = pkt.get("eth_type", 0)
    addr = bytes(16)
    if eth_type == ETH_TYPE_IPV4:
        addr = _be(pkt.get("ipv4_src", 0) ^ pkt.get("ipv4_dst", 0), 4) + bytes(12)
    return jhash_bytes(addr + _be(eth_type, 2) + bytes(2), basis)


def _nw(pkt: dict[str, int], name: str, basis: int) -> int:
    if pkt.get("eth_type") != ETH_TYPE_IPV4:
        return basis
    return jhash_bytes(_be(pkt.get(name, 0), 4), basis)


def _l4_port(pkt: dict[str, int], which: str) -> int:
    """OVS's tp_src/tp_dst: the TCP or UDP port (SCTP is not modelled)."""
    proto = pkt.get("ip_proto")
    if proto == IP_PROTO_TCP:
        return pkt.get(f"tcp_{which}", 0)
    if proto == IP_PROTO_UDP:
        return pkt.get(f"udp_{which}", 0)
    return 0


def flow_hash_fields(pkt: dict[str, int], fields: str, basis: int) -> int:
    """lib/flow.c ``flow_hash_fields`` for the bundle action's ``fields`` (ovs-ofctl spelling)."""
    if fields == "eth_src":
        return jhash_bytes(_be(pkt.get("eth_src", 0), 6), basis)
    if fields == "symmetric_l4":
        return _symmetric_l4(pkt, basis)
    if fields == "symmetric_l3l4":
        return _symmetric_l3l4(pkt, basis, udp_ports=False)
    if fields == "symmetric_l3l4+udp":
        return _symmetric_l3l4(pkt, basis, udp_ports=True)
    if fields == "nw_src":
        return _nw(pkt, "ipv4_src", basis)
    if fields == "nw_dst":
        return _nw(pkt, "ipv4_dst", basis)
    if fields == "symmetric_l3":
        return _symmetric_l3(pkt, basis)
    raise ValueError(f"unknown hash fields {fields!r}")


def hrw_pick(flow_hash: int, alive: list[bool]) -> int | None:
    """The member index ``execute_hrw`` picks among the live ones, or None if none is live."""
    best: int | None = None
    best_hash = 0
    for i, up in enumerate(alive):
        if up:
            weight = hash_2words(i, flow_hash)
            if best is None or weight > best_hash:
                best, best_hash = i, weight
    return best
