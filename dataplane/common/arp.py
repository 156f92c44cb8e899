"""ARP frames the agent sends itself: requests that resolve tunnel and external next hops, gratuitous
announcements, and the replies it reads back."""

from __future__ import annotations

import socket
import struct

ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = b"\xff" * 6


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def arp_frame(
    op: int, src_mac: bytes, src_ip: bytes, dst_mac: bytes, target_mac: bytes, target_ip: bytes, vlan: int = 0
) -> bytes:
    """An Ethernet frame carrying one IPv4-over-Ethernet ARP message (802.1Q-tagged when ``vlan``)."""
    eth = dst_mac + src_mac
    if vlan:
        eth += struct.pack("!HH", ETH_P_8021Q, vlan & 0xFFF)
    eth += struct.pack("!H", ETH_P_ARP)
    return eth + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + src_mac + src_ip + target_mac + target_ip


def arp_request(src_mac: bytes, src_ip: bytes, target_ip: bytes, vlan: int = 0) -> bytes:
    """A broadcast Ethernet frame asking who has ``target_ip`` (sender 0.0.0.0: a probe)."""
    return arp_frame(ARP_REQUEST, src_mac, src_ip, BROADCAST, b"\x00" * 6, target_ip, vlan)


def parse_arp_reply(frame: bytes) -> tuple[str, str, int] | None:
    """(sender IP, sender MAC, VLAN) of an ARP reply frame, or None for anything else."""
    offset, vlan = 12, 0
    if len(frame) < 42:
        return None
    (eth_type,) = struct.unpack_from("!H", frame, offset)
    if eth_type == ETH_P_8021Q:
        (tci, eth_type) = struct.unpack_from("!HH", frame, offset + 2)
        vlan, offset = tci & 0xFFF, offset + 4
    if eth_type != ETH_P_ARP or len(frame) < offset + 2 + 28:
        return None
    _, _, _, _, op = struct.unpack_from("!HHBBH", frame, offset + 2)
    if op != ARP_REPLY:
        return None
    sha = frame[offset + 10 : offset + 16]
    spa = frame[offset + 16 : offset + 20]
    return socket.inet_ntoa(spa), ":".join(f"{b:02x}" for b in sha), vlan


def gratuitous_arp(mac: str, ip: str, vlan: int = 0) -> bytes:
    """A broadcast, unsolicited ARP reply "``ip`` is at ``mac``" (sender and target IP alike).

    A reply rather than a request: Loom's ARP responder answers requests for
    known addresses on the spot, so only a reply floods to the network's ports.
    Linux updates an existing neighbour entry from it at once (a gratuitous ARP
    overrides the neighbour lock time).
    """
    raw_mac, raw_ip = mac_bytes(mac), socket.inet_aton(ip)
    return arp_frame(ARP_REPLY, raw_mac, raw_ip, BROADCAST, raw_mac, raw_ip, vlan)
