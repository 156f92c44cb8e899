"""The agent's localports: one namespace per network, attached to br-int, for DHCP and metadata.

Each network with local ports and a DHCP-enabled subnet gets a namespace whose
interface carries the network's ``network:dhcp`` port MAC and IPs (the same on
every host) plus 169.254.169.254/32 for the metadata proxy. This module keeps
that set equal to the desired one and knows each localport's OpenFlow port, so
the agent can render its binding flows.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataplane import localport_device
from dataplane.common.constants import LOCALPORT_OFPORT_MAX, LOCALPORT_OFPORT_MIN, METADATA_IP
from dataplane.common.logs import get_logger
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.types import IFACE_ID, LOOM_OWNER
from protos.loom.v1 import agent_pb2

log = get_logger(__name__)

NS_IFNAME = "lp0"


@dataclass(frozen=True, slots=True)
class LocalportState:
    network_id: str
    name: str  # OVS port / host-side device name
    netns: str
    ofport: int
    signature: tuple  # what it was built from: rebuild when this changes


def device_name(network_id: str) -> str:
    """<= 15 characters, stable per network."""
    return "lp" + network_id.replace("-", "")[:11]


def _signature(net: agent_pb2.LocalNetwork) -> tuple:
    return (net.localport_id, net.localport_mac.lower(), tuple(net.localport_ips), net.mtu)


class LocalportManager:
    def __init__(self, driver: OvsDriver, namespace_prefix: str) -> None:
        self.driver = driver
        self.prefix = namespace_prefix
        self.ports: dict[str, LocalportState] = {}
        self._adopted = False

    def namespace(self, network_id: str) -> str:
        return f"{self.prefix}{network_id[:13]}"

    def locate(self, network_id: str) -> tuple[str, str]:
        """(namespace, interface) of a network's localport, for dnsmasq and the metadata proxy."""
        return self.namespace(network_id), NS_IFNAME

    def sync(self, networks: dict[str, agent_pb2.LocalNetwork]) -> bool:
        """Make the localports match ``networks`` (the complete desired set). True if anything changed."""
        self.adopt()
        changed = False
        for network_id in [n for n in self.ports if n not in networks]:
            self._remove(self.ports.pop(network_id))
            changed = True
        for network_id, net in networks.items():
            current = self.ports.get(network_id)
            if current is not None and current.signature == _signature(net):
                continue
            self.ports[network_id] = self._build(net, current)
            changed = True
        return changed

    def adopt(self) -> None:
        """Take over the localports a previous agent run left (once): their flows must be rendered from
        the first install on, or a restarted agent would remove them and add them back."""
        if self._adopted:
            return
        self._adopted = True
        for info in self.driver.list_ports():
            if info.external_ids.get(LOOM_OWNER) != "localport":
                continue
            network_id = info.external_ids.get("loom-network-id", "")
            if not network_id or info.ofport <= 0:
                continue
            self.ports[network_id] = LocalportState(
                network_id, info.name, self.namespace(network_id), info.ofport, signature=()
            )

    def _free_ofport(self, network_id: str) -> int:
        used = {s.ofport for n, s in self.ports.items() if n != network_id}
        for ofport in range(LOCALPORT_OFPORT_MIN, LOCALPORT_OFPORT_MAX + 1):
            if ofport not in used:
                return ofport
        raise RuntimeError("no free localport OpenFlow port number")

    def _build(self, net: agent_pb2.LocalNetwork, current: LocalportState | None) -> LocalportState:
        name = device_name(net.network_id)
        netns = self.namespace(net.network_id)
        ofport = current.ofport if current else self._free_ofport(net.network_id)
        lp = localport_device.add_localport(
            self.driver,
            name,
            netns,
            net.localport_mac,
            [*net.localport_ips, f"{METADATA_IP}/32"],
            net.mtu or 1450,
            ofport_request=ofport,
            ns_ifname=NS_IFNAME,
            external_ids={IFACE_ID: net.localport_id, "loom-network-id": net.network_id},
        )
        log.info("localport in place", network_id=net.network_id, netns=netns, ofport=lp.ofport)
        return LocalportState(net.network_id, name, netns, lp.ofport, _signature(net))

    def _remove(self, state: LocalportState) -> None:
        localport_device.remove_localport(self.driver, state.name, state.netns, delete_netns=True)
        log.info("localport removed", network_id=state.network_id, netns=state.netns)
