"""``TracePacket`` through the shipped controller (``python -m controller.app``), and `loomctl trace` on it.

Two hosts registered over the real AgentService (no switch: the controller's
trace never asks one), a network on both, and the errors named by field.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest

from protos.loom.v1 import agent_pb2, agent_pb2_grpc, network_pb2_grpc
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import ROOT, ControllerProcess, scratch_dir


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[ControllerProcess, dict[str, rpb.Port], rpb.Network]]:
    with scratch_dir() as workdir:
        proc = ControllerProcess(workdir, os.path.join(workdir, "c.db"), module="controller.app")
        proc.start()
        try:
            with grpc.insecure_channel(proc.address) as channel:
                network = network_pb2_grpc.NetworkServiceStub(channel)
                agents = agent_pb2_grpc.AgentServiceStub(channel)
                for i in (1, 2):
                    agents.Register(agent_pb2.RegisterRequest(host=f"tr-hv{i}", tunnel_ip=f"198.51.100.{80 + i}"))
                net = network.CreateNetwork(npb.CreateNetworkRequest(network=rpb.Network(name="tr-blue")))
                network.CreateSubnet(npb.CreateSubnetRequest(subnet=rpb.Subnet(network_id=net.id, cidr="10.70.0.0/24")))
                ports = {
                    name: network.CreatePort(
                        npb.CreatePortRequest(port=rpb.Port(network_id=net.id, name=name, binding_host_id=host))
                    )
                    for name, host in (("tr-vm1", "tr-hv1"), ("tr-vm2", "tr-hv2"), ("tr-idle", ""))
                }
                # The vm2's agent reports it compiled but not plugged: a delivery there is doubtful.
                agents.ReportPortStatus(
                    agent_pb2.PortStatusReport(
                        host="tr-hv2", ports=[agent_pb2.PortState(port_id=ports["tr-vm2"].id, vif_present=False)]
                    )
                )
            yield proc, ports, net
        finally:
            proc.stop()


def _trace(address: str, **fields: object) -> npb.TracePacketResponse:
    with grpc.insecure_channel(address) as channel:
        return network_pb2_grpc.NetworkServiceStub(channel).TracePacket(npb.TracePacketRequest(**fields), timeout=10)


def test_a_packet_crosses_the_tunnel_and_every_hop_is_named(world) -> None:
    proc, ports, net = world
    vm1, vm2 = ports["tr-vm1"], ports["tr-vm2"]
    resp = _trace(proc.address, from_port_id=vm1.id, to_port_id=vm2.id, protocol="tcp", dst_port=22)
    assert resp.reached_destination and resp.revision > 0
    assert [h.host for h in resp.hops] == ["tr-hv1", "tr-hv2"]
    first, second = resp.hops
    assert first.came_from == "port tr-vm1" and first.steps[0].owner == "binding of port tr-vm1"
    assert [s.table_name for s in first.steps][-1] == "l2_lookup" and first.steps[-1].owner == "port tr-vm2"
    (tunnel,) = first.outputs
    assert (tunnel.kind, tunnel.remote_host, tunnel.remote_ip, tunnel.vni) == (
        npb.TraceOutput.TUNNEL,
        "tr-hv2",
        "198.51.100.82",
        net.segmentation_id,
    )
    assert second.steps[0].owner == "network tr-blue" and second.steps[-1].table_name == "deliver"
    (out,) = resp.deliveries
    assert (out.host, out.port_id, out.port_name) == ("tr-hv2", vm2.id, "tr-vm2")
    assert "not reported this VIF plugged" in out.warning
    assert "tp_dst=22" in resp.packet and resp.notes


def test_errors_name_the_field(world) -> None:
    proc, ports, _ = world
    cases = [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "from_port_id: required"),
        ({"from_port_id": "nope"}, grpc.StatusCode.NOT_FOUND, "from_port_id"),
        ({"from_port_id": ports["tr-idle"].id}, grpc.StatusCode.FAILED_PRECONDITION, "is not bound to a host"),
        (
            {"from_port_id": ports["tr-vm1"].id, "to_port_id": ports["tr-vm2"].id, "protocol": "sctp"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "protocol: 'sctp'",
        ),
        (
            {"from_port_id": ports["tr-vm1"].id, "dst_ip": "10.70.0.200"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "dst_mac: no port on network tr-blue holds 10.70.0.200",
        ),
    ]
    for fields, code, fragment in cases:
        with pytest.raises(grpc.RpcError) as info:
            _trace(proc.address, **fields)
        assert info.value.code() == code, (fields, info.value.details())
        assert fragment in info.value.details(), info.value.details()


def _loomctl(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "controller.cli", "--server", address, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_loomctl_trace_prints_every_hop_and_the_result(world) -> None:
    proc, _, _ = world
    result = _loomctl(
        proc.address, "trace", "--from-port", "tr-vm2", "--to-port", "tr-vm1", "--proto", "udp", "--dport", "53"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("# udp,") and "udp_dst" not in out.splitlines()[0]
    assert "tr-hv2: in_port 100 (port tr-vm2)" in out
    assert "  -> tunnel to tr-hv1 (198.51.100.81)" in out
    assert "tr-hv1: in_port 65200 (tunnel from tr-hv2" in out
    assert "  70. deliver: binding of port tr-vm1" in out
    assert out.rstrip().endswith("result: delivered to tr-vm1 on tr-hv1")
    refused = _loomctl(proc.address, "trace", "--from-port", "tr-vm1", "--to-port", "tr-vm2", "--hv-rundir", "x=/")
    assert refused.returncode == 1 and "--hv-rundir is for the real switch's trace: add --switch" in refused.stderr
