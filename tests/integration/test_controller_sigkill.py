"""SIGKILL the controller in the middle of a stream of writes: nothing acknowledged is lost.

Four clients create, rename and delete ports as fast as they can. The
controller (a real subprocess) is killed with SIGKILL mid-stream, then
restarted on the same database, twice. Afterwards every acknowledged write is
there, a write that was in flight when the process died is either wholly there
or wholly absent, the event log has every revision exactly once, and each
object's revision_number names the event that last wrote it.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import network_pb2_grpc
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import ControllerProcess, check_db_invariants, scratch_dir

WRITERS = 4


@dataclass
class Op:
    kind: str  # create, rename, delete
    port_id: str = ""
    name: str = ""
    revision: int = 0
    ip: str = ""
    mac: str = ""


@dataclass
class Writer:
    """One client: its acknowledged operations in order, and the one in flight when the server died."""

    index: int
    done: list[Op] = field(default_factory=list)
    in_flight: Op | None = None

    def run(self, address: str, network_id: str, stop: threading.Event) -> None:
        rng = random.Random(self.index)
        mine: list[str] = []  # live ports this writer created
        with grpc.insecure_channel(address) as channel:
            stub = network_pb2_grpc.NetworkServiceStub(channel)
            n = 0
            while not stop.is_set():
                n += 1
                roll = rng.random()
                try:
                    if roll < 0.2 and mine:
                        op = Op("rename", rng.choice(mine), name=f"w{self.index}-r{n}")
                        self.in_flight = op
                        got = stub.UpdatePort(
                            npb.UpdatePortRequest(
                                port=rpb.Port(id=op.port_id, name=op.name), update_mask=FieldMask(paths=["name"])
                            ),
                            timeout=10,
                        )
                        op.revision = got.revision_number
                    elif roll < 0.3 and mine:
                        op = Op("delete", mine.pop(rng.randrange(len(mine))))
                        self.in_flight = op
                        op.revision = stub.DeletePort(npb.DeleteRequest(id=op.port_id), timeout=10).revision
                    else:
                        op = Op("create", name=f"w{self.index}-c{n}")
                        self.in_flight = op
                        port = stub.CreatePort(
                            npb.CreatePortRequest(port=rpb.Port(network_id=network_id, name=op.name)), timeout=10
                        )
                        op.port_id, op.revision = port.id, port.revision_number
                        op.ip, op.mac = port.fixed_ips[0].ip_address, port.mac_address
                        mine.append(port.id)
                except grpc.RpcError:
                    return  # the server is gone: this op is in flight, its outcome unknown
                self.done.append(op)
                self.in_flight = None


@pytest.fixture
def workdir() -> Iterator[str]:
    with scratch_dir() as path:
        yield path


def expected_ports(writers: list[Writer]) -> tuple[dict[str, Op], dict[str, set[str]], set[str]]:
    """(acked live ports -> their create op, port -> names it may have, ports that must be gone)."""
    creates: dict[str, Op] = {}
    names: dict[str, set[str]] = {}
    gone: set[str] = set()
    for w in writers:
        for op in w.done:
            if op.kind == "create":
                creates[op.port_id] = op
                names[op.port_id] = {op.name}
            elif op.kind == "rename":
                names[op.port_id] = {op.name}
            else:
                gone.add(op.port_id)
                creates.pop(op.port_id, None)
        op = w.in_flight
        if op is not None and op.kind == "rename" and op.port_id in names:
            names[op.port_id] = names[op.port_id] | {op.name}  # committed or not: either is right
    return creates, names, gone


def maybe_deleted(writers: list[Writer]) -> set[str]:
    """Ports whose delete was in flight at the kill: present or absent are both right."""
    return {w.in_flight.port_id for w in writers if w.in_flight is not None and w.in_flight.kind == "delete"}


def test_sigkill_mid_stream_loses_no_acknowledged_write(workdir: str) -> None:
    db = f"{workdir}/controller.db"
    controller = ControllerProcess(workdir, db)
    controller.start()
    try:
        with grpc.insecure_channel(controller.address) as channel:
            stub = network_pb2_grpc.NetworkServiceStub(channel)
            net = stub.CreateNetwork(npb.CreateNetworkRequest(network=rpb.Network(name="crash")))
            stub.CreateSubnet(npb.CreateSubnetRequest(subnet=rpb.Subnet(network_id=net.id, cidr="10.40.0.0/16")))
        all_writers: list[Writer] = []
        for cycle in range(2):
            stop = threading.Event()
            writers = [Writer(cycle * WRITERS + i) for i in range(WRITERS)]
            threads = [threading.Thread(target=w.run, args=(controller.address, net.id, stop)) for w in writers]
            for t in threads:
                t.start()
            # Kill once the stream is well under way (a few hundred acknowledged writes).
            deadline = time.monotonic() + 20
            while sum(len(w.done) for w in writers) < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            controller.kill()
            stop.set()
            for t in threads:
                t.join(30)
            acked = sum(len(w.done) for w in writers)
            assert acked >= 200, f"only {acked} writes before the kill"
            assert any(w.in_flight is not None for w in writers), "the kill did not interrupt any write"
            all_writers += writers
            controller.start()
            check_restart(controller, db, net.id, all_writers)
    finally:
        controller.stop()


def check_restart(controller: ControllerProcess, db: str, network_id: str, writers: list[Writer]) -> None:
    creates, names, gone = expected_ports(writers)
    with grpc.insecure_channel(controller.address) as channel:
        stub = network_pb2_grpc.NetworkServiceStub(channel)
        listed = stub.ListPorts(npb.ListPortsRequest(network_id=network_id))
        ports = {p.id: p for p in listed.ports if p.device_owner != "network:dhcp"}
        unsure = maybe_deleted(writers)
        for port_id, op in creates.items():
            if port_id in unsure and port_id not in ports:
                continue
            assert port_id in ports, f"acknowledged port {port_id} (revision {op.revision}) is missing"
            port = ports[port_id]
            assert (port.fixed_ips[0].ip_address, port.mac_address) == (op.ip, op.mac)
            assert port.name in names[port_id], f"port {port_id}: name {port.name!r}, expected one of {names[port_id]}"
        for port_id in gone:
            assert port_id not in ports, f"port {port_id} deleted (acknowledged) but back after the restart"
        # Ports nobody acknowledged may only be the creates in flight at the kill.
        in_flight_names = {w.in_flight.name for w in writers if w.in_flight and w.in_flight.kind == "create"}
        for port_id, port in ports.items():
            if port_id not in creates:
                assert port.name in in_flight_names, f"unexplained port {port.name} after the restart"
        revision = listed.revision
    # Every acknowledged revision is in the log, naming the object it wrote.
    events = {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for rev, typ, oid in conn.execute("SELECT revision, type, id FROM events WHERE kind = 'port'"):
            events[rev] = (typ, oid)
    finally:
        conn.close()
    for w in writers:
        for op in w.done:
            assert op.revision <= revision
            expected_type = {"create": "CREATED", "rename": "UPDATED", "delete": "DELETED"}[op.kind]
            assert events.get(op.revision) == (expected_type, op.port_id), f"revision {op.revision} of {op}"
    check_db_invariants(db)
    # And the controller carries on from where the log ends.
    with grpc.insecure_channel(controller.address) as channel:
        stub = network_pb2_grpc.NetworkServiceStub(channel)
        port = stub.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=network_id, name="after")), timeout=10)
        assert port.revision_number == revision + 1
        stub.DeletePort(npb.DeleteRequest(id=port.id), timeout=10)
