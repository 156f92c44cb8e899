"""Open vSwitch accepts the encoder's bytes and reads them as ovs-ofctl reads the same flows' text.

Each case installs flows twice, on two fresh userspace bridges: as our wire
bytes (through FlowInstaller) and as ``Flow.text()`` through ``ovs-ofctl
add-flows``. The two ``dump-flows`` listings must be identical, and the raw
match and instruction bytes OVS dumps must equal the bytes we sent (the
canonical form the installer's diff relies on).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataplane.contract.encode import FlowEncoder, WireFlow
from dataplane.contract.fields import OFPP_IN_PORT
from dataplane.contract.flow import Conjunction, Ct, DecTtl, Flow, Match, MatchField, Nat, Output, SetField
from dataplane.openflow.connection import OFConnection, mgmt_target
from dataplane.openflow.installer import FlowInstaller
from tests.unit.test_openflow_encode import ARP_RESPONDER, EXAMPLES, flows

pytestmark = pytest.mark.ovs


def _ovs_running() -> bool:
    return subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True).returncode == 0


def _make_bridge() -> str:
    name = f"lt-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["ovs-vsctl", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev"],
        check=True,
        capture_output=True,
    )
    return name


def _delete_bridge(name: str) -> None:
    subprocess.run(["ovs-vsctl", "--if-exists", "del-br", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def bridges() -> Iterator[tuple[str, str]]:
    if not _ovs_running():
        pytest.skip("Open vSwitch is not running (bash scripts/start-ovs.sh)")
    ours = theirs = None
    try:
        ours, theirs = _make_bridge(), _make_bridge()
        yield ours, theirs
    finally:
        for name in (ours, theirs):
            if name:
                _delete_bridge(name)


@pytest.fixture(scope="module")
def installer(bridges: tuple[str, str]) -> Iterator[FlowInstaller]:
    with OFConnection(mgmt_target(bridges[0])) as conn:
        yield FlowInstaller(conn)


def dump_text(bridge: str) -> list[str]:
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "--no-stats", bridge],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(line.strip() for line in out.splitlines() if line.strip() and "_FLOW reply" not in line)


def install_both(installer: FlowInstaller, theirs: str, flow_list: list[Flow]) -> list[WireFlow]:
    encoder = FlowEncoder()
    wire = [encoder.to_wire(f) for f in flow_list]
    installer.sync(wire)
    text = "".join(f.text() + "\n" for f in flow_list)
    subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "--bundle", "replace-flows", theirs, "-"],
        input=text,
        check=True,
        capture_output=True,
        text=True,
    )
    return wire


def assert_same_as_ofctl(installer: FlowInstaller, bridges: tuple[str, str], flow_list: list[Flow]) -> None:
    ours, theirs = bridges
    wire = install_both(installer, theirs, flow_list)
    assert dump_text(ours) == dump_text(theirs)
    dumped = {f.key: f for f in installer.connection.dump_flows()}
    assert len(dumped) == len(wire)
    for wf in wire:
        got = dumped[wf.key]  # KeyError: OVS re-encoded the match differently
        assert (got.cookie, got.instructions) == (wf.cookie, wf.instructions), wf


NAT_FLOWS = [
    Flow(
        table=60,
        priority=10,
        match=Match.of(eth_type=0x0800, ipv4_src="10.0.0.5"),
        actions=(
            Ct(
                commit=True,
                zone_field="reg5",
                table=61,
                nat=Nat(src=True, ip_min="203.0.113.1", ip_max="203.0.113.9", port_min=1000, port_max=2000),
                actions=(SetField("ct_mark", 1),),
            ),
        ),
    ),
    Flow(
        table=60,
        priority=11,
        match=Match.of(eth_type=0x0800, ipv4_dst="203.0.113.1"),
        actions=(Ct(commit=True, zone=3, table=61, nat=Nat(dst=True, ip_min="10.0.0.5")),),
    ),
    Flow(table=60, priority=12, match=Match.of(eth_type=0x0800), actions=(Ct(zone=3, table=61, nat=Nat()),)),
    Flow(
        table=60,
        priority=13,
        match=Match.of(eth_type=0x0800, ip_proto=6),
        actions=(Ct(commit=True, zone=4, nat=Nat(src=True, ip_min="203.0.113.2", port_min=5000)), Output(2)),
    ),
]


def test_hand_picked_flows_every_action(installer: FlowInstaller, bridges: tuple[str, str]) -> None:
    # vlan_vid is left out: Flow.text() names it dl_vlan, which ovs-ofctl reads as the 12-bit VID.
    examples = [f for f in EXAMPLES if "vlan_vid" not in f.match]
    assert_same_as_ofctl(installer, bridges, examples + NAT_FLOWS)
    listing = "\n".join(dump_text(bridges[0]))
    assert "arp_tpa=10.0.0.1" in listing and "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]" in listing
    assert "set_field:192.0.2.7->tun_dst" in listing and "conjunction(9,2/3)" in listing
    assert "nat(src=203.0.113.1-203.0.113.9:1000-2000)" in listing and "exec(set_field:0x1->ct_mark" in listing
    assert "ct_clear" in listing and "dec_ttl" in listing and "IN_PORT" in listing


def test_vlan_vid_round_trips(installer: FlowInstaller, bridges: tuple[str, str]) -> None:
    vlan_flows = [f for f in EXAMPLES if "vlan_vid" in f.match]  # a masked match, and a provider classify
    encoder = FlowEncoder()
    wfs = [encoder.to_wire(f) for f in vlan_flows]
    installer.sync([*wfs, encoder.to_wire(ARP_RESPONDER)])
    dumped = {f.key: f for f in installer.connection.dump_flows()}
    for wf in wfs:
        assert dumped[wf.key].instructions == wf.instructions
    listing = dump_text(bridges[0])
    assert any("vlan_tci=0x1000/0x1000" in line for line in listing)
    assert any("dl_vlan=42" in line and "pop_vlan" in line for line in listing), listing


def valid_for_ovs(f: Flow, priority: int) -> Flow:
    """Meet OVS's action prerequisites: ct and dec_ttl need an IP match; conjunction stands alone."""
    actions, match, goto = f.actions, f.match, f.goto
    if any(isinstance(a, (Ct, DecTtl)) for a in actions):
        eth_type = match.get("eth_type")
        if eth_type is None:
            match = Match(tuple(sorted((*match.fields, MatchField("eth_type", 0x0800)))))
        elif eth_type.value != 0x0800:
            actions = tuple(a for a in actions if not isinstance(a, (Ct, DecTtl)))
    if any(isinstance(a, Conjunction) for a in actions):
        goto = None
    return Flow(f.table, priority, match, actions, goto, f.cookie)


@st.composite
def flow_tables(draw: st.DrawFn) -> list[Flow]:
    """Up to 12 generated flows with distinct priorities, so no two share a key."""
    return [valid_for_ovs(f, i) for i, f in enumerate(draw(st.lists(flows(), min_size=1, max_size=12)))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow_list=flow_tables())
def test_generated_flows_match_ovs_ofctl(
    installer: FlowInstaller, bridges: tuple[str, str], flow_list: list[Flow]
) -> None:
    assert_same_as_ofctl(installer, bridges, flow_list)


def test_output_in_port_text(installer: FlowInstaller, bridges: tuple[str, str]) -> None:
    flow = Flow(table=1, priority=1, match=Match.of(in_port=5), actions=(Output(OFPP_IN_PORT), Output(7)))
    assert_same_as_ofctl(installer, bridges, [flow])
    listing = dump_text(bridges[0])
    assert any("in_port=5 actions=IN_PORT,output:7" in line for line in listing), listing
