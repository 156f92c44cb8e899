"""Provider (flat and VLAN) networks: in and out through a bridge mapping's patch port.

An agent started with ``--bridge-mappings PHYSNET:BRIDGE[:NIC]`` creates the
bridge (in the switch's datapath type), adds the NIC and patches the bridge to
br-int; the i-th mapping's patch port is OpenFlow port ``PATCH_OFPORT_MIN + i``
on br-int, which the controller knows from the agent's registration. A
provider network is present on a host that maps its physical network and has a
VIF on it, or runs a router whose gateway is on it (floating IPs, SNAT).

Flows (cookie ``provider``, tag = the network's):

* ``classify`` (0): from the patch port, untagged (flat) or with the network's
  VLAN (popped): ``metadata`` := the network, ``reg6`` := 0, to provider_ingress.
* ``provider_ingress`` (5): DHCP requests and ARP for the network's localport
  from the physical network are dropped (every host's localport serves its own
  VMs, and would all answer); other ARP goes to L2 (flooded to this host's VMs,
  which answer for themselves; NAT adds the addresses this host answers for);
  everything else to routing admission, then L2.
* ``provider_egress`` (65): push the VLAN (if any), out the patch port.

L2 (``controller.compiler.l2``) switches the network's local ports as for
VXLAN and resubmits to provider_egress what must leave the host.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.compiler import l2, l3
from controller.compiler.feature import Feature, GroupKey, HostGroups, touch
from controller.compiler.topology import Topology
from controller.model import (
    OWNER_DHCP,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    Agent,
    Network,
    Port,
    Resource,
    Router,
    Subnet,
)
from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.fields import ETH_TYPE_ARP, ETH_TYPE_IPV4, IP_PROTO_UDP
from dataplane.contract.flow import Action, Flow, Match, Output, PopVlan, PushVlan, SetField

VLAN_PRESENT = 0x1000  # OFPVID_PRESENT
PRIO_CLASSIFY = 100
PRIO_DROP = 300
PRIO_ARP = 100
PRIO_ADMISSION = 10


def present(topo: Topology, network_id: str, host: str) -> bool:
    """Whether the provider network's bridge flows belong on ``host``."""
    net = topo.networks.get(network_id)
    if not l2.network_active(net) or net is None or not l2.is_provider(net):
        return False
    if topo.physnet_ofport(host, net.physical_network) is None:
        return False
    if topo.host_has_network(host, network_id):
        return True
    return any(l3.router_present(topo, r, host) for r in topo.l3.gateway_routers.get(network_id, ()))


def provider_flows(topo: Topology, network_id: str, host: str) -> tuple[Flow, ...]:
    if not present(topo, network_id, host):
        return ()
    net = topo.networks[network_id]
    ofport = topo.physnet_ofport(host, net.physical_network)
    assert ofport is not None
    cookie = make_cookie(CookieKind.PROVIDER, net.tag)
    vlan = net.segmentation_id if net.network_type == "vlan" else 0
    tagged = VLAN_PRESENT | vlan if vlan else 0
    untag: tuple[Action, ...] = (PopVlan(),) if vlan else ()
    tag: tuple[Action, ...] = (PushVlan(), SetField("vlan_vid", tagged)) if vlan else ()
    flows = [
        Flow(
            p.CLASSIFY,
            PRIO_CLASSIFY,
            Match.of(in_port=ofport, vlan_vid=tagged),
            (*untag, SetField(p.REG_NETWORK, net.tag), SetField(p.REG_SRC_PORT, 0)),
            goto=p.PROVIDER_INGRESS,
            cookie=cookie,
        ),
        Flow(
            p.PROVIDER_INGRESS,
            PRIO_DROP,
            Match.of(metadata=net.tag, eth_type=ETH_TYPE_IPV4, ip_proto=IP_PROTO_UDP, udp_dst=67),
            cookie=cookie,
        ),
        Flow(
            p.PROVIDER_INGRESS,
            PRIO_ARP,
            Match.of(metadata=net.tag, eth_type=ETH_TYPE_ARP),
            goto=p.L2_LOOKUP,
            cookie=cookie,
        ),
        Flow(p.PROVIDER_INGRESS, PRIO_ADMISSION, Match.of(metadata=net.tag), goto=p.L3_LOOKUP, cookie=cookie),
        Flow(p.PROVIDER_EGRESS, 100, Match.of(metadata=net.tag), (*tag, Output(ofport)), cookie=cookie),
    ]
    dhcp = topo.dhcp_ports.get(network_id)
    if dhcp is not None:
        flows.append(
            Flow(p.PROVIDER_INGRESS, PRIO_DROP, Match.of(metadata=net.tag, eth_dst=dhcp.mac_address), cookie=cookie)
        )
        for ip in l2.localport_ips(topo, network_id):
            flows.append(
                Flow(
                    p.PROVIDER_INGRESS,
                    PRIO_DROP,
                    Match.of(metadata=net.tag, eth_type=ETH_TYPE_ARP, arp_tpa=ip),
                    cookie=cookie,
                )
            )
    return tuple(flows)


class ProviderFeature(Feature):
    """Flat and VLAN networks through the agent's bridge mappings."""

    name = p.PROVIDER
    group_kinds = ("provider",)
    number = 5

    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        kind, obj_id = key
        return provider_flows(topo, obj_id, host) if kind == "provider" else ()

    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        net = topo.networks.get(key[1])
        return make_cookie(CookieKind.PROVIDER, net.tag) if net is not None and key[0] == "provider" else None

    def host_groups(self, topo: Topology, host: str) -> Iterable[GroupKey]:
        nets = set(topo.networks_of_host(host))
        for r in l3.routers_on_host(topo, host):
            router = topo.l3.routers[r]
            if router.gateway_network_id:
                nets.add(router.gateway_network_id)
        for net_id in sorted(nets):
            net = topo.networks.get(net_id)
            if net is not None and l2.is_provider(net):
                yield ("provider", net_id)

    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        out: HostGroups = {}
        for obj in (old, new):
            if isinstance(obj, Network):
                self._network(topo, obj.id, out)
                # Its routers may appear or vanish where it has VIFs, and their external network with them.
                for r in topo.l3.routers_on(obj.id):
                    self._router(topo, r, out)
            elif isinstance(obj, Port) and obj.device_owner == OWNER_DHCP:
                self._network(topo, obj.network_id, out)  # its localport is dropped from the physical side
            elif isinstance(obj, Subnet):
                self._network(topo, obj.network_id, out)
            elif isinstance(obj, Router) and obj.gateway_network_id:
                for h in l3.router_hosts(topo, obj.id):
                    touch(out, h, ("provider", obj.gateway_network_id))
            elif isinstance(obj, Port) and obj.device_owner in (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_GATEWAY):
                self._router(topo, obj.device_id, out)
            elif isinstance(obj, Agent):
                for net_id in topo.l3.gateway_routers:
                    for r in topo.l3.gateway_routers[net_id]:
                        for h in l3.router_hosts(topo, r):
                            touch(out, h, ("provider", net_id))
        return out

    @staticmethod
    def _router(topo: Topology, router_id: str, out: HostGroups) -> None:
        router = topo.l3.routers.get(router_id)
        if router is not None and router.gateway_network_id:
            for h in l3.router_hosts(topo, router_id):
                touch(out, h, ("provider", router.gateway_network_id))

    @staticmethod
    def _network(topo: Topology, network_id: str, out: HostGroups) -> None:
        hosts = topo.hosts_of_network(network_id)
        for r in topo.l3.gateway_routers.get(network_id, ()):
            hosts |= l3.router_hosts(topo, r)
        for h in hosts:
            touch(out, h, ("provider", network_id))

    def membership(self, topo: Topology, host: str, network_id: str) -> set[GroupKey]:
        keys: set[GroupKey] = {("provider", network_id)}
        # A first VIF on a routed network brings its routers, and with them their external networks.
        for r in topo.l3.routers_on(network_id):
            router = topo.l3.routers.get(r)
            if router is not None and router.gateway_network_id:
                keys.add(("provider", router.gateway_network_id))
        return keys
