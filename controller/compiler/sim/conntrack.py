"""Open vSwitch's userspace connection tracker (lib/conntrack*.c, OVS 3.1), ported for the simulator.

One :class:`Conntrack` stands for one switch's connection table (every bridge
of a userspace datapath shares it; the simulator gives each simulated host
one). :meth:`Conntrack.execute` is the datapath ``ct`` action: it looks the
packet up by zone and 5-tuple, updates the connection's protocol state, sets
the packet's conntrack metadata (:class:`CtMeta`: ct_state, zone, mark, label)
and applies NAT to the packet's headers.

The port follows OVS's code paths, including their corners, because tests
built on the simulator must see what the switch does:

* TCP: the pf-derived state and sequence-window tracking of
  ``tcp_conn_update``; a segment with invalid flags, or outside the window, is
  ``+inv``. A packet that starts no connection is ``+new`` if
  ``tcp_valid_new`` allows it — in the *userspace* datapath that includes a
  lone ACK, RST, FIN+ACK or RST+ACK (OVS picks up connections mid-stream),
  while SYN+ACK, SYN+RST/FIN and a FIN without ACK are ``+inv``.
* ICMP: echo/timestamp/info requests open a connection (keyed by id), a reply
  to nothing is ``+inv``; destination-unreachable, time-exceeded,
  parameter-problem, source-quench and redirect errors quoting a tracked
  packet (whose source is the error's destination) are ``+rel`` (``+rpl``
  when they travel in the reply direction), and NAT rewrites the quoted
  packet too.
* Other protocols (UDP...): ``+new`` until the first reply, then ``+est``.
* A packet tracked again in the zone it was last tracked in keeps its state
  bits (the datapath caches the connection on the packet); entering another
  zone starts afresh.
* NAT: one address (``ip_min`` only, or ``ip_max == ip_min``). SNAT keeps the
  source port when free (OVS tries the next ports of the same class
  otherwise: 1-511, 600-1023, 1024-65535); DNAT keeps both ports unless given
  one. OVS picks an address out of a range, or a port out of an explicit port
  range, with a hash salted by a random basis chosen at startup: the
  simulator refuses such ranges (:class:`~controller.compiler.sim.errors.SimulationError`)
  rather than guess. A bare ``nat`` on a committed connection applies its
  stored translation; replies get the reverse one. ``ct(commit,nat)`` with
  neither src nor dst on a *new* connection is refused too: OVS 3.1's
  userspace datapath then records the reply tuple as 0.0.0.0 with port 0, so
  the replies never match (seen on the real switch).

Not modelled: IPv6, fragments, ALGs (FTP/TFTP helpers), zone limits, timeouts
(entries never expire; :meth:`Conntrack.flush` removes them), checksums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from controller.compiler.sim.errors import SimulationError
from controller.compiler.sim.packet import ACK, FIN, PSH, RST, SYN, URG, Packet
from dataplane.contract.fields import (
    ETH_TYPE_IPV4,
    IP_PROTO_ICMP,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    int_to_ipv4,
    ipv4_to_int,
)
from dataplane.contract.flow import Nat

# ct_state bits (OVS lib/packets.h CS_*).
CS_NEW = 0x01
CS_ESTABLISHED = 0x02
CS_RELATED = 0x04
CS_REPLY_DIR = 0x08
CS_INVALID = 0x10
CS_TRACKED = 0x20
CS_SRC_NAT = 0x40
CS_DST_NAT = 0x80

_CT_STATE_NAMES = (
    (CS_NEW, "new"),
    (CS_ESTABLISHED, "est"),
    (CS_RELATED, "rel"),
    (CS_REPLY_DIR, "rpl"),
    (CS_INVALID, "inv"),
    (CS_TRACKED, "trk"),
    (CS_SRC_NAT, "snat"),
    (CS_DST_NAT, "dnat"),
)


def ct_state_text(state: int) -> str:
    """``new|trk`` style, lowest bit first, as ``ofproto/trace`` prints a state (empty for untracked)."""
    return "|".join(name for bit, name in _CT_STATE_NAMES if state & bit)


def parse_ct_state(text: str) -> int:
    """``trk,new`` / ``trk|new`` / ``+trk+new`` -> bits."""
    names = {name: bit for bit, name in _CT_STATE_NAMES}
    state = 0
    for part in text.replace("+", ",").replace("|", ",").split(","):
        if part:
            if part not in names:
                raise ValueError(f"unknown ct_state flag {part!r}")
            state |= names[part]
    return state


# NAT actions (conntrack-private.h NAT_ACTION_*).
NAT_SRC = 0x1
NAT_SRC_PORT = 0x2
NAT_DST = 0x4
NAT_DST_PORT = 0x8

_ICMP_ECHO_REPLY = 0
_ICMP_DST_UNREACH = 3
_ICMP_SOURCEQUENCH = 4
_ICMP_REDIRECT = 5
_ICMP_ECHO_REQUEST = 8
_ICMP_TIME_EXCEEDED = 11
_ICMP_PARAM_PROB = 12
_ICMP_TIMESTAMP = 13
_ICMP_TIMESTAMPREPLY = 14
_ICMP_INFOREQUEST = 15
_ICMP_INFOREPLY = 16
_ICMP_REVERSE = {
    _ICMP_ECHO_REQUEST: _ICMP_ECHO_REPLY,
    _ICMP_ECHO_REPLY: _ICMP_ECHO_REQUEST,
    _ICMP_TIMESTAMP: _ICMP_TIMESTAMPREPLY,
    _ICMP_TIMESTAMPREPLY: _ICMP_TIMESTAMP,
    _ICMP_INFOREQUEST: _ICMP_INFOREPLY,
    _ICMP_INFOREPLY: _ICMP_INFOREQUEST,
}
_ICMP_ERRORS = (_ICMP_DST_UNREACH, _ICMP_TIME_EXCEEDED, _ICMP_PARAM_PROB, _ICMP_SOURCEQUENCH, _ICMP_REDIRECT)


class TcpState(IntEnum):
    """One TCP peer's state (lib/ct-dpif.h CT_DPIF_TCPS_*)."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RECV = 3
    ESTABLISHED = 4
    CLOSE_WAIT = 5
    FIN_WAIT_1 = 6
    CLOSING = 7
    LAST_ACK = 8
    FIN_WAIT_2 = 9
    TIME_WAIT = 10


class _Update(IntEnum):
    """ct_update_res."""

    INVALID = 0
    VALID = 1
    NEW = 2
    VALID_NEW = 3


# ---------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a connection key. ``port`` is the TCP/UDP port, or the ICMP id."""

    addr: int
    port: int = 0
    icmp_type: int = 0


@dataclass(frozen=True, slots=True)
class ConnKey:
    zone: int
    proto: int
    src: Endpoint
    dst: Endpoint

    def reverse(self) -> ConnKey:
        return ConnKey(self.zone, self.proto, self.dst, self.src)

    def text(self) -> str:
        """A tuple as ``ovs-appctl dpctl/dump-conntrack`` prints it."""
        out = f"src={int_to_ipv4(self.src.addr)},dst={int_to_ipv4(self.dst.addr)}"
        if self.proto == IP_PROTO_ICMP:
            return out + f",id={self.src.port},type={self.src.icmp_type},code=0"
        if self.proto in (IP_PROTO_TCP, IP_PROTO_UDP):
            return out + f",sport={self.src.port},dport={self.dst.port}"
        return out


# ---------------------------------------------------------------- per-protocol state


_CT_WSCALE_FLAG = 0x80
_CT_WSCALE_UNKNOWN = 0x40
_CT_WSCALE_MASK = 0xF
_TCP_MAX_WSCALE = 14
_MAXACKWINDOW = 0xFFFF + 1500


def _seq_diff(a: int, b: int) -> int:
    """(int32_t)(a - b), as the SEQ_* macros compute it."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d & 0x80000000 else d


def _seq_geq(a: int, b: int) -> bool:
    return _seq_diff(a, b) >= 0


def _seq_gt(a: int, b: int) -> bool:
    return _seq_diff(a, b) > 0


def _tcp_invalid_flags(flags: int) -> bool:
    if flags & SYN:
        if flags & (RST | FIN):
            return True
    elif not flags & (ACK | RST):
        return True
    return bool(not flags & ACK and flags & (FIN | PSH | URG))


def _tcp_wscale(pkt: Packet) -> int:
    """tcp_get_wscale: the option's shift with CT_WSCALE_FLAG, 0 without the option."""
    if "tcp_wscale" not in pkt:
        return 0
    return min(pkt["tcp_wscale"], _TCP_MAX_WSCALE) | _CT_WSCALE_FLAG


@dataclass
class TcpPeer:
    seqlo: int = 0
    seqhi: int = 0
    max_win: int = 0
    wscale: int = 0
    state: TcpState = TcpState.CLOSED


@dataclass
class TcpConn:
    """conntrack-tcp.c: the two peers' windows and states."""

    peers: tuple[TcpPeer, TcpPeer] = field(default_factory=lambda: (TcpPeer(), TcpPeer()))

    @classmethod
    def new(cls, pkt: Packet) -> TcpConn:
        conn = cls()
        src, dst = conn.peers
        flags = pkt.get("tcp_flags", 0)
        src.seqlo = pkt.get("tcp_seq", 0)
        src.seqhi = (src.seqlo + pkt.get("l4_payload", 0) + 1) & 0xFFFFFFFF
        if flags & SYN:
            src.seqhi = (src.seqhi + 1) & 0xFFFFFFFF
            src.wscale = _tcp_wscale(pkt)
        else:
            src.wscale = _CT_WSCALE_UNKNOWN
            dst.wscale = _CT_WSCALE_UNKNOWN
        src.max_win = max(pkt.get("tcp_win", 0), 1)
        if src.wscale & _CT_WSCALE_MASK:
            sws = src.wscale & _CT_WSCALE_MASK
            src.max_win = -(-src.max_win // (1 << sws))
        if flags & FIN:
            src.seqhi = (src.seqhi + 1) & 0xFFFFFFFF
        dst.seqhi = 1
        dst.max_win = 1
        src.state = TcpState.SYN_SENT
        dst.state = TcpState.CLOSED
        return conn

    def update(self, pkt: Packet, reply: bool) -> _Update:
        """tcp_conn_update, line for line (sequence checking on, as OVS's default)."""
        src = self.peers[1 if reply else 0]
        dst = self.peers[0 if reply else 1]
        sws = dws = 0
        flags = pkt.get("tcp_flags", 0)
        win = pkt.get("tcp_win", 0)
        p_len = pkt.get("l4_payload", 0)

        if _tcp_invalid_flags(flags):
            return _Update.INVALID

        if flags & (SYN | ACK) == SYN:
            if dst.state >= TcpState.FIN_WAIT_2 and src.state >= TcpState.FIN_WAIT_2:
                src.state = dst.state = TcpState.CLOSED
                return _Update.NEW
            if src.state <= TcpState.SYN_SENT:
                src.state = TcpState.SYN_SENT
                return _Update.VALID_NEW

        if src.wscale & _CT_WSCALE_FLAG and dst.wscale & _CT_WSCALE_FLAG and not flags & SYN:
            sws = src.wscale & _CT_WSCALE_MASK
            dws = dst.wscale & _CT_WSCALE_MASK
        elif src.wscale & _CT_WSCALE_UNKNOWN and dst.wscale & _CT_WSCALE_UNKNOWN and not flags & SYN:
            sws = dws = _TCP_MAX_WSCALE

        seq = orig_seq = pkt.get("tcp_seq", 0)
        check_ackskew = True
        if src.state < TcpState.SYN_SENT:
            # First packet from this end.
            ack = pkt.get("tcp_ack", 0)
            end = (seq + p_len) & 0xFFFFFFFF
            if flags & SYN:
                end = (end + 1) & 0xFFFFFFFF
                if dst.wscale & _CT_WSCALE_FLAG:
                    src.wscale = _tcp_wscale(pkt)
                    if src.wscale & _CT_WSCALE_FLAG:
                        sws = src.wscale & _CT_WSCALE_MASK
                        win = -(-win // (1 << sws))
                        dws = dst.wscale & _CT_WSCALE_MASK
                    else:
                        dst.max_win = (dst.max_win << (dst.wscale & _CT_WSCALE_MASK)) & 0xFFFF
                        dst.wscale = 0
            if flags & FIN:
                end = (end + 1) & 0xFFFFFFFF
            src.seqlo = seq
            src.state = TcpState.SYN_SENT
            if src.seqhi == 1 or _seq_geq((end + max(1, dst.max_win << dws)) & 0xFFFFFFFF, src.seqhi):
                src.seqhi = (end + max(1, dst.max_win << dws)) & 0xFFFFFFFF
                check_ackskew = False
            if win > src.max_win:
                src.max_win = win
        else:
            ack = pkt.get("tcp_ack", 0)
            end = (seq + p_len) & 0xFFFFFFFF
            if flags & SYN:
                end = (end + 1) & 0xFFFFFFFF
            if flags & FIN:
                end = (end + 1) & 0xFFFFFFFF

        if not flags & ACK or (ack == 0 and flags & (ACK | RST) == ACK | RST):
            # No ACK: let it pass the ack-skew check. ACK|RST with ack 0: broken stacks do that.
            ack = dst.seqlo

        if seq == end:
            seq = src.seqlo
            end = seq

        ackskew = _seq_diff(dst.seqlo, ack) if check_ackskew else 0
        in_window = (
            _seq_geq(src.seqhi, end)
            and _seq_geq(seq, (src.seqlo - (dst.max_win << dws)) & 0xFFFFFFFF)
            and ackskew >= -_MAXACKWINDOW
            and ackskew <= (_MAXACKWINDOW << sws)
            and (
                not flags & RST
                or orig_seq == src.seqlo
                or orig_seq == (src.seqlo + 1) & 0xFFFFFFFF
                or (orig_seq + 1) & 0xFFFFFFFF == src.seqlo
            )
        )
        if in_window:
            if src.max_win < win:
                src.max_win = win
            if _seq_gt(end, src.seqlo):
                src.seqlo = end
            if _seq_geq((ack + (win << sws)) & 0xFFFFFFFF, dst.seqhi):
                dst.seqhi = (ack + max(win << sws, 1)) & 0xFFFFFFFF
            if flags & SYN and src.state < TcpState.SYN_SENT:
                src.state = TcpState.SYN_SENT
            if flags & FIN and src.state < TcpState.CLOSING:
                src.state = TcpState.CLOSING
            if flags & ACK:
                if dst.state == TcpState.SYN_SENT:
                    dst.state = TcpState.ESTABLISHED
                elif dst.state == TcpState.CLOSING:
                    dst.state = TcpState.FIN_WAIT_2
            if flags & RST:
                src.state = dst.state = TcpState.TIME_WAIT
            return _Update.VALID
        if (
            (dst.state < TcpState.SYN_SENT or dst.state >= TcpState.FIN_WAIT_2 or src.state >= TcpState.FIN_WAIT_2)
            and _seq_geq((src.seqhi + _MAXACKWINDOW) & 0xFFFFFFFF, end)
            and _seq_geq(seq, (src.seqlo - _MAXACKWINDOW) & 0xFFFFFFFF)
        ):
            # Shotgunned SYNs, a stream picked up mid-way, funny packets after close.
            if src.max_win < win:
                src.max_win = win
            if _seq_gt(end, src.seqlo):
                src.seqlo = end
            if _seq_geq((ack + (win << sws)) & 0xFFFFFFFF, dst.seqhi):
                dst.seqhi = (ack + max(win << sws, 1)) & 0xFFFFFFFF
            if flags & FIN and src.state < TcpState.CLOSING:
                src.state = TcpState.CLOSING
            if flags & RST:
                src.state = dst.state = TcpState.TIME_WAIT
            return _Update.VALID
        return _Update.INVALID

    def state_text(self) -> str:
        """``protoinfo=(state=...)`` as dump-conntrack prints it (the larger state, coalesced)."""
        state = max(self.peers[0].state, self.peers[1].state)
        state = {TcpState.FIN_WAIT_2: TcpState.TIME_WAIT, TcpState.SYN_RECV: TcpState.ESTABLISHED}.get(state, state)
        return state.name


@dataclass
class IcmpConn:
    replied: bool = False

    def update(self, pkt: Packet, reply: bool) -> _Update:
        if reply and not self.replied:
            self.replied = True
        elif not self.replied:
            return _Update.VALID_NEW
        return _Update.VALID


@dataclass
class OtherConn:
    """conntrack-other.c: first, multiple (one direction), bidirectional."""

    state: int = 0  # 0 first, 1 multiple, 2 bidir

    def update(self, pkt: Packet, reply: bool) -> _Update:
        if reply and self.state != 2:
            self.state = 2
        elif self.state == 0:
            self.state = 1
        return _Update.VALID if self.state == 2 else _Update.VALID_NEW


ProtoState = TcpConn | IcmpConn | OtherConn


def _valid_new(pkt: Packet, key: ConnKey) -> bool:
    if key.proto == IP_PROTO_TCP:
        flags = pkt.get("tcp_flags", 0)
        return not _tcp_invalid_flags(flags) and not (flags & SYN and flags & ACK)
    if key.proto == IP_PROTO_ICMP:
        return pkt.get("icmpv4_type") in (_ICMP_ECHO_REQUEST, _ICMP_INFOREQUEST, _ICMP_TIMESTAMP)
    return True


def _new_proto_state(pkt: Packet, key: ConnKey) -> ProtoState:
    if key.proto == IP_PROTO_TCP:
        return TcpConn.new(pkt)
    if key.proto == IP_PROTO_ICMP:
        return IcmpConn()
    return OtherConn()


# ---------------------------------------------------------------- connections and packet metadata


@dataclass(eq=False)
class Conn:
    """One tracked connection: its original and reply tuples, NAT, mark, label, protocol state."""

    key: ConnKey
    rev_key: ConnKey
    proto_state: ProtoState
    nat_action: int = 0
    mark: int = 0
    label: int = 0
    expired: bool = False

    def text(self) -> str:
        """One line of ``ovs-appctl dpctl/dump-conntrack`` (without -m)."""
        proto = {IP_PROTO_ICMP: "icmp", IP_PROTO_TCP: "tcp", IP_PROTO_UDP: "udp"}.get(
            self.key.proto, str(self.key.proto)
        )
        out = f"{proto},orig=({self.key.text()}),reply=({self.rev_key.text()})"
        if self.key.zone:
            out += f",zone={self.key.zone}"
        if self.mark:
            out += f",mark={self.mark}"
        if self.label:
            out += f",labels={self.label:#x}"
        if isinstance(self.proto_state, TcpConn):
            out += f",protoinfo=(state={self.proto_state.state_text()})"
        return out


@dataclass
class CtMeta:
    """What the datapath keeps about conntrack on a packet (pkt->md): it survives recirculation.

    OpenFlow sees ``state``/``zone``/``mark``/``label`` as ct_state, ct_zone,
    ct_mark, ct_label in the table a ``ct(table=...)`` recirculates to. ``conn``
    caches the connection found, as OVS does, so a second ct in the same zone
    reuses it instead of judging the packet again.
    """

    state: int = 0
    zone: int = 0
    mark: int = 0
    label: int = 0
    conn: Conn | None = None
    reply: bool = False
    icmp_related: bool = False

    def clear(self) -> None:
        """ct_clear (conntrack_clear): the packet is untracked again."""
        self.state = 0
        self.zone = 0
        self.mark = 0
        self.label = 0
        self.conn = None
        self.reply = False
        self.icmp_related = False

    def copy(self) -> CtMeta:
        return CtMeta(self.state, self.zone, self.mark, self.label, self.conn, self.reply, self.icmp_related)


@dataclass(frozen=True, slots=True)
class NatRequest:
    """A ct action's nat() as the datapath receives it (dpif-netdev's nat_action_info)."""

    action: int
    ip_min: int = 0
    ip_max: int = 0
    port_min: int = 0
    port_max: int = 0

    @classmethod
    def of(cls, nat: Nat) -> NatRequest:
        action = 0
        if nat.src or nat.dst:
            action = NAT_SRC if nat.src else NAT_DST
        ip_min = ipv4_to_int(nat.ip_min) if nat.ip_min else 0
        ip_max = ipv4_to_int(nat.ip_max) if nat.ip_max else ip_min
        port_min = nat.port_min or 0
        port_max = nat.port_max or port_min
        if action and nat.ip_min and port_min:
            action |= NAT_SRC_PORT if nat.src else NAT_DST_PORT
        return cls(action, ip_min, ip_max, port_min, port_max)


@dataclass
class _Lookup:
    """conn_lookup_ctx: the packet's key and what the lookup found."""

    key: ConnKey
    conn: Conn | None = None
    reply: bool = False
    icmp_related: bool = False


# ---------------------------------------------------------------- the table


class Conntrack:
    """One switch's connection table."""

    def __init__(self) -> None:
        # Every live connection under its original and its reply key; the bool says "reply".
        self._index: dict[ConnKey, tuple[Conn, bool]] = {}
        self._conns: list[Conn] = []

    # -- inspection

    def connections(self, zone: int | None = None) -> list[Conn]:
        return [c for c in self._conns if not c.expired and (zone is None or c.key.zone == zone)]

    def dump(self, zone: int | None = None) -> list[str]:
        """Sorted ``dpctl/dump-conntrack`` lines, for comparing with the real switch."""
        return sorted(c.text() for c in self.connections(zone))

    def flush(self, zone: int | None = None) -> None:
        """``ovs-appctl dpctl/flush-conntrack [zone=N]``."""
        for conn in self.connections(zone):
            self._expire(conn)

    # -- the ct action

    def execute(
        self,
        pkt: Packet,
        md: CtMeta,
        zone: int,
        *,
        commit: bool = False,
        nat: Nat | None = None,
        setmark: tuple[int, int] | None = None,
        setlabel: tuple[int, int] | None = None,
    ) -> None:
        """Run the datapath ``ct`` action on ``pkt`` (headers, rewritten by NAT) and its metadata ``md``.

        ``setmark``/``setlabel`` are (value, mask) from the action's exec().
        """
        if pkt.get("eth_type") != ETH_TYPE_IPV4:
            raise SimulationError("conntrack of non-IPv4 packets is not simulated")
        nat_info = NatRequest.of(nat) if nat is not None else None
        conn = md.conn
        if conn is not None and conn.key.zone == zone and not conn.expired:
            self._process_fast(pkt, md, zone, setmark, setlabel, nat_info, conn)
            return
        ctx = self._extract(pkt, zone)
        if ctx is None:
            md.state = CS_INVALID
            self._write_md(md, zone, None)
            return
        self._process(pkt, md, ctx, zone, commit, setmark, setlabel, nat_info)

    # -- internals, named after the C functions they port

    def _process_fast(
        self,
        pkt: Packet,
        md: CtMeta,
        zone: int,
        setmark: tuple[int, int] | None,
        setlabel: tuple[int, int] | None,
        nat_info: NatRequest | None,
        conn: Conn,
    ) -> None:
        if nat_info is not None:
            self._handle_nat(pkt, md, conn, zone, md.reply, md.icmp_related)
            md.conn = None
        md.zone = zone
        md.mark = conn.mark
        md.label = conn.label
        if setmark is not None:
            self._set_mark(md, conn, *setmark)
        if setlabel is not None:
            self._set_label(md, conn, *setlabel)

    def _process(
        self,
        pkt: Packet,
        md: CtMeta,
        ctx: _Lookup,
        zone: int,
        commit: bool,
        setmark: tuple[int, int] | None,
        setlabel: tuple[int, int] | None,
        nat_info: NatRequest | None,
    ) -> None:
        if md.state and md.zone != zone:
            md.state = 0
        self._initial_lookup(ctx, natted=bool(md.state & (CS_SRC_NAT | CS_DST_NAT)))
        conn = ctx.conn
        create_new = False
        if conn is not None:
            create_new = self._update_state(pkt, md, ctx, conn)
            if nat_info is not None and not create_new:
                self._handle_nat(pkt, md, conn, zone, ctx.reply, ctx.icmp_related)
        elif md.state & (CS_SRC_NAT | CS_DST_NAT) and nat_info is None:
            # check_orig_tuple: a packet NATed in this zone before is looked up by its original tuple. The
            # simulator keeps the connection on the packet instead (md.conn), which covers the same cases;
            # reaching here means OVS would look up a tuple the simulator does not carry.
            raise SimulationError("conntrack lookup by a NATed packet's original tuple is not simulated")
        elif ctx.icmp_related:
            md.state = CS_INVALID
        else:
            create_new = True
        if create_new:
            found = self._lookup(ctx.key)
            if found is None:
                conn = self._conn_not_found(pkt, md, ctx, commit, nat_info)
        self._write_md(md, zone, conn)
        if conn is not None and setmark is not None:
            self._set_mark(md, conn, *setmark)
        if conn is not None and setlabel is not None:
            self._set_label(md, conn, *setlabel)
        if nat_info is None:
            md.conn, md.reply, md.icmp_related = conn, ctx.reply, ctx.icmp_related
        else:
            md.conn = None

    def _extract(self, pkt: Packet, zone: int) -> _Lookup | None:
        """conn_key_extract: the packet's key, or None when OVS cannot build one (the packet is +inv)."""
        proto = pkt.get("ip_proto", 0)
        src, dst = pkt["ipv4_src"], pkt["ipv4_dst"]
        if proto in (IP_PROTO_TCP, IP_PROTO_UDP):
            l4 = "tcp" if proto == IP_PROTO_TCP else "udp"
            sport, dport = pkt.get(f"{l4}_src", 0), pkt.get(f"{l4}_dst", 0)
            if not sport or not dport:
                return None  # port 0 is invalid
            return _Lookup(ConnKey(zone, proto, Endpoint(src, sport), Endpoint(dst, dport)))
        if proto != IP_PROTO_ICMP:
            return _Lookup(ConnKey(zone, proto, Endpoint(src), Endpoint(dst)))
        icmp_type, code = pkt.get("icmpv4_type", 0), pkt.get("icmpv4_code", 0)
        if icmp_type in _ICMP_REVERSE:
            if code != 0:
                return None
            ident = pkt.get("icmp_id", 0)
            return _Lookup(
                ConnKey(zone, proto, Endpoint(src, ident, icmp_type), Endpoint(dst, ident, _ICMP_REVERSE[icmp_type]))
            )
        if icmp_type not in _ICMP_ERRORS or "inner_ipv4_src" not in pkt:
            return None
        # An error: the key is the quoted packet's, reversed; it must quote a packet this one answers.
        if pkt["inner_ipv4_src"] != dst:
            return None
        inner_proto = pkt["inner_ip_proto"]
        isrc, idst = pkt["inner_ipv4_src"], pkt["inner_ipv4_dst"]
        if inner_proto in (IP_PROTO_TCP, IP_PROTO_UDP):
            sport, dport = pkt.get("inner_sport", 0), pkt.get("inner_dport", 0)
            if not sport or not dport:
                return None
            inner = ConnKey(zone, inner_proto, Endpoint(isrc, sport), Endpoint(idst, dport))
        elif inner_proto == IP_PROTO_ICMP:
            itype = pkt.get("inner_icmp_type", 0)
            if itype not in _ICMP_REVERSE or pkt.get("inner_icmp_code", 0) != 0:
                return None  # an error about an error, or about a malformed echo
            ident = pkt.get("inner_icmp_id", 0)
            inner = ConnKey(
                zone, inner_proto, Endpoint(isrc, ident, itype), Endpoint(idst, ident, _ICMP_REVERSE[itype])
            )
        else:
            inner = ConnKey(zone, inner_proto, Endpoint(isrc), Endpoint(idst))
        return _Lookup(inner.reverse(), icmp_related=True)

    def _lookup(self, key: ConnKey) -> tuple[Conn, bool] | None:
        hit = self._index.get(key)
        if hit is None or hit[0].expired:
            return None
        return hit

    def _initial_lookup(self, ctx: _Lookup, natted: bool) -> None:
        key = ctx.key.reverse() if natted else ctx.key
        hit = self._lookup(key)
        if hit is None:
            ctx.conn = None
            return
        ctx.conn, ctx.reply = hit
        if natted:
            ctx.reply = not ctx.reply
            ctx.key = ctx.conn.rev_key if ctx.reply else ctx.conn.key

    def _update_state(self, pkt: Packet, md: CtMeta, ctx: _Lookup, conn: Conn) -> bool:
        """conn_update_state: True when the packet must start a new connection."""
        if ctx.icmp_related:
            md.state |= CS_RELATED
            if ctx.reply:
                md.state |= CS_REPLY_DIR
            return False
        result = conn.proto_state.update(pkt, ctx.reply)
        if result is _Update.VALID:
            md.state |= CS_ESTABLISHED
            md.state &= ~CS_NEW
            if ctx.reply:
                md.state |= CS_REPLY_DIR
        elif result is _Update.INVALID:
            md.state = CS_INVALID
        elif result is _Update.NEW:
            self._expire(conn)
            return True
        else:
            md.state |= CS_NEW
        return False

    def _conn_not_found(
        self, pkt: Packet, md: CtMeta, ctx: _Lookup, commit: bool, nat_info: NatRequest | None
    ) -> Conn | None:
        if not _valid_new(pkt, ctx.key):
            md.state = CS_INVALID
            return None
        md.state = CS_NEW
        if not commit:
            return None
        conn = Conn(ctx.key, ctx.key.reverse(), _new_proto_state(pkt, ctx.key))
        if nat_info is not None:
            conn.nat_action = nat_info.action
            rev_key = self._nat_unique_tuple(conn, nat_info)
            if rev_key is None:
                return None  # NAT tuple space exhausted: OVS logs it and tracks nothing
            conn.rev_key = rev_key
            self._nat_packet(pkt, md, conn, reply=False, related=ctx.icmp_related)
        self._conns.append(conn)
        self._index[conn.key] = (conn, False)
        self._index[conn.rev_key] = (conn, True)
        return conn

    def _expire(self, conn: Conn) -> None:
        conn.expired = True
        for key in (conn.key, conn.rev_key):
            if self._index.get(key, (None, False))[0] is conn:
                del self._index[key]
        self._conns.remove(conn)

    def _write_md(self, md: CtMeta, zone: int, conn: Conn | None) -> None:
        md.state |= CS_TRACKED
        md.zone = zone
        md.mark = conn.mark if conn is not None else 0
        md.label = conn.label if conn is not None else 0

    @staticmethod
    def _set_mark(md: CtMeta, conn: Conn, value: int, mask: int) -> None:
        md.mark = (value | (md.mark & ~mask)) & 0xFFFFFFFF
        conn.mark = md.mark

    @staticmethod
    def _set_label(md: CtMeta, conn: Conn, value: int, mask: int) -> None:
        md.label = (value | (md.label & ~mask)) & ((1 << 128) - 1)
        conn.label = md.label

    # -- NAT

    def _nat_unique_tuple(self, conn: Conn, info: NatRequest) -> ConnKey | None:
        """nat_get_unique_tuple, for the deterministic cases (one address, no explicit port range)."""
        key = conn.key
        if info.ip_min and info.ip_max != info.ip_min:
            raise SimulationError(
                f"NAT to the address range {int_to_ipv4(info.ip_min)}-{int_to_ipv4(info.ip_max)}: OVS picks one"
                " by a hash with a random basis; use one address"
            )
        if info.action & (NAT_SRC_PORT | NAT_DST_PORT) and info.port_max != info.port_min:
            raise SimulationError(
                f"NAT to the port range {info.port_min}-{info.port_max}: OVS picks a port by a hash with a random"
                " basis; give one port"
            )
        if not info.action & (NAT_SRC | NAT_DST):
            raise SimulationError(
                "ct(commit,nat) without src/dst on a new connection: OVS's userspace datapath records a"
                " reply tuple of 0.0.0.0 port 0 (lib/conntrack.c nat_get_unique_tuple); not simulated"
            )
        # No address given: the packet's own (a port-only translation).
        addr = info.ip_min or (key.src.addr if info.action & NAT_SRC else key.dst.addr)
        pat = key.proto in (IP_PROTO_TCP, IP_PROTO_UDP)
        rev = key.reverse()
        if info.action & NAT_SRC:
            rev = ConnKey(rev.zone, rev.proto, rev.src, Endpoint(addr, rev.dst.port, rev.dst.icmp_type))
        else:
            rev = ConnKey(rev.zone, rev.proto, Endpoint(addr, rev.src.port, rev.src.icmp_type), rev.dst)
        if not pat:
            return rev if self._lookup(rev) is None else None
        if info.action & NAT_DST_PORT:
            rev = ConnKey(rev.zone, rev.proto, Endpoint(rev.src.addr, info.port_min), rev.dst)
            if self._lookup(rev) is None:
                return rev
        if info.action & NAT_SRC_PORT:
            sport_min = sport_max = curr = info.port_min
        else:
            curr = key.src.port
            if curr < 512:
                sport_min, sport_max = 1, 511
            elif curr < 1024:
                sport_min, sport_max = 600, 1023
            else:
                sport_min, sport_max = 1024, 65535
        span = sport_max - sport_min + 1
        attempts = min(span, 128)
        for _ in range(attempts):
            candidate = ConnKey(rev.zone, rev.proto, rev.src, Endpoint(rev.dst.addr, curr))
            if self._lookup(candidate) is None:
                return candidate
            curr = sport_min if not sport_min <= curr <= sport_max or curr == sport_max else curr + 1
        if attempts < span and attempts >= 16:
            raise SimulationError("NAT source port search went past 128 ports: OVS continues at random ports")
        return None

    def _handle_nat(self, pkt: Packet, md: CtMeta, conn: Conn, zone: int, reply: bool, related: bool) -> None:
        natted = md.state & (CS_SRC_NAT | CS_DST_NAT)
        if conn.nat_action and (not natted or zone != md.zone):
            md.state &= ~(CS_SRC_NAT | CS_DST_NAT)
            self._nat_packet(pkt, md, conn, reply, related)

    def _nat_packet(self, pkt: Packet, md: CtMeta, conn: Conn, reply: bool, related: bool) -> None:
        key = conn.key if reply else conn.rev_key
        action = _nat_reverse(conn.nat_action) if reply else conn.nat_action
        if action & NAT_SRC:
            md.state |= CS_SRC_NAT
            pkt["ipv4_src"] = key.dst.addr
        elif action & NAT_DST:
            md.state |= CS_DST_NAT
            pkt["ipv4_dst"] = key.src.addr
        if action & (NAT_SRC | NAT_DST):
            if related:
                _nat_inner(pkt, key, _nat_reverse(action))
            else:
                _pat(pkt, key, "")


def _nat_reverse(action: int) -> int:
    if action & NAT_SRC:
        return (action & ~NAT_SRC) | NAT_DST
    if action & NAT_DST:
        return (action & ~NAT_DST) | NAT_SRC
    return action


def _pat(pkt: Packet, key: ConnKey, prefix: str) -> None:
    """pat_packet: both L4 ports from the key (source = key's destination port), TCP and UDP only."""
    if key.proto == IP_PROTO_TCP or key.proto == IP_PROTO_UDP:
        if prefix:
            pkt["inner_sport"], pkt["inner_dport"] = key.dst.port, key.src.port
        else:
            l4 = "tcp" if key.proto == IP_PROTO_TCP else "udp"
            pkt[f"{l4}_src"], pkt[f"{l4}_dst"] = key.dst.port, key.src.port


def _nat_inner(pkt: Packet, key: ConnKey, action: int) -> None:
    """nat_inner_packet: rewrite the packet an ICMP error quotes."""
    rev = key.reverse()
    _pat(pkt, rev, "inner_")
    if action & NAT_SRC:
        pkt["inner_ipv4_src"] = rev.dst.addr
    elif action & NAT_DST:
        pkt["inner_ipv4_dst"] = rev.src.addr
