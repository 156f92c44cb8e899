"""Watch over real gRPC: replay from a revision, follow live, filters, compaction, cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from controller.model import PortStage
from protos.loom.v1 import compute_pb2 as cpb
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import (
    LiveController,
    live_controller,
    make_network,
    make_subnet,
    scratch_dir,
)


@pytest.fixture
def live() -> Iterator[LiveController]:
    with scratch_dir() as workdir, live_controller(workdir) as live:
        yield live


def instance(live: LiveController, name: str = "i") -> rpb.Instance:
    return live.compute.CreateInstance(cpb.CreateInstanceRequest(instance=rpb.Instance(name=name)))


def take(stream: grpc.Call, count: int) -> list[npb.WatchEvent]:
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) == count:
            break
    return out


def test_replay_then_live(live: LiveController) -> None:
    n = make_network(live, name="w")
    s = make_subnet(live, n.id, "10.0.0.0/24")  # one commit: the subnet and the DHCP port
    stream = live.network.Watch(npb.WatchRequest(since_revision=n.revision_number - 1), timeout=20)
    try:
        replay = take(stream, 3)
        assert [(e.revision, e.kind, npb.WatchEvent.Type.Name(e.type)) for e in replay] == [
            (n.revision_number, "network", "CREATED"),
            (s.revision_number, "subnet", "CREATED"),
            (s.revision_number, "port", "CREATED"),
        ]
        assert replay[0].network.name == "w" and replay[1].subnet.cidr == "10.0.0.0/24"
        assert replay[2].port.device_owner == "network:dhcp" and replay[0].at > 0
        live.network.DeleteNetwork(npb.DeleteRequest(id=n.id))
        live_events = take(stream, 3)
        assert {e.kind for e in live_events} == {"network", "subnet", "port"}
        assert all(npb.WatchEvent.Type.Name(e.type) == "DELETED" for e in live_events)
        [deleted] = [e for e in live_events if e.kind == "network"]
        assert deleted.network.name == "w" and deleted.network.id == n.id  # the object as it was before
    finally:
        stream.cancel()


def test_no_event_missed_or_duplicated_while_writes_race_the_replay(live: LiveController) -> None:
    """Watchers start at random moments of a write stream and must each see every later revision once."""
    total = 300
    first = instance(live, "first").revision_number
    last_revision: list[int] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(total):
                last_revision.append(instance(live, f"w{i}").revision_number)
        finally:
            done.set()

    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def watcher(since: int) -> None:
        try:
            stream = live.network.Watch(npb.WatchRequest(since_revision=since, kinds=["instance"]), timeout=60)
            seen = []
            for ev in stream:
                seen.append(ev.revision)
                if ev.revision == first + total:
                    break
            stream.cancel()
            results[since] = seen
        except BaseException as exc:
            errors.append(exc)

    w = threading.Thread(target=writer)
    w.start()
    watchers = []
    for k in range(6):
        time.sleep(0.02 * k)
        watchers.append(threading.Thread(target=watcher, args=(live.store.revision - k,)))
        watchers[-1].start()
    w.join()
    for t in watchers:
        t.join(60)
    assert not errors, errors
    assert len(results) == 6
    for since, seen in results.items():
        assert seen == list(range(since + 1, first + total + 1)), f"watch from {since} saw gaps or duplicates"


def test_follow_from_now(live: LiveController) -> None:
    before = instance(live).revision_number
    stream = live.network.Watch(npb.WatchRequest(), timeout=20)
    try:
        got: list[npb.WatchEvent] = []
        reader = threading.Thread(target=lambda: got.extend(take(stream, 1)))
        reader.start()
        # The stream is established asynchronously: write until its first event arrives.
        deadline = time.monotonic() + 10
        while reader.is_alive() and time.monotonic() < deadline:
            instance(live)
            reader.join(0.05)
        assert got and got[0].revision > before
    finally:
        stream.cancel()


def test_filters_by_kind_and_id(live: LiveController) -> None:
    start = live.store.revision
    n = make_network(live)
    make_subnet(live, n.id, "10.1.0.0/24")
    p = live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=n.id)))
    live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=n.id)))
    api = live.controller.context.network
    api.ports.update_status(p.id, "ACTIVE", [PortStage("accepted", True, 1.0), PortStage("up", True, 2.0)])
    stream = live.network.Watch(npb.WatchRequest(since_revision=start, kinds=["port"], id=p.id), timeout=20)
    try:
        events = take(stream, 2)
    finally:
        stream.cancel()
    assert [(e.id, npb.WatchEvent.Type.Name(e.type)) for e in events] == [(p.id, "CREATED"), (p.id, "UPDATED")]
    assert events[1].port.status == "ACTIVE" and [s.name for s in events[1].port.stages] == ["accepted", "up"]
    subnets_only = live.network.Watch(npb.WatchRequest(since_revision=start, kinds=["subnet"]), timeout=20)
    try:
        assert [e.kind for e in take(subnets_only, 1)] == ["subnet"]
    finally:
        subnets_only.cancel()


def test_bad_requests() -> None:
    with scratch_dir() as workdir, live_controller(workdir, event_retention=5) as live:
        for i in range(30):
            instance(live, f"i{i}")
        compacted = live.store.compacted_revision
        assert compacted > 0
        with pytest.raises(grpc.RpcError) as info:
            list(live.network.Watch(npb.WatchRequest(since_revision=compacted - 1), timeout=10))
        assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "since_revision" in info.value.details()
        stream = live.network.Watch(npb.WatchRequest(since_revision=compacted), timeout=10)
        assert take(stream, 1)[0].revision == compacted + 1
        stream.cancel()
        with pytest.raises(grpc.RpcError) as info:
            list(live.network.Watch(npb.WatchRequest(kinds=["bogus"]), timeout=10))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "kinds" in info.value.details()
        # RouterService.Watch serves only its own kinds; NetworkService.Watch every kind (loomctl watch).
        with pytest.raises(grpc.RpcError) as info:
            list(live.routers.Watch(npb.WatchRequest(kinds=["port"]), timeout=10))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "kinds" in info.value.details()


def test_cancelled_watches_release_their_threads_and_subscriptions() -> None:
    """Each open watch holds a server thread: with 5, four watches leave one for calls. Cancelled
    watches must give their threads back, or the next round of watches could not start."""
    with scratch_dir() as workdir, live_controller(workdir, workers=5) as live:
        baseline = live.store.subscriber_count
        for round_ in range(3):
            instance(live, f"round-{round_}")
            streams = [live.network.Watch(npb.WatchRequest(since_revision=0), timeout=10) for _ in range(4)]
            for s in streams:
                assert take(s, 1)  # the stream holds its thread now
            assert live.store.subscriber_count == baseline + 4
            live.compute.ListInstances(cpb.ListInstancesRequest(), timeout=5)  # the fifth thread still serves
            for s in streams:
                s.cancel()
            deadline = time.monotonic() + 10
            while live.store.subscriber_count > baseline and time.monotonic() < deadline:
                time.sleep(0.02)
            assert live.store.subscriber_count == baseline
