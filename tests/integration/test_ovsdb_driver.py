"""The OVSDB driver against the system OVS: bridges, ports, the tunnel port, snapshots, errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from dataplane.common.constants import TUNNEL_OFPORT, TUNNEL_PORT_NAME
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.idl import OvsdbClient, OvsdbError
from tests.integration.vif_fixtures import (
    Janitor,
    port_id,
    sh,
    vsctl,
)
from vif import link
from vif.names import vif_device_name

pytestmark = pytest.mark.ovs


@pytest.fixture
def br_name(system_ovs: None) -> Iterator[str]:
    """A bridge name for the driver to create; removed afterwards whatever happened."""
    name = "lv-" + uuid.uuid4().hex[:8]
    try:
        yield name
    finally:
        vsctl("--if-exists", "del-br", name)


def get(table: str, record: str, column: str) -> str:
    return vsctl("get", table, record, column)


def row_version(table: str, name: str) -> str:
    """The row's _version: it changes whenever anyone writes the row."""
    query = {"op": "select", "table": table, "where": [["name", "==", name]], "columns": ["_version"]}
    return json.loads(sh("ovsdb-client", "transact", json.dumps(["Open_vSwitch", query])))[0]["rows"][0]["_version"][1]


def test_integration_bridge_settings(driver: OvsDriver, br_name: str) -> None:
    driver.ensure_integration_bridge("netdev", bridge=br_name)
    assert get("Bridge", br_name, "datapath_type") == "netdev"
    assert get("Bridge", br_name, "fail_mode") == "secure"
    assert get("Bridge", br_name, "protocols") == "[OpenFlow13]"
    assert get("Bridge", br_name, "other_config:disable-in-band") == '"true"'
    assert get("Bridge", br_name, "controller") == "[]"
    # The bridge's own internal port exists, so ovs-vswitchd made the bridge (its mgmt socket too).
    assert get("Interface", br_name, "type") == "internal"
    assert br_name in sh("ovs-ofctl", "-O", "OpenFlow13", "show", br_name)


def test_ensure_writes_nothing_when_everything_is_in_place(driver: OvsDriver, br_name: str) -> None:
    driver.ensure_integration_bridge("netdev", bridge=br_name)
    version = row_version("Bridge", br_name)
    driver.ensure_integration_bridge("netdev", bridge=br_name)
    assert row_version("Bridge", br_name) == version
    vsctl("set", "Bridge", br_name, "external_ids:lv-touch=1")  # the probe sees real writes
    assert row_version("Bridge", br_name) != version


def test_ensure_repairs_drift(driver: OvsDriver, br_name: str) -> None:
    driver.ensure_integration_bridge("netdev", bridge=br_name)
    vsctl("set", "Bridge", br_name, "fail_mode=standalone", "protocols=OpenFlow10")
    driver.ensure_integration_bridge("netdev", bridge=br_name)
    assert get("Bridge", br_name, "fail_mode") == "secure"
    assert get("Bridge", br_name, "protocols") == "[OpenFlow13]"


def test_tunnel_port(driver: OvsDriver, br_name: str) -> None:
    # Port names are global in an OVS instance: other tests may use vxlan-loom on the system OVS.
    port = "lvvx" + uuid.uuid4().hex[:8]
    driver.ensure_integration_bridge("netdev", bridge=br_name)
    ofport = driver.ensure_tunnel_port("198.51.100.77", bridge=br_name, name=port)
    assert ofport == TUNNEL_OFPORT
    assert vsctl("port-to-br", port) == br_name
    assert get("Interface", port, "type") == "vxlan"
    assert get("Interface", port, "ofport") == str(TUNNEL_OFPORT)
    assert get("Interface", port, "options:remote_ip") == "flow"
    assert get("Interface", port, "options:key") == "flow"
    assert get("Interface", port, "options:local_ip") == '"198.51.100.77"'
    # Idempotent, and a new local IP is applied to the same row.
    row = get("Interface", port, "_uuid")
    assert driver.ensure_tunnel_port("198.51.100.77", bridge=br_name, name=port) == TUNNEL_OFPORT
    driver.ensure_tunnel_port("198.51.100.78", bridge=br_name, name=port)
    assert get("Interface", port, "_uuid") == row
    assert get("Interface", port, "options:local_ip") == '"198.51.100.78"'
    assert TUNNEL_PORT_NAME == "vxlan-loom"  # the default name the agent uses


def test_list_ports_matches_ovs_vsctl(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    pid = port_id()
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    link.ensure_tap(dev, mac="fe:16:3e:00:00:10", mtu=1450)
    driver.ensure_port(
        bridge, dev, external_ids={"iface-id": pid, "attached-mac": "fa:16:3e:00:00:10"}, ofport_request=901
    )
    ports = driver.list_ports(bridge)
    assert sorted(p.name for p in ports) == sorted([*vsctl("list-ports", bridge).split(), bridge])
    vif = next(p for p in ports if p.name == dev)
    assert (vif.iface_id, vif.attached_mac, vif.ofport, vif.ofport_request, vif.error) == (
        pid,
        "fa:16:3e:00:00:10",
        901,
        901,
        None,
    )
    assert driver.find_ports(pid, bridge="br-int") == [] and driver.find_ports(pid) == [vif]
    assert driver.get_port(dev) == vif and driver.get_port("lv-none") is None


def test_port_moves_between_bridges_and_delete_is_idempotent(driver: OvsDriver, janitor: Janitor) -> None:
    first, second = "lv-" + uuid.uuid4().hex[:8], "lv-" + uuid.uuid4().hex[:8]
    dev = "lvm" + uuid.uuid4().hex[:8]
    janitor.devices.append(dev)
    try:
        driver.ensure_bridge(first, datapath_type="netdev")
        driver.ensure_bridge(second, datapath_type="netdev")
        link.ensure_tap(dev, mac="fe:16:3e:00:00:11", mtu=1500)
        driver.ensure_port(first, dev)
        assert vsctl("port-to-br", dev) == first
        driver.ensure_port(second, dev)
        assert vsctl("port-to-br", dev) == second
        assert dev not in vsctl("list-ports", first).split()
        assert driver.delete_port(dev) is True
        assert driver.delete_port(dev) is False
        assert driver.delete_bridge(first) is True and driver.delete_bridge(first) is False
        assert not driver.bridge_exists(first)
    finally:
        for br in (first, second):
            vsctl("--if-exists", "del-br", br)


def test_errors_name_the_object(driver: OvsDriver) -> None:
    with pytest.raises(OvsdbError, match="bridge lv-nosuchbr does not exist"):
        driver.ensure_port("lv-nosuchbr", "lvx0")
    with pytest.raises(OvsdbError, match="interface lv-nosuchif"):
        driver.set_interface_external_ids("lv-nosuchif", {"a": "b"})


def test_failed_interface_is_reported_with_its_name(driver: OvsDriver, bridge: str) -> None:
    """A port whose device does not exist: ovs-vswitchd gives ofport -1, the driver says which."""
    name = "lvg" + uuid.uuid4().hex[:8]
    with pytest.raises(OvsdbError, match=rf"could not add interface\(s\): {name}"):
        driver.ensure_port(bridge, name)
    driver.delete_port(name)


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(OvsdbError, match=r"cannot connect to ovsdb-server at unix:/nonexistent/db\.sock"):
        OvsdbClient("/nonexistent/db.sock", timeout=1).start()
