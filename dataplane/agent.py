"""The hypervisor agent: makes the host's desired state true, and says what it reached.

Inputs arrive on other threads — Sync messages from the controller, VIF events
from OVSDB, a periodic tick — and only flag work; one reconcile thread does it,
always from the complete desired state:

1. localports (the per-network DHCP/metadata namespaces) exist as desired;
2. br-int holds exactly the controller's flows plus the binding flows the
   agent renders for its VIFs and localports, installed as one atomic bundle
   (never a flush: see ``dataplane.openflow.installer``);
3. dnsmasq and the metadata proxy serve the local ports;
4. each local port's facts (VIF present, flows installed, DHCP and metadata
   ready) are reported when they change.

On the external side (``dataplane.external``) it keeps the bridge mappings'
bridges, the gateway tunnels with BFD, and the external next hops resolved;
it announces floating IPs and gateway roles, flushes a departed floating IP's
connections, and reports which routers it is the active gateway of.

The decisions (when it may program, which binding flows to render, which
facts to report, which addresses to announce) are made by
``dataplane.agent_core.AgentCore``, without I/O; this module observes and acts.
The desired state is persisted, so after an OVS restart (flows gone) the
switch is reprogrammed from the last full state even while the controller is
unreachable.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time

from dataplane import underlay
from dataplane.agent_core import AgentCore, Announcement, Flush, Rendered, cut_off
from dataplane.common.arp import gratuitous_arp
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from dataplane.compute.manager import ComputeConfig, ComputeManager
from dataplane.config import AgentConfig
from dataplane.contract.cookie import LOOM_MARKER
from dataplane.contract.external import external_neighbor_flow
from dataplane.contract.flow import Flow
from dataplane.desired import DesiredState
from dataplane.external import (
    PROBE_INTERVAL,
    PROBE_INTERVAL_GATEWAY,
    ExternalNeighbors,
    ProbeTarget,
    bfd_forwarding,
    ensure_bridge_mappings,
    sync_gateway_tunnels,
)
from dataplane.localports import LocalportManager
from dataplane.openflow.connection import ConnectionClosed, OFConnection, mgmt_target
from dataplane.openflow.installer import BundleError, FlowInstaller
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.monitor import InterfaceMonitor
from dataplane.ovs.types import InterfaceEvent
from dataplane.sync_client import ControllerClient, Registration
from dataplane.tunnel_neighbors import TunnelNeighbors
from dhcp.convert import configs_from_proto
from dhcp.manager import DhcpManager
from metadata_proxy.convert import metadata_networks_from_proto
from metadata_proxy.manager import MetadataProxyManager
from protos.loom.v1 import agent_pb2

log = get_logger(__name__)

TICK_SECONDS = 1.0
PERSIST_EVERY = 0.5  # seconds: debounce writes of the desired state
RETRY_SECONDS = 0.5
GATEWAY_CHECK_SECONDS = 0.1  # how often a gateway host reads its BFD sessions (for announcing and reporting)
# A gateway tunnel younger than this cannot say a peer is down: its BFD session may not be up yet. Until then
# the peer counts as alive, so two gateways starting together do not both claim (and report) a router.
BFD_SETTLE_SECONDS = 3.0


class Agent:
    def __init__(self, config: AgentConfig, version: str = "0.1.0") -> None:
        self.config = config
        self.version = version
        self.log = log.bind(host=config.host)
        self.desired = DesiredState.load(config.state_dir)
        self.driver = OvsDriver(config.ovsdb)
        self.localports = LocalportManager(self.driver, config.namespace_prefix)
        self.dhcp = DhcpManager(config.run_dir / "dhcp")
        self.metadata: MetadataProxyManager | None = None  # started once the service URL is known
        # The kernel datapath resolves tunnel next hops itself; the userspace one drops while it does.
        self.tunnels = TunnelNeighbors() if config.datapath_type == "netdev" else None
        self.monitor: InterfaceMonitor | None = None
        self.connection: OFConnection | None = None
        self.installer: FlowInstaller | None = None
        self.client = ControllerClient(
            config.controller,
            Registration(
                config.host,
                config.tunnel_ip,
                config.datapath_type,
                version,
                tuple(m.physical_network for m in config.bridge_mappings),
                config.gateway_priority,
            ),
            on_message=self._on_message,
            position=self._position,
            on_connected=self._on_controller_connected,
        )
        # The guests (dataplane/compute), when this host runs any: its own threads, told what changed.
        self.compute = _compute_manager(config, self.client.channel)
        # Inputs from other threads, guarded by _lock; _wake starts a reconcile.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._messages: list[agent_pb2.SyncMessage] = []
        self._vifs: dict[str, InterfaceEvent] = {}
        self._vifs_changed = False
        self._report_all = False
        # Reconcile-thread state.
        self.core = AgentCore()
        self._flows_ok_ports: set[str] = set()
        self._installed_revision = 0
        self._zones: dict[str, int] | None = None  # port -> conntrack zone, as last installed in this run
        self._unsaved = False  # the desired state changed since it was last persisted
        self._last_persist = 0.0
        self._retry_at: float | None = None
        self._metadata_url = ""
        # The external side.
        self.bridges = {m.physical_network: m.bridge for m in config.bridge_mappings}
        self.neighbors = ExternalNeighbors(on_change=self._on_external_change) if config.bridge_mappings else None
        self._external_changed = False
        self._gateway_check_at: float | None = None
        self._tunnels_wanted: tuple[tuple[int, str], ...] | None = None
        self._tunnels_since: dict[int, float] = {}  # gateway tunnel ofport -> when it was set up
        self._cpath_down = False
        self._cut_off = False  # every gateway tunnel's BFD down at the last look

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        """Bridges, tunnel, underlay, VIF monitor, OpenFlow; then program from the persisted state if any."""
        cfg = self.config
        self.driver.start()
        self.driver.ensure_integration_bridge(cfg.datapath_type)
        if cfg.underlay_nic:
            underlay.ensure(self.driver, cfg.underlay_nic, f"{cfg.tunnel_ip}/{cfg.underlay_prefix}")
        self.driver.ensure_tunnel_port(cfg.tunnel_ip)
        if cfg.bridge_mappings:
            ensure_bridge_mappings(self.driver, cfg.bridge_mappings, cfg.datapath_type)
        # Reports the VIFs present now to _on_vif before it returns (a resync on attach).
        self.monitor = self.driver.monitor_interfaces(callback=self._on_vif)
        self.localports.adopt()
        _traversable(self.config.run_dir)
        if self.tunnels is not None:
            self.tunnels.start()
        if self.neighbors is not None:
            self.neighbors.start()
        self.dhcp.start()
        if self.compute is not None:
            self.compute.start()
        self._connect_openflow()
        if self.core.at_start(self.desired.complete, self._switch_has_loom_flows()):
            self.log.info(
                "switch has no Loom flows: programming from the persisted state", revision=self.desired.revision
            )
            if self.tunnels is not None:
                self.tunnels.set_peers(self.desired.peers)
            self._reconcile()
        elif self.desired.complete:
            self.log.info("switch holds Loom flows: keeping them until the controller's state arrives")

    def _switch_has_loom_flows(self) -> bool:
        if self.connection is None:
            return True  # unknown: assume so, and touch nothing
        try:
            # A count, not a dump: at restart the installer's first sync dumps the table anyway.
            return self.connection.count_flows(cookie=LOOM_MARKER << 56, cookie_mask=0xFF << 56) > 0
        except ConnectionClosed:
            self._drop_openflow()
            return True

    def run(self) -> None:
        """Set up, follow the controller and reconcile until stop()."""
        self.setup()
        self.client.start()
        next_tick = time.monotonic() + TICK_SECONDS
        while not self._stop.is_set():
            deadline = min(
                next_tick,
                self._retry_at or next_tick,
                self.core.next_announcement() or next_tick,
                self._gateway_check_at or next_tick,
            )
            self._wake.wait(timeout=max(0.0, deadline - time.monotonic()))
            if self._stop.is_set():
                break
            self._wake.clear()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TICK_SECONDS
            try:
                self._step(now)
            except Exception:
                self.log.exception("reconcile failed; retrying")
                self._retry_at = time.monotonic() + RETRY_SECONDS
        self._shutdown()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _shutdown(self) -> None:
        if self.compute is not None:
            self.compute.stop()  # guests keep running
        self.client.stop()
        if self.tunnels is not None:
            self.tunnels.stop()
        if self.neighbors is not None:
            self.neighbors.stop()
        if self._unsaved:
            self.desired.save(self.config.state_dir)
        if self.monitor:
            self.monitor.stop()
        # dnsmasq and the metadata proxy keep serving: DHCP and metadata survive agent restarts.
        self.dhcp.close(stop_dnsmasq=False)
        if self.metadata:
            self.metadata.close()
        if self.connection:
            self.connection.close()
        self.driver.close()
        self.log.info("agent stopped")

    # ------------------------------------------------------------ inputs (other threads)

    def _on_message(self, msg: agent_pb2.SyncMessage) -> None:
        self.log.debug("sync message received", revision=msg.revision, kind=msg.WhichOneof("body"))
        with self._lock:
            self._messages.append(msg)
        self._wake.set()

    def _on_vif(self, ev: InterfaceEvent) -> None:
        with self._lock:
            if ev.present:
                self._vifs[ev.iface_id] = ev
            else:
                current = self._vifs.get(ev.iface_id)
                if current is None or current.name == ev.name:
                    self._vifs.pop(ev.iface_id, None)
            self._vifs_changed = True
        self._wake.set()

    def _on_controller_connected(self) -> None:
        with self._lock:
            self._report_all = True
        self._wake.set()

    def _on_external_change(self) -> None:
        with self._lock:
            self._external_changed = True
        self._wake.set()

    def _position(self) -> tuple[int, str]:
        with self._lock:
            pending = self._messages[-1] if self._messages else None
        if pending is not None:
            return pending.revision, pending.epoch
        return self.desired.revision, self.desired.epoch

    # ------------------------------------------------------------ reconcile

    def _step(self, now: float) -> None:
        """Work out what changed since the last step and do only that (a tick alone just reports)."""
        with self._lock:
            messages, self._messages = self._messages, []
            report_all, self._report_all = self._report_all, False
            vifs_changed, self._vifs_changed = self._vifs_changed, False
            external_changed, self._external_changed = self._external_changed, False
        for msg in messages:
            self.desired.apply(msg)
        if messages:
            self.core.controller_state_arrived()
            self._unsaved = True
        if report_all:
            self.core.report_everything_again()
        if self.tunnels is not None:
            if messages:
                self.tunnels.set_peers(self.desired.peers)
            self.tunnels.tick(now)
        retry_due = self._retry_at is not None and now >= self._retry_at
        if self.connection is not None and self.connection.closed:
            # ovs-vswitchd went away (a restart empties the switch): reconnect and reprogram.
            self.log.warning("openflow connection closed; reconnecting")
            self._drop_openflow()
            retry_due = True
        if messages:
            self._external_targets()
        if self.compute is not None:
            if vifs_changed:
                self.compute.vifs_present(set(self._vif_snapshot()))
            if messages:
                self.compute.update(self.desired.instances)
        if messages or vifs_changed or retry_due or external_changed or self.connection is None:
            self._retry_at = None
            self._reconcile()
        else:
            self._report()
        self._gateway_step(now)
        self._announce(now)
        if self._unsaved and time.monotonic() - self._last_persist >= PERSIST_EVERY:
            self.desired.save(self.config.state_dir)
            self._last_persist = time.monotonic()
            self._unsaved = False

    def _reconcile(self) -> None:
        if not self.core.ready(self.desired):
            return
        # VIF flows first: a new network's localport (namespace, veth, OVS port) takes
        # tens of milliseconds to build, and the VMs' own traffic must not wait for it.
        self._install(self._render_flows())
        if self.installer is not None:
            self._flush(self.core.flushes(self.desired))
        self._sync_gateway_tunnels()
        try:
            changed = self.localports.sync(self.desired.networks)
        except Exception as exc:
            self.log.error("localports not in place", error=str(exc))
            self._retry_at = time.monotonic() + RETRY_SECONDS
            changed = True
        if changed:
            self._install(self._render_flows())
        self._sync_services()
        self._report()

    def _render_flows(self) -> Rendered:
        localports = {network_id: lp.ofport for network_id, lp in self.localports.ports.items()}
        return self.core.render(self.desired, self._vif_snapshot(), localports, self._external_flows())

    # ------------------------------------------------------------ the external side

    def _external_targets(self) -> None:
        """Hand the neighbor resolver the next hops of the external networks the controller sent."""
        if self.neighbors is None:
            return
        targets = [
            ProbeTarget(self.bridges[ext.physical_network], ext.vlan, ext.tag, hop)
            for ext in self.desired.l3.externals
            if ext.physical_network in self.bridges
            for hop in ext.next_hops
        ]
        gateway = bool(self.desired.l3.gateway_routers)
        self.neighbors.set_targets(targets, PROBE_INTERVAL_GATEWAY if gateway else PROBE_INTERVAL)
        self._gateway_check_at = time.monotonic() if gateway else None

    def _external_flows(self) -> list[Flow]:
        if self.neighbors is None:
            return []
        resolved = self.neighbors.resolved()
        return [
            external_neighbor_flow(ext.tag, hop, resolved[(ext.tag, hop)])
            for ext in self.desired.l3.externals
            for hop in ext.next_hops
            if (ext.tag, hop) in resolved
        ]

    def _sync_gateway_tunnels(self) -> None:
        """Gateway tunnels as the controller lists them; BFD's cpath_down while external next hops are silent."""
        wanted = tuple(sorted((t.ofport, t.remote_ip) for t in self.desired.l3.gateway_tunnels))
        healthy = self.neighbors.reachable() if self.neighbors is not None and self.config.gateway_priority else True
        if wanted == self._tunnels_wanted and self._cpath_down == (not healthy):
            return
        if self._cpath_down != (not healthy):
            self.log.warning(
                "gateway role " + ("given up: external next hops silent" if not healthy else "available again"),
            )
        try:
            sync_gateway_tunnels(self.driver, self.config.tunnel_ip, dict(wanted), self.config.bfd, not healthy)
        except Exception as exc:
            self.log.error("gateway tunnels not in place", error=str(exc))
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return
        self._tunnels_wanted, self._cpath_down = wanted, not healthy
        now = time.monotonic()
        self._tunnels_since = {ofport: self._tunnels_since.get(ofport, now) for ofport, _ in wanted}

    def _gateway_step(self, now: float) -> None:
        """On a gateway host: which routers it is active for now; announce and report what changed."""
        if self._gateway_check_at is None or now < self._gateway_check_at:
            return
        self._gateway_check_at = now + GATEWAY_CHECK_SECONDS
        healthy = self.neighbors.reachable() if self.neighbors is not None else True
        if self._cpath_down == healthy:
            self._sync_gateway_tunnels()  # health flipped: give up (or take back) the role in BFD
        try:
            forwarding = bfd_forwarding(self.driver.list_ports(BR_INT))
        except Exception as exc:
            self.log.warning("cannot read BFD state", error=str(exc))
            return
        isolated = cut_off(forwarding)
        if self._cut_off and not isolated:
            # Back on the overlay: the sessions come up one by one, those to the gateways ahead of
            # this one maybe last. Judge none of them down before they settle, as new ones.
            self._tunnels_since = dict.fromkeys(self._tunnels_since, now)
        self._cut_off = isolated
        for ofport, since in self._tunnels_since.items():
            if now - since < BFD_SETTLE_SECONDS:
                forwarding[ofport] = True  # too young to tell: the peer counts as alive
        before = self.core.gateway_report()
        active = self.core.gateway_roles(self.desired, forwarding, healthy)
        report = self.core.gateway_report()
        if report is not None and report != before:
            self.log.info("gateway roles", active=",".join(report) or "none")
        if report is not None and self.client.connected.is_set() and self.client.report_gateways(sorted(active)):
            self.core.gateway_reported(active)

    def _flush(self, flushes: list[Flush]) -> None:
        """Remove conntrack entries by zone and original tuple (``ovs-ofctl ct-flush``, OVS 3.1)."""
        target = mgmt_target(BR_INT, self.config.ovs_rundir)
        for f in flushes:
            argv = ["ovs-ofctl", "-O", "OpenFlow13", "ct-flush", target, f"zone={f.zone}", f.tuple_]
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                self.log.error("conntrack flush failed", zone=f.zone, tuple=f.tuple_, error=str(exc))
                continue
            if proc.returncode != 0:
                self.log.error("conntrack flush failed", zone=f.zone, tuple=f.tuple_, error=proc.stderr.strip())
            else:
                self.log.info("conntrack flushed", zone=f.zone, tuple=f.tuple_, reason=f.reason)

    def _vif_snapshot(self) -> dict[str, InterfaceEvent]:
        with self._lock:
            return dict(self._vifs)

    def _install(self, rendered: Rendered) -> None:
        flows, bound = rendered.flows, rendered.bound
        if self.installer is None and not self._connect_openflow():
            self._flows_ok_ports = set()
            return
        assert self.installer is not None and self.connection is not None
        conn = self.connection
        # A zone a new port takes is emptied before its flows go in; one no port uses any more, after.
        flush_before, flush_after = self.core.zone_flushes(self._zones, self.desired, self._vif_snapshot())
        try:
            for zone in sorted(flush_before):
                conn.flush_ct_zone(zone)
            self.installer.sync(flows)
            for zone in sorted(flush_after):
                conn.flush_ct_zone(zone)
        except BundleError as exc:
            self.log.error("flows rejected by the switch; nothing changed", error=str(exc))
            self._flows_ok_ports = set()
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return
        except ConnectionClosed as exc:
            self.log.warning("openflow connection lost", error=str(exc))
            self._drop_openflow()
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return
        self._flows_ok_ports = bound
        self._installed_revision = self.desired.revision
        self._zones = self.core.zones(self.desired)
        if flush_before or flush_after:
            self.log.info("conntrack zones flushed", before=sorted(flush_before), after=sorted(flush_after))
        if self.compute is not None:
            self.compute.flows_installed(bound)

    def _sync_services(self) -> None:
        d = self.desired
        served = [n for nid, n in d.networks.items() if nid in self.localports.ports]
        try:
            configs, hosts = configs_from_proto(served, d.ports.values(), self.localports.locate)
            self.dhcp.sync(configs, hosts)
        except Exception as exc:
            self.log.error("dhcp sync failed", error=str(exc))
        try:
            metadata = self._metadata_proxy()
            if metadata is not None:
                namespace_of = self.localports.namespace
                metadata.sync(metadata_networks_from_proto(served, d.ports.values(), namespace_of))
        except Exception as exc:
            self.log.error("metadata proxy sync failed", error=str(exc))

    def _metadata_proxy(self) -> MetadataProxyManager | None:
        url = self.config.metadata_url or self.desired.metadata_url
        if not url or not self.config.metadata_secret:
            return None
        if self.metadata is not None and self._metadata_url != url:
            self.metadata.close(stop_proxy=True)
            self.metadata = None
        if self.metadata is None:
            self.metadata = MetadataProxyManager(self.config.run_dir / "metadata", url, self.config.metadata_secret)
            self.metadata.start()
            self._metadata_url = url
            self.log.info("metadata proxy started", upstream=url)
        return self.metadata

    def port_states(self) -> dict[str, agent_pb2.PortState]:
        metadata = self.metadata
        return self.core.port_states(
            self.desired,
            self._vif_snapshot(),
            self._flows_ok_ports,
            self.localports.ports,
            self.dhcp.dhcp_ready,
            metadata.metadata_ready if metadata is not None else None,
            self._installed_revision,
        )

    def _report(self) -> None:
        changed = self.core.changed(self.port_states())
        if changed and self.client.connected.is_set() and self.client.report_ports(changed):
            self.core.reported(changed)

    def _announce(self, now: float) -> None:
        """Send the gratuitous ARPs that are due, into br-int as if each port's VM had sent them."""
        if self.connection is None or not self.core.ready(self.desired):
            return
        for a in self.core.announcements(self.desired, self._vif_snapshot(), self._flows_ok_ports, now):
            self._send_announcement(a)
        for a in self.core.external_announcements(self.desired, now):
            self._send_announcement(a)

    def _send_announcement(self, a: Announcement) -> None:
        assert self.connection is not None
        try:
            if a.output:
                self.connection.packet_out_to(gratuitous_arp(a.mac, a.ip, a.vlan), a.output)
            else:
                self.connection.packet_out(gratuitous_arp(a.mac, a.ip), in_port=a.ofport)
        except ConnectionClosed as exc:
            self.log.warning("gratuitous ARP not sent", owner=a.port_id, ip=a.ip, error=str(exc))
            return
        self.log.debug("gratuitous ARP sent", owner=a.port_id, ip=a.ip, mac=a.mac, output=a.output or None)

    # ------------------------------------------------------------ openflow

    def _connect_openflow(self) -> bool:
        target = mgmt_target(BR_INT, self.config.ovs_rundir)
        try:
            self.connection = OFConnection(target)
        except ConnectionClosed as exc:
            self.log.warning("cannot reach br-int over OpenFlow yet", target=target, error=str(exc))
            self._retry_at = time.monotonic() + RETRY_SECONDS
            return False
        self.installer = FlowInstaller(self.connection)
        if self.tunnels is not None:
            self.tunnels.forget()  # a new connection may mean a new ovs-vswitchd, with an empty cache
        # ... and BFD sessions starting over: give them time before judging any peer down.
        now = time.monotonic()
        self._tunnels_since = dict.fromkeys(self._tunnels_since, now)
        return True

    def _drop_openflow(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None
        self.installer = None
        self._flows_ok_ports = set()


def _compute_manager(config: AgentConfig, channel: object) -> ComputeManager | None:
    if not config.libvirt_uri:
        return None
    return ComputeManager(
        ComputeConfig(
            host=config.host,
            libvirt_uri=config.libvirt_uri,
            instances_dir=config.instances_dir,
            image_cache_dir=config.image_cache_dir,
            ovsdb=config.ovsdb,
            virt_type=config.virt_type,
            shutdown_timeout=config.shutdown_timeout,
            vcpus=config.vcpus,
            memory_mb=config.memory_mb,
        ),
        channel,  # type: ignore[arg-type]
    )


def _traversable(path: os.PathLike[str] | str) -> None:
    """Create ``path`` (and missing parents) mode 0755, so unprivileged dnsmasq can reach its files."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.exists(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        os.mkdir(directory)
        os.chmod(directory, 0o755)  # explicit: the umask may be stricter
