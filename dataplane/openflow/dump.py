"""Parse OpenFlow 1.3 flow-stats replies fast, keeping matches and instructions as raw bytes.

os-ken's flow-stats parser builds objects for every field and action (~45 µs a
flow here); the installer only needs each flow's table, priority, cookie and
the raw match / instruction bytes, which it compares with what it wants
installed. One ``struct.unpack_from`` per flow does that.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp

from dataplane.contract.encode import WireFlow, WireKey

# ofp_flow_stats up to the match: length, table_id, pad, duration (s, ns), priority, idle, hard, flags,
# pad, cookie, packet_count, byte_count; then the ofp_match header (type, length).
_FLOW_STATS = struct.Struct("!HBxIIHHHH4xQQQHH")
_FLOW_STATS_FIXED = 48


@dataclass(frozen=True, slots=True)
class InstalledFlow:
    """One flow as the switch reported it."""

    table: int
    priority: int
    cookie: int
    match: bytes
    instructions: bytes
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    packet_count: int = 0
    byte_count: int = 0

    @property
    def key(self) -> WireKey:
        return (self.table, self.priority, self.match)

    @property
    def plain(self) -> bool:
        """True when the flow carries nothing a WireFlow cannot express (timeouts, flags)."""
        return not (self.idle_timeout or self.hard_timeout or self.flags)

    def wire(self) -> WireFlow:
        return WireFlow(self.table, self.priority, self.cookie, self.match, self.instructions)


def parse_flow_stats(bodies: Iterable[bytes]) -> list[InstalledFlow]:
    """Parse the bodies (after the multipart header) of OFPMP_FLOW replies."""
    flows: list[InstalledFlow] = []
    append = flows.append
    unpack = _FLOW_STATS.unpack_from
    for body in bodies:
        offset = 0
        end = len(body)
        while offset < end:
            (length, table, _s, _ns, priority, idle, hard, flags, cookie, packets, nbytes, mtype, mlen) = unpack(
                body, offset
            )
            if length < _FLOW_STATS_FIXED + 8 or offset + length > end or mtype != ofp.OFPMT_OXM:
                raise ValueError(f"malformed flow stats entry at offset {offset} (length {length})")
            match_start = offset + _FLOW_STATS_FIXED + 4
            match_end = offset + _FLOW_STATS_FIXED + mlen
            instr_start = offset + _FLOW_STATS_FIXED + ((mlen + 7) & ~7)
            append(
                InstalledFlow(
                    table,
                    priority,
                    cookie,
                    body[match_start:match_end],
                    body[instr_start : offset + length],
                    idle,
                    hard,
                    flags,
                    packets,
                    nbytes,
                )
            )
            offset += length
    return flows
