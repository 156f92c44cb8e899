"""The agent's decisions without a switch: restart rules, binding flows, reports and announcements."""

from __future__ import annotations

import pytest

from dataplane.agent_core import AgentCore, Announcement
from dataplane.contract.bindings import localport_binding_flows, vif_binding_flows
from dataplane.contract.encode import to_wire
from dataplane.desired import DesiredState
from dataplane.ovs.types import InterfaceEvent
from protos.loom.v1 import agent_pb2


def _port(
    pid: str, tag: int, ofport: int, *, up: bool = True, ips: tuple[str, ...] = ("10.0.0.5",)
) -> agent_pb2.LocalPort:
    return agent_pb2.LocalPort(
        port_id=pid,
        tag=tag,
        network_id="net",
        network_tag=1,
        mac_address=f"fa:16:3e:00:00:{tag:02x}",
        ip_addresses=list(ips),
        ofport=ofport,
        admin_state_up=up,
    )


def _desired(*ports: agent_pb2.LocalPort, revision: int = 7) -> DesiredState:
    state = DesiredState()
    net = agent_pb2.LocalNetwork(network_id="net", tag=1, localport_id="dhcp", localport_tag=99)
    snapshot = agent_pb2.HostState(ports=list(ports), networks=[net])
    state.apply(agent_pb2.SyncMessage(revision=revision, epoch="e", snapshot=snapshot))
    return state


def _vif(pid: str, ofport: int) -> InterfaceEvent:
    return InterfaceEvent(iface_id=pid, ofport=ofport, name=f"tap{pid}", attached_mac="", present=True)


# ---------------------------------------------------------------- restart rules


def test_switch_with_loom_flows_waits_for_the_controller() -> None:
    core = AgentCore()
    desired = _desired(_port("a", 5, 100))
    assert core.at_start(persisted_complete=True, switch_has_loom_flows=True) is False
    assert not core.ready(desired), "the persisted state may be older than the switch: touch nothing"
    core.controller_state_arrived()
    assert core.ready(desired)


def test_switch_that_lost_its_flows_is_programmed_from_the_persisted_state() -> None:
    core = AgentCore()
    assert core.at_start(persisted_complete=True, switch_has_loom_flows=False) is True
    assert core.ready(_desired())


def test_nothing_persisted_means_waiting_for_a_complete_state() -> None:
    core = AgentCore()
    assert core.at_start(persisted_complete=False, switch_has_loom_flows=False) is False
    core.controller_state_arrived()
    assert not core.ready(DesiredState()), "no snapshot yet: never program from a partial state"
    assert core.ready(_desired())


# ---------------------------------------------------------------- binding flows


def test_binding_flows_use_the_vif_number_or_the_requested_one() -> None:
    desired = _desired(
        _port("plugged", 5, 100), _port("coming", 6, 101), _port("clash", 7, 102), _port("down", 8, 103, up=False)
    )
    # "plugged" got 200 from OVS; another VIF holds 102, so "clash" cannot use its requested number.
    vifs = {"plugged": _vif("plugged", 200), "other": _vif("other", 102)}
    rendered = AgentCore.render(desired, vifs, {"net": 65001, "gone": 65002})
    assert rendered.bound == {"plugged", "coming"}
    flows = set(rendered.flows)
    assert {to_wire(f) for f in vif_binding_flows(5, 1, 200)} <= flows
    assert {to_wire(f) for f in vif_binding_flows(6, 1, 101)} <= flows
    assert not {to_wire(f) for f in vif_binding_flows(7, 1, 102)} & flows
    assert not {to_wire(f) for f in vif_binding_flows(8, 1, 103)} & flows
    assert {to_wire(f) for f in localport_binding_flows(99, 1, 65001)} <= flows
    assert len(flows) == 2 * 3, "two flows per bound VIF and per localport of a known network"


# ---------------------------------------------------------------- reports


def test_only_changed_facts_are_reported() -> None:
    core = AgentCore()
    desired = _desired(_port("a", 5, 100), _port("b", 6, 101))

    def states(flows_ok: set[str]) -> dict[str, agent_pb2.PortState]:
        return core.port_states(
            desired, {"a": _vif("a", 100)}, flows_ok, ["net"], lambda p: True, lambda p: p == "a", 7
        )

    first = core.changed(states({"a"}))
    assert {s.port_id for s in first} == {"a", "b"}
    a = next(s for s in first if s.port_id == "a")
    assert (a.vif_present, a.ofport, a.flows_installed, a.dhcp_ready, a.metadata_ready) == (True, 100, True, True, True)
    core.reported(first)
    assert core.changed(states({"a"})) == []
    assert [s.port_id for s in core.changed(states({"a", "b"}))] == ["b"]
    core.report_everything_again()
    assert len(core.changed(states({"a"}))) == 2


def test_ports_without_services_are_ready_by_definition() -> None:
    core = AgentCore()
    desired = _desired(_port("a", 5, 100))
    no_lp = core.port_states(desired, {}, set(), [], lambda p: False, None, 1)["a"]
    assert not no_lp.dhcp_ready, "the network has a DHCP localport that is not in place yet"
    desired.networks.clear()
    none_needed = core.port_states(desired, {}, set(), [], lambda p: False, None, 1)["a"]
    assert none_needed.dhcp_ready and none_needed.metadata_ready


# ---------------------------------------------------------------- announcements


def test_announcements_start_when_flows_and_vif_are_in_and_back_off() -> None:
    core = AgentCore(announce_at=(0.0, 1.0, 2.0))
    desired = _desired(_port("a", 5, 100, ips=("10.0.0.5", "fd00::5")))
    vifs = {"a": _vif("a", 100)}
    assert core.announcements(desired, {}, {"a"}, 10.0) == [], "no VIF: nobody to speak for"
    assert core.announcements(desired, vifs, set(), 10.0) == [], "flows not in: the address would lead nowhere"
    garp = Announcement("a", 100, "fa:16:3e:00:00:05", "10.0.0.5")
    assert core.announcements(desired, vifs, {"a"}, 10.0) == [garp], "IPv4 only"
    assert core.next_announcement() == pytest.approx(11.0)
    assert core.announcements(desired, vifs, {"a"}, 10.5) == []
    assert core.announcements(desired, vifs, {"a"}, 11.0) == [garp]
    assert core.announcements(desired, vifs, {"a"}, 20.0) == [garp], "late: one announcement, not two"
    assert core.announcements(desired, vifs, {"a"}, 30.0) == [] and core.next_announcement() is None


def test_a_new_mac_restarts_the_announcements_and_a_gone_port_is_forgotten() -> None:
    core = AgentCore(announce_at=(0.0,))
    vifs = {"a": _vif("a", 100)}
    assert len(core.announcements(_desired(_port("a", 5, 100)), vifs, {"a"}, 1.0)) == 1
    assert core.announcements(_desired(_port("a", 5, 100)), vifs, {"a"}, 2.0) == []
    moved = _port("a", 5, 100)
    moved.mac_address = "fa:16:3e:99:99:99"
    assert [g.mac for g in core.announcements(_desired(moved), vifs, {"a"}, 3.0)] == ["fa:16:3e:99:99:99"]
    assert core.announcements(_desired(), vifs, set(), 4.0) == []
    assert len(core.announcements(_desired(moved), vifs, {"a"}, 5.0)) == 1, "a port that came back is new again"


# ---------------------------------------------------------------- conntrack zones


def test_a_zone_is_flushed_before_a_new_port_uses_it_and_after_the_last_one_left() -> None:
    core = AgentCore()
    first = _desired(_port("a", 5, 100), _port("b", 6, 101))
    # The first install of a run: live ports keep their connections, a port not plugged yet starts empty.
    assert core.zone_flushes(None, first, {"a": _vif("a", 100)}) == ({101}, set())
    installed = core.zones(first)
    assert core.zone_flushes(installed, first, {}) == (set(), set()), "nothing changed, nothing flushed"
    # b is deleted and c gets its OpenFlow port number (its zone); d is new; a moves to another number.
    later = _desired(_port("a", 5, 102), _port("c", 7, 101), _port("d", 8, 103))
    before, after = core.zone_flushes(installed, later, {})
    assert before == {101, 102, 103}
    assert after == {100}, "a's old zone is no one's now; 101 is c's, emptied before its flows went in"


# ---------------------------------------------------------------- the external side


def _l3_state(fips: list[agent_pb2.LocalFloatingIp], gateways: list[agent_pb2.GatewayRouter]) -> DesiredState:
    state = DesiredState()
    l3 = agent_pb2.HostL3(floating_ips=fips, gateway_routers=gateways)
    state.apply(agent_pb2.SyncMessage(revision=1, epoch="e", snapshot=agent_pb2.HostState(l3=l3)))
    return state


FIP = agent_pb2.LocalFloatingIp(
    id="f1",
    address="203.0.113.50",
    mac_address="fa:16:3e:ff:00:01",
    fixed_ip="10.0.0.5",
    network_tag=3,
    patch_ofport=65210,
    vlan=0,
    dnat_zone=32768,
    snat_zone=32769,
)
GW = agent_pb2.GatewayRouter(
    router_id="r1",
    tag=4,
    external_ip="203.0.113.2",
    mac_address="fa:16:3e:ee:00:04",
    network_tag=3,
    patch_ofport=65210,
    before=[40001],
    gateway_hosts=2,
)


def test_floating_ips_are_announced_out_the_provider_bridge_at_0_1_2_4_s() -> None:
    core = AgentCore()
    state = _l3_state([FIP], [])
    sent = [t for t in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 9.0) if core.external_announcements(state, 100.0 + t)]
    assert sent == [0.0, 1.0, 2.0, 4.0]
    (a,) = core.external_announcements(_l3_state([FIP], []), 200.0) or [None]  # type: ignore[misc]
    assert a is None  # the schedule is done while nothing changes
    moved = agent_pb2.LocalFloatingIp()
    moved.CopyFrom(FIP)
    moved.patch_ofport = 65211
    (a,) = core.external_announcements(_l3_state([moved], []), 300.0)
    assert (a.ip, a.mac, a.output) == ("203.0.113.50", "fa:16:3e:ff:00:01", 65211)


def test_a_floating_ip_that_leaves_has_its_connections_flushed() -> None:
    core = AgentCore()
    assert core.flushes(_l3_state([FIP], [])) == []
    flushes = core.flushes(_l3_state([], []))
    assert {(f.zone, f.tuple_) for f in flushes} == {(32768, "ct_nw_dst=203.0.113.50"), (32769, "ct_nw_src=10.0.0.5")}
    assert core.flushes(_l3_state([], [])) == []


def test_gateway_role_follows_bfd_of_the_gateways_ahead_and_external_health() -> None:
    core = AgentCore()
    state = _l3_state([], [GW])
    assert core.gateway_roles(state, {40001: True, 40002: True}, healthy=True) == frozenset()
    assert core.gateway_report() == []
    core.gateway_reported([])
    assert core.gateway_report() is None
    assert core.gateway_roles(state, {40001: False, 40002: True}, healthy=True) == {"r1"}
    assert core.gateway_report() == ["r1"]
    (a,) = core.external_announcements(state, 10.0)
    assert (a.ip, a.mac) == ("203.0.113.2", "fa:16:3e:ee:00:04")
    assert core.gateway_roles(state, {40001: False, 40002: True}, healthy=False) == frozenset()


def test_a_gateway_cut_off_from_the_overlay_claims_no_router_another_gateway_can_take() -> None:
    core = AgentCore()
    first = agent_pb2.GatewayRouter()
    first.CopyFrom(GW)
    del first.before[:]  # this host is first in the order: nothing ahead of it
    state = _l3_state([], [first])
    # Positive control: one tunnel up (to a compute host) is enough to know it is not the one cut off.
    assert core.gateway_roles(state, {40001: False, 40002: True}, healthy=True) == {"r1"}
    assert core.gateway_roles(state, {40001: False, 40002: False}, healthy=True) == frozenset()
    assert core.gateway_report() == []
    # The only gateway of its router keeps it whatever BFD says: no one else could take over.
    first.gateway_hosts = 1
    assert core.gateway_roles(_l3_state([], [first]), {40001: False, 40002: False}, healthy=True) == {"r1"}
