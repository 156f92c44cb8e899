"""The VIF monitor: snapshot at start, events once ofport is known, removals, failures, resync after reconnect."""

from __future__ import annotations

import json
import os
import queue
import uuid

import pytest

from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.monitor import InterfaceMonitor
from dataplane.ovs.types import InterfaceEvent
from lab.mininet.ovs_instance import OvsInstance
from tests.integration.vif_fixtures import (
    Janitor,
    port_id,
    sh,
    vsctl,
)
from vif import link
from vif.names import vif_device_name

pytestmark = pytest.mark.ovs


WAIT = 5.0


def next_event(monitor: InterfaceMonitor, iface_id: str) -> InterfaceEvent:
    """The next event about ``iface_id`` (others, e.g. from concurrent tests' bridges, cannot appear: one bridge)."""
    while True:
        event = monitor.get(WAIT)
        if event.iface_id == iface_id:
            return event


def no_event(monitor: InterfaceMonitor, timeout: float = 0.3) -> None:
    with pytest.raises(queue.Empty):
        monitor.get(timeout)


def add_tap(driver: OvsDriver, bridge: str, janitor: Janitor, pid: str, **ext: str) -> str:
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    link.ensure_tap(dev, mac="fe:16:3e:00:00:20", mtu=1450)
    driver.ensure_port(bridge, dev, external_ids={"iface-id": pid, "attached-mac": "fa:16:3e:00:00:20", **ext})
    return dev


def test_existing_vifs_are_reported_at_start(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    pid = port_id()
    dev = add_tap(driver, bridge, janitor, pid)
    with driver.monitor_interfaces(bridge=bridge) as monitor:
        event = next_event(monitor, pid)
        assert event.present and event.name == dev and event.attached_mac == "fa:16:3e:00:00:20"
        assert event.ofport == int(vsctl("get", "Interface", dev, "ofport"))
        assert monitor.present() == {pid: event}


def test_new_vif_is_reported_once_numbered_then_removed(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    with driver.monitor_interfaces(bridge=bridge) as monitor:
        no_event(monitor)
        pid = port_id()
        dev = vif_device_name(pid)
        janitor.devices.append(dev)
        link.ensure_tap(dev, mac="fe:16:3e:00:00:21", mtu=1450)
        # Written without waiting for ovs-vswitchd: the row exists before its ofport does.
        vsctl(
            "--no-wait",
            "add-port",
            bridge,
            dev,
            "--",
            "set",
            "Interface",
            dev,
            f"external_ids:iface-id={pid}",
            "ofport_request=4321",
        )
        event = next_event(monitor, pid)
        assert (event.present, event.ofport, event.name, event.error) == (True, 4321, dev, None)
        assert event.seen_at > 0

        vsctl("del-port", bridge, dev)
        gone = next_event(monitor, pid)
        assert (gone.present, gone.name, gone.error) == (False, dev, None)
        assert monitor.present() == {}


def test_changes_are_reported_and_non_vifs_ignored(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    other = "lv-" + uuid.uuid4().hex[:8]
    try:
        vsctl("add-br", other, "--", "set", "bridge", other, "datapath_type=netdev")
        with driver.monitor_interfaces(bridge=bridge) as monitor:
            pid = port_id()
            dev = add_tap(driver, bridge, janitor, pid)
            assert next_event(monitor, pid).present
            # A new iface-id: the old VIF goes, the new one comes, same device.
            new_pid = port_id()
            vsctl("set", "Interface", dev, f"external_ids:iface-id={new_pid}")
            old = next_event(monitor, pid)
            assert not old.present
            assert next_event(monitor, new_pid).present
            # A new MAC is an update of a present VIF.
            vsctl("set", "Interface", dev, "external_ids:attached-mac=fa:16:3e:00:00:99")
            changed = next_event(monitor, new_pid)
            assert changed.present and changed.attached_mac == "fa:16:3e:00:00:99"
            # Interfaces without iface-id, and VIFs on other bridges, make no events.
            plain = "lvp" + uuid.uuid4().hex[:8]
            janitor.devices.append(plain)
            link.ensure_tap(plain, mac="fe:16:3e:00:00:22", mtu=1450)
            driver.ensure_port(bridge, plain)
            elsewhere = port_id()
            add_tap(driver, other, janitor, elsewhere)
            no_event(monitor)
            # Moving that VIF onto the watched bridge makes it appear.
            driver.ensure_port(bridge, vif_device_name(elsewhere))
            assert next_event(monitor, elsewhere).present
    finally:
        vsctl("--if-exists", "del-br", other)


def test_failed_interface_is_an_error_event(driver: OvsDriver, bridge: str) -> None:
    with driver.monitor_interfaces(bridge=bridge) as monitor:
        pid = port_id()
        ghost = vif_device_name(pid)  # no such device
        vsctl("--no-wait", "add-port", bridge, ghost, "--", "set", "Interface", ghost, f"external_ids:iface-id={pid}")
        try:
            event = next_event(monitor, pid)
            assert not event.present and event.failed and event.ofport == -1
            assert "No such device" in (event.error or "")
        finally:
            vsctl("--if-exists", "del-port", ghost)
        gone = next_event(monitor, pid)
        assert (gone.present, gone.error) == (False, None)


def test_callback_gets_existing_vifs_before_start_returns(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    """The agent relies on this: its VIF table is complete once monitor_interfaces returns."""
    pid = port_id()
    add_tap(driver, bridge, janitor, pid)
    seen: list[InterfaceEvent] = []
    monitor = driver.monitor_interfaces(callback=seen.append, bridge=bridge)
    try:
        assert {e.iface_id: e for e in seen if e.present} == monitor.present()
        assert list(monitor.present()) == [pid]
    finally:
        monitor.stop()


def test_callback_mode(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    seen: list[InterfaceEvent] = []
    monitor = driver.monitor_interfaces(callback=seen.append, bridge=bridge)
    try:
        pid = port_id()
        add_tap(driver, bridge, janitor, pid)
        # ensure_port returns after ovs-vswitchd applied the change; the event came before that.
        assert [e.iface_id for e in seen if e.present] == [pid]
        assert monitor.events.empty()
    finally:
        monitor.stop()


def test_resync_after_ovsdb_server_restart(sandbox_ovs: tuple[str, OvsInstance], janitor: Janitor) -> None:
    """A VIF removed while we were disconnected is reported gone after the reconnect; new ones still come."""
    netns, instance = sandbox_ovs
    with OvsDriver(instance.paths.db_socket) as drv:
        drv.ensure_integration_bridge("netdev", bridge="br-int")
        monitor = drv.monitor_interfaces(bridge="br-int")
        pid = port_id()
        dev = vif_device_name(pid)
        janitor.devices.append(dev)  # in case it lands in the wrong namespace
        link.ensure_tap(dev, mac="fe:16:3e:00:00:23", mtu=1450, netns=netns)
        assert link.get_link(dev, netns) is not None and link.get_link(dev) is None
        drv.ensure_port("br-int", dev, external_ids={"iface-id": pid})
        assert next_event(monitor, pid).present
        port_uuid = drv.client.read(
            lambda idl: str(next(p.uuid for p in idl.tables["Port"].rows.values() if p.name == dev))
        )

        instance.stop_daemon("ovsdb-server")
        # Offline edit of the database file: take the port off br-int.
        mutation = {
            "op": "mutate",
            "table": "Bridge",
            "where": [["name", "==", "br-int"]],
            "mutations": [["ports", "delete", ["uuid", port_uuid]]],
        }
        sh("ovsdb-tool", "transact", instance.paths.db_file, json.dumps(["Open_vSwitch", mutation]))
        instance.start_ovsdb_server()

        gone = next_event(monitor, pid)
        assert (gone.present, gone.name) == (False, dev)
        again = port_id()
        dev2 = vif_device_name(again)
        link.ensure_tap(dev2, mac="fe:16:3e:00:00:24", mtu=1450, netns=netns)
        drv.ensure_port("br-int", dev2, external_ids={"iface-id": again})
        assert next_event(monitor, again).present
    assert os.path.exists(instance.paths.db_file)
