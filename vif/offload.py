"""TX checksum offload on and off, by the SIOCETHTOOL ioctl (what `ethtool -K IF tx off` does).

Why: OVS's userspace datapath reads veths and taps through AF_PACKET sockets
and forwards packets whose checksum the sender left for "hardware" to fill in;
nobody fills it, so TCP (and DHCP over UDP) silently fail while ping works.
With TX checksum offload off the sender's kernel computes the checksum itself.
The ioctl acts on the device of that name in the calling thread's namespace.
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct

from dataplane.common.netns import entered

SIOCETHTOOL = 0x8946
ETHTOOL_GTXCSUM = 0x00000016
ETHTOOL_STXCSUM = 0x00000017


class OffloadError(RuntimeError):
    """The ethtool ioctl failed; the message names the device."""


def _ethtool_value(ifname: str, cmd: int, data: int = 0) -> int:
    value = array.array("I", [cmd, data])
    address, _ = value.buffer_info()
    request = struct.pack("16sP", ifname.encode(), address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)
        except OSError as exc:
            raise OffloadError(f"ethtool ioctl {cmd:#x} on {ifname} failed: {exc.strerror}") from exc
    return value[1]


def tx_checksum_enabled(ifname: str, netns: str | None = None) -> bool:
    with entered(netns):
        return bool(_ethtool_value(ifname, ETHTOOL_GTXCSUM))


def set_tx_checksum(ifname: str, enabled: bool, netns: str | None = None) -> None:
    """Turn TX checksum offload on or off for ``ifname`` (in ``netns``, or here)."""
    with entered(netns):
        if bool(_ethtool_value(ifname, ETHTOOL_GTXCSUM)) != enabled:
            _ethtool_value(ifname, ETHTOOL_STXCSUM, int(enabled))


def disable_tx_checksum(ifname: str, netns: str | None = None) -> None:
    set_tx_checksum(ifname, False, netns)
