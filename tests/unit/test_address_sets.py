"""Address sets as the agent holds them: deltas applied one by one equal their merge, and the rendered flows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.distributor.hoststate import merge_deltas
from dataplane.contract import pipeline as p
from dataplane.contract.address_sets import address_cookie, address_flows
from dataplane.contract.encode import to_wire
from dataplane.contract.flow import Conjunction
from dataplane.desired import DesiredState
from protos.loom.v1 import agent_pb2

GROUPS = ("g1", "g2", "g3")
ADDRESSES = (*(f"10.0.0.{i}/32" for i in range(1, 7)), "10.1.0.0/24", "0.0.0.0/0")


def _snapshot(sets: list[agent_pb2.AddressSet]) -> agent_pb2.SyncMessage:
    return agent_pb2.SyncMessage(revision=1, snapshot=agent_pb2.HostState(address_sets=sets))


@st.composite
def delta_sequences(draw: st.DrawFn) -> tuple[list[agent_pb2.AddressSet], list[agent_pb2.HostDelta]]:
    """A snapshot and deltas an agent could be sent: a change only ever names a set held at that point."""
    held: dict[str, set[str]] = {}
    base = []
    for g in draw(st.sets(st.sampled_from(GROUPS))):
        held[g] = draw(st.sets(st.sampled_from(ADDRESSES)))
        base.append(agent_pb2.AddressSet(group_id=g, ingress_conj_id=2, egress_conj_id=0, addresses=sorted(held[g])))
    deltas = []
    for _ in range(draw(st.integers(1, 6))):
        delta = agent_pb2.HostDelta()
        for g in GROUPS:
            op = draw(st.sampled_from(("none", "remove", "whole", "change")))
            if op == "remove" and g in held:
                delta.removed_address_sets.append(g)
                del held[g]
            elif op == "whole":
                held[g] = draw(st.sets(st.sampled_from(ADDRESSES)))
                cids = draw(st.sampled_from(((4, 0), (0, 5), (6, 7))))
                delta.upsert_address_sets.append(
                    agent_pb2.AddressSet(group_id=g, ingress_conj_id=cids[0], egress_conj_id=cids[1], addresses=held[g])
                )
            elif op == "change" and g in held:
                removed = draw(st.sets(st.sampled_from(ADDRESSES)))
                added = draw(st.sets(st.sampled_from(ADDRESSES)))
                held[g] = (held[g] - removed) | added
                delta.address_set_changes.append(
                    agent_pb2.AddressSetChange(group_id=g, added=sorted(added), removed=sorted(removed))
                )
        deltas.append(delta)
    return base, deltas


def _view(state: DesiredState) -> tuple[dict, dict]:
    sets = {g: (s.ingress_conj_id, s.egress_conj_id, frozenset(s.addresses)) for g, s in state.address_sets.items()}
    return sets, {c: sorted(flows) for c, flows in state.flow_groups().items()}


@settings(max_examples=300, deadline=None)
@given(delta_sequences())
def test_merged_address_set_deltas_equal_applying_them_in_order(case) -> None:
    base, deltas = case
    one_by_one, merged = DesiredState(), DesiredState()
    for state in (one_by_one, merged):
        state.apply(_snapshot(base))
    for i, d in enumerate(deltas):
        one_by_one.apply(agent_pb2.SyncMessage(revision=2 + i, delta=d))
        one_by_one.flows()  # render in between too: stale entries must not survive
    merged.apply(agent_pb2.SyncMessage(revision=9, delta=merge_deltas(list(deltas))))
    assert _view(one_by_one) == _view(merged)
    # And both equal a fresh state built from what one_by_one holds (rendering is a function of the sets).
    fresh = DesiredState()
    fresh.apply(DesiredState.to_proto(one_by_one))
    assert _view(fresh) == _view(one_by_one)


def test_an_address_in_two_held_sets_is_one_flow_per_direction_with_both_conjunctions() -> None:
    state = DesiredState()
    state.apply(
        _snapshot(
            [
                agent_pb2.AddressSet(group_id="a", ingress_conj_id=10, addresses=["10.0.0.1/32", "10.0.0.2/32"]),
                agent_pb2.AddressSet(group_id="b", ingress_conj_id=12, egress_conj_id=13, addresses=["10.0.0.1/32"]),
            ]
        )
    )
    groups = state.flow_groups()
    shared = groups[address_cookie("10.0.0.1/32")]
    tables = sorted(f.table for f in shared)
    assert tables == sorted([p.INGRESS_ACL, p.EGRESS_ACL])
    only_a = groups[address_cookie("10.0.0.2/32")]
    assert [f.table for f in only_a] == [p.INGRESS_ACL]
    # The ingress flow of the shared address carries both sets' conjunctions (one flow: same match).
    (egress, ingress) = address_flows("10.0.0.1/32", (10, 12), (13,))
    assert ingress.actions == (Conjunction(10, 1, 2), Conjunction(12, 1, 2))
    assert egress.actions == (Conjunction(13, 1, 2),)
    # The address leaves one set: its flow loses that conjunction and nothing else changes.
    state.apply(
        agent_pb2.SyncMessage(
            revision=2,
            delta=agent_pb2.HostDelta(
                address_set_changes=[agent_pb2.AddressSetChange(group_id="b", removed=["10.0.0.1/32"])]
            ),
        )
    )
    after = state.flow_groups()[address_cookie("10.0.0.1/32")]
    assert after == [to_wire(f) for f in address_flows("10.0.0.1/32", (10,), ())]
    assert sorted(shared) == sorted(to_wire(f) for f in (egress, ingress))


def test_a_change_to_a_set_not_held_is_refused() -> None:
    state = DesiredState()
    state.apply(_snapshot([]))
    bad = agent_pb2.HostDelta(address_set_changes=[agent_pb2.AddressSetChange(group_id="g", added=["10.0.0.1/32"])])
    try:
        state.apply(agent_pb2.SyncMessage(revision=2, delta=bad))
    except ValueError as exc:
        assert "address set g" in str(exc)
    else:
        raise AssertionError("a change to an unknown set was applied")
