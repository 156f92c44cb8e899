"""The distributor over a real SQLite store: per-host deltas, catch-up, snapshots, and what a change touches."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from controller.compiler.host import compile_host
from controller.compiler.topology import Topology
from controller.distributor.distributor import Distributor
from controller.model import OWNER_DHCP, Agent, FixedIP, Network, Port, Subnet
from controller.store.sqlite import SqliteStore
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.encode import to_wire
from dataplane.desired import DesiredState
from protos.loom.v1 import agent_pb2


class Compiled:
    """Records what the distributor says it compiled, like the port status tracker does."""

    def __init__(self) -> None:
        self.ports: list[str] = []
        self.rebound: list[str] = []
        self.registered: list[tuple[str, list[str]]] = []

    def ports_compiled(self, port_ids: list[str], revision: int) -> None:
        self.ports.extend(port_ids)

    def rebind(self, port_id: str) -> None:
        self.rebound.append(port_id)

    def agent_registered(self, host: str, port_ids: list[str]) -> None:
        self.registered.append((host, sorted(port_ids)))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "loom.db"))
    yield s
    s.close()


def _net(store: SqliteStore, name: str, vni: int, cidr: str = "10.0.0.0/24") -> Network:
    net = Network(id=f"net-{name}", name=name, segmentation_id=vni, mtu=1450)
    sub = Subnet(id=f"sub-{name}", network_id=net.id, cidr=cidr, gateway_ip=cidr.replace("0/24", "1"))
    dhcp = Port(
        id=f"dhcp-{name}",
        network_id=net.id,
        mac_address=f"fa:16:3e:dd:00:{vni % 256:02x}",
        fixed_ips=(FixedIP(sub.id, cidr.replace("0/24", "2")),),
        device_owner=OWNER_DHCP,
    )
    store.commit(puts=[net, sub, dhcp])
    return store.get("network", net.id)  # type: ignore[return-value]


def _port(store: SqliteStore, name: str, net: str, host: str, n: int) -> Port:
    port = Port(
        id=f"port-{name}",
        name=name,
        network_id=f"net-{net}",
        mac_address=f"fa:16:3e:00:00:{n:02x}",
        fixed_ips=(FixedIP(f"sub-{net}", f"10.0.0.{n}"),),
        device_owner="compute:test",
        binding_host_id=host,
        binding_ofport=100 + n,
    )
    rev = store.commit(puts=[port])
    assert rev
    return store.get("port", port.id)  # type: ignore[return-value]


@pytest.fixture
def world(store: SqliteStore) -> Iterator[tuple[SqliteStore, Distributor, Compiled]]:
    store.commit(puts=[Agent(id=h, tunnel_ip=f"198.51.100.{i}") for i, h in enumerate(("h1", "h2", "h3"), 1)])
    _net(store, "red", 1001)
    _net(store, "blue", 1002)
    _port(store, "r1", "red", "h1", 11)
    _port(store, "r2", "red", "h2", 12)
    _port(store, "b3", "blue", "h3", 13)
    listener = Compiled()
    dist = Distributor(store, Topology(), listener)
    dist.start()
    yield store, dist, listener
    dist.stop()


def _drain(q: queue.SimpleQueue) -> list[agent_pb2.SyncMessage]:
    out = []
    while True:
        try:
            out.append(q.get(timeout=0.05))
        except queue.Empty:
            return out


def _agent_view(catch_up: list[agent_pb2.SyncMessage], later: list[agent_pb2.SyncMessage]) -> DesiredState:
    state = DesiredState()
    for msg in [*catch_up, *later]:
        state.apply(msg)
    return state


def _expected_wire(store: SqliteStore, host: str) -> set:
    topo = Topology()
    for kind in ("network", "subnet", "port", "instance"):
        for obj in store.list(kind):
            topo.put(obj)
    from controller.compiler.topology import AgentInfo

    for a in store.list("agent"):
        topo.set_agent(AgentInfo(a.id, a.tunnel_ip))
    return {to_wire(f) for f in compile_host(topo, host).flows()}


def _commit_and_view(
    store: SqliteStore,
    dist: Distributor,
    sub: queue.SimpleQueue,
    catch_up: list[agent_pb2.SyncMessage],
    port: Port,
) -> DesiredState:
    """Commit ``port`` and return h1's view once applied, checked against a fresh compile of the store."""
    rev = store.commit(puts=[port])
    assert dist.wait_for(rev)
    state = _agent_view(catch_up, _drain(sub))
    assert set(state.flows()) == _expected_wire(store, "h1")
    return state


def test_snapshot_then_deltas_track_a_full_recompile(world) -> None:
    store, dist, _ = world
    sub, catch_up = dist.open_stream("h1", 0, "")
    assert len(catch_up) == 1 and catch_up[0].HasField("snapshot")
    # A new red port on h3 reaches h1 as a delta; h3 joins red.
    rev = _port(store, "r3", "red", "h3", 14).revision_number
    assert dist.wait_for(rev)
    later = _drain(sub)
    assert later and all(m.HasField("delta") for m in later)
    assert set(_agent_view(catch_up, later).flows()) == _expected_wire(store, "h1")
    dist.close_stream("h1", sub)


def test_a_change_reaches_only_the_hosts_it_touches(world) -> None:
    store, dist, _ = world
    subs = {h: dist.open_stream(h, 0, "")[0] for h in ("h1", "h2", "h3")}
    port = store.get("port", "port-r1")
    rev = store.commit(puts=[replace(port, fixed_ips=(FixedIP("sub-red", "10.0.0.99"),))])
    assert dist.wait_for(rev)
    got = {h: _drain(q) for h, q in subs.items()}
    assert got["h1"] and got["h2"], "both red hosts must hear of the new IP"
    assert got["h3"] == [], "h3 has no red port and must hear nothing"
    h2_delta = got["h2"][0].delta
    assert [g.cookie for g in h2_delta.upsert_groups] == [dist.host_record("h2").cookies[("port", "port-r1")]]


def test_reconnect_gets_missed_deltas_or_a_snapshot(world) -> None:
    store, dist, _ = world
    sub, catch_up = dist.open_stream("h1", 0, "")
    applied = _agent_view(catch_up, [])
    dist.close_stream("h1", sub)
    # While h1 is away: two changes that touch it.
    _port(store, "r4", "red", "h2", 15)
    rev = _port(store, "r5", "red", "h1", 16).revision_number
    assert dist.wait_for(rev)
    sub, missed = dist.open_stream("h1", applied.revision, applied.epoch)
    # The missed changes arrive as one delta: the agent may program after any message,
    # and the states between the missed deltas are history.
    assert len(missed) == 1 and missed[0].HasField("delta")
    assert missed[0].revision == dist.host_record("h1").revision
    for m in missed:
        applied.apply(m)
    assert set(applied.flows()) == _expected_wire(store, "h1")
    assert set(applied.ports) == {"port-r1", "port-r5"}
    dist.close_stream("h1", sub)
    # Another epoch (a restarted controller) always gets a snapshot.
    sub, again = dist.open_stream("h1", applied.revision, "another-epoch")
    assert len(again) == 1 and again[0].HasField("snapshot")
    dist.close_stream("h1", sub)


def test_up_to_date_agent_gets_nothing(world) -> None:
    _, dist, _ = world
    sub, catch_up = dist.open_stream("h2", 0, "")
    state = _agent_view(catch_up, [])
    dist.close_stream("h2", sub)
    sub, again = dist.open_stream("h2", state.revision, state.epoch)
    assert again == []
    dist.close_stream("h2", sub)


def test_status_updates_do_not_recompile(world) -> None:
    store, dist, _ = world
    sub, _ = dist.open_stream("h1", 0, "")
    port = store.get("port", "port-r1")
    rev = store.commit(puts=[replace(port, status="ACTIVE")])
    assert dist.wait_for(rev)
    assert _drain(sub) == []
    dist.close_stream("h1", sub)


def test_host_leaving_a_network_loses_all_its_flows(world) -> None:
    store, dist, listener = world
    sub, catch_up = dist.open_stream("h2", 0, "")
    rev = store.commit(deletes=[("port", "port-r2")])
    assert dist.wait_for(rev)
    state = _agent_view(catch_up, _drain(sub))
    red = store.get("network", "net-red")
    assert make_cookie(CookieKind.NETWORK, red.tag) not in {f.cookie for f in state.flows()}
    assert state.flows(), "the pipeline defaults stay"
    assert state.ports == {} and state.networks == {}
    assert "port-r2" in listener.rebound
    dist.close_stream("h2", sub)


def test_new_local_port_is_reported_compiled(world) -> None:
    store, dist, listener = world
    rev = _port(store, "r6", "red", "h1", 17).revision_number
    assert dist.wait_for(rev)
    assert "port-r6" in listener.ports


def test_agent_registration_adds_tunnels_on_peers(world) -> None:
    store, dist, _ = world
    _port(store, "r7", "red", "h4", 18)  # h4 not registered: no tunnel to it anywhere
    sub, catch_up = dist.open_stream("h1", 0, "")
    before = _agent_view(catch_up, [])
    rev = store.commit(puts=[Agent(id="h4", tunnel_ip="198.51.100.4")])
    assert dist.wait_for(rev)
    after = _agent_view(catch_up, _drain(sub))
    assert len(after.flows()) > len(before.flows())
    assert set(after.flows()) == _expected_wire(store, "h1")
    dist.close_stream("h1", sub)


def test_a_hosts_first_registration_refreshes_its_ports_status(world) -> None:
    """Its ports' binding failed until now: the status tracker must look at them again."""
    store, dist, listener = world
    _port(store, "r8", "red", "h5", 19)
    rev = store.commit(puts=[Agent(id="h5", tunnel_ip="198.51.100.5")])
    assert dist.wait_for(rev)
    assert listener.registered == [("h5", ["port-r8"])]
    rev = store.commit(puts=[Agent(id="h5", tunnel_ip="198.51.100.55")])  # a new tunnel IP: not a first registration
    assert dist.wait_for(rev)
    assert listener.registered == [("h5", ["port-r8"])]


def test_unbound_ports_never_wake_the_distributor_but_binding_them_later_works(world) -> None:
    store, dist, _ = world
    sub, catch_up = dist.open_stream("h1", 0, "")
    batches = dist.stats.batches
    unbound = Port(
        id="port-u",
        network_id="net-red",
        mac_address="fa:16:3e:00:00:77",
        fixed_ips=(FixedIP("sub-red", "10.0.0.77"),),
        device_owner="compute:test",
    )
    rev = store.commit(puts=[unbound])
    assert dist.wait_for(rev)
    assert dist.stats.batches == batches, "an unbound port must not cost a distributor pass"
    assert "port-u" not in dist.topo.ports
    # Bound later: it joins the topology and h1's flows, like any port.
    port = store.get("port", "port-u")
    state = _commit_and_view(store, dist, sub, catch_up, replace(port, binding_host_id="h1", binding_ofport=177))
    assert "port-u" in state.ports
    # Unbound again: gone from h1, even though nothing else happened in between.
    port = store.get("port", "port-u")
    state = _commit_and_view(store, dist, sub, catch_up, replace(port, binding_host_id="", binding_ofport=0))
    assert "port-u" not in state.ports
    dist.close_stream("h1", sub)


def test_bind_then_unbind_in_quick_succession_is_not_lost(world) -> None:
    store, dist, _ = world
    sub, catch_up = dist.open_stream("h1", 0, "")
    port = _port(store, "r8", "red", "h1", 18)
    # Unbind right after binding, before the distributor thread may have applied the bind.
    state = _commit_and_view(store, dist, sub, catch_up, replace(port, binding_host_id="", binding_ofport=0))
    assert "port-r8" not in state.ports
    dist.close_stream("h1", sub)


def test_merged_deltas_equal_applying_them_in_order() -> None:
    from controller.distributor.hoststate import merge_deltas

    g = lambda c: agent_pb2.FlowGroup(cookie=c, flows=[agent_pb2.Flow(table=0, priority=c)])  # noqa: E731
    p = lambda i: agent_pb2.LocalPort(port_id=i)  # noqa: E731
    deltas = [
        agent_pb2.HostDelta(upsert_groups=[g(1), g(2)], upsert_ports=[p("a"), p("b")]),
        agent_pb2.HostDelta(removed_groups=[1], removed_ports=["a"], peers=agent_pb2.TunnelPeers(ips=["x"])),
        agent_pb2.HostDelta(upsert_groups=[g(1)], removed_groups=[2], upsert_ports=[p("a")]),
        agent_pb2.HostDelta(removed_networks=["n"], peers=agent_pb2.TunnelPeers(ips=["y"])),
    ]
    base = agent_pb2.SyncMessage(
        revision=1,
        snapshot=agent_pb2.HostState(
            groups=[g(2), g(3)], ports=[p("b"), p("c")], networks=[agent_pb2.LocalNetwork(network_id="n")]
        ),
    )
    one_by_one, merged = DesiredState(), DesiredState()
    for state in (one_by_one, merged):
        state.apply(base)
    for i, d in enumerate(deltas):
        one_by_one.apply(agent_pb2.SyncMessage(revision=2 + i, delta=d))
    merged.apply(agent_pb2.SyncMessage(revision=5, delta=merge_deltas(deltas)))
    assert set(one_by_one.groups) == set(merged.groups) == {1, 3}
    assert set(one_by_one.ports) == set(merged.ports) == {"a", "b", "c"}
    assert one_by_one.networks == merged.networks == {}
    assert one_by_one.peers == merged.peers == ("y",)
