"""Resolve tunnel peers' underlay next hops before traffic needs them (userspace datapath).

With ``datapath_type=netdev``, OVS encapsulates VXLAN itself and needs the
underlay next hop's MAC from its own tunnel neighbor cache. On a miss it sends
an ARP request and *drops the packet*: the first packet to every new remote
host would be lost (a VM's first ping, a TCP SYN that then waits 1 s for its
retransmission). OVS fills that cache only by snooping ARP replies crossing
its bridges, so the agent sends, from br-phy, an ARP request for the next hop
of every peer the controller names — when the peer appears, and then
periodically, well inside OVS's cache lifetime — and the reply is snooped on
its way in. The kernel datapath resolves neighbors itself: nothing to do there.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from dataclasses import dataclass

from pyroute2 import IPRoute

from dataplane.common.arp import ETH_P_ARP, arp_request
from dataplane.common.constants import BR_PHY
from dataplane.common.logs import get_logger

log = get_logger(__name__)

REFRESH_SECONDS = 60.0  # OVS keeps a snooped entry for 15 minutes by default


@dataclass(frozen=True, slots=True)
class _Interface:
    index: int
    mac: bytes
    ip: bytes


class TunnelNeighbors:
    """Keeps OVS's tunnel neighbor cache holding the next hop of every tunnel peer.

    Resolution runs on a thread of its own: it must never delay installing
    flows (the reconcile thread only hands it peers), and it keeps one netlink
    handle, as opening one costs more than the lookups.
    """

    def __init__(self, bridge: str = BR_PHY, refresh: float = REFRESH_SECONDS) -> None:
        self.bridge = bridge
        self.refresh = refresh
        self.peers: tuple[str, ...] = ()
        self._next_refresh = 0.0
        self._todo: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tunnel-neighbors", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._todo.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def set_peers(self, peers: tuple[str, ...]) -> None:
        """Resolve peers that are new now; all of them again at the next refresh."""
        new = [p for p in peers if p not in self.peers]
        self.peers = peers
        if new:
            self._todo.put(new)

    def forget(self) -> None:
        """OVS restarted (its cache is empty): resolve every peer again at the next tick."""
        self._next_refresh = 0.0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.peers and now >= self._next_refresh:
            self._next_refresh = now + self.refresh
            self._todo.put(list(self.peers))

    # ------------------------------------------------------------ worker thread

    def _run(self) -> None:
        ipr: IPRoute | None = None
        try:
            while True:
                peers = self._todo.get()
                if peers is None:
                    return
                while True:  # coalesce what else is queued
                    try:
                        more = self._todo.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        return
                    peers.extend(more)
                try:
                    ipr = ipr or IPRoute()
                    self._resolve(ipr, sorted(set(peers)))
                except OSError as exc:
                    log.warning("cannot resolve tunnel next hops", bridge=self.bridge, error=str(exc))
                    if ipr is not None:
                        ipr.close()
                    ipr = None
        finally:
            if ipr is not None:
                ipr.close()

    def _resolve(self, ipr: IPRoute, peers: list[str]) -> None:
        iface = self._interface(ipr)
        if iface is None:
            return
        next_hops = {hop for peer in peers if (hop := self._next_hop(ipr, peer, iface.index))}
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
            sock.bind((self.bridge, 0))
            for hop in sorted(next_hops):
                sock.send(arp_request(iface.mac, iface.ip, socket.inet_aton(hop)))
        log.debug("tunnel next hops resolved", bridge=self.bridge, peers=len(peers), next_hops=len(next_hops))

    def _interface(self, ipr: IPRoute) -> _Interface | None:
        links = ipr.link_lookup(ifname=self.bridge)
        if not links:
            log.warning("no underlay bridge to resolve tunnel peers from", bridge=self.bridge)
            return None
        index = links[0]
        mac = ipr.get_links(index)[0].get_attr("IFLA_ADDRESS")
        addrs = ipr.get_addr(index=index, family=socket.AF_INET)
        if not addrs:
            return None
        ip = addrs[0].get_attr("IFA_ADDRESS")
        return _Interface(index, bytes.fromhex(mac.replace(":", "")), socket.inet_aton(ip))

    @staticmethod
    def _next_hop(ipr: IPRoute, peer: str, index: int) -> str | None:
        """The peer itself when on-link through the bridge, else the route's gateway."""
        try:
            routes = ipr.route("get", dst=peer)
        except Exception:  # no route: the peer is unreachable, nothing to resolve
            return None
        if not routes or routes[0].get_attr("RTA_OIF") != index:
            return None
        return routes[0].get_attr("RTA_GATEWAY") or peer
