"""Packets as the simulator sees them, and builders for the ones tests send.

A packet is a flat ``dict[str, int]``. Keys that are OpenFlow match fields use
the names of :data:`dataplane.contract.fields.FIELDS` (``eth_src``,
``ipv4_dst``, ``tcp_dst``, ``reg6``...), so flows match them directly. The rest
is header state a switch reads but OpenFlow cannot match in Loom's field set,
kept because conntrack needs it:

``tcp_flags``, ``tcp_seq``, ``tcp_ack``, ``tcp_win``, ``tcp_wscale`` (the
window-scale option, absent if the SYN carries none), ``l4_payload`` (bytes of
L4 payload), ``icmp_id``, ``icmp_seq``, and for ICMP errors the quoted packet:
``inner_ipv4_src``, ``inner_ipv4_dst``, ``inner_ip_proto``, ``inner_sport``,
``inner_dport``, ``inner_tcp_seq``, ``inner_icmp_type``, ``inner_icmp_code``,
``inner_icmp_id``, ``inner_icmp_seq``.

:func:`reply` builds the answer to a packet (addresses and ports swapped, TCP
sequence numbers acknowledged, echo request -> echo reply), :func:`follow` the
next TCP segment in the same direction, so a test can play a whole connection.
"""

from __future__ import annotations

from dataplane.contract.fields import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    FIELDS,
    IP_PROTO_ICMP,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    ipv4_to_int,
    mac_to_int,
    to_int,
)

Packet = dict[str, int]

# TCP flag bits (RFC 793/3168), as OVS's tcp_flags field holds them.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11

# Sequence numbers the builders start from when a test does not care.
CLIENT_ISN = 1000
SERVER_ISN = 5000
DEFAULT_WINDOW = 64240

# Header keys copied from a packet into the ICMP error that quotes it.
_QUOTED_L4 = {
    IP_PROTO_TCP: (("tcp_src", "inner_sport"), ("tcp_dst", "inner_dport"), ("tcp_seq", "inner_tcp_seq")),
    IP_PROTO_UDP: (("udp_src", "inner_sport"), ("udp_dst", "inner_dport")),
    IP_PROTO_ICMP: (
        ("icmpv4_type", "inner_icmp_type"),
        ("icmpv4_code", "inner_icmp_code"),
        ("icmp_id", "inner_icmp_id"),
        ("icmp_seq", "inner_icmp_seq"),
    ),
}


def ethernet(src: str, dst: str, eth_type: int) -> Packet:
    return {"eth_src": mac_to_int(src), "eth_dst": mac_to_int(dst), "eth_type": eth_type}


def arp_request(src_mac: str, src_ip: str, target_ip: str, dst_mac: str = "ff:ff:ff:ff:ff:ff") -> Packet:
    pkt = ethernet(src_mac, dst_mac, ETH_TYPE_ARP)
    pkt.update(
        arp_op=1,
        arp_sha=mac_to_int(src_mac),
        arp_spa=ipv4_to_int(src_ip),
        arp_tha=0,
        arp_tpa=ipv4_to_int(target_ip),
    )
    return pkt


def ipv4(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    proto: int = IP_PROTO_ICMP,
    sport: int = 0,
    dport: int = 0,
    ttl: int = 64,
) -> Packet:
    """An IPv4 packet: ICMP echo request (id ``sport``), a TCP SYN or a UDP datagram, by ``proto``."""
    if proto == IP_PROTO_TCP:
        return tcp(src_mac, dst_mac, src_ip, dst_ip, sport, dport, ttl=ttl)
    if proto == IP_PROTO_UDP:
        return udp(src_mac, dst_mac, src_ip, dst_ip, sport, dport, ttl=ttl)
    if proto == IP_PROTO_ICMP:
        return icmp_echo(src_mac, dst_mac, src_ip, dst_ip, ident=sport, ttl=ttl)
    return _ip_header(src_mac, dst_mac, src_ip, dst_ip, proto, ttl)


def _ip_header(src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, proto: int, ttl: int) -> Packet:
    pkt = ethernet(src_mac, dst_mac, ETH_TYPE_IPV4)
    pkt.update(ipv4_src=ipv4_to_int(src_ip), ipv4_dst=ipv4_to_int(dst_ip), ip_proto=proto, nw_ttl=ttl)
    return pkt


def tcp(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    sport: int,
    dport: int,
    flags: int = SYN,
    *,
    seq: int = CLIENT_ISN,
    ack: int = 0,
    win: int = DEFAULT_WINDOW,
    payload: int = 0,
    wscale: int | None = None,
    ttl: int = 64,
) -> Packet:
    """A TCP segment; ``payload`` is the number of data bytes, ``wscale`` the window-scale option."""
    pkt = _ip_header(src_mac, dst_mac, src_ip, dst_ip, IP_PROTO_TCP, ttl)
    pkt.update(
        tcp_src=sport,
        tcp_dst=dport,
        tcp_flags=flags,
        tcp_seq=seq & 0xFFFFFFFF,
        tcp_ack=ack & 0xFFFFFFFF,
        tcp_win=win,
        l4_payload=payload,
    )
    if wscale is not None:
        pkt["tcp_wscale"] = wscale
    return pkt


def udp(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, sport: int, dport: int, *, payload: int = 0, ttl: int = 64
) -> Packet:
    pkt = _ip_header(src_mac, dst_mac, src_ip, dst_ip, IP_PROTO_UDP, ttl)
    pkt.update(udp_src=sport, udp_dst=dport, l4_payload=payload)
    return pkt


def icmp_echo(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    *,
    ident: int = 1,
    seq: int = 1,
    reply: bool = False,
    ttl: int = 64,
) -> Packet:
    pkt = _ip_header(src_mac, dst_mac, src_ip, dst_ip, IP_PROTO_ICMP, ttl)
    pkt.update(
        icmpv4_type=ICMP_ECHO_REPLY if reply else ICMP_ECHO_REQUEST,
        icmpv4_code=0,
        icmp_id=ident,
        icmp_seq=seq,
    )
    return pkt


def icmp_error(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    about: Packet,
    *,
    icmp_type: int = ICMP_DEST_UNREACH,
    code: int = 3,
    ttl: int = 64,
) -> Packet:
    """An ICMP error from ``src_ip`` about packet ``about``, sent back to ``about``'s source.

    It quotes ``about``'s IP header and first 8 bytes of L4 (ports and
    sequence number, or the echo's type, id and sequence), as routers do.
    """
    proto = about["ip_proto"]
    if proto not in _QUOTED_L4:
        raise ValueError(f"cannot quote IP protocol {proto} in an ICMP error")
    pkt = _ip_header(src_mac, dst_mac, src_ip, "0.0.0.0", IP_PROTO_ICMP, ttl)
    pkt.update(
        ipv4_dst=about["ipv4_src"],
        icmpv4_type=icmp_type,
        icmpv4_code=code,
        inner_ipv4_src=about["ipv4_src"],
        inner_ipv4_dst=about["ipv4_dst"],
        inner_ip_proto=proto,
    )
    for outer, inner in _QUOTED_L4[proto]:
        pkt[inner] = about.get(outer, 0)
    return pkt


def seg_len(pkt: Packet) -> int:
    """Sequence space a TCP segment uses: its payload, plus one for SYN and one for FIN."""
    flags = pkt.get("tcp_flags", 0)
    return pkt.get("l4_payload", 0) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)


def reply(pkt: Packet, flags: int | None = None, *, payload: int = 0, wscale: int | None = None) -> Packet:
    """The answer to ``pkt``: MACs, addresses and ports swapped.

    TCP: ``flags`` default SYN+ACK to a SYN, ACK otherwise; the answer
    acknowledges everything ``pkt`` carried and starts at ``pkt``'s ack
    number (or :data:`SERVER_ISN` when ``pkt`` acknowledged nothing).
    ICMP echo request: the echo reply, same id and sequence.
    """
    out = {k: v for k, v in pkt.items() if not k.startswith("inner_") and k not in _NOT_COPIED}
    out["eth_src"], out["eth_dst"] = pkt["eth_dst"], pkt["eth_src"]
    if pkt.get("eth_type") != ETH_TYPE_IPV4:
        raise ValueError("reply() builds answers to IPv4 packets")
    out["ipv4_src"], out["ipv4_dst"] = pkt["ipv4_dst"], pkt["ipv4_src"]
    out["nw_ttl"] = 64
    proto = pkt["ip_proto"]
    if proto == IP_PROTO_TCP:
        out["tcp_src"], out["tcp_dst"] = pkt["tcp_dst"], pkt["tcp_src"]
        in_flags = pkt.get("tcp_flags", 0)
        if flags is None:
            flags = SYN | ACK if in_flags & (SYN | ACK) == SYN else ACK
        out["tcp_flags"] = flags
        out["tcp_seq"] = pkt.get("tcp_ack", 0) if in_flags & ACK else SERVER_ISN
        out["tcp_ack"] = (pkt.get("tcp_seq", 0) + seg_len(pkt)) & 0xFFFFFFFF if flags & ACK else 0
        out["tcp_win"] = DEFAULT_WINDOW
        out["l4_payload"] = payload
        out.pop("tcp_wscale", None)
        if wscale is not None:
            out["tcp_wscale"] = wscale
    elif proto == IP_PROTO_UDP:
        out["udp_src"], out["udp_dst"] = pkt["udp_dst"], pkt["udp_src"]
        out["l4_payload"] = payload
    elif proto == IP_PROTO_ICMP:
        if pkt.get("icmpv4_type") != ICMP_ECHO_REQUEST:
            raise ValueError("reply() answers ICMP echo requests only")
        out["icmpv4_type"] = ICMP_ECHO_REPLY
    return out


def follow(pkt: Packet, flags: int = ACK, *, payload: int = 0, ack: int | None = None) -> Packet:
    """The next TCP segment from ``pkt``'s sender, after ``pkt``: sequence advanced past it."""
    if pkt.get("ip_proto") != IP_PROTO_TCP:
        raise ValueError("follow() continues TCP connections only")
    out = dict(pkt)
    out["tcp_flags"] = flags
    out["tcp_seq"] = (pkt["tcp_seq"] + seg_len(pkt)) & 0xFFFFFFFF
    out["tcp_ack"] = pkt.get("tcp_ack", 0) if ack is None else ack & 0xFFFFFFFF
    out["l4_payload"] = payload
    out.pop("tcp_wscale", None)
    return out


# Pipeline and tunnel metadata a reply must not inherit from the packet it answers.
_NOT_COPIED = frozenset(
    {
        "in_port",
        "metadata",
        "tunnel_id",
        "tun_ipv4_src",
        "tun_ipv4_dst",
        "pkt_mark",
        "conj_id",
        "ct_state",
        "ct_zone",
        "ct_mark",
        "ct_label",
        *(f"reg{i}" for i in range(16)),
    }
)


def dhcp_discover(src_mac: str) -> Packet:
    return udp(src_mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67)


def dhcp_offer(server_mac: str, server_ip: str, client_mac: str, client_ip: str) -> Packet:
    return udp(server_mac, client_mac, server_ip, client_ip, 67, 68)


def field_value(name: str, value: str) -> int:
    """Parse a human value for ``name`` (MAC or IPv4 text) as the simulator stores it."""
    return to_int(FIELDS[name], value)
