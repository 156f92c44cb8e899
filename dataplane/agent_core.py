"""The agent's decisions, without I/O: what to install, what to report, what to announce, and when.

``dataplane.agent`` does the I/O (Sync stream, OVSDB, OpenFlow, dnsmasq, the
metadata proxy) and feeds this core what it observed: the desired state, the
VIFs OVSDB reports, the localports in place, what the switch holds, the time.
The core returns what to do. Its rules are unit-tested without a switch
(tests/unit/test_agent_core.py):

- **Never program from a stale state.** At start, if the switch still holds
  Loom flows they are the freshest truth there is (the persisted copy may be
  older: it is written a moment after changes, and a SIGKILL can land in
  between), so nothing is installed until the controller's current state
  arrives. If the switch lost its flows (ovs-vswitchd restarted) and a complete
  state was persisted, it is installed at once, controller or not.
- **Flows before VIFs.** A bound port's binding flows use the OpenFlow port
  number its VIF requests (allocated by the controller) before the VIF exists,
  unless another VIF holds that number; once the VIF is there, the number OVS
  really gave it.
- **Report facts, not noise.** A port's facts go to the controller when they
  change, and all of them again after a reconnect.
- **A port's conntrack zone starts empty.** A VIF's zone is its OpenFlow port
  number, which a later port on the host may get again: a zone is flushed
  before the flows of a port newly using it are installed, and after the
  flows of a port that stopped using it are gone, so no connection of a
  former port lets packets past a new port's rules. At the first install of
  an agent's run only the zones of ports whose VIF is not there yet are
  flushed: live connections survive an agent restart.
- **Announce new bindings.** When a port's flows are in and its VIF is there,
  a gratuitous ARP for each of its IPv4 addresses goes out as if the VM sent
  it, at 0, 1 and 2 s, so peers that cached an old MAC for a reused address
  follow at once instead of after their ARP cache expires.
- **Announce floating IPs and gateways on the external network.** A floating
  IP NATed here (associated, or its port moved here) and a router this host
  became the active gateway of are announced out the provider bridge at 0, 1,
  2 and 4 s (upstream routers and switches learn where the address lives now).
- **Flush what a floating IP leaves behind.** When a floating IP stops being
  NATed here, its connections are flushed from the router's zones (by their
  original tuple) once its flows are gone, so no session outlives it.
- **Gateway role.** A gateway host is active for a router while every gateway
  tunnel ahead of it in the router's order has BFD down and its own external
  next hops answer; the flows decide the same in the switch (``bundle_load``
  over the same ports), the core only decides what to announce and report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dataplane.common.addresses import is_ipv4
from dataplane.contract.bindings import localport_binding_flows, vif_binding_flows
from dataplane.contract.encode import WireFlow, to_wire
from dataplane.contract.flow import Flow
from dataplane.desired import DesiredState
from dataplane.ovs.types import InterfaceEvent
from protos.loom.v1 import agent_pb2

# Seconds after a port's flows and VIF are in place at which its addresses are announced.
ANNOUNCE_AT = (0.0, 1.0, 2.0)
# Seconds after a floating IP or a gateway role arrives here at which it is announced on the external network.
EXTERNAL_ANNOUNCE_AT = (0.0, 1.0, 2.0, 4.0)

Facts = tuple[bool, int, bool, bool, bool]


@dataclass(frozen=True, slots=True)
class Rendered:
    """The flows br-int must hold, and the local ports whose binding flows are among them."""

    flows: list[WireFlow]
    bound: set[str]


@dataclass(frozen=True, slots=True)
class Announcement:
    """A gratuitous ARP: injected into br-int as if the port's VM had sent it (``output`` 0), or sent
    straight out of ``output`` (a provider bridge's patch port), tagged with ``vlan`` when not 0."""

    port_id: str
    ofport: int
    mac: str
    ip: str
    output: int = 0
    vlan: int = 0


@dataclass(frozen=True, slots=True)
class Flush:
    """Conntrack entries to remove: those in ``zone`` whose original tuple matches ``tuple_``."""

    zone: int
    tuple_: str  # ovs-ofctl ct-flush syntax, e.g. "ct_nw_dst=203.0.113.5"
    reason: str


@dataclass
class _Announcing:
    identity: tuple[str, tuple[str, ...], int]  # (mac, ips, ofport): a new one restarts the schedule
    started: float
    sent: int = 0


@dataclass
class AgentCore:
    """The decisions of one agent; the caller performs them."""

    announce_at: tuple[float, ...] = ANNOUNCE_AT
    external_announce_at: tuple[float, ...] = EXTERNAL_ANNOUNCE_AT
    may_program: bool = False
    _reported: dict[str, Facts] = field(default_factory=dict)
    _announcing: dict[str, _Announcing] = field(default_factory=dict)
    _external: dict[str, _Announcing] = field(default_factory=dict)
    _fips: dict[str, tuple[str, str, int, int]] = field(default_factory=dict)  # id -> (F, fixed, zones)
    _active: frozenset[str] = frozenset()
    _reported_active: frozenset[str] | None = None

    # ------------------------------------------------------------ when to program

    def at_start(self, persisted_complete: bool, switch_has_loom_flows: bool) -> bool:
        """Whether to program from the persisted state now (the switch lost its flows)."""
        if persisted_complete and not switch_has_loom_flows:
            self.may_program = True
            return True
        return False

    def controller_state_arrived(self) -> None:
        """A Sync message of this run arrived: the desired state is current."""
        self.may_program = True

    def ready(self, desired: DesiredState) -> bool:
        return desired.complete and self.may_program

    # ------------------------------------------------------------ what to install

    @staticmethod
    def render(
        desired: DesiredState,
        vifs: Mapping[str, InterfaceEvent],
        localports: Mapping[str, int],
        extra: Sequence[Flow] = (),
    ) -> Rendered:
        """The controller's flows plus the binding flows of local VIFs and localports (network id -> ofport),
        and ``extra`` flows the agent renders itself (resolved external next hops)."""
        flows = desired.flows()
        flows.extend(to_wire(f) for f in extra)
        taken = {ev.ofport for ev in vifs.values()}
        bound: set[str] = set()
        for port in desired.ports.values():
            if not port.admin_state_up:
                continue
            ev = vifs.get(port.port_id)
            if ev is not None:
                ofport = ev.ofport
            elif port.ofport and port.ofport not in taken:
                ofport = port.ofport  # not plugged yet: be ready for the VIF that requests it
            else:
                continue
            flows.extend(to_wire(f) for f in vif_binding_flows(port.tag, port.network_tag, ofport))
            bound.add(port.port_id)
        for network_id, ofport in localports.items():
            net = desired.networks.get(network_id)
            if net is not None:
                flows.extend(to_wire(f) for f in localport_binding_flows(net.localport_tag, net.tag, ofport))
        return Rendered(flows, bound)

    # ------------------------------------------------------------ conntrack zones

    @staticmethod
    def zones(desired: DesiredState) -> dict[str, int]:
        """Port -> its conntrack zone (the OpenFlow port number the controller allocated)."""
        return {p.port_id: p.ofport for p in desired.ports.values() if p.ofport}

    @staticmethod
    def zone_flushes(
        installed: Mapping[str, int] | None, desired: DesiredState, vifs: Mapping[str, InterfaceEvent]
    ) -> tuple[set[int], set[int]]:
        """(zones to flush before installing ``desired``, zones to flush after).

        ``installed``: the zones of the last state installed in this run (None: nothing installed yet).
        """
        wanted = AgentCore.zones(desired)
        if installed is None:
            return {z for pid, z in wanted.items() if pid not in vifs}, set()
        before = {z for pid, z in wanted.items() if installed.get(pid) != z}
        in_use = set(wanted.values())
        after = {z for z in installed.values() if z not in in_use}
        return before, after

    # ------------------------------------------------------------ what to report

    @staticmethod
    def port_states(
        desired: DesiredState,
        vifs: Mapping[str, InterfaceEvent],
        flows_ok: set[str],
        served_networks: Iterable[str],
        dhcp_ready: Callable[[str], bool],
        metadata_ready: Callable[[str], bool] | None,
        revision: int,
    ) -> dict[str, agent_pb2.PortState]:
        """Every local port's facts. ``served_networks``: networks whose localport is in place."""
        served = set(served_networks)
        states = {}
        for port in desired.ports.values():
            ev = vifs.get(port.port_id)
            has_services = port.network_id in served
            # Without a DHCP-enabled subnet there is nothing to serve: ready by definition.
            nothing_to_serve = port.network_id not in desired.networks
            states[port.port_id] = agent_pb2.PortState(
                port_id=port.port_id,
                vif_present=ev is not None,
                ofport=ev.ofport if ev else 0,
                flows_installed=port.port_id in flows_ok,
                dhcp_ready=dhcp_ready(port.port_id) if has_services else nothing_to_serve,
                metadata_ready=(
                    metadata_ready(port.port_id) if has_services and metadata_ready is not None else nothing_to_serve
                ),
                revision=revision,
            )
        return states

    def changed(self, states: Mapping[str, agent_pb2.PortState]) -> list[agent_pb2.PortState]:
        """The states whose facts differ from what was last reported (ports gone are forgotten)."""
        for pid in [p for p in self._reported if p not in states]:
            del self._reported[pid]
        return [st for pid, st in states.items() if self._reported.get(pid) != _facts(st)]

    def reported(self, states: Iterable[agent_pb2.PortState]) -> None:
        for st in states:
            self._reported[st.port_id] = _facts(st)

    def report_everything_again(self) -> None:
        """After a reconnect the controller may know nothing: every fact counts as changed."""
        self._reported.clear()
        self._reported_active = None

    # ------------------------------------------------------------ what to announce

    def announcements(
        self, desired: DesiredState, vifs: Mapping[str, InterfaceEvent], flows_ok: set[str], now: float
    ) -> list[Announcement]:
        """The gratuitous ARPs due ``now``; each port's schedule restarts when its MAC, IPs or VIF change."""
        due: list[Announcement] = []
        live: set[str] = set()
        for port in desired.ports.values():
            ev = vifs.get(port.port_id)
            if ev is None or not port.admin_state_up or port.port_id not in flows_ok:
                continue
            live.add(port.port_id)
            identity = (port.mac_address, tuple(port.ip_addresses), ev.ofport)
            state = self._announcing.get(port.port_id)
            if state is None or state.identity != identity:
                state = self._announcing[port.port_id] = _Announcing(identity, now)
            passed = sum(1 for t in self.announce_at if now >= state.started + t)
            if passed > state.sent:  # one announcement, however many slots a busy agent let pass
                state.sent = passed
                due.extend(
                    Announcement(port.port_id, ev.ofport, port.mac_address, ip)
                    for ip in port.ip_addresses
                    if is_ipv4(ip)
                )
        for pid in [p for p in self._announcing if p not in live]:
            del self._announcing[pid]
        return due

    def next_announcement(self) -> float | None:
        """When the next scheduled announcement is due (None: none pending)."""
        times = [
            s.started + self.announce_at[s.sent] for s in self._announcing.values() if s.sent < len(self.announce_at)
        ]
        times += [
            s.started + self.external_announce_at[s.sent]
            for s in self._external.values()
            if s.sent < len(self.external_announce_at)
        ]
        return min(times) if times else None

    # ------------------------------------------------------------ the external network

    def external_announcements(self, desired: DesiredState, now: float) -> list[Announcement]:
        """Gratuitous ARPs due for floating IPs NATed here and routers this host is the active gateway of."""
        wanted: dict[str, Announcement] = {}
        for f in desired.l3.floating_ips:
            wanted[f"fip:{f.id}"] = Announcement(f.id, 0, f.mac_address, f.address, f.patch_ofport, f.vlan)
        for g in desired.l3.gateway_routers:
            if g.router_id in self._active:
                wanted[f"gw:{g.router_id}"] = Announcement(
                    g.router_id, 0, g.mac_address, g.external_ip, g.patch_ofport, g.vlan
                )
        due: list[Announcement] = []
        for key, a in wanted.items():
            identity = (a.mac, (a.ip,), a.output)
            state = self._external.get(key)
            if state is None or state.identity != identity:
                state = self._external[key] = _Announcing(identity, now)
            passed = sum(1 for t in self.external_announce_at if now >= state.started + t)
            if passed > state.sent:
                state.sent = passed
                due.append(a)
        for key in [k for k in self._external if k not in wanted]:
            del self._external[key]
        return due

    def flushes(self, desired: DesiredState) -> list[Flush]:
        """Conntrack flushes for floating IPs that stopped being NATed here (or changed) since the last call.

        Call after the flows of the new state are installed: nothing recreates the entries then.
        """
        current = {f.id: (f.address, f.fixed_ip, f.dnat_zone, f.snat_zone) for f in desired.l3.floating_ips}
        out: list[Flush] = []
        for fip_id, old in self._fips.items():
            if current.get(fip_id) == old:
                continue
            address, fixed, dnat_zone, snat_zone = old
            reason = f"floating IP {address} ({fip_id}) left this host"
            out.append(Flush(dnat_zone, f"ct_nw_dst={address}", reason))
            out.append(Flush(snat_zone, f"ct_nw_src={fixed}", reason))
        self._fips = current
        return out

    def gateway_roles(self, desired: DesiredState, forwarding: Mapping[int, bool], healthy: bool) -> frozenset[str]:
        """The routers this host is the active gateway of: every gateway ahead of it down, its next hops up.

        ``forwarding`` is BFD's view of every gateway tunnel of this host. When all of them are down
        the host is cut off from the overlay: it keeps no router that has another gateway host,
        which has seen it go and taken over (else both would claim it, and the last report won).
        """
        isolated = cut_off(forwarding)
        active = frozenset(
            g.router_id
            for g in desired.l3.gateway_routers
            if healthy
            and not any(forwarding.get(port, False) for port in g.before)
            and not (isolated and g.gateway_hosts > 1)
        )
        self._active = active
        return active

    def gateway_report(self) -> list[str] | None:
        """The active routers to report, when that changed since the last report (None: nothing to send)."""
        if self._reported_active == self._active:
            return None
        return sorted(self._active)

    def gateway_reported(self, active: Iterable[str]) -> None:
        self._reported_active = frozenset(active)

    def report_gateways_again(self) -> None:
        self._reported_active = None


def cut_off(forwarding: Mapping[int, bool]) -> bool:
    """True when this host has gateway tunnels and BFD has every one of them down: no overlay."""
    return bool(forwarding) and not any(forwarding.values())


def _facts(s: agent_pb2.PortState) -> Facts:
    return (s.vif_present, s.ofport, s.flows_installed, s.dhcp_ready, s.metadata_ready)
