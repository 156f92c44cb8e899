"""The pipeline declaration: stable table numbers, forward-only stages, and check_flow refusing what does not fit."""

from __future__ import annotations

import pytest

from controller.compiler.host import FEATURES
from dataplane.contract import pipeline as p
from dataplane.contract.flow import Conjunction, Ct, Flow, Match, Move, Nat, Resubmit, SetField
from dataplane.contract.pipeline import TABLES, PipelineError, check_flow, miss_flows


def test_table_numbers_are_stable() -> None:
    # Operators read these numbers in dump-flows and docs/pipeline.md: changing one is a breaking change.
    assert {n: t.name for n, t in TABLES.items()} == {
        0: "classify",
        5: "provider_ingress",
        10: "port_security",
        15: "egress_ct",
        20: "egress_acl",
        21: "egress_accept",
        30: "arp_responder",
        40: "l3_lookup",
        41: "dnat",
        42: "routing",
        43: "snat",
        44: "neighbor",
        50: "l2_lookup",
        55: "ingress_ct",
        60: "ingress_acl",
        61: "ingress_accept",
        65: "provider_egress",
        70: "deliver",
    }


def test_every_stage_moves_forward_and_misses_go_where_declared() -> None:
    for table in TABLES.values():
        for target in table.next_tables:
            assert target in TABLES and target > table.number, (table.name, target)
        for target in table.loops_to:  # declared loops (hairpin) go back, and only on purpose
            assert target in TABLES and target < table.number, (table.name, target)
        if table.miss is not None:
            assert table.miss in table.next_tables, table.name
        low, high = table.priorities
        assert 0 <= low <= high <= 65535


def test_miss_flows_follow_the_declaration() -> None:
    flows = {f.table: f for f in miss_flows(7)}
    assert set(flows) == set(TABLES)
    for number, table in TABLES.items():
        assert flows[number].priority == 0 and flows[number].goto == table.miss and not flows[number].actions
        check_flow(flows[number])


def test_every_table_owner_and_writer_is_a_known_feature() -> None:
    known = {p.L2, p.SECGROUPS, p.L3, p.NAT, p.PROVIDER}
    for table in TABLES.values():
        assert table.owner in known and table.writers <= known, table.name
    assert {f.name for f in FEATURES.features} <= known


@pytest.mark.parametrize(
    ("flow", "feature", "message"),
    [
        (Flow(p.L2_LOOKUP, 1, Match.of(ipv4_src="10.0.0.1")), None, "does not match on ipv4_src"),
        (Flow(p.PORT_SECURITY, 1, Match.of(eth_src=("fa:16:3e:00:00:00", "ff:ff:ff:00:00:00"))), None, "not mask"),
        (Flow(p.L2_LOOKUP, 201, Match.of(metadata=1)), None, "priority outside"),
        (Flow(p.PORT_SECURITY, 1, actions=(SetField("reg7", 1),)), None, "may not set reg7"),
        (Flow(p.PORT_SECURITY, 1, actions=(Move("eth_src", "eth_dst", 48),)), None, "may not set eth_dst"),
        (Flow(p.EGRESS_CT, 1, actions=(Ct(zone=5, table=p.INGRESS_ACL),)), None, "may not continue to table 60"),
        (Flow(p.EGRESS_ACL, 1, actions=(Ct(commit=True, zone=5, actions=(SetField("reg7", 1),)),)), None, "set reg7"),
        (Flow(p.L2_LOOKUP, 1, actions=(Conjunction(1, 1, 2),)), None, "no conjunctive matches"),
        (Flow(p.L2_LOOKUP, 1, goto=p.PORT_SECURITY), None, "may not continue"),
        (Flow(p.EGRESS_ACL, 1), p.L2, "feature l2 may not write table egress_acl"),
        (Flow(p.ROUTING, 1), p.SECGROUPS, "feature secgroups may not write table routing"),
    ],
)
def test_check_flow_refuses(flow: Flow, feature: str | None, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        check_flow(flow, feature)


def test_check_flow_accepts_conntrack_nat_and_conjunction_where_declared() -> None:
    check_flow(Flow(p.EGRESS_CT, 50, Match.of(reg6=3), (Ct(zone=100, table=p.EGRESS_ACL),)), p.SECGROUPS)
    check_flow(
        Flow(
            p.EGRESS_ACL,
            1000,
            Match.of(reg6=3, ct_state=(0x21, 0x21), ct_mark=(0, 1)),
            (Ct(commit=True, zone=100, actions=(SetField("ct_mark", 0),)), Resubmit(p.ARP_RESPONDER)),
        ),
        p.SECGROUPS,
    )
    check_flow(Flow(p.INGRESS_ACL, 2000, Match.of(ipv4_src="10.0.0.5"), (Conjunction(9, 1, 2),)), p.SECGROUPS)
    check_flow(Flow(p.DNAT, 100, Match.of(ipv4_dst="203.0.113.5"), (Ct(zone=40000, table=p.ROUTING, nat=Nat()),)))
    check_flow(Flow(p.NEIGHBOR, 100, Match.of(metadata=1, reg3=5), (Resubmit(p.L3_LOOKUP),)), p.L3)
    check_flow(Flow(p.ROUTING, 824, Match.of(reg4=1, ipv4_dst=("10.0.1.0", "255.255.255.0"))), p.L3)
    check_flow(Flow(p.ARP_RESPONDER, 100, Match.of(metadata=1, arp_tpa="10.0.0.1")), p.L3)
