"""underlay.ensure inside a namespace with its own OVS: the IP and gateway routes move onto br-phy.

Runs the driver from a thread inside that namespace (as the agent runs on a
hypervisor), and checks with `ip` and `ovs-appctl ovs/route/show` that
ovs-vswitchd now routes the underlay through br-phy.
"""

from __future__ import annotations

import json

import pytest

from dataplane import underlay
from dataplane.common import netns as ns
from dataplane.ovs.driver import OvsDriver
from lab.mininet.ovs_instance import OvsInstance
from tests.integration.vif_fixtures import (
    Janitor,
    sh,
    unique,
)
from vif import link

pytestmark = pytest.mark.ovs


def test_underlay_moves_ip_and_routes_to_br_phy(sandbox_ovs: tuple[str, OvsInstance], janitor: Janitor) -> None:
    netns, instance = sandbox_ovs
    env = instance.paths.env
    peer_ns = janitor.netns()
    # The "NIC": a veth into the sandbox; its peer stands for the rest of the underlay.
    link.ensure_veth_pair("lvnic0", peer_ns, "wire0", peer_mac="02:00:00:00:00:02", mtu=1500, host_netns=netns)
    link.set_addresses("wire0", ["198.51.100.99/24"], netns=peer_ns)
    link.set_addresses("lvnic0", ["198.51.100.7/24"], netns=netns)
    link.add_route("203.0.113.0/24", "198.51.100.1", "lvnic0", netns=netns)
    nic_mac = link.get_link("lvnic0", netns).mac  # type: ignore[union-attr]

    with OvsDriver(instance.paths.db_socket) as driver, ns.NetnsExecutor(netns) as inside:
        inside.submit(underlay.ensure, driver, "lvnic0", "198.51.100.7/24").result()
        inside.submit(underlay.ensure, driver, "lvnic0", "198.51.100.7/24").result()  # idempotent

    addrs = json.loads(sh("ip", "-j", "addr", netns=netns))
    by_dev = {
        a["ifname"]: {f"{i['local']}/{i['prefixlen']}" for i in a["addr_info"] if i["family"] == "inet"} for a in addrs
    }
    assert by_dev["br-phy"] == {"198.51.100.7/24"} and by_dev["lvnic0"] == set()
    br_phy = json.loads(sh("ip", "-j", "link", "show", "br-phy", netns=netns))[0]
    assert br_phy["address"] == nic_mac and "UP" in br_phy["flags"]
    assert "203.0.113.0/24 via 198.51.100.1 dev br-phy" in sh("ip", "route", netns=netns)
    assert sh("ovs-vsctl", "port-to-br", "lvnic0", env=env) == "br-phy"
    assert sh("ovs-vsctl", "get", "Bridge", "br-phy", "datapath_type", env=env) == "netdev"
    routes = sh("ovs-appctl", "ovs/route/show", env=env, netns=netns)
    assert "198.51.100.0/24 dev br-phy" in routes
    # The bridge really switches: the other end of the wire answers through br-phy.
    sh("ping", "-c", "1", "-W", "2", "198.51.100.99", netns=netns)


def test_underlay_nic_must_exist(sandbox_ovs: tuple[str, OvsInstance]) -> None:
    netns, instance = sandbox_ovs
    with OvsDriver(instance.paths.db_socket) as driver, ns.NetnsExecutor(netns) as inside:
        future = inside.submit(underlay.ensure, driver, unique("lvx"), "198.51.100.7/24")
        with pytest.raises(RuntimeError, match=r"underlay NIC lvx\w+ does not exist"):
            future.result()
