"""`loom-controller`: the whole controller — API, distribution to agents, metadata service.

``controller.main`` serves the orchestrator API; this module adds the parts
that face the hypervisors: the AgentService with its distributor, and the
metadata service the hosts' proxies forward to.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

import grpc

from controller import main as api_main
from controller.distributor.wiring import DataplaneWiring
from controller.main import ControllerContext
from controller.metadata.server import MetadataServer
from controller.metadata.store_source import StoreMetadataSource
from dataplane.common.logs import get_logger

log = get_logger(__name__)


def start_metadata_service(server: grpc.Server, ctx: ControllerContext) -> Iterable[str]:
    """A registrar: serve metadata over HTTP beside the gRPC server (from start), when configured."""
    cfg = ctx.config
    if not cfg.metadata_listen:
        return []
    host, _, port = cfg.metadata_listen.rpartition(":")
    source = StoreMetadataSource(ctx.store, ctx.network.device_port_ids)
    service = MetadataServer(source, cfg.metadata_secret, host or "0.0.0.0", int(port))

    def start() -> None:
        try:
            address = service.start()
        except OSError as exc:
            raise OSError(f"metadata_listen: cannot serve on {cfg.metadata_listen}: {exc}") from exc
        log.info("metadata service serving", listen=f"{address[0]}:{address[1]}", url=cfg.metadata_url)

    ctx.on_start.append(start)
    ctx.on_stop.append(service.stop)
    return []


def _additions() -> tuple[list[api_main.ServiceRegistrar], api_main.NetworkExtrasFactory]:
    """What the full controller adds to the API-only one: the dataplane and the metadata service."""
    wiring = DataplaneWiring()
    return [start_metadata_service, wiring.register], wiring.extras


def build(config: api_main.ControllerConfig) -> api_main.Controller:
    """A complete controller, ready to start() (for tests and embedding)."""
    services, extras = _additions()
    return api_main.build_server(config, extra_services=services, network_extras=extras)


# A thread woken by a commit (the distributor, an agent's stream) must not wait
# the default 5 ms for the thread holding the GIL to give it up: latency of a
# change reaching the hosts matters more here than raw throughput.
GIL_SWITCH_INTERVAL = 0.0005


def main(argv: Sequence[str] | None = None) -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    services, extras = _additions()
    api_main.main(argv, extra_services=services, network_extras=extras)


if __name__ == "__main__":
    main()
