"""Floating IPs and gateway SNAT, in br-int flows with conntrack NAT in each router's two zones.

A router has a DNAT zone (``router.zone``) and an SNAT zone (``zone + 1``),
the same on every host: one connection can be SNATed or DNATed when it is
committed, never both later, and traffic between a port and a floating IP of
its own router needs both (OVN splits its zones the same way).

Floating IP ``F`` <-> fixed IP ``X`` of a port on host ``h`` (group
``floatingip``, only on ``h``; dnat_and_snat in OVN's words):

* ARP for ``F`` from the external network is answered on ``h`` alone
  (``provider_ingress`` sends it to the responder); the agent announces ``F``
  by gratuitous ARP when it appears there.
* In: admission for F's MAC un-SNATs in the SNAT zone (replies of connections
  ``X`` opened), then dnat DNATs ``F`` -> ``X`` in the DNAT zone (new
  connections from outside); routing delivers to ``X``.
* Out: routing towards the external network un-DNATs in the DNAT zone (replies
  of connections to ``F``, whose source then is ``F``), then snat SNATs ``X``
  -> ``F`` in the SNAT zone; the source MAC is F's own.
* Hairpin: a packet to ``F`` from a port of the same router is routed to the
  external network like any other, SNATed to the sender's floating IP (or
  redirected to the gateway for SNAT), and comes back in through admission on
  F's host; one flow per floating IP, never one per pair.

Gateway SNAT (group ``gateway``, on every host where the router is present):
a source in one of the router's subnets without a floating IP is sent over the
BFD-watched gateway tunnel routing chose (``reg2``, a ``bundle_load`` over the
gateway hosts in order), with the router's tag as VNI and the next hop in the
low 32 bits of the inner destination MAC; a gateway host that routing chose
itself (``reg2`` = 0xffff, every gateway ahead of it down) and one that
receives such a packet SNAT it to the router's external IP and send it out
its own provider bridge. Only the gateway the order makes active answers ARP
for the external IP (the same ``bundle_load`` in ``provider_ingress``). The
choice is made in the switch, from BFD: no controller or agent is needed to
fail over; the agent only announces the address and reports the role.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.compiler import l2, l3
from controller.compiler.feature import Feature, GroupKey, HostGroups, touch
from controller.compiler.topology import Topology, is_vif_port
from controller.model import (
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    Agent,
    FloatingIP,
    Network,
    Port,
    Resource,
    Router,
    Subnet,
)
from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.fields import ETH_TYPE_ARP, ETH_TYPE_IPV4
from dataplane.contract.flow import Action, BundleLoad, Ct, Flow, Match, Move, Nat, Output, SetField

PRIO_FIP = 200
PRIO_SNAT = 100
PRIO_NO_GATEWAY = 50
PRIO_ARP_GATE = 200
# The inner destination MAC of a packet redirected to a gateway: locally administered, next hop in the low bits.
REDIRECT_MAC = "02:00:00:00:00:00"


def dnat_zone(router: Router) -> int:
    return router.zone


def snat_zone(router: Router) -> int:
    return router.zone + 1


def _arp_gate(net_tag: int, ip: str, cookie: int, before: tuple[int, ...] | None = None) -> Flow:
    """ARP for an address this host owns on the external network goes to the responder (for the router's
    external IP only when every gateway ahead of this host is down: reg2 = 0xffff)."""
    choose: tuple[Action, ...] = ()
    if before is not None:
        choose = (BundleLoad(before, p.REG_GATEWAY_CHOICE),) if before else (SetField(p.REG_GATEWAY_CHOICE, 0xFFFF),)
    return Flow(
        p.PROVIDER_INGRESS,
        PRIO_ARP_GATE,
        Match.of(metadata=net_tag, eth_type=ETH_TYPE_ARP, arp_op=1, arp_tpa=ip),
        choose,
        goto=p.ARP_RESPONDER,
        cookie=cookie,
    )


# ---------------------------------------------------------------- floating IPs


def fip_flows(topo: Topology, fip_id: str, host: str) -> tuple[Flow, ...]:
    fip = topo.l3.floating_ips.get(fip_id)
    if fip is None or l3.fip_host(topo, fip) != host:
        return ()
    router = topo.l3.routers[fip.router_id]
    net = topo.networks.get(fip.floating_network_id)
    floating_port = topo.ports.get(fip.floating_port_id)
    port = topo.ports[fip.port_id]
    if net is None or floating_port is None or fip.fixed_ip_address not in port.ips:
        return ()
    if topo.physnet_ofport(host, net.physical_network) is None:
        return ()  # this host does not map the external network: the floating IP cannot be NATed here
    cookie = make_cookie(CookieKind.FLOATING_IP, fip.tag)
    f, x, mac = fip.floating_ip_address, fip.fixed_ip_address, floating_port.mac_address
    r = router.tag
    flows = [
        _arp_gate(net.tag, f, cookie),
        *l2._arp_responder(net.tag, mac, (f,), cookie),
        *l3.admission_flows(net.tag, mac, r, cookie, unsnat_zone=snat_zone(router)),
        Flow(
            p.DNAT,
            PRIO_FIP,
            Match.of(reg4=r, metadata=net.tag, eth_type=ETH_TYPE_IPV4, ipv4_dst=f),
            (Ct(commit=True, zone=dnat_zone(router), table=p.ROUTING, nat=Nat(dst=True, ip_min=x)),),
            cookie=cookie,
        ),
        # Out: SNAT X -> F (after routing un-DNATed replies, whose source is F already, below).
        Flow(
            p.SNAT,
            PRIO_FIP,
            Match.of(reg4=r, metadata=net.tag, eth_type=ETH_TYPE_IPV4, ipv4_src=x),
            (Ct(commit=True, zone=snat_zone(router), nat=Nat(src=True, ip_min=f)), SetField.of("eth_src", mac)),
            goto=p.NEIGHBOR,
            cookie=cookie,
        ),
        Flow(
            p.SNAT,
            PRIO_FIP,
            Match.of(reg4=r, metadata=net.tag, eth_type=ETH_TYPE_IPV4, ipv4_src=f),
            (SetField.of("eth_src", mac),),
            goto=p.NEIGHBOR,
            cookie=cookie,
        ),
    ]
    return tuple(flows)


# ---------------------------------------------------------------- gateway SNAT


def snat_subnets(topo: Topology, router_id: str) -> list[str]:
    """The CIDRs of the router's internal subnets: the sources it SNATs."""
    cidrs = []
    for port in l3.interfaces(topo, router_id):
        for fixed in port.fixed_ips:
            subnet = topo.subnets.get(fixed.subnet_id)
            if subnet is not None and subnet.cidr not in cidrs:
                cidrs.append(subnet.cidr)
    return sorted(cidrs)


def gateway_flows(topo: Topology, router_id: str, host: str) -> tuple[Flow, ...]:
    if not l3.router_present(topo, router_id, host):
        return ()
    router = topo.l3.routers[router_id]
    gw_port = l3.gateway_port(topo, router)
    external_ip = l3.snat_address(topo, router)
    if gw_port is None or external_ip is None:
        return ()
    net = topo.networks[router.gateway_network_id]
    cookie = make_cookie(CookieKind.ROUTER_GATEWAY, router.tag)
    r = router.tag
    order = l3.gateway_hosts(topo, router)
    is_gateway = host in order
    ahead = order[: order.index(host)] if is_gateway else order
    ports = [(h, l3.gateway_tunnel_ofport(topo, h)) for h in ahead]
    flows: list[Flow] = []
    local_snat: tuple[Action, ...] = (
        (Ct(commit=True, zone=snat_zone(router), nat=Nat(src=True, ip_min=external_ip)),) if router.enable_snat else ()
    ) + (SetField.of("eth_src", gw_port.mac_address),)
    for cidr in snat_subnets(topo, router_id):
        src = _network(cidr)
        base = {"reg4": r, "metadata": net.tag, "eth_type": ETH_TYPE_IPV4, "ipv4_src": src}
        for _, ofport in ports:
            if ofport is None:
                continue
            flows.append(
                Flow(
                    p.SNAT,
                    PRIO_SNAT,
                    Match.of(**base, reg2=ofport),  # type: ignore[arg-type]
                    _redirect(r, ofport),
                    cookie=cookie,
                )
            )
        if is_gateway:
            flows.append(
                Flow(
                    p.SNAT,
                    PRIO_SNAT,
                    Match.of(**base, reg2=0xFFFF),  # type: ignore[arg-type]
                    local_snat,
                    goto=p.NEIGHBOR,
                    cookie=cookie,
                )
            )
        # No live gateway (or none at all): never leave with a private source address.
        flows.append(Flow(p.SNAT, PRIO_NO_GATEWAY, Match.of(**base), cookie=cookie))  # type: ignore[arg-type]
    if is_gateway and topo.physnet_ofport(host, net.physical_network) is not None:
        # Packets the other hosts redirect here: the router, this host chosen, the next hop from the inner MAC.
        for peer in sorted(topo.agents):
            peer_port = l3.gateway_tunnel_ofport(topo, peer)
            if peer == host or peer_port is None:
                continue
            flows.append(
                Flow(
                    p.CLASSIFY,
                    PRIO_SNAT,
                    Match.of(in_port=peer_port, tunnel_id=r),
                    (
                        SetField(p.REG_NETWORK, net.tag),
                        SetField(p.REG_ROUTER, r),
                        SetField(p.REG_GATEWAY_CHOICE, 0xFFFF),
                        SetField(p.REG_SRC_PORT, 0),
                        Move("eth_dst", p.REG_NEXT_HOP, 32),
                    ),
                    goto=p.SNAT,
                    cookie=cookie,
                )
            )
        before = tuple(port for _, port in ports if port is not None)
        flows.append(_arp_gate(net.tag, external_ip, cookie, before))
        flows.append(
            Flow(
                p.ARP_RESPONDER,
                l2.PRIO_ENTRY,
                Match.of(metadata=net.tag, eth_type=ETH_TYPE_ARP, arp_op=1, arp_tpa=external_ip, reg2=0xFFFF),
                l2.arp_reply_actions(gw_port.mac_address, external_ip),
                cookie=cookie,
            )
        )
        flows.extend(l3.admission_flows(net.tag, gw_port.mac_address, r, cookie, unsnat_zone=snat_zone(router)))
    return tuple(flows)


def _network(cidr: str) -> tuple[str, str]:
    import ipaddress

    net = ipaddress.IPv4Network(cidr)
    return str(net.network_address), str(net.netmask)


def _redirect(router_tag: int, ofport: int) -> tuple[Action, ...]:
    return (
        SetField("tunnel_id", router_tag),
        SetField.of("eth_dst", REDIRECT_MAC),
        Move(p.REG_NEXT_HOP, "eth_dst", 32),
        Output(ofport),
    )


# ---------------------------------------------------------------- the feature


class NatFeature(Feature):
    """Floating IPs (on their port's host) and SNAT through the routers' gateway hosts."""

    name = p.NAT
    group_kinds = ("floatingip", "gateway")
    number = 4

    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        kind, obj_id = key
        if kind == "floatingip":
            return fip_flows(topo, obj_id, host)
        if kind == "gateway":
            return gateway_flows(topo, obj_id, host)
        return ()

    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        kind, obj_id = key
        if kind == "floatingip":
            fip = topo.l3.floating_ips.get(obj_id)
            return make_cookie(CookieKind.FLOATING_IP, fip.tag) if fip else None
        if kind == "gateway":
            router = topo.l3.routers.get(obj_id)
            return make_cookie(CookieKind.ROUTER_GATEWAY, router.tag) if router else None
        return None

    def host_groups(self, topo: Topology, host: str) -> Iterable[GroupKey]:
        for router_id in sorted(l3.routers_on_host(topo, host)):
            yield ("gateway", router_id)
            for fip_id in sorted(topo.l3.fips_by_router.get(router_id, ())):
                yield ("floatingip", fip_id)

    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        out: HostGroups = {}
        for obj in (old, new):
            if isinstance(obj, FloatingIP):
                host = l3.fip_host(topo, obj)
                if host is not None:
                    touch(out, host, ("floatingip", obj.id))
            elif isinstance(obj, Router):
                self._router(topo, obj.id, out)
            elif isinstance(obj, Port):
                if obj.device_owner in (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_GATEWAY) and obj.device_id:
                    self._router(topo, obj.device_id, out)
                if is_vif_port(obj) or obj.id in topo.l3.fip_by_floating_port:
                    fip_ids = set(topo.l3.fips_by_port.get(obj.id, ()))
                    if obj.id in topo.l3.fip_by_floating_port:
                        fip_ids.add(topo.l3.fip_by_floating_port[obj.id])
                    for fip_id in fip_ids:
                        fip = topo.l3.floating_ips.get(fip_id)
                        host = l3.fip_host(topo, fip) if fip is not None else None
                        if host is not None:
                            touch(out, host, ("floatingip", fip_id))
            elif isinstance(obj, Network | Subnet):
                net_id = obj.id if isinstance(obj, Network) else obj.network_id
                for r in topo.l3.routers_on(net_id):
                    self._router(topo, r, out)
            elif isinstance(obj, Agent):
                for routers in list(topo.l3.gateway_routers.values()):
                    for r in routers:
                        self._router(topo, r, out)
        return out

    @staticmethod
    def _router(topo: Topology, router_id: str, out: HostGroups) -> None:
        hosts = l3.router_hosts(topo, router_id)
        for h in hosts:
            touch(out, h, ("gateway", router_id))
        for fip_id in topo.l3.fips_by_router.get(router_id, ()):
            host = l3.fip_host(topo, topo.l3.floating_ips[fip_id])
            if host is not None:
                touch(out, host, ("floatingip", fip_id))

    def membership(self, topo: Topology, host: str, network_id: str) -> set[GroupKey]:
        keys: set[GroupKey] = set()
        for r in topo.l3.routers_on(network_id):
            keys.add(("gateway", r))
            keys.update(("floatingip", f) for f in topo.l3.fips_by_router.get(r, ()))
        return keys
