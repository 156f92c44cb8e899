"""The agent's side of the AgentService: register, follow Sync, report.

One thread keeps a Sync stream open, reconnecting with backoff and resuming
from the last revision the agent applied (the controller answers with the
missed deltas or a snapshot). Losing the controller never touches the
dataplane: the agent keeps what it has installed until it hears otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from dataplane.common.logs import get_logger
from protos.loom.v1 import agent_pb2, agent_pb2_grpc

log = get_logger(__name__)

_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


@dataclass(frozen=True)
class Registration:
    host: str
    tunnel_ip: str
    datapath_type: str
    version: str
    physical_networks: tuple[str, ...] = ()
    gateway_priority: int = 0


class ControllerClient:
    def __init__(
        self,
        target: str,
        registration: Registration,
        on_message: Callable[[agent_pb2.SyncMessage], None],
        position: Callable[[], tuple[int, str]],
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.target = target
        self.reg = registration
        self.on_message = on_message
        self.position = position
        self.on_connected = on_connected
        self.channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self.stub = agent_pb2_grpc.AgentServiceStub(self.channel)
        self.heartbeat_interval = 2.0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for target, name in ((self._sync_loop, "sync"), (self._heartbeat_loop, "heartbeat")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        for t in self._threads:
            t.join(timeout=5)
        self.channel.close()

    # ------------------------------------------------------------ sync

    def _sync_loop(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                resp = self.stub.Register(
                    agent_pb2.RegisterRequest(
                        host=self.reg.host,
                        tunnel_ip=self.reg.tunnel_ip,
                        datapath_type=self.reg.datapath_type,
                        version=self.reg.version,
                        physical_networks=list(self.reg.physical_networks),
                        gateway_priority=self.reg.gateway_priority,
                    ),
                    timeout=5,
                )
                self.heartbeat_interval = resp.heartbeat_interval or self.heartbeat_interval
                revision, epoch = self.position()
                call = self.stub.Sync(agent_pb2.SyncRequest(host=self.reg.host, last_revision=revision, epoch=epoch))
                self._call = call
                log.info("sync stream open", host=self.reg.host, controller=self.target, from_revision=revision)
                self.connected.set()
                if self.on_connected:
                    self.on_connected()
                backoff = 0.1
                for msg in call:
                    self.on_message(msg)
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                code = exc.code() if hasattr(exc, "code") else None
                log.warning("controller unreachable", host=self.reg.host, controller=self.target, code=str(code))
            finally:
                self.connected.clear()
                self._call = None
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 2.0)

    # ------------------------------------------------------------ reports

    def report_ports(self, states: list[agent_pb2.PortState]) -> bool:
        try:
            self.stub.ReportPortStatus(agent_pb2.PortStatusReport(host=self.reg.host, ports=states), timeout=5)
            return True
        except grpc.RpcError as exc:
            log.warning("port status report failed", host=self.reg.host, ports=len(states), error=str(exc.code()))
            return False

    def report_gateways(self, active: list[str]) -> bool:
        """Tell the controller which routers this gateway host is the active SNAT gateway of."""
        try:
            self.stub.ReportGateways(agent_pb2.GatewayReport(host=self.reg.host, active_routers=active), timeout=5)
            return True
        except grpc.RpcError as exc:
            log.warning("gateway report failed", host=self.reg.host, routers=len(active), error=str(exc.code()))
            return False

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            revision, _ = self.position()
            try:
                self.stub.Heartbeat(
                    agent_pb2.HeartbeatRequest(host=self.reg.host, applied_revision=revision, flows_installed=0),
                    timeout=2,
                )
            except grpc.RpcError:
                pass  # the sync loop logs and reconnects
