"""The lab's external network made real: an upstream router and a server "on the internet" behind it.

    lab external bridge (203.0.113.0/24)  ──  <prefix>-upr  ──  <prefix>-inet
      every hypervisor's ext0                 ext0: .1           eth0: internet .10
                                              inet0: internet .1  default via .1

The upstream router namespace holds the external network's gateway address
(what an external subnet's ``gateway_ip`` names) and forwards between it and
the "internet" subnet (``LabConfig.internet_cidr``), where one server lives.
Floating IPs and routers' external IPs are on-link for it: it ARPs for them,
which is how the tests see who answers. Nothing here touches the machine's
own network: the namespaces are the lab's (claimed, so its cleanup removes
them), the one root-namespace veth is a port of the lab's external bridge.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

from dataplane.common import netns as ns
from dataplane.common.logs import get_logger
from lab.mininet.lab import Lab
from vif import link

log = get_logger(__name__)

UPSTREAM_MAC = "02:00:5e:00:01:01"
SERVER_MAC = "02:00:5e:00:01:10"


def _host(cidr: str, index: int) -> str:
    return str(ipaddress.ip_network(cidr).network_address + index)


@dataclass
class ExternalWorld:
    """Start with ``start()`` once the lab runs; the lab's teardown removes it all."""

    lab: Lab

    @property
    def upstream_netns(self) -> str:
        return f"{self.lab.config.prefix}-upr"

    @property
    def server_netns(self) -> str:
        return f"{self.lab.config.prefix}-inet"

    @property
    def external_cidr(self) -> str:
        return self.lab.config.external_cidr

    @property
    def gateway_ip(self) -> str:
        """The upstream router on the external network (the external subnet's gateway)."""
        return _host(self.external_cidr, 1)

    @property
    def server_ip(self) -> str:
        return _host(self.lab.config.internet_cidr, 10)

    @property
    def upstream_internet_ip(self) -> str:
        return _host(self.lab.config.internet_cidr, 1)

    @property
    def bridge_port(self) -> str:
        return f"{self.lab.config.external_bridge}-up"

    def start(self) -> ExternalWorld:
        cfg = self.lab.config
        for name in (self.upstream_netns, self.server_netns):
            self.lab.claim_netns(name)
        ext_len = ipaddress.ip_network(cfg.external_cidr).prefixlen
        net_len = ipaddress.ip_network(cfg.internet_cidr).prefixlen
        # Upstream router <-> the lab's external bridge.
        link.ensure_veth_pair(self.bridge_port, self.upstream_netns, "ext0", peer_mac=UPSTREAM_MAC, mtu=1500)
        _enslave(self.bridge_port, cfg.external_bridge)
        link.set_link("lo", up=True, netns=self.upstream_netns)
        link.set_addresses("ext0", [f"{self.gateway_ip}/{ext_len}"], netns=self.upstream_netns)
        # Upstream router <-> the server on the internet.
        link.ensure_veth_pair(
            "inet0", self.server_netns, "eth0", peer_mac=SERVER_MAC, mtu=1500, host_netns=self.upstream_netns
        )
        link.set_addresses("inet0", [f"{self.upstream_internet_ip}/{net_len}"], netns=self.upstream_netns)
        link.set_link("lo", up=True, netns=self.server_netns)
        link.set_addresses("eth0", [f"{self.server_ip}/{net_len}"], netns=self.server_netns)
        link.set_default_route(self.upstream_internet_ip, netns=self.server_netns)
        self.run_upstream(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        log.info(
            "external network up",
            upstream=self.upstream_netns,
            gateway=self.gateway_ip,
            server=self.server_ip,
            bridge=cfg.external_bridge,
        )
        return self

    def run_upstream(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(self.upstream_netns, argv, check)

    def run_server(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(self.server_netns, argv, check)

    def neighbor_mac(self, ip: str) -> str | None:
        """The MAC the upstream router holds for ``ip`` (None: none, or not reachable)."""
        out = self.run_upstream(["ip", "-4", "neigh", "show", ip, "dev", "ext0"], check=False).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None

    def forget(self, ip: str) -> None:
        self.run_upstream(["ip", "neigh", "del", ip, "dev", "ext0"], check=False)

    def set_link(self, up: bool) -> None:
        """Cut (or restore) the upstream router's link to the external network."""
        link.set_link("ext0", up=up, netns=self.upstream_netns)

    def stop(self) -> None:
        for name in (self.server_netns, self.upstream_netns):
            ns.delete(name)
            self.lab.release_netns(name)


def _enslave(ifname: str, bridge: str) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname=ifname)
        (master,) = ipr.link_lookup(ifname=bridge)
        ipr.link("set", index=index, master=master, state="up")


def _run(netns: str, argv: list[str], check: bool) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{netns}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc
