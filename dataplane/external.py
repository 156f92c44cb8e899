"""The agent's external side: bridge mappings, external next hops, gateway tunnels with BFD.

* **Bridge mappings** (``--bridge-mappings PHYSNET:BRIDGE[:NIC]``): each bridge
  is created in the switch's datapath type as a standalone (NORMAL, learning)
  switch holding the NIC, and patched to br-int; the i-th mapping's patch port
  is OpenFlow port ``PATCH_OFPORT_MIN + i`` on br-int, which is what the
  controller's provider and NAT flows name.
* **External next hops**: the controller cannot know the MAC of the upstream
  router on a provider network, so the agent asks for it, by ARP probes (sender
  0.0.0.0, so no neighbour's cache is touched) sent from the mapped bridge's
  own port, and reads the replies there. Resolved next hops become flows
  (``dataplane.contract.external``). The probes go on periodically: on a
  gateway host they are its health check (a gateway that stops hearing its
  next hops gives up the role, below).
* **Gateway tunnels**: a point-to-point VXLAN port per peer the controller
  names (``remote_ip`` = the peer, key from the flow, UDP port 4790 of their
  own), BFD on (``bfd:min_tx/min_rx``, ``bfd:mult``). OVS's ``bundle_load`` in
  the flows picks the first peer whose BFD says forwarding; a gateway host that
  lost its external next hops sets ``bfd:cpath_down`` on all of them, so every
  peer sees it as down, and clears it when they answer again.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dataplane.common.arp import arp_request, mac_bytes, parse_arp_reply
from dataplane.common.constants import (
    BR_INT,
    GATEWAY_TUNNEL_PREFIX,
    GATEWAY_TUNNEL_UDP_PORT,
    PATCH_OFPORT_MIN,
)
from dataplane.common.logs import get_logger
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.types import LOOM_OWNER, PortInfo
from vif import link
from vif.offload import disable_tx_checksum

log = get_logger(__name__)

ETH_P_ALL = 0x0003
PROBE_INTERVAL_GATEWAY = 0.5  # seconds between probes on a gateway host (its health check)
PROBE_INTERVAL = 5.0  # elsewhere: only to notice a replaced upstream router
MISSED_PROBES = 3  # a next hop silent this many intervals is unreachable
STARTUP_GRACE = 3.0  # seconds before silence counts at all


class ExternalError(RuntimeError):
    """A bridge mapping could not be set up; the message names the bridge or NIC."""


@dataclass(frozen=True, slots=True)
class BridgeMapping:
    physical_network: str
    bridge: str
    nic: str = ""

    @classmethod
    def parse(cls, text: str) -> BridgeMapping:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise ValueError(f"bridge mapping {text!r} is not PHYSNET:BRIDGE[:NIC]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def patch_names(index: int, mapping: BridgeMapping) -> tuple[str, str]:
    """(br-int side, bridge side) names of a mapping's patch ports (OVS port names stay short)."""
    return f"pi{index}-{mapping.physical_network}"[:15], f"pe{index}-{mapping.physical_network}"[:15]


def ensure_bridge_mappings(
    driver: OvsDriver, mappings: Iterable[BridgeMapping], datapath_type: str = "netdev"
) -> dict[str, int]:
    """Make every mapped bridge exist with its NIC, patched to br-int; physnet -> br-int patch ofport."""
    out: dict[str, int] = {}
    for index, m in enumerate(mappings):
        int_side, ext_side = patch_names(index, m)
        driver.ensure_bridge(
            m.bridge,
            datapath_type=datapath_type,
            fail_mode="standalone",
            other_config={"disable-in-band": "true"},
            external_ids={LOOM_OWNER: "provider"},
        )
        if m.nic:
            if link.get_link(m.nic) is None:
                raise ExternalError(f"bridge mapping {m.physical_network}: NIC {m.nic} does not exist here")
            # OVS's userspace datapath forwards what it reads as is: the NIC must not leave checksums undone.
            if datapath_type == "netdev":
                disable_tx_checksum(m.nic)
            if driver.ensure_port(m.bridge, m.nic, external_ids={LOOM_OWNER: "provider"}) <= 0:
                raise ExternalError(f"bridge mapping {m.physical_network}: cannot add NIC {m.nic} to {m.bridge}")
            link.set_link(m.nic, up=True)
        # A patch port is usable only once its peer exists: the first half goes in without waiting.
        driver.ensure_port(m.bridge, ext_side, type="patch", options={"peer": int_side}, wait=False)
        ofport = driver.ensure_port(
            BR_INT, int_side, type="patch", options={"peer": ext_side}, ofport_request=PATCH_OFPORT_MIN + index
        )
        if ofport != PATCH_OFPORT_MIN + index:
            raise ExternalError(f"patch port {int_side} got ofport {ofport}, not {PATCH_OFPORT_MIN + index}")
        if link.get_link(m.bridge) is not None:
            link.set_link(m.bridge, up=True)  # its own port: where probes and announcements are sent from
        out[m.physical_network] = ofport
        log.info("bridge mapping ready", physical_network=m.physical_network, bridge=m.bridge, nic=m.nic, ofport=ofport)
    return out


# ---------------------------------------------------------------- gateway tunnels


@dataclass(frozen=True, slots=True)
class BfdSettings:
    min_tx_ms: int = 100
    min_rx_ms: int = 100
    mult: int = 3

    def options(self, cpath_down: bool) -> dict[str, str]:
        return {
            "enable": "true",
            "min_tx": str(self.min_tx_ms),
            "min_rx": str(self.min_rx_ms),
            "mult": str(self.mult),
            "cpath_down": "true" if cpath_down else "false",
        }


def gateway_tunnel_name(ofport: int) -> str:
    return f"{GATEWAY_TUNNEL_PREFIX}{ofport}"


def sync_gateway_tunnels(
    driver: OvsDriver,
    local_ip: str,
    wanted: Mapping[int, str],
    bfd: BfdSettings,
    cpath_down: bool,
) -> None:
    """Br-int holds exactly the gateway tunnels ``wanted`` (ofport -> peer tunnel IP), BFD as given."""
    present = {p.name: p for p in driver.list_ports(BR_INT) if p.name.startswith(GATEWAY_TUNNEL_PREFIX)}
    names = {gateway_tunnel_name(ofport): (ofport, ip) for ofport, ip in wanted.items()}
    for name, port in present.items():
        if name not in names:
            driver.delete_port(name)
            log.info("gateway tunnel removed", port=name, remote_ip=port.options.get("remote_ip"))
    options = bfd.options(cpath_down)
    for name, (ofport, remote_ip) in names.items():
        want = {
            "remote_ip": remote_ip,
            "local_ip": local_ip,
            "key": "flow",
            "dst_port": str(GATEWAY_TUNNEL_UDP_PORT),
        }
        have = present.get(name)
        if have is not None and dict(have.options) == want and dict(have.bfd) == options and have.ofport == ofport:
            continue
        driver.ensure_port(
            BR_INT,
            name,
            type="vxlan",
            options=want,
            ofport_request=ofport,
            external_ids={LOOM_OWNER: "gateway-tunnel"},
            bfd=options,
            wait=False,
        )
        log.info("gateway tunnel ensured", port=name, ofport=ofport, remote_ip=remote_ip, cpath_down=cpath_down)


def bfd_forwarding(ports: Iterable[PortInfo]) -> dict[int, bool]:
    """Gateway tunnel ofport -> whether BFD says traffic can go there (as OVS's bundle sees it)."""
    return {
        p.ofport: p.bfd_status.get("forwarding") == "true"
        for p in ports
        if p.name.startswith(GATEWAY_TUNNEL_PREFIX) and p.ofport > 0
    }


# ---------------------------------------------------------------- external next hops


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    bridge: str
    vlan: int
    network_tag: int
    ip: str


@dataclass
class _Seen:
    mac: str
    at: float


@dataclass
class ExternalNeighbors:
    """Resolves external next hops by ARP through the mapped bridges, and keeps checking they answer.

    Runs its own thread (the reconcile thread only hands it targets and reads
    results); ``on_change`` is called (from that thread) when a next hop's MAC
    appears or changes, or when reachability flips.
    """

    on_change: Callable[[], None]
    interval: float = PROBE_INTERVAL
    targets: tuple[ProbeTarget, ...] = ()
    _seen: dict[tuple[int, str], _Seen] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0
    _reachable: bool = True

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="external-neighbors", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def set_targets(self, targets: Iterable[ProbeTarget], interval: float) -> None:
        new = tuple(sorted(set(targets), key=lambda t: (t.bridge, t.vlan, t.network_tag, t.ip)))
        with self._lock:
            changed = new != self.targets or interval != self.interval
            self.targets, self.interval = new, interval
        if changed:
            self._wake.set()

    def resolved(self) -> dict[tuple[int, str], str]:
        """(network tag, next hop IP) -> MAC, for every next hop that has answered."""
        with self._lock:
            return {key: seen.mac for key, seen in self._seen.items()}

    def reachable(self, now: float | None = None) -> bool:
        """Whether some external next hop answered lately (True during the start-up grace, or with none)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._reachable_locked(now)

    def _reachable_locked(self, now: float) -> bool:
        if not self.targets or now - self._started < STARTUP_GRACE:
            return True
        horizon = MISSED_PROBES * self.interval
        return any(
            (seen := self._seen.get((t.network_tag, t.ip))) is not None and now - seen.at <= horizon
            for t in self.targets
        )

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        sockets: dict[str, socket.socket] = {}
        try:
            next_probe = 0.0
            while not self._stop.is_set():
                with self._lock:
                    targets, interval = self.targets, self.interval
                now = time.monotonic()
                if self._wake.is_set() or now >= next_probe:
                    self._wake.clear()
                    self._probe(sockets, targets)
                    next_probe = now + interval
                self._receive(sockets, timeout=min(0.1, max(0.0, next_probe - time.monotonic())))
                self._check_reachability()
        finally:
            for sock in sockets.values():
                sock.close()

    def _socket(self, sockets: dict[str, socket.socket], bridge: str) -> socket.socket | None:
        sock = sockets.get(bridge)
        if sock is None:
            try:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.bind((bridge, 0))
                sock.setblocking(False)
            except OSError as exc:
                log.warning("cannot open the external bridge for ARP", bridge=bridge, error=str(exc))
                return None
            sockets[bridge] = sock
        return sock

    def _probe(self, sockets: dict[str, socket.socket], targets: tuple[ProbeTarget, ...]) -> None:
        for bridge in {t.bridge for t in targets}:
            info = link.get_link(bridge)
            sock = self._socket(sockets, bridge)
            if info is None or sock is None:
                continue
            for t in targets:
                if t.bridge != bridge:
                    continue
                try:
                    sock.send(arp_request(mac_bytes(info.mac), b"\0\0\0\0", socket.inet_aton(t.ip), t.vlan))
                except OSError as exc:
                    log.warning("ARP probe not sent", bridge=bridge, ip=t.ip, error=str(exc))

    def _receive(self, sockets: dict[str, socket.socket], timeout: float) -> None:
        if not sockets:
            self._stop.wait(timeout)
            return
        try:
            readable, _, _ = select.select(list(sockets.values()), [], [], timeout)
        except OSError:
            return
        changed = False
        for sock in readable:
            while True:
                try:
                    frame = sock.recv(2048)
                except (BlockingIOError, OSError):
                    break
                got = parse_arp_reply(frame)
                if got is not None:
                    changed |= self._record(*got)
        if changed:
            self.on_change()

    def _record(self, ip: str, mac: str, vlan: int) -> bool:
        now = time.monotonic()
        with self._lock:
            changed = False
            for t in self.targets:
                if t.ip != ip or t.vlan != vlan:
                    continue
                key = (t.network_tag, t.ip)
                old = self._seen.get(key)
                if old is None or old.mac != mac:
                    log.info(
                        "external next hop resolved", network_tag=t.network_tag, ip=ip, mac=mac, was=old and old.mac
                    )
                    changed = True
                self._seen[key] = _Seen(mac, now)
            return changed

    def _check_reachability(self) -> None:
        now = time.monotonic()
        with self._lock:
            reachable = self._reachable_locked(now)
            flipped = reachable != self._reachable
            self._reachable = reachable
        if flipped:
            log.warning("external next hops " + ("answer again" if reachable else "stopped answering"))
            self.on_change()
