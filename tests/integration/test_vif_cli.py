"""`loomctl vif plug`: MAC, MTU and ofport come from the real controller's GetPort."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from protos.loom.v1 import network_pb2, resources_pb2
from tests.integration.controller_harness import LiveController, live_controller, make_network, make_subnet, scratch_dir
from tests.integration.vif_fixtures import (
    REPO,
    Janitor,
    link_exists,
    sh,
    vsctl,
)
from vif.names import vif_device_name

pytestmark = pytest.mark.ovs


@pytest.fixture
def controller() -> Iterator[LiveController]:
    with scratch_dir() as workdir, live_controller(workdir) as live:
        yield live


def test_plug_reads_the_binding_from_the_controller(controller: LiveController, bridge: str, janitor: Janitor) -> None:
    net = make_network(controller, name="vifcli")
    make_subnet(controller, net.id, "10.20.0.0/24")
    port = controller.network.CreatePort(
        network_pb2.CreatePortRequest(port=resources_pb2.Port(network_id=net.id, binding_host_id="hv1")), timeout=10
    )
    details = port.binding_vif_details
    vm = janitor.netns()
    dev = vif_device_name(port.id)
    janitor.devices.append(dev)
    loomctl = [sys.executable, "-m", "controller.cli", "--server", controller.address, "--json", "vif"]
    plug = [*loomctl, "plug", "--port-id", port.id, "--netns", vm, "--bridge", bridge]
    vif = json.loads(subprocess.run(plug, capture_output=True, text=True, check=True, cwd=REPO).stdout)
    assert (vif["mac"], vif["mtu"], vif["ofport"]) == (port.mac_address, int(details["mtu"]), int(details["ofport"]))
    assert vsctl("get", "Interface", dev, "ofport") == details["ofport"]
    assert json.loads(sh("ip", "-j", "link", "show", "eth0", netns=vm))[0]["address"] == port.mac_address

    missing = subprocess.run(
        [*loomctl, "plug", "--port-id", "lv-unknown", "--netns", vm], capture_output=True, text=True, cwd=REPO
    )
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    subprocess.run([*loomctl, "unplug", "--port-id", port.id], check=True, capture_output=True, cwd=REPO)
    assert not link_exists(dev)
