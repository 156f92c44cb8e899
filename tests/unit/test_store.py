"""The SQLite store: revisions, tags, the event log, subscriptions, invariants, persistence."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator

import pytest

from controller.model import FixedIP, Instance, Network, Port, Subnet
from controller.store import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    InvariantError,
    NotFoundError,
    SqliteStore,
)
from tests.integration.controller_harness import check_db_invariants, scratch_dir


@pytest.fixture
def workdir() -> Iterator[str]:
    with scratch_dir() as path:
        yield path


@pytest.fixture
def store(workdir: str) -> Iterator[SqliteStore]:
    s = SqliteStore(f"{workdir}/store.db")
    yield s
    s.close()


def net(i: str = "n1", vni: int = 1, **kw: object) -> Network:
    return Network(id=i, segmentation_id=vni, mtu=1450, **kw)  # type: ignore[arg-type]


def sub(i: str = "s1", network: str = "n1", cidr: str = "10.0.0.0/24", **kw: object) -> Subnet:
    return Subnet(id=i, network_id=network, cidr=cidr, gateway_ip=None, **kw)  # type: ignore[arg-type]


def port(i: str, mac: str, *ips: str, network: str = "n1", subnet: str = "s1", **kw: object) -> Port:
    return Port(
        id=i,
        network_id=network,
        mac_address=mac,
        fixed_ips=tuple(FixedIP(subnet, ip) for ip in ips),
        **kw,  # type: ignore[arg-type]
    )


def db_counts(path: str) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        tables = ("obj_network", "obj_subnet", "obj_port", "events", "port_macs", "port_bindings", "port_ips")
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        conn.close()


def test_commit_sets_revision_tag_and_times(store: SqliteStore) -> None:
    assert store.revision == 0
    r1 = store.commit([net("a", 1), net("b", 2)])
    a, b = store.get("network", "a"), store.get("network", "b")
    assert r1 == 1 == store.revision
    assert (a.tag, b.tag) == (1, 2)
    assert a.revision_number == b.revision_number == 1
    assert a.created_at == a.updated_at > 0
    r2 = store.commit([dataclasses.replace(a, name="renamed", tag=99, created_at=5.0)])
    a2 = store.get("network", "a")
    assert r2 == 2
    assert a2.name == "renamed" and a2.tag == 1 and a2.created_at == a.created_at  # tag and creation kept
    assert a2.revision_number == 2 and a2.updated_at >= a.updated_at
    assert store.commit([Instance(id="i1")]) == 3
    assert store.get("instance", "i1").tag == 1  # tags count per kind


def test_events_and_subscriptions(store: SqliteStore) -> None:
    seen: list[list[Event]] = []
    unsubscribe = store.subscribe(seen.append)
    store.commit([net(), sub()])
    store.commit([port("p1", "fa:16:3e:00:00:01", "10.0.0.5")])
    store.commit(deletes=[("port", "p1")])
    unsubscribe()
    store.commit([Instance(id="i1")])
    assert [[(e.revision, e.seq, e.type, e.kind, e.id) for e in batch] for batch in seen] == [
        [(1, 0, EventType.CREATED, "network", "n1"), (1, 1, EventType.CREATED, "subnet", "s1")],
        [(2, 0, EventType.CREATED, "port", "p1")],
        [(3, 0, EventType.DELETED, "port", "p1")],
    ]
    deleted = seen[2][0].obj
    assert isinstance(deleted, Port) and deleted.revision_number == 2  # the object before the delete
    log = store.events_since(1)
    assert [(e.revision, e.kind, e.type) for e in log] == [
        (2, "port", EventType.CREATED),
        (3, "port", EventType.DELETED),
        (4, "instance", EventType.CREATED),
    ]
    assert log[0].obj == seen[1][0].obj
    assert store.events_since(4) == []


def test_a_failing_subscriber_does_not_undo_the_commit(store: SqliteStore) -> None:
    def broken(events: list[Event]) -> None:
        raise RuntimeError("boom")

    later: list[int] = []
    store.subscribe(broken)
    store.subscribe(lambda evs: later.append(evs[0].revision))
    assert store.commit([net()]) == 1
    assert store.get("network", "n1") is not None and later == [1]


def test_reopen_keeps_objects_revision_and_tags(workdir: str) -> None:
    path = f"{workdir}/store.db"
    s = SqliteStore(path)
    s.commit([net("a", 1), net("b", 2)])
    s.commit(deletes=[("network", "b")])
    s.close()
    s = SqliteStore(path)
    try:
        assert s.revision == 2
        assert [n.id for n in s.list("network")] == ["a"]
        s.commit([net("c", 3)])
        assert s.get("network", "c").tag == 3  # tag 2 belonged to the deleted b: never reused
        assert [e.revision for e in s.events_since(0)] == [1, 1, 2, 3]
    finally:
        s.close()
    check_db_invariants(path)


@pytest.mark.parametrize(
    ("objects", "kind", "field"),
    [
        ([net("n2", 1)], "network", "segmentation_id"),  # VNI taken
        (
            [
                Network(id="v1", network_type="vlan", physical_network="p", segmentation_id=10),
                Network(id="v2", network_type="vlan", physical_network="p", segmentation_id=10),
            ],
            "network",
            "segmentation_id",
        ),
        (
            [
                Network(id="f1", network_type="flat", physical_network="p"),
                Network(id="f2", network_type="flat", physical_network="p"),
            ],
            "network",
            "physical_network",
        ),
        ([sub("s2", cidr="10.0.0.128/25")], "subnet", "cidr"),  # overlaps s1
        ([port("p2", "fa:16:3e:00:00:01")], "port", "mac_address"),  # MAC of p1 on n1
        ([port("p2", "fa:16:3e:00:00:02", "10.0.0.5")], "port", "fixed_ips"),  # IP of p1
        ([port("p2", "fa:16:3e:00:00:02", "10.0.0.6", "10.0.0.6")], "port", "fixed_ips"),
        ([port("p2", "fa:16:3e:00:00:02", binding_host_id="h1", binding_ofport=100)], "port", "binding_ofport"),
    ],
)
def test_uniqueness_conflicts_change_nothing(store: SqliteStore, objects: list, kind: str, field: str) -> None:
    store.commit([net(), sub()])
    store.commit([port("p1", "fa:16:3e:00:00:01", "10.0.0.5", binding_host_id="h1", binding_ofport=100)])
    before = (store.revision, {k: store.list(k) for k in ("network", "subnet", "port")}, db_counts(store.path))
    with pytest.raises(ConflictError) as info:
        store.commit(objects)
    assert (info.value.kind, info.value.field) == (kind, field)
    after = (store.revision, {k: store.list(k) for k in ("network", "subnet", "port")}, db_counts(store.path))
    assert after == before
    check_db_invariants(store.path, dhcp_ports=False)


def test_same_mac_on_two_networks_and_same_ip_in_two_subnets_are_fine(store: SqliteStore) -> None:
    store.commit([net("n1", 1), net("n2", 2), sub("s1", "n1"), sub("s2", "n2")])
    store.commit(
        [
            port("p1", "fa:16:3e:00:00:01", "10.0.0.5"),
            port("p2", "fa:16:3e:00:00:01", "10.0.0.5", network="n2", subnet="s2"),
        ]
    )
    assert len(store.list("port")) == 2


@pytest.mark.parametrize(
    ("puts", "deletes", "kind", "field"),
    [
        ([port("p2", "fa:16:3e:00:00:02", network="nope")], [], "port", "network_id"),
        ([sub("s2", network="nope", cidr="10.9.0.0/24")], [], "subnet", "network_id"),
        ([port("p2", "fa:16:3e:00:00:02", "10.1.0.5")], [], "port", "fixed_ips"),  # outside s1
        ([port("p2", "fa:16:3e:00:00:02", "10.0.0.9", subnet="nope")], [], "port", "fixed_ips"),
        ([], [("subnet", "s1")], "subnet", "id"),  # p1 holds an address in it
        ([], [("network", "n1")], "network", "id"),  # still has a subnet and a port
        (
            [Network(id="bad", network_type="vlan", physical_network="p", segmentation_id=5000)],
            [],
            "network",
            "segmentation_id",
        ),
        ([port("p2", "fa:16:3e:00:00:02", binding_host_id="h1")], [], "port", "binding_ofport"),
        ([sub("s1", cidr="10.0.0.128/25")], [], "subnet", "cidr"),  # moving the range strands p1's 10.0.0.5
    ],
)
def test_reference_and_check_invariants(store: SqliteStore, puts: list, deletes: list, kind: str, field: str) -> None:
    store.commit([net(), sub()])
    store.commit([port("p1", "fa:16:3e:00:00:01", "10.0.0.5")])
    revision = store.revision
    with pytest.raises(InvariantError) as info:
        store.commit(puts, deletes)
    assert (info.value.kind, info.value.field) == (kind, field)
    assert store.revision == revision
    check_db_invariants(store.path, dhcp_ports=False)


def test_one_commit_can_move_an_address_between_ports(store: SqliteStore) -> None:
    store.commit([net(), sub()])
    store.commit([port("p1", "fa:16:3e:00:00:01", "10.0.0.5"), port("p2", "fa:16:3e:00:00:02", "10.0.0.6")])
    p1, p2 = store.get("port", "p1"), store.get("port", "p2")
    store.commit(
        [
            dataclasses.replace(p1, fixed_ips=(FixedIP("s1", "10.0.0.6"),)),
            dataclasses.replace(p2, fixed_ips=(FixedIP("s1", "10.0.0.5"),)),
        ]
    )
    assert store.get("port", "p1").ips == ("10.0.0.6",)
    # A subnet and the last address in it can go in one commit too.
    store.commit(
        [
            dataclasses.replace(store.get("port", "p1"), fixed_ips=()),
            dataclasses.replace(store.get("port", "p2"), fixed_ips=()),
        ],
        [("subnet", "s1")],
    )
    check_db_invariants(store.path, dhcp_ports=False)


def test_bad_commits(store: SqliteStore) -> None:
    with pytest.raises(NotFoundError):
        store.commit(deletes=[("network", "missing")])
    with pytest.raises(ValueError):
        store.commit()
    with pytest.raises(ValueError):
        store.commit([net("a", 1), net("a", 2)])
    store.commit([net("a", 1)])
    with pytest.raises(ValueError):
        store.commit([net("a", 1)], [("network", "a")])
    assert store.revision == 1


def test_compaction_and_compacted_error(workdir: str) -> None:
    s = SqliteStore(f"{workdir}/store.db", retention=10)
    try:
        for i in range(1, 40):
            s.commit([Instance(id=f"i{i}")])
        assert s.compacted_revision > 0
        assert 39 - s.compacted_revision >= 10  # at least `retention` revisions are kept
        with pytest.raises(CompactedError):
            s.events_since(s.compacted_revision - 1)
        replay = s.events_since(s.compacted_revision)
        assert [e.revision for e in replay] == list(range(s.compacted_revision + 1, 40))
    finally:
        s.close()
    check_db_invariants(f"{workdir}/store.db")


def test_snapshot_is_consistent(store: SqliteStore) -> None:
    store.commit([net("a", 1)])
    revision, nets = store.snapshot("network")
    assert revision == 1 and [n.id for n in nets] == ["a"]
    assert store.count("network") == 1
