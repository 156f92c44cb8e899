"""The controller process (``loom-controller``): the gRPC server around the store and the APIs.

Other parts of the controller plug in without editing this file:
``build_server(config, extra_services=[register], network_extras=factory)``.
A registrar gets the server and the ``ControllerContext`` (store, APIs) and
adds its servicers, returning their full service names for reflection and
health; ``network_extras`` builds the object serving ListAgents and
GetHostFlows. A registrar starts nothing itself: it appends to ``context.on_start``
(run, in order, by ``Controller.start`` before the server takes calls) and to
``context.on_stop`` (run, newest first, when the controller stops).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from compute.core import ComputeSettings
from compute.service import Compute
from controller import config as config_module
from controller.api.convert import Presenter
from controller.api.network_api import NetworkApi, NetworkSettings
from controller.api.network_servicer import NetworkExtras, NetworkServicer
from controller.api.router_servicer import RouterServicer
from controller.api.security_servicer import SecurityGroupServicer
from controller.config import ControllerConfig
from controller.ready_file import write_ready_file
from controller.store.base import Store, StoreError
from controller.store.sqlite import SqliteStore
from dataplane.common.logs import get_logger, setup_logging
from protos.loom.v1 import (
    network_pb2,
    network_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
)

log = get_logger("controller.main")


@dataclass
class ControllerContext:
    """What the controller's parts share."""

    config: ControllerConfig
    store: Store
    network: NetworkApi
    compute: Compute
    presenter: Presenter
    on_start: list[Callable[[], None]] = field(default_factory=list)  # run in order before serving
    on_stop: list[Callable[[], None]] = field(default_factory=list)  # run in reverse order at stop


class ServerExecutor(futures.ThreadPoolExecutor):
    """The gRPC server's thread pool, which says so in the log when a call has to wait for a thread.

    A synchronous gRPC server runs each call on one of these threads, and a stream (an agent's Sync, a
    Watch) keeps its thread until it ends. Once streams hold every thread, new calls wait in a queue and
    the API stops answering without an error anywhere: this warning is the only sign.
    """

    WARN_EVERY = 10.0  # seconds between two warnings

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="grpc")
        self._warned_at = -self.WARN_EVERY

    def _adjust_thread_count(self) -> None:
        # ThreadPoolExecutor.submit calls this after queueing the work: an idle thread takes it, or a new
        # thread starts, or (every thread started and busy) it waits. The same steps as CPython's, plus the
        # warning; overriding here costs a call nothing on the common path (the per-call wrapper it
        # replaces cost ~6 us of CPU per call).
        if self._idle_semaphore.acquire(timeout=0):
            return
        workers = self._max_workers
        if len(self._threads) >= workers:
            now = time.monotonic()
            if now - self._warned_at >= self.WARN_EVERY:
                self._warned_at = now
                log.warning("a call waits: every gRPC server thread is busy; raise --workers", workers=workers)
            return
        super()._adjust_thread_count()


# Adds servicers to the server; returns the full names of the services it added (for reflection/health).
ServiceRegistrar = Callable[[grpc.Server, ControllerContext], Iterable[str] | None]
NetworkExtrasFactory = Callable[[ControllerContext], NetworkExtras]


@dataclass
class Controller:
    server: grpc.Server
    context: ControllerContext
    port: int
    health: health.HealthServicer
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Start the parts (distributor, metadata service), then take calls."""
        try:
            for hook in self.context.on_start:
                hook()
        except Exception:
            self.stop(grace=0)  # a part that did start must not outlive a controller that did not
            raise
        self.server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "controller serving", listen=self.context.config.listen, port=self.port, db=self.context.config.db_path
        )
        if self.context.config.ready_file:
            write_ready_file(self.context.config.ready_file, self.port)

    def stop(self, grace: float = 5.0) -> None:
        """Stop serving (open streams get ``grace`` seconds), run the on_stop hooks, close the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        close_context(self.context)
        log.info("controller stopped")


def close_context(ctx: ControllerContext) -> None:
    """Run the on_stop hooks (newest first), then close the API and the store."""
    for hook in reversed(ctx.on_stop):
        try:
            hook()
        except Exception:
            log.exception("stop hook failed")
    ctx.network.close()
    ctx.store.close()


def build_context(config: ControllerConfig) -> ControllerContext:
    store = SqliteStore(config.db_path, retention=config.event_retention)
    settings = NetworkSettings(
        underlay_mtu=config.underlay_mtu, vni_range=config.vni_range, gateway_preempt=config.gateway_preempt
    )
    network = NetworkApi(store, settings)
    compute = Compute(
        store,
        network,
        ComputeSettings(
            image_dir=config.state_path(config.image_dir, "images"),
            volume_dir=config.state_path(config.volume_dir, "volumes"),
        ),
    )
    presenter = Presenter(network, compute.volumes.attached_ids)
    return ControllerContext(config=config, store=store, network=network, compute=compute, presenter=presenter)


def build_server(
    config: ControllerConfig,
    extra_services: Sequence[ServiceRegistrar] = (),
    network_extras: NetworkExtrasFactory | None = None,
) -> Controller:
    """A controller ready to ``start()``: store opened, services registered, port bound."""
    ctx = build_context(config)
    server = grpc.server(
        ServerExecutor(config.workers),
        options=[("grpc.so_reuseport", 0)],  # a second controller on the same port must fail, not share it
    )
    extras = network_extras(ctx) if network_extras is not None else None
    network_pb2_grpc.add_NetworkServiceServicer_to_server(NetworkServicer(ctx.network, ctx.presenter, extras), server)
    security_pb2_grpc.add_SecurityGroupServiceServicer_to_server(
        SecurityGroupServicer(ctx.network, ctx.presenter), server
    )
    router_pb2_grpc.add_RouterServiceServicer_to_server(RouterServicer(ctx.network, ctx.presenter), server)
    names = [
        network_pb2.DESCRIPTOR.services_by_name["NetworkService"].full_name,
        *ctx.compute.register(server, ctx.presenter),
        security_pb2.DESCRIPTOR.services_by_name["SecurityGroupService"].full_name,
        router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name,
    ]
    for register in extra_services:
        names.extend(register(server, ctx) or ())
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError as exc:
        # Nothing has started yet, but parts built by the registrars hold threads (the status tracker).
        close_context(ctx)
        raise OSError(f"cannot listen on {config.listen}: {exc}") from exc
    return Controller(server=server, context=ctx, port=port, health=health_servicer)


def run(
    config: ControllerConfig,
    extra_services: Sequence[ServiceRegistrar] = (),
    network_extras: NetworkExtrasFactory | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    controller = build_server(config, extra_services, network_extras)
    done = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.start()
    while not done.wait(1.0):
        pass
    controller.stop()


def main(
    argv: Sequence[str] | None = None,
    extra_services: Sequence[ServiceRegistrar] = (),
    network_extras: NetworkExtrasFactory | None = None,
) -> None:
    """The ``loom-controller`` entry point; a wrapper may pass the services it adds."""
    config = config_module.from_args(argv)
    setup_logging("controller", config.log_level)
    try:
        run(config, extra_services, network_extras)
    except (OSError, sqlite3.Error, StoreError) as exc:
        log.error("controller failed to start", error=str(exc), db=config.db_path)
        sys.exit(1)


if __name__ == "__main__":
    main()
