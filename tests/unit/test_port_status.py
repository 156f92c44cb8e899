"""Port stages and status from compile events and agent reports."""

from __future__ import annotations

from controller.distributor.status import HostFacts, compute_stages
from controller.model import PORT_ACTIVE, PORT_BUILD, PORT_DOWN, Port, PortStage, binding_vif_type

ALL = HostFacts("h1", vif_present=True, ofport=101, flows_installed=True, dhcp_ready=True, metadata_ready=True)


def _done(stages: tuple[PortStage, ...]) -> list[str]:
    return [s.name for s in stages if s.done]


def test_unbound_port_is_down_and_only_accepted() -> None:
    status, stages = compute_stages(Port(id="p", created_at=1.0), None, None, now=5.0)
    assert status == PORT_DOWN
    assert _done(stages) == ["accepted"]


def test_everything_reached_is_active_with_timestamps() -> None:
    port = Port(id="p", binding_host_id="h1", created_at=1.0)
    status, stages = compute_stages(port, 2.0, ALL, now=5.0)
    assert status == PORT_ACTIVE
    assert _done(stages) == ["accepted", "compiled", "flows_installed", "dhcp_ready", "metadata_ready", "up"]
    assert stages[-1].detail == "ofport 101"
    assert all(s.at == 5.0 for s in stages[1:])


def test_missing_vif_keeps_it_building() -> None:
    port = Port(id="p", binding_host_id="h1")
    facts = HostFacts("h1", vif_present=False, flows_installed=True, dhcp_ready=True, metadata_ready=True)
    status, stages = compute_stages(port, 2.0, facts, now=5.0)
    assert status == PORT_BUILD
    assert "up" not in _done(stages)
    assert stages[-1].detail == "waiting for the VIF"


def test_a_restarted_controller_keeps_what_is_stored_until_it_hears_otherwise() -> None:
    port = Port(id="p", binding_host_id="h1")
    status, stages = compute_stages(port, 2.0, ALL, now=5.0)
    port = Port(id="p", binding_host_id="h1", status=status, stages=stages)
    # No compile record and no agent report yet: unknown is not "false".
    again_status, again = compute_stages(port, None, None, now=9.0)
    assert again_status == PORT_ACTIVE
    assert again == stages  # same stages, same first-reached times
    # Once the agent reports the VIF gone, it is building again.
    gone = HostFacts("h1", vif_present=False, flows_installed=True, dhcp_ready=True, metadata_ready=True)
    assert compute_stages(port, None, gone, now=10.0)[0] == PORT_BUILD


def test_reports_from_another_host_do_not_count() -> None:
    port = Port(id="p", binding_host_id="h2")
    other = HostFacts("h1", vif_present=True, flows_installed=True, dhcp_ready=True, metadata_ready=True)
    status, stages = compute_stages(port, 2.0, other, now=5.0)
    assert status == PORT_BUILD
    assert _done(stages) == ["accepted", "compiled"]


def test_admin_down_is_down_even_when_everything_is_in_place() -> None:
    port = Port(id="p", binding_host_id="h1", admin_state_up=False)
    assert compute_stages(port, 2.0, ALL, now=5.0)[0] == PORT_DOWN


def test_a_host_without_an_agent_keeps_the_port_down() -> None:
    """binding_failed: even what a (stale) report says cannot make it ACTIVE; an agent registering can."""
    port = Port(id="p", binding_host_id="h1")
    assert compute_stages(port, 2.0, ALL, now=5.0, agent_registered=False)[0] == PORT_DOWN
    assert compute_stages(port, 2.0, ALL, now=5.0, agent_registered=True)[0] == PORT_ACTIVE


def test_binding_vif_type_names_the_missing_agent() -> None:
    assert binding_vif_type("", False) == ("unbound", "")
    assert binding_vif_type("hv9", False) == ("binding_failed", "host hv9 has no registered agent")
    assert binding_vif_type("hv1", True) == ("ovs", "")
