"""`vif plug --server`: MAC, MTU and ofport come from the controller's GetPort over real gRPC.

The controller is built elsewhere in parallel; until it exists this test serves
GetPort from a minimal servicer on a real gRPC server, which is exactly the
interface the CLI depends on (the port's ``mac_address`` and
``binding_vif_details``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from protos.loom.v1 import network_pb2, network_pb2_grpc, resources_pb2
from tests.integration import test_vif_fixtures as fx
from tests.integration.test_vif_fixtures import (
    REPO,
    Janitor,
    link_exists,
    port_id,
    sh,
    vsctl,
)
from vif.names import vif_device_name

pytestmark = pytest.mark.ovs

# Fixtures shared with the other vif/ovsdb tests.
bridge = fx.bridge
janitor = fx.janitor
system_ovs = fx.system_ovs


class PortDirectory(network_pb2_grpc.NetworkServiceServicer):
    """GetPort for a fixed set of ports; NOT_FOUND otherwise."""

    def __init__(self, ports: dict[str, resources_pb2.Port]) -> None:
        self.ports = ports

    def GetPort(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Port:
        if request.id not in self.ports:
            context.abort(grpc.StatusCode.NOT_FOUND, f"port {request.id} not found")
        return self.ports[request.id]


@pytest.fixture
def controller() -> Iterator[tuple[str, dict[str, resources_pb2.Port]]]:
    ports: dict[str, resources_pb2.Port] = {}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    network_pb2_grpc.add_NetworkServiceServicer_to_server(PortDirectory(ports), server)
    bound = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{bound}", ports
    finally:
        server.stop(0)


def test_plug_reads_the_binding_from_the_controller(
    controller: tuple[str, dict[str, resources_pb2.Port]], bridge: str, janitor: Janitor
) -> None:
    address, ports = controller
    pid, vm = port_id(), janitor.netns()
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    ports[pid] = resources_pb2.Port(
        id=pid,
        mac_address="fa:16:3e:5e:00:01",
        binding_host_id="hv1",
        binding_vif_details={"ofport": "612", "mtu": "1380", "bridge": bridge},
    )
    out = subprocess.run(
        [sys.executable, "-m", "vif.cli", "plug", "--port-id", pid, "--server", address, "--netns", vm, "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    vif = json.loads(out)
    assert (vif["mac"], vif["mtu"], vif["ofport"], vif["bridge"]) == ("fa:16:3e:5e:00:01", 1380, 612, bridge)
    assert vsctl("get", "Interface", dev, "ofport") == "612"
    assert json.loads(sh("ip", "-j", "link", "show", "eth0", netns=vm))[0]["address"] == "fa:16:3e:5e:00:01"

    missing = subprocess.run(
        [sys.executable, "-m", "vif.cli", "plug", "--port-id", "lv-unknown", "--server", address, "--netns", vm],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    subprocess.run(
        [sys.executable, "-m", "vif.cli", "unplug", "--port-id", pid], check=True, capture_output=True, cwd=REPO
    )
    assert not link_exists(dev)
