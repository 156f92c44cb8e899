"""vif.plug against a real netdev bridge on the system OVS: devices, OVS rows, offloads, traffic, cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dataplane.ovs.driver import OvsDriver
from tests.integration.vif_fixtures import (
    REPO,
    Janitor,
    link_exists,
    port_id,
    sh,
    tcp_transfer,
    tx_checksum,
    vsctl,
)
from vif import link
from vif.names import vif_device_name
from vif.plug import PlugError, plug_tap, plug_veth, unplug
from vif.tap import redirect_target

pytestmark = pytest.mark.ovs


def iface(dev: str, column: str) -> str:
    return vsctl("get", "Interface", dev, column)


def ext_id(dev: str, key: str) -> str:
    return vsctl("get", "Interface", dev, f"external_ids:{key}").strip('"')


def test_plug_veth_creates_both_ends_and_the_ovs_port(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    pid, vm = port_id(), janitor.netns()
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    vif = plug_veth(pid, "FA:16:3E:12:34:56", 1400, vm, ofport=321, ovsdb=driver, bridge=bridge, vm_id="vm-a")

    assert (vif.device, vif.ofport, vif.netns, vif.ifname) == (dev, 321, vm, "eth0")
    # Host end: up, MTU, no IPv6, TX checksum offload off.
    host = sh("ip", "-j", "link", "show", dev)
    assert json.loads(host)[0]["mtu"] == 1400 and "UP" in json.loads(host)[0]["flags"]
    assert sh("cat", f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6") == "1"
    assert tx_checksum(dev) == "off"
    # VM end: eth0 with the MAC and MTU, up; lo up; offload off.
    guest = json.loads(sh("ip", "-j", "link", "show", "eth0", netns=vm))[0]
    assert guest["address"] == "fa:16:3e:12:34:56" and guest["mtu"] == 1400 and "UP" in guest["flags"]
    assert "UP" in json.loads(sh("ip", "-j", "link", "show", "lo", netns=vm))[0]["flags"]
    assert tx_checksum("eth0", netns=vm) == "off"
    # OVS: on the bridge, external_ids, ofport_request honoured.
    assert vsctl("port-to-br", dev) == bridge
    ids = {key: ext_id(dev, key) for key in ("iface-id", "attached-mac", "vm-id", "iface-status")}
    assert ids == {"iface-id": pid, "attached-mac": "fa:16:3e:12:34:56", "vm-id": "vm-a", "iface-status": "active"}
    assert iface(dev, "ofport") == "321" and iface(dev, "ofport_request") == "321"


def test_plug_veth_is_idempotent_and_repairs(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    pid, vm = port_id(), janitor.netns()
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    first = plug_veth(pid, "fa:16:3e:00:00:01", 1450, vm, ofport=200, ovsdb=driver, bridge=bridge)
    index = link.get_link(dev).index  # type: ignore[union-attr]
    uuid_before = vsctl("get", "Interface", dev, "_uuid")

    again = plug_veth(pid, "fa:16:3e:00:00:01", 1450, vm, ofport=200, ovsdb=driver, bridge=bridge)
    assert again == first
    assert link.get_link(dev).index == index  # type: ignore[union-attr]  # not recreated
    assert vsctl("get", "Interface", dev, "_uuid") == uuid_before
    assert vsctl("list-ports", bridge).split().count(dev) == 1

    # Someone deleted the VM end: plugging again rebuilds the pair and keeps the OVS port.
    sh("ip", "link", "del", "eth0", netns=vm)
    assert not link_exists(dev)
    repaired = plug_veth(pid, "fa:16:3e:00:00:01", 1450, vm, ofport=200, ovsdb=driver, bridge=bridge)
    assert repaired.ofport == 200 and link_exists(dev) and link_exists("eth0", vm)
    assert int(iface(dev, "ofport")) == 200

    # A changed MAC/MTU is applied in place.
    plug_veth(pid, "fa:16:3e:00:00:02", 1300, vm, ofport=200, ovsdb=driver, bridge=bridge)
    guest = json.loads(sh("ip", "-j", "link", "show", "eth0", netns=vm))[0]
    assert (guest["address"], guest["mtu"]) == ("fa:16:3e:00:00:02", 1300)
    assert ext_id(dev, "attached-mac") == "fa:16:3e:00:00:02"


def test_unplug_removes_port_and_device_and_is_idempotent(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    pid, vm = port_id(), janitor.netns()
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    plug_veth(pid, "fa:16:3e:00:00:03", 1450, vm, ovsdb=driver, bridge=bridge)

    assert unplug(pid, ovsdb=driver) is True
    assert dev not in vsctl("list-ports", bridge).split()
    assert not link_exists(dev) and not link_exists("eth0", vm)
    assert os.path.exists(f"/run/netns/{vm}")  # the VM namespace is the caller's to delete
    assert unplug(pid, ovsdb=driver) is False

    plug_veth(pid, "fa:16:3e:00:00:03", 1450, vm, ovsdb=driver, bridge=bridge)
    assert unplug(ifname=dev, ovsdb=driver, delete_netns=vm) is True
    assert not link_exists(dev) and not os.path.exists(f"/run/netns/{vm}")


def test_unplug_by_port_id_finds_ports_under_other_names(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    pid, vm = port_id(), janitor.netns()
    custom = "lvc" + pid[2:10]
    janitor.devices.append(custom)
    plug_veth(pid, "fa:16:3e:00:00:04", 1450, vm, ovsdb=driver, bridge=bridge, device=custom)
    assert vsctl("port-to-br", custom) == bridge
    assert unplug(pid, ovsdb=driver) is True
    assert not link_exists(custom) and custom not in vsctl("list-ports", bridge).split()


def test_plug_tap(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    pid = port_id()
    dev, tap_side, ovs_side = vif_device_name(pid), vif_device_name(pid, "lvt"), vif_device_name(pid, "lvo")
    janitor.devices += [dev, tap_side]
    vif = plug_tap(pid, "fa:16:3e:aa:bb:cc", 1450, ofport=777, ovsdb=driver, bridge=bridge, vm_id="inst-1")

    info = json.loads(sh("ip", "-j", "-d", "link", "show", dev))[0]
    data = info["linkinfo"]["info_data"]
    assert info["linkinfo"]["info_kind"] == "tun"
    # Persistent, single-queue tap: qemu opens it later with -netdev tap,ifname=DEV,script=no.
    assert (data["type"], data["persist"], data["multi_queue"]) == ("tap", True, False)
    assert info["address"] == "fe:16:3e:aa:bb:cc" and info["mtu"] == 1450
    assert tx_checksum(dev) == "off"
    # The OVS port is a veth the tap is redirected through, whose TX offloads are off, so the
    # kernel finishes the checksums and segments a virtio guest leaves to the host (vif/tap.py).
    assert (vif.device, vif.ovs_port) == (dev, ovs_side)
    assert dev not in vsctl("list-ports", bridge).split() and vsctl("port-to-br", ovs_side) == bridge
    assert vif.ofport == 777 and iface(ovs_side, "ofport") == "777"
    assert (ext_id(ovs_side, "iface-id"), ext_id(ovs_side, "attached-mac")) == (pid, "fa:16:3e:aa:bb:cc")
    assert tx_checksum(tap_side) == "off" and tx_checksum(ovs_side) == "off"
    assert (redirect_target(dev), redirect_target(tap_side)) == (tap_side, dev)
    assert plug_tap(pid, "fa:16:3e:aa:bb:cc", 1450, ofport=777, ovsdb=driver, bridge=bridge, vm_id="inst-1") == vif

    # --direct: the tap itself is the OVS port again, nothing else is left.
    direct = plug_tap(pid, "fa:16:3e:aa:bb:cc", 1450, ofport=777, ovsdb=driver, bridge=bridge, direct=True)
    assert (direct.ovs_port, iface(dev, "ofport"), ext_id(dev, "iface-id")) == (dev, "777", pid)
    assert not link_exists(tap_side) and not link_exists(ovs_side) and redirect_target(dev) is None
    assert unplug(pid, ovsdb=driver) and not link_exists(dev)

    # Unplugging by the tap's name finds its veth through the redirect.
    plug_tap(pid, "fa:16:3e:aa:bb:cc", 1450, ofport=777, ovsdb=driver, bridge=bridge)
    assert unplug(ifname=dev, ovsdb=driver)
    assert not any(link_exists(d) for d in (dev, tap_side, ovs_side))
    assert ovs_side not in vsctl("list-ports", bridge).split()

    # ... and unplugging by port id finds a tap plugged under another name through its veth.
    custom = "lvc" + pid[2:10]
    janitor.devices.append(custom)
    assert plug_tap(pid, "fa:16:3e:aa:bb:cc", 1450, ovsdb=driver, bridge=bridge, device=custom).device == custom
    assert redirect_target(custom) == tap_side
    assert unplug(pid, ovsdb=driver)
    assert not any(link_exists(d) for d in (custom, tap_side, ovs_side))


def test_taken_ofport_is_an_error_naming_the_holder(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    first, second = port_id(), port_id()
    janitor.devices += [vif_device_name(first), vif_device_name(second)]
    plug_veth(first, "fa:16:3e:00:00:05", 1450, janitor.netns(), ofport=400, ovsdb=driver, bridge=bridge)
    with pytest.raises(PlugError, match=rf"ofport 400 .* taken by {vif_device_name(first)}"):
        plug_veth(second, "fa:16:3e:00:00:06", 1450, janitor.netns(), ofport=400, ovsdb=driver, bridge=bridge)
    assert vif_device_name(second) not in vsctl("list-ports", bridge).split()


def test_missing_bridge_is_an_error_and_creates_nothing(driver: OvsDriver, janitor: Janitor) -> None:
    pid, vm = port_id(), janitor.netns()
    with pytest.raises(PlugError, match="bridge lv-nosuchbr does not exist"):
        plug_veth(pid, "fa:16:3e:00:00:07", 1450, vm, ovsdb=driver, bridge="lv-nosuchbr")
    assert not link_exists(vif_device_name(pid))


def test_two_vifs_pass_icmp_and_tcp(bridge: str, driver: OvsDriver, janitor: Janitor) -> None:
    """With offloads off, TCP works through the userspace datapath (it silently fails otherwise)."""
    a, b = port_id(), port_id()
    ns_a, ns_b = janitor.netns(), janitor.netns()
    janitor.devices += [vif_device_name(a), vif_device_name(b)]
    plug_veth(a, "fa:16:3e:00:01:01", 1450, ns_a, ovsdb=driver, bridge=bridge, ips=["10.77.0.1/24"])
    plug_veth(b, "fa:16:3e:00:01:02", 1450, ns_b, ovsdb=driver, bridge=bridge, ips=["10.77.0.2/24"])
    sh("ping", "-c", "2", "-i", "0.2", "-W", "2", "10.77.0.2", netns=ns_a)

    assert tcp_transfer(ns_b, ns_a, "10.77.0.2")


def test_cli_plug_and_unplug(bridge: str, janitor: Janitor) -> None:
    pid, vm = port_id(), janitor.netns()
    dev = vif_device_name(pid)
    janitor.devices.append(dev)
    cli = [sys.executable, "-m", "vif.cli"]
    out = subprocess.run(
        [
            *cli,
            "plug",
            "--port-id",
            pid,
            "--mac",
            "fa:16:3e:00:02:01",
            "--mtu",
            "1400",
            "--netns",
            vm,
            "--ofport",
            "555",
            "--bridge",
            bridge,
            "--ovsdb",
            "/var/run/openvswitch/db.sock",
            "--ip",
            "10.78.0.5/24",
            "--gateway",
            "10.78.0.1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    vif = json.loads(out)
    assert (vif["device"], vif["ofport"], vif["mtu"], vif["kind"]) == (dev, 555, 1400, "veth")
    assert "10.78.0.5/24" in sh("ip", "-o", "addr", "show", "eth0", netns=vm)
    assert "default via 10.78.0.1" in sh("ip", "route", netns=vm)

    bad = subprocess.run([*cli, "plug", "--port-id", pid, "--netns", vm], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and "needs --mac" in bad.stderr

    subprocess.run([*cli, "unplug", "--port-id", pid, "--delete-netns", vm], check=True, capture_output=True, cwd=REPO)
    assert not link_exists(dev) and dev not in vsctl("list-ports", bridge).split()
    assert not os.path.exists(f"/run/netns/{vm}")
