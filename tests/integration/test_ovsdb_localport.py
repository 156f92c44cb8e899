"""Localports: the service namespace's veth on br-int (addresses, OVS row, idempotence, reachability)."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from dataplane.localport_device import add_localport, remove_localport
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.idl import OvsdbError
from tests.integration.vif_fixtures import (
    Janitor,
    link_exists,
    port_id,
    sh,
    tcp_transfer,
    tx_checksum,
    vsctl,
)
from vif.names import vif_device_name
from vif.plug import plug_veth

pytestmark = pytest.mark.ovs


def addresses(ifname: str, netns: str) -> set[str]:
    info = json.loads(sh("ip", "-j", "addr", "show", ifname, netns=netns))[0]
    return {f"{a['local']}/{a['prefixlen']}" for a in info["addr_info"] if a["scope"] != "link"}


def test_localport_lifecycle(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    name, netns = "lvlp" + uuid.uuid4().hex[:8], janitor.netns()
    janitor.devices.append(name)
    lp = add_localport(
        driver,
        name,
        netns,
        "FA:16:3E:DD:00:01",
        ["10.80.0.2/24", "169.254.169.254/32"],
        1450,
        ofport_request=65001,
        bridge=bridge,
        ns_ifname="svc0",
        external_ids={"loom-network": "net-1"},
    )
    assert (lp.ofport, lp.ns_ifname, lp.mac) == (65001, "svc0", "fa:16:3e:dd:00:01")
    assert addresses("svc0", netns) == {"10.80.0.2/24", "169.254.169.254/32"}
    inner = json.loads(sh("ip", "-j", "link", "show", "svc0", netns=netns))[0]
    assert (inner["address"], inner["mtu"]) == ("fa:16:3e:dd:00:01", 1450)
    assert tx_checksum(name) == "off" and tx_checksum("svc0", netns=netns) == "off"
    assert vsctl("port-to-br", name) == bridge
    assert vsctl("get", "Interface", name, "ofport") == "65001"
    assert vsctl("get", "Interface", name, "external_ids:loom-owner") == "localport"
    assert vsctl("get", "Interface", name, "external_ids:loom-network").strip('"') == "net-1"

    # Idempotent; a changed address set is made exact.
    assert (
        add_localport(
            driver,
            name,
            netns,
            "fa:16:3e:dd:00:01",
            ["10.80.0.2/24", "169.254.169.254/32"],
            1450,
            ofport_request=65001,
            bridge=bridge,
            ns_ifname="svc0",
        )
        == lp
    )
    add_localport(
        driver,
        name,
        netns,
        "fa:16:3e:dd:00:01",
        ["10.80.0.3/24"],
        1450,
        ofport_request=65001,
        bridge=bridge,
        ns_ifname="svc0",
    )
    assert addresses("svc0", netns) == {"10.80.0.3/24"}

    assert remove_localport(driver, name, netns, delete_netns=True) is True
    assert not link_exists(name) and name not in vsctl("list-ports", bridge).split()
    assert not os.path.exists(f"/run/netns/{netns}")
    assert remove_localport(driver, name, netns, delete_netns=True) is False


def test_localport_is_reachable_from_a_vif(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    """ICMP and TCP between a VM and the service namespace (offloads off on the localport too)."""
    name, svc = "lvlp" + uuid.uuid4().hex[:8], janitor.netns()
    janitor.devices.append(name)
    add_localport(driver, name, svc, "fa:16:3e:dd:00:02", ["10.81.0.2/24"], 1450, bridge=bridge)
    pid, vm = port_id(), janitor.netns()
    janitor.devices.append(vif_device_name(pid))
    plug_veth(pid, "fa:16:3e:dd:00:03", 1450, vm, ovsdb=driver, bridge=bridge, ips=["10.81.0.10/24"])
    sh("ping", "-c", "2", "-i", "0.2", "-W", "2", "10.81.0.2", netns=vm)
    assert tcp_transfer(svc, vm, "10.81.0.2", nbytes=500_000, port=8080)


def test_taken_localport_ofport_is_an_error(driver: OvsDriver, bridge: str, janitor: Janitor) -> None:
    first, second = "lvlp" + uuid.uuid4().hex[:8], "lvlp" + uuid.uuid4().hex[:8]
    janitor.devices += [first, second]
    add_localport(driver, first, janitor.netns(), "fa:16:3e:dd:00:04", ["10.82.0.2/24"], 1450, 65010, bridge)
    with pytest.raises(OvsdbError, match=rf"localport {second} .* not the requested 65010"):
        add_localport(driver, second, janitor.netns(), "fa:16:3e:dd:00:05", ["10.82.0.3/24"], 1450, 65010, bridge)
