"""Address management: IPs from subnet pools, VNIs, OpenFlow port numbers, MACs, MTUs.

Allocators answer "which value is free?" in amortised constant time, however
big the range: a cursor walks the range once, skipping values in use, and
values released behind it are kept in a recycle set. Nothing rescans the whole
range per allocation, so a /16 with 10k ports allocates as fast as a /28.

Allocators only answer; a value becomes taken when the committed object that
holds it reaches the index (see ``controller/api/index.py``). Callers serialise
allocate -> commit, and pass ``exclude`` for values picked earlier in the same
request.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import os
import random
import socket
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from dataplane.common.constants import VXLAN_OVERHEAD

MAC_PREFIX = "fa:16:3e"  # the OUI prefix Neutron users know; locally administered, unicast
VNI_MIN = 1
VNI_MAX = 2**24 - 1
VLAN_MIN = 1
VLAN_MAX = 4094
MIN_MTU = 68  # the smallest MTU IPv4 allows (RFC 791)

_rng = random.Random(os.urandom(16))


class IntAllocator:
    """Free values from a set of disjoint inclusive integer ranges."""

    def __init__(self, ranges: Iterable[tuple[int, int]]) -> None:
        self._ranges = sorted(ranges)
        for (_, end), (start, _) in itertools.pairwise(self._ranges):
            if start <= end:
                raise ValueError("allocator ranges overlap")
        self._starts = [start for start, _ in self._ranges]
        self._offsets: list[int] = []  # linear offset of each range's start
        total = 0
        for start, end in self._ranges:
            if end < start:
                raise ValueError(f"empty range {start}..{end}")
            self._offsets.append(total)
            total += end - start + 1
        self.size = total
        self._used: set[int] = set()
        # Every offset below the cursor holds a value that was in use when the cursor passed it.
        self._cursor = 0
        self._recycled: set[int] = set()  # released values below the cursor

    @property
    def free(self) -> int:
        return self.size - len(self._used)

    def __contains__(self, value: int) -> bool:
        return self._offset_of(value) is not None

    def _offset_of(self, value: int) -> int | None:
        i = bisect.bisect_right(self._starts, value) - 1
        if i < 0 or value > self._ranges[i][1]:
            return None
        return self._offsets[i] + value - self._starts[i]

    def _value_at(self, offset: int) -> int:
        i = bisect.bisect_right(self._offsets, offset) - 1
        return self._starts[i] + offset - self._offsets[i]

    def is_used(self, value: int) -> bool:
        return value in self._used

    def mark(self, value: int) -> None:
        """Record ``value`` as taken (ignored when outside the ranges)."""
        if self._offset_of(value) is not None:
            self._used.add(value)
            self._recycled.discard(value)

    def release(self, value: int) -> None:
        if value in self._used:
            self._used.remove(value)
            offset = self._offset_of(value)
            if offset is not None and offset < self._cursor:
                self._recycled.add(value)

    def allocate(self, exclude: Collection[int] = ()) -> int | None:
        """A free value not in ``exclude``, or None when the ranges are exhausted."""
        while self._cursor < self.size and self._value_at(self._cursor) in self._used:
            self._cursor += 1
        offset = self._cursor
        # Values in ``exclude`` are not taken yet: skip them without moving the cursor.
        while offset < self.size:
            value = self._value_at(offset)
            if value not in self._used and value not in exclude:
                return value
            offset += 1
        for value in self._recycled:
            if value not in exclude:
                return value
        return None


# ------------------------------------------------------------------ addresses


def ip_to_int(address: str) -> int:
    """A dotted-quad IPv4 address as an integer; ValueError if malformed.

    For values already validated (stored objects): inet_pton is strict (no
    short or octal forms) and far cheaper than ipaddress on the hot path.
    """
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
    except (OSError, TypeError):
        raise ValueError(f"{address!r} is not an IPv4 address") from None


def int_to_ip(value: int) -> str:
    return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))


def bounds(cidr: ipaddress.IPv4Network) -> tuple[int, int]:
    """The network and broadcast addresses of ``cidr``, as integers."""
    return int(cidr.network_address), int(cidr.broadcast_address)


def parse_cidr(text: str) -> ipaddress.IPv4Network:
    """A stored (already validated) IPv4 CIDR; ValueError if malformed."""
    return ipaddress.IPv4Network(text)


def first_usable(cidr: ipaddress.IPv4Network) -> int:
    """The default gateway: the first address after the network address."""
    return int(cidr.network_address) + 1


def usable_range(cidr: ipaddress.IPv4Network) -> tuple[int, int]:
    """Host addresses of a subnet: all but the network and broadcast addresses."""
    first, last = bounds(cidr)
    return first + 1, last - 1


def default_pools(cidr: ipaddress.IPv4Network, gateway: int | None) -> list[tuple[int, int]]:
    """The whole subnet minus the network, broadcast and gateway addresses."""
    first, last = usable_range(cidr)
    if gateway is None or not first <= gateway <= last:
        return [(first, last)] if first <= last else []
    pools = []
    if first <= gateway - 1:
        pools.append((first, gateway - 1))
    if gateway + 1 <= last:
        pools.append((gateway + 1, last))
    return pools


@dataclass
class SubnetAddresses:
    """Who holds which address of one subnet, and which pool addresses are free."""

    subnet_id: str
    first: int  # network address
    last: int  # broadcast address
    gateway: int | None
    pools: list[tuple[int, int]]
    owners: dict[int, str] = field(default_factory=dict)  # ip -> port id, inside or outside the pools
    allocator: IntAllocator = field(init=False)

    def __post_init__(self) -> None:
        self.allocator = IntAllocator(self.pools)
        for ip in self.owners:
            self.allocator.mark(ip)

    def reconfigure(self, gateway: int | None, pools: Sequence[tuple[int, int]]) -> None:
        """New pools or gateway (a subnet update): rebuild the allocator around the same owners."""
        self.gateway = gateway
        self.pools = list(pools)
        self.__post_init__()

    def allocate(self, exclude: Collection[int] = ()) -> int | None:
        return self.allocator.allocate(exclude)

    def assign(self, ip: int, port_id: str) -> None:
        self.owners[ip] = port_id
        self.allocator.mark(ip)

    def unassign(self, ip: int, port_id: str) -> None:
        if self.owners.get(ip) == port_id:
            del self.owners[ip]
            self.allocator.release(ip)


# ----------------------------------------------------------------------- MACs


def generate_mac(taken: Collection[str], *more_taken: Collection[str], attempts: int = 64) -> str:
    """A random fa:16:3e:xx:xx:xx in none of the ``taken`` collections. RuntimeError if none found (a full network).

    Several collections rather than their union: building one would copy a network's every MAC per port.
    """
    for _ in range(attempts):
        suffix = _rng.getrandbits(24)
        mac = f"{MAC_PREFIX}:{suffix >> 16:02x}:{(suffix >> 8) & 0xFF:02x}:{suffix & 0xFF:02x}"
        if mac not in taken and not any(mac in t for t in more_taken):
            return mac
    raise RuntimeError("no free MAC address found")


# ------------------------------------------------------------------------ MTU


def max_mtu(network_type: str, underlay_mtu: int) -> int:
    """The largest MTU a network of this type can carry over the underlay."""
    return underlay_mtu - VXLAN_OVERHEAD if network_type == "vxlan" else underlay_mtu
