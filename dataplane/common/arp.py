"""ARP frames the agent sends itself: requests that resolve tunnel next hops, gratuitous announcements."""

from __future__ import annotations

import socket
import struct

ETH_P_ARP = 0x0806
ARP_REQUEST = 1
ARP_REPLY = 2
BROADCAST = b"\xff" * 6


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def arp_frame(op: int, src_mac: bytes, src_ip: bytes, dst_mac: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    """An Ethernet frame carrying one IPv4-over-Ethernet ARP message."""
    eth = dst_mac + src_mac + struct.pack("!H", ETH_P_ARP)
    return eth + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + src_mac + src_ip + target_mac + target_ip


def arp_request(src_mac: bytes, src_ip: bytes, target_ip: bytes) -> bytes:
    """A broadcast Ethernet frame asking who has ``target_ip``."""
    return arp_frame(ARP_REQUEST, src_mac, src_ip, BROADCAST, b"\x00" * 6, target_ip)


def gratuitous_arp(mac: str, ip: str) -> bytes:
    """A broadcast, unsolicited ARP reply "``ip`` is at ``mac``" (sender and target IP alike).

    A reply rather than a request: Loom's ARP responder answers requests for
    known addresses on the spot, so only a reply floods to the network's ports.
    Linux updates an existing neighbour entry from it at once (a gratuitous ARP
    overrides the neighbour lock time).
    """
    raw_mac, raw_ip = mac_bytes(mac), socket.inet_aton(ip)
    return arp_frame(ARP_REPLY, raw_mac, raw_ip, BROADCAST, raw_mac, raw_ip)
