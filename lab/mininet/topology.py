"""The lab's Mininet network: hypervisor hosts and three Linux bridges (management, underlay, external).

Mininet gives each hypervisor a network namespace (a host) and wires it with
veth pairs to Linux bridges in the root namespace. Hosts get no addresses
from Mininet; the lab configures them itself. We bypass ``Mininet.init()``,
which raises machine-wide sysctls and rlimits, since the lab needs none of it.
"""

from __future__ import annotations

import logging

from mininet.link import Link
from mininet.log import setLogLevel
from mininet.moduledeps import pathCheck
from mininet.net import Mininet
from mininet.node import Host
from mininet.nodelib import LinuxBridge

from lab.mininet.config import EXTERNAL_NIC, MGMT_NIC, UNDERLAY_NIC, LabConfig

# Importing mininet.log makes every logger created afterwards, in any module, a MininetLogger
# with its own console handler and level (so their info lines vanish or print twice); undo that.
logging.setLoggerClass(logging.Logger)


class LabBridge(LinuxBridge):
    """A Linux bridge without Mininet's set-up warning about bridge-nf-call-*tables.

    That sysctl is machine-wide and 1 here; with no iptables rules loaded it
    lets bridged frames through, and the lab must not change machine settings.
    """

    @classmethod
    def setup(cls) -> None:
        pathCheck("brctl", moduleName="bridge-utils")


def build(config: LabConfig) -> Mininet:
    """Create and start the hosts, bridges and links (nothing is configured inside the hosts yet)."""
    setLogLevel("warning")
    Mininet.inited = True  # skip fixLimits(): no machine-wide sysctl changes
    net = Mininet(
        topo=None,
        build=False,
        controller=None,
        host=Host,
        switch=LabBridge,
        link=Link,
        autoSetMacs=False,
        autoStaticArp=False,
        waitConnected=False,
    )
    bridges = {
        MGMT_NIC: net.addSwitch(config.mgmt_bridge, dpid="1"),
        UNDERLAY_NIC: net.addSwitch(config.underlay_bridge, dpid="2"),
        EXTERNAL_NIC: net.addSwitch(config.external_bridge, dpid="3"),
    }
    for index in range(1, config.hypervisors + 1):
        host = net.addHost(config.hv_netns(index), ip=None)
        for nic, bridge in bridges.items():
            net.addLink(host, bridge, intfName1=nic)
    net.build()
    net.start()
    return net
