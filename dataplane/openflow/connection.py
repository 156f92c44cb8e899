"""An OpenFlow 1.3 client connection to one Open vSwitch bridge.

The agent talks to OVS the way ``ovs-ofctl`` does: as a client of the
management socket every bridge listens on (``unix:<OVS_RUNDIR>/<bridge>.mgmt``;
``tcp:HOST:PORT`` also works for a bridge with a passive TCP listener). No
controller entry is written to OVSDB, so there is no reconnect backoff and no
in-band flows to hide.

Sending (:meth:`OFConnection.send`: whole messages, written at once) is
thread-safe. A reader thread answers echo requests, turns replies into futures
by xid (barrier, bundle control, features, multipart replies assembled into one
list of bodies), and keeps errors that no future waits for (e.g. one bundled
flow mod that OVS rejected) until :meth:`OFConnection.pop_errors` collects
them by xid. The reader only slices messages apart; parsing (flow dumps)
happens in the caller's thread, so the reader is never the bottleneck.

Non-hot-path messages are built and parsed with os-ken's ``ofproto_v1_3_parser``;
errors are decoded to readable names with os-ken's tables.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Container
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser
from os_ken.ofproto.ofproto_protocol import ProtocolDesc

from dataplane.common.logs import get_logger
from dataplane.contract.encode import NX_EXPERIMENTER_ID, OFP_VERSION, OFPTT_ALL, ONF_EXPERIMENTER_ID
from dataplane.openflow.dump import InstalledFlow, parse_flow_stats

log = get_logger(__name__)

DEFAULT_OVS_RUNDIR = "/var/run/openvswitch"
WRITE_BATCH_BYTES = 64 * 1024  # what callers gather into one send (see FlowInstaller)
_RECV_BYTES = 1 << 20
_SOCKET_BUFFER_BYTES = 4 << 20
_MAX_KEPT_ERRORS = 10_000
_HEADER = struct.Struct("!BBHI")
_NXT_CT_FLUSH_ZONE = 29  # include/openflow/nicira-ext.h
# Open vSwitch's Nicira error codes for OpenFlow 1.2+ that flow mods can hit (include/openvswitch/ofp-errors.h);
# os-ken has no table for them.
_NX_ERRORS = {
    2: "NXBRC_NXM_INVALID",
    3: "NXBRC_NXM_BAD_TYPE",
    4: "NXBRC_MUST_BE_ZERO",
    11: "NXBAC_MUST_BE_ZERO",
    12: "NXFMFC_HARDWARE",
    13: "NXFMFC_BAD_TABLE_ID",
    15: "NXBAC_BAD_CONJUNCTION",
    42: "NXBAC_CT_DATAPATH_SUPPORT",
    43: "NXBMC_CT_DATAPATH_SUPPORT",
}
_MULTIPART_HEADER = struct.Struct("!HH")
_AGGREGATE_REPLY = struct.Struct(ofp.OFP_AGGREGATE_STATS_REPLY_PACK_STR)  # packets, bytes, flows


def mgmt_target(bridge: str, rundir: str | None = None) -> str:
    """The management socket OVS opens for ``bridge`` (``rundir`` defaults to $OVS_RUNDIR, then OVS's default)."""
    rundir = rundir or os.environ.get("OVS_RUNDIR") or DEFAULT_OVS_RUNDIR
    return f"unix:{rundir}/{bridge}.mgmt"


class ConnectionClosed(Exception):
    """The connection to the switch is gone (or was never made); nothing more can be sent or received."""


@dataclass(frozen=True, slots=True)
class OFError:
    """An OpenFlow error message from the switch, for one request (by xid)."""

    xid: int
    type: int
    code: int  # the exp_type for experimenter errors
    experimenter: int | None
    data: bytes  # the start of the request that failed

    @property
    def failed_request_type(self) -> int | None:
        return self.data[1] if len(self.data) >= 8 else None

    @property
    def text(self) -> str:
        """Readable names, e.g. ``OFPET_BAD_MATCH(4) OFPBMC_BAD_PREREQ(9)``, and the request it answers."""
        if self.type == ofp.OFPET_EXPERIMENTER:
            if self.experimenter == ONF_EXPERIMENTER_ID:
                names = [k for k, v in vars(ofp).items() if k.startswith("ONFERR_ET_") and v == self.code]
                what = f"ONF {names[0] if names else 'error'}({self.code})"
            elif self.experimenter == NX_EXPERIMENTER_ID:
                what = f"Nicira {_NX_ERRORS.get(self.code, 'error')}({self.code})"
            else:
                what = f"experimenter {self.experimenter:#x} error {self.code}"
        else:
            names = ofp.ofp_error_to_jsondict(self.type, self.code)
            what = f"{names['type']} {names['code']}"
        request = self.failed_request_type
        if request is not None:
            what += f" in reply to {ofp.ofp_msg_type_to_str(request)}"
        return what

    @classmethod
    def parse(cls, message: bytes) -> OFError:
        version, msg_type, length, xid = _HEADER.unpack_from(message)
        msg = parser.OFPErrorMsg.parser(_PROTOCOL, version, msg_type, length, xid, message)
        if msg.type == ofp.OFPET_EXPERIMENTER:
            return cls(xid, msg.type, msg.exp_type, msg.experimenter, bytes(msg.data))
        return cls(xid, msg.type, msg.code, None, bytes(msg.data))


class OpenFlowError(Exception):
    """The switch answered a request with an error."""

    def __init__(self, error: OFError) -> None:
        super().__init__(f"xid {error.xid}: {error.text}")
        self.error = error


_PROTOCOL = ProtocolDesc(OFP_VERSION)


def _serialize(msg: parser.MsgBase, xid: int) -> bytes:
    msg.set_xid(xid)
    msg.serialize()
    return bytes(msg.buf)


class OFConnection:
    """One OpenFlow 1.3 session with a switch. Use as a context manager, or call :meth:`close`."""

    def __init__(self, target: str, *, timeout: float = 10.0) -> None:
        self.target = target
        self.timeout = timeout
        self.datapath_id: int | None = None
        self._sock = self._connect(target, timeout)
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()  # guards xids, futures, multipart parts and errors
        self._next_xid = 1
        self._next_bundle = 1
        self._futures: dict[int, Future[object]] = {}
        self._multipart: dict[int, list[bytes]] = {}
        self._errors: OrderedDict[int, OFError] = OrderedDict()
        self._closed = threading.Event()
        self._close_reason: str | None = None
        self._hello: Future[bytes] = Future()
        self._reader = threading.Thread(target=self._read_loop, name=f"of-reader {target}", daemon=True)
        self._reader.start()
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise
        log.info("openflow connected", target=target, datapath_id=f"{self.datapath_id:016x}")

    # ------------------------------------------------------------ set-up and tear-down

    @staticmethod
    def _connect(target: str, timeout: float) -> socket.socket:
        kind, _, rest = target.partition(":")
        try:
            if kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                sock.connect(rest)
            elif kind == "tcp":
                host, _, port = rest.rpartition(":")
                sock = socket.create_connection((host, int(port)), timeout=timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                raise ValueError(f"unsupported OpenFlow target {target!r} (use unix:PATH or tcp:HOST:PORT)")
        except OSError as exc:
            raise ConnectionClosed(f"cannot connect to {target}: {exc}") from exc
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, _SOCKET_BUFFER_BYTES)
            except OSError:
                pass  # a smaller buffer only costs some pipelining
        return sock

    def _handshake(self) -> None:
        hello = parser.OFPHello(_PROTOCOL, elements=[parser.OFPHelloElemVersionBitmap([OFP_VERSION])])
        self.send(_serialize(hello, self.allocate_xids()))
        try:
            peer = self._hello.result(self.timeout)
        except FutureTimeout as exc:
            raise ConnectionClosed(f"{self.target}: no HELLO from the switch") from exc
        if not self._peer_speaks_13(peer):
            raise ConnectionClosed(f"{self.target}: the switch does not offer OpenFlow 1.3")
        reply = self.request(_serialize(parser.OFPFeaturesRequest(_PROTOCOL), self.allocate_xids()))
        features = reply.result(self.timeout)
        assert isinstance(features, bytes)
        (self.datapath_id,) = struct.unpack_from("!Q", features, 8)

    @staticmethod
    def _peer_speaks_13(hello: bytes) -> bool:
        version = hello[0]
        if len(hello) <= 8:
            return version >= OFP_VERSION  # no bitmap: the peer speaks everything up to its version
        offset = 8
        while offset + 4 <= len(hello):
            elem_type, elem_len = struct.unpack_from("!HH", hello, offset)
            if elem_len < 4:
                break
            if elem_type == ofp.OFPHET_VERSIONBITMAP and elem_len >= 8:
                (bitmap,) = struct.unpack_from("!I", hello, offset + 4)
                return bool(bitmap & (1 << OFP_VERSION))
            offset += (elem_len + 7) & ~7
        return version >= OFP_VERSION

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Close the socket, stop the reader and fail every pending request with ConnectionClosed."""
        self._mark_closed("closed by the agent")
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)
        self._sock.close()

    def __enter__(self) -> OFConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _mark_closed(self, reason: str) -> None:
        with self._state_lock:
            if self._closed.is_set():
                return
            self._close_reason = reason
            self._closed.set()
            futures = list(self._futures.values())
            self._futures.clear()
            self._multipart.clear()
        if not self._hello.done():
            self._hello.set_exception(ConnectionClosed(f"{self.target}: {reason}"))
        for fut in futures:
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"{self.target}: {reason}"))
        if reason != "closed by the agent":
            log.warning("openflow connection lost", target=self.target, reason=reason)

    def _raise_closed(self) -> None:
        raise ConnectionClosed(f"{self.target}: {self._close_reason or 'closed'}")

    # ------------------------------------------------------------ ids

    def allocate_xids(self, n: int = 1) -> int:
        """Reserve ``n`` consecutive xids and return the first (never 0, never wrapping inside the block)."""
        with self._state_lock:
            if self._next_xid + n > 0xFFFFFFFF:
                self._next_xid = 1
            first = self._next_xid
            self._next_xid += n
            return first

    def allocate_bundle_id(self) -> int:
        with self._state_lock:
            bundle_id = self._next_bundle
            self._next_bundle = bundle_id % 0xFFFFFFFF + 1
            return bundle_id

    # ------------------------------------------------------------ sending

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Write whole messages now."""
        with self._send_lock:
            self._sendall(data)

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.send(data)
        except ConnectionClosed:
            pass

    def _sendall(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed.is_set():
            self._raise_closed()
        try:
            self._sock.sendall(data)
        except OSError as exc:
            # A partial write leaves the stream unusable: the connection is over.
            self._mark_closed(f"send failed: {exc}")
            self._raise_closed()

    # ------------------------------------------------------------ requests and replies

    def request(self, message: bytes) -> Future[object]:
        """Send a request; the future gets the reply (raw bytes; a list of bodies for multipart) or an exception."""
        (xid,) = struct.unpack_from("!I", message, 4)
        fut: Future[object] = Future()
        with self._state_lock:
            if self._closed.is_set():
                self._raise_closed()
            self._futures[xid] = fut
        try:
            self.send(message)
        except ConnectionClosed:
            with self._state_lock:
                self._futures.pop(xid, None)
            raise
        return fut

    def wait(self, fut: Future[object], timeout: float | None = None, what: str = "reply") -> object:
        """The future's result. A switch that does not answer in time is treated as gone: the
        connection is closed and ConnectionClosed raised (its state can no longer be trusted)."""
        limit = self.timeout if timeout is None else timeout
        try:
            return fut.result(limit)
        except FutureTimeout as exc:
            self._mark_closed(f"no {what} within {limit} s")
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            raise ConnectionClosed(f"{self.target}: no {what} within {limit} s") from exc

    def barrier(self, timeout: float | None = None) -> None:
        """Return once the switch has processed everything sent before."""
        msg = _serialize(parser.OFPBarrierRequest(_PROTOCOL), self.allocate_xids())
        self.wait(self.request(msg), timeout, "barrier reply")

    def echo(self, timeout: float | None = None) -> float:
        """Round-trip time of an echo request, in seconds."""
        start = time.perf_counter()
        msg = _serialize(parser.OFPEchoRequest(_PROTOCOL, data=b"loom"), self.allocate_xids())
        self.wait(self.request(msg), timeout, "echo reply")
        return time.perf_counter() - start

    def packet_out(self, data: bytes, in_port: int) -> None:
        """Run ``data`` through the bridge's tables from table 0, as if it had arrived on ``in_port``.

        Fire and forget: a rejected packet-out comes back as an error the reader keeps.
        """
        actions = [parser.OFPActionOutput(ofp.OFPP_TABLE, 0)]
        msg = parser.OFPPacketOut(_PROTOCOL, ofp.OFP_NO_BUFFER, in_port, actions, data)
        self.send(_serialize(msg, self.allocate_xids()))

    def flush_ct_zone(self, zone: int) -> None:
        """Delete every conntrack entry of ``zone`` (Nicira NXT_CT_FLUSH_ZONE, what ``ovs-ofctl ct-flush-zone``
        sends). Fire and forget: a rejection comes back as an error the reader keeps."""
        body = struct.pack("!II6xH", NX_EXPERIMENTER_ID, _NXT_CT_FLUSH_ZONE, zone)
        self.send(
            _HEADER.pack(OFP_VERSION, ofp.OFPT_EXPERIMENTER, _HEADER.size + len(body), self.allocate_xids()) + body
        )

    def packet_out_to(self, data: bytes, port: int) -> None:
        """Send ``data`` straight out of OpenFlow port ``port`` (no tables). Fire and forget."""
        actions = [parser.OFPActionOutput(port, 0)]
        msg = parser.OFPPacketOut(_PROTOCOL, ofp.OFP_NO_BUFFER, ofp.OFPP_CONTROLLER, actions, data)
        self.send(_serialize(msg, self.allocate_xids()))

    def bundle_control(self, bundle_id: int, ctrl_type: int, flags: int) -> Future[object]:
        """Send an ONF bundle control request (open/commit/discard); the future gets the reply."""
        msg = parser.ONFBundleCtrlMsg(_PROTOCOL, bundle_id, ctrl_type, flags, [])
        return self.request(_serialize(msg, self.allocate_xids()))

    def dump_flows(
        self, table: int = OFPTT_ALL, cookie: int = 0, cookie_mask: int = 0, timeout: float | None = None
    ) -> list[InstalledFlow]:
        """Every flow on the bridge (or in one table / cookie range), raw match and instructions."""
        req = parser.OFPFlowStatsRequest(
            _PROTOCOL,
            0,
            table,
            ofp.OFPP_ANY,
            ofp.OFPG_ANY,
            cookie,
            cookie_mask,
            parser.OFPMatch(),
        )
        bodies = self.wait(self.request(_serialize(req, self.allocate_xids())), timeout, "flow stats")
        assert isinstance(bodies, list)
        return parse_flow_stats(bodies)

    def count_flows(
        self, table: int = OFPTT_ALL, cookie: int = 0, cookie_mask: int = 0, timeout: float | None = None
    ) -> int:
        """How many flows match, from an aggregate-stats request: one small reply however many there are."""
        req = parser.OFPAggregateStatsRequest(
            _PROTOCOL, 0, table, ofp.OFPP_ANY, ofp.OFPG_ANY, cookie, cookie_mask, parser.OFPMatch()
        )
        bodies = self.wait(self.request(_serialize(req, self.allocate_xids())), timeout, "aggregate stats")
        assert isinstance(bodies, list) and bodies
        _packets, _bytes, flow_count = _AGGREGATE_REPLY.unpack_from(bodies[0])
        return flow_count

    def pop_errors(self, xids: Container[int] | Callable[[int], bool]) -> list[OFError]:
        """Take the kept errors whose xid is in ``xids`` (a container, or a predicate)."""
        test = xids if callable(xids) else xids.__contains__
        with self._state_lock:
            hits = [e for x, e in self._errors.items() if test(x)]
            for e in hits:
                del self._errors[e.xid]
        return hits

    # ------------------------------------------------------------ the reader

    def _read_loop(self) -> None:
        sock = self._sock
        buf = bytearray()
        reason = "the switch closed the connection"
        try:
            while not self._closed.is_set():
                try:
                    chunk = sock.recv(_RECV_BYTES)
                except TimeoutError:
                    continue  # idle: the socket timeout only bounds sends
                if not chunk:
                    break
                buf += chunk
                offset = 0
                end = len(buf)
                while end - offset >= 8:
                    length = (buf[offset + 2] << 8) | buf[offset + 3]
                    if length < 8:
                        raise ValueError(f"message length {length} < 8")
                    if end - offset < length:
                        break
                    self._dispatch(bytes(buf[offset : offset + length]))
                    offset += length
                del buf[:offset]
        except OSError as exc:
            reason = f"receive failed: {exc}"
        except Exception as exc:  # a protocol violation ends the session; log it rather than die silently
            log.exception("openflow reader failed", target=self.target)
            reason = f"reader failed: {exc}"
        self._mark_closed(reason)

    def _dispatch(self, msg: bytes) -> None:
        _, msg_type, _, xid = _HEADER.unpack_from(msg)
        if msg_type == ofp.OFPT_ECHO_REQUEST:
            reply = bytearray(msg)
            reply[0] = OFP_VERSION
            reply[1] = ofp.OFPT_ECHO_REPLY
            # Never block the reader on the send lock: a writer stuck on a full socket waits for
            # OVS, and OVS stops reading once 100 replies to us are queued.
            threading.Thread(target=self._send_quietly, args=(bytes(reply),), daemon=True).start()
            return
        if msg_type == ofp.OFPT_HELLO:
            if not self._hello.done():
                self._hello.set_result(msg)
            return
        if msg_type == ofp.OFPT_ERROR:
            self._on_error(OFError.parse(msg))
            return
        if msg_type == ofp.OFPT_MULTIPART_REPLY:
            _mp_type, flags = _MULTIPART_HEADER.unpack_from(msg, 8)
            with self._state_lock:
                parts = self._multipart.setdefault(xid, [])
                parts.append(msg[16:])
                if flags & ofp.OFPMPF_REPLY_MORE:
                    return
                del self._multipart[xid]
                fut = self._futures.pop(xid, None)
            if fut is not None:
                fut.set_result(parts)
            return
        with self._state_lock:
            fut = self._futures.pop(xid, None)
        if fut is not None:
            fut.set_result(msg)
        else:
            log.debug("unsolicited openflow message", target=self.target, type=msg_type, xid=xid)

    def _on_error(self, error: OFError) -> None:
        with self._state_lock:
            fut = self._futures.pop(error.xid, None)
            self._multipart.pop(error.xid, None)
            if fut is None:
                self._errors[error.xid] = error
                while len(self._errors) > _MAX_KEPT_ERRORS:
                    self._errors.popitem(last=False)
        if fut is not None:
            fut.set_exception(OpenFlowError(error))
