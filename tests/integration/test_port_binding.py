"""A port bound to a host without an agent: binding_failed with the reason, then bound when the agent registers.

Runs the shipped controller (``python -m controller.app``) in a subprocess and
plays the agent over the real AgentService: Register, a Sync stream (so the
host counts as alive), ReportPortStatus.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from protos.loom.v1 import agent_pb2, agent_pb2_grpc, network_pb2_grpc
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import ROOT, ControllerProcess, scratch_dir


@pytest.fixture(scope="module")
def controller() -> Iterator[ControllerProcess]:
    with scratch_dir() as workdir:
        proc = ControllerProcess(workdir, os.path.join(workdir, "c.db"), module="controller.app")
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()


def _watch_until(
    network: network_pb2_grpc.NetworkServiceStub, port: rpb.Port, reached: Callable[[rpb.Port], bool]
) -> list[rpb.Port]:
    """The port as every Watch event after ``port`` showed it, up to the first that ``reached`` accepts."""
    seen: list[rpb.Port] = []
    stream = network.Watch(
        npb.WatchRequest(since_revision=port.revision_number, kinds=["port"], id=port.id), timeout=20
    )
    try:
        for ev in stream:
            seen.append(ev.port)
            if reached(ev.port):
                return seen
    finally:
        stream.cancel()
    raise AssertionError(f"the port never got there; it went through {[(p.status, p.binding_vif_type) for p in seen]}")


def _loomctl(address: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "controller.cli", "--server", address, "--timeout", "10", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_binding_fails_without_an_agent_and_recovers_when_it_registers(controller: ControllerProcess) -> None:
    channel = grpc.insecure_channel(controller.address)
    network = network_pb2_grpc.NetworkServiceStub(channel)
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    net = network.CreateNetwork(npb.CreateNetworkRequest(network=rpb.Network(name="bf-net")))
    network.CreateSubnet(npb.CreateSubnetRequest(subnet=rpb.Subnet(network_id=net.id, cidr="10.90.0.0/24")))

    # Positive control: a host with an agent binds as "ovs" from the start.
    agents.Register(agent_pb2.RegisterRequest(host="bf-hv1", tunnel_ip="198.51.100.91"))
    ok = network.CreatePort(
        npb.CreatePortRequest(port=rpb.Port(network_id=net.id, name="bf-ok", binding_host_id="bf-hv1"))
    )
    assert (ok.binding_vif_type, ok.binding_failure_reason) == ("ovs", "")
    unbound = network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=net.id, name="bf-unbound")))
    assert (unbound.binding_vif_type, unbound.status) == ("unbound", "DOWN")

    port = network.CreatePort(
        npb.CreatePortRequest(port=rpb.Port(network_id=net.id, name="bf-vm", binding_host_id="bf-hv9"))
    )
    assert port.binding_vif_type == "binding_failed"
    assert port.binding_failure_reason == "host bf-hv9 has no registered agent"
    assert port.status == "DOWN"
    # The controller compiles it all the same (the agent may come later), and the status stays DOWN.
    compiled = _watch_until(network, port, lambda p: any(s.name == "compiled" and s.done for s in p.stages))[-1]
    assert (compiled.status, compiled.binding_vif_type) == ("DOWN", "binding_failed")
    assert compiled.binding_failure_reason == "host bf-hv9 has no registered agent"

    shown = _loomctl(controller.address, "port", "show", "bf-vm")
    assert "binding_vif_type        binding_failed" in shown
    assert "binding_failure_reason  host bf-hv9 has no registered agent" in shown
    assert "DOWN (binding_failed)" in _loomctl(controller.address, "port", "list", "--name", "bf-vm")

    # The agent registers: the port binds, and with the agent's report goes on to ACTIVE, with no user action.
    agents.Register(agent_pb2.RegisterRequest(host="bf-hv9", tunnel_ip="198.51.100.99"))
    sync = agents.Sync(agent_pb2.SyncRequest(host="bf-hv9"))
    first = next(sync)  # the snapshot: it holds the port
    assert port.id in {p.port_id for p in first.snapshot.ports}

    def drain() -> None:  # keep the stream read, as an agent does, until the test cancels it
        try:
            for _ in sync:
                pass
        except grpc.RpcError:
            pass

    threading.Thread(target=drain, daemon=True).start()
    try:
        building = _watch_until(network, compiled, lambda p: p.binding_vif_type == "ovs")[-1]
        assert building.binding_failure_reason == ""
        assert building.status == "BUILD", "bound to a host with an agent, on its way"
        agents.ReportPortStatus(
            agent_pb2.PortStatusReport(
                host="bf-hv9",
                ports=[
                    agent_pb2.PortState(
                        port_id=port.id,
                        vif_present=True,
                        ofport=int(port.binding_vif_details["ofport"]),
                        flows_installed=True,
                        dhcp_ready=True,
                        metadata_ready=True,
                    )
                ],
            )
        )
        active = _watch_until(network, building, lambda p: p.status == "ACTIVE")[-1]
        assert (active.binding_vif_type, active.binding_failure_reason) == ("ovs", "")
    finally:
        sync.cancel()
        channel.close()


def test_binding_fields_are_output_only(controller: ControllerProcess) -> None:
    with grpc.insecure_channel(controller.address) as channel:
        network = network_pb2_grpc.NetworkServiceStub(channel)
        net = network.CreateNetwork(npb.CreateNetworkRequest(network=rpb.Network(name="bf-out")))
        port = network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=net.id, binding_vif_type="ovs")))
        assert port.binding_vif_type == "unbound", "a client cannot claim a binding"
        with pytest.raises(grpc.RpcError) as info:
            network.UpdatePort(
                npb.UpdatePortRequest(
                    port=rpb.Port(id=port.id, binding_vif_type="ovs"), update_mask=FieldMask(paths=["binding_vif_type"])
                )
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "binding_vif_type" in info.value.details()
