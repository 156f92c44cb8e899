"""The controller process: health, reflection, the wiring hooks for other services, config, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from controller import app
from controller import config as config_module
from controller.config import ControllerConfig
from controller.main import ControllerContext, build_server
from protos.loom.v1 import agent_pb2 as apb
from protos.loom.v1 import agent_pb2_grpc, network_pb2_grpc
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import ROOT, ControllerProcess, live_controller, scratch_dir

ECHO = "loomtest.Echo"


def reflected_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    return {s.name for r in responses for s in r.list_services_response.service}


def test_health_and_reflection() -> None:
    with scratch_dir() as workdir, live_controller(workdir) as live:
        health = health_pb2_grpc.HealthStub(live.channel)
        for service in ("", "loom.v1.NetworkService", "loom.v1.ComputeService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        services = {"loom.v1.NetworkService", "loom.v1.ComputeService", "loom.v1.AgentService", "grpc.health.v1.Health"}
        assert services <= reflected_services(live.channel)
        assert list(live.network.ListAgents(npb.ListAgentsRequest()).agents) == []  # the distributor answers


def test_the_api_only_server_leaves_the_distributor_methods_unimplemented() -> None:
    with scratch_dir() as workdir:
        controller = build_server(ControllerConfig(listen="127.0.0.1:0", db_path=os.path.join(workdir, "c.db")))
        controller.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{controller.port}") as channel:
                network = network_pb2_grpc.NetworkServiceStub(channel)
                assert network.ListNetworks(npb.ListNetworksRequest()).networks == []  # control: it serves
                with pytest.raises(grpc.RpcError) as info:
                    network.ListAgents(npb.ListAgentsRequest())
                assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        finally:
            controller.stop()


class FakeDistributor:
    """Stands in for the lead's distributor: serves ListAgents from what the context holds."""

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx

    def ListAgents(self, request: npb.ListAgentsRequest, context: grpc.ServicerContext) -> npb.ListAgentsResponse:
        return npb.ListAgentsResponse(agents=[npb.Agent(host="hv1", host_revision=self.ctx.store.revision)])

    def GetHostFlows(self, request: npb.GetHostFlowsRequest, context: grpc.ServicerContext) -> npb.GetHostFlowsResponse:
        return npb.GetHostFlowsResponse(flows=[npb.HostFlow(text="priority=0 actions=drop", owner=request.host)])


def test_extra_services_and_network_extras_plug_in() -> None:
    started: list[str] = []
    stopped: list[str] = []

    def register(server: grpc.Server, ctx: ControllerContext) -> Iterable[str]:
        def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
            return request + str(ctx.store.revision).encode()

        handler = grpc.unary_unary_rpc_method_handler(echo)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ECHO, {"Say": handler}),))
        ctx.on_start.append(lambda: started.append("echo"))
        ctx.on_stop.append(lambda: stopped.append("echo"))
        return [ECHO]

    with scratch_dir() as workdir:
        cfg = ControllerConfig(listen="127.0.0.1:0", db_path=os.path.join(workdir, "c.db"))
        controller = build_server(cfg, extra_services=[register], network_extras=FakeDistributor)
        assert started == [], "a registrar starts its part from on_start, not while the server is built"
        controller.start()
        assert started == ["echo"]
        try:
            with grpc.insecure_channel(f"127.0.0.1:{controller.port}") as channel:
                say = channel.unary_unary(f"/{ECHO}/Say")
                assert say(b"rev=") == b"rev=0"
                network = network_pb2_grpc.NetworkServiceStub(channel)
                assert network.ListAgents(npb.ListAgentsRequest()).agents[0].host == "hv1"
                assert network.GetHostFlows(npb.GetHostFlowsRequest(host="hv7")).flows[0].owner == "hv7"
                health = health_pb2_grpc.HealthStub(channel)
                assert health.Check(health_pb2.HealthCheckRequest(service=ECHO)).status == 1
                assert ECHO in reflected_services(channel)
        finally:
            controller.stop()
        assert stopped == ["echo"]


def test_a_part_that_fails_to_start_stops_the_parts_started_before_it() -> None:
    events: list[str] = []

    def first(server: grpc.Server, ctx: ControllerContext) -> Iterable[str]:
        ctx.on_start.append(lambda: events.append("first started"))
        ctx.on_stop.append(lambda: events.append("first stopped"))
        return []

    def failing(server: grpc.Server, ctx: ControllerContext) -> Iterable[str]:
        def start() -> None:
            raise OSError("metadata_listen: address in use")

        ctx.on_start.append(start)
        return []

    with scratch_dir() as workdir:
        cfg = ControllerConfig(listen="127.0.0.1:0", db_path=os.path.join(workdir, "c.db"))
        controller = build_server(cfg, extra_services=[first, failing])
        with pytest.raises(OSError, match="metadata_listen"):
            controller.start()
        assert events == ["first started", "first stopped"]
        controller.stop()  # harmless after a failed start: nothing runs twice
        assert events == ["first started", "first stopped"]
        with grpc.insecure_channel(f"127.0.0.1:{controller.port}") as channel, pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=0.5)


def test_sigterm_stops_gracefully_and_the_port_is_exclusive() -> None:
    with scratch_dir() as workdir:
        proc = ControllerProcess(workdir, os.path.join(workdir, "c.db"), args=["--log-level", "INFO"])
        proc.start()
        try:
            second = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "controller.app",
                    "--listen",
                    proc.address,
                    "--db",
                    os.path.join(workdir, "other.db"),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 1 and "cannot listen" in second.stderr
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGTERM)
            assert proc.proc.wait(15) == 0
        finally:
            proc.stop()
        with open(os.path.join(workdir, "controller.log")) as f:
            log = f.read()
        assert "controller serving" in log and "controller stopped" in log


def test_a_busy_metadata_port_fails_the_start_naming_the_setting() -> None:
    with scratch_dir() as workdir, socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = f"127.0.0.1:{busy.getsockname()[1]}"
        args = ["--listen", "127.0.0.1:0", "--db", os.path.join(workdir, "c.db"), "--metadata-listen", taken]
        result = subprocess.run(
            [sys.executable, "-m", "controller.app", *args],
            cwd=ROOT,
            env={**os.environ, "LOOM_METADATA_SECRET": "s3cret"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert f"metadata_listen: cannot serve on {taken}" in result.stderr
        assert "controller serving" not in result.stderr


def test_config_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_UNDERLAY_MTU", "9000")
    monkeypatch.setenv("LOOM_VNI_RANGE", "1000:1999")
    cfg = config_module.from_args(["--db", "/tmp/lf-x.db", "--listen", "0.0.0.0:7000"])
    assert (cfg.underlay_mtu, cfg.vni_range, cfg.db_path, cfg.listen) == (
        9000,
        (1000, 1999),
        "/tmp/lf-x.db",
        "0.0.0.0:7000",
    )
    assert config_module.from_args(["--vni-range", "5-6"]).vni_range == (5, 6)
    for bad in (["--vni-range", "0:10"], ["--vni-range", "9:1"], ["--vni-range", "x"], ["--underlay-mtu", "100"]):
        with pytest.raises(SystemExit):
            config_module.from_args(bad)


def test_underlay_mtu_sets_network_mtus() -> None:
    with scratch_dir() as workdir, live_controller(workdir, underlay_mtu=9000) as live:
        net = live.network.CreateNetwork(npb.CreateNetworkRequest())
        assert net.mtu == 8950


def test_restart_rebuilds_allocations() -> None:
    """After a restart the allocators know what is taken: no IP, MAC, ofport or VNI is handed out twice."""
    with scratch_dir() as workdir:
        with live_controller(workdir) as live:
            net = live.network.CreateNetwork(npb.CreateNetworkRequest())
            live.network.CreateSubnet(
                npb.CreateSubnetRequest(subnet=rpb.Subnet(network_id=net.id, cidr="10.90.0.0/29"))  # 4 free after DHCP
            )
            before = [
                live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=net.id, binding_host_id="h1")))
                for _ in range(2)
            ]
        with live_controller(workdir) as live:
            after = [
                live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=net.id, binding_host_id="h1")))
                for _ in range(2)
            ]
            with pytest.raises(grpc.RpcError) as info:
                live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=net.id)))
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            ports = before + after
            assert len({p.fixed_ips[0].ip_address for p in ports}) == 4
            assert len({p.mac_address for p in ports}) == 4
            assert len({p.binding_vif_details["ofport"] for p in ports}) == 4
            assert live.network.CreateNetwork(npb.CreateNetworkRequest()).segmentation_id != net.segmentation_id
            dhcp = live.network.ListPorts(npb.ListPortsRequest(network_id=net.id, device_owner="network:dhcp")).ports
            assert len(dhcp) == 1


def test_the_api_answers_while_a_hundred_agents_hold_sync_streams() -> None:
    """Every Sync stream holds a server thread while it is open; with the default configuration the API
    must still answer when 100 agents are connected (64 threads, the old default, left it hanging)."""
    agents = 100
    with scratch_dir() as workdir:
        cfg = ControllerConfig(listen="127.0.0.1:0", db_path=os.path.join(workdir, "c.db"))
        controller = app.build(cfg)
        controller.start()
        streams = []
        try:
            options = [("grpc.use_local_subchannel_pool", 1)]  # a connection per agent, as hosts have
            with grpc.insecure_channel(f"127.0.0.1:{controller.port}") as channel:
                network = network_pb2_grpc.NetworkServiceStub(channel)
                for i in range(agents):
                    agent_channel = grpc.insecure_channel(f"127.0.0.1:{controller.port}", options=options)
                    stub = agent_pb2_grpc.AgentServiceStub(agent_channel)
                    host = f"hv{i}"
                    stub.Register(apb.RegisterRequest(host=host, tunnel_ip=f"198.51.100.{i + 1}"), timeout=10)
                    stream = stub.Sync(apb.SyncRequest(host=host), timeout=60)
                    streams.append((agent_channel, stream))
                    assert next(stream).HasField("snapshot")  # the stream is open and holds its thread
                # Every stream is open (each delivered its snapshot), and the server still takes calls.
                assert len(network.ListAgents(npb.ListAgentsRequest(), timeout=10).agents) == agents
                net = network.CreateNetwork(npb.CreateNetworkRequest(network=rpb.Network(name="n")), timeout=10)
                assert net.id
        finally:
            for agent_channel, stream in streams:
                stream.cancel()
                agent_channel.close()
            controller.stop(grace=1.0)
