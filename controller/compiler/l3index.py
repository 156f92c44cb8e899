"""The topology's indexes of routers, their ports and floating IPs.

``Topology`` owns one :class:`L3Index` and feeds it every router, floating IP
and port it applies; the L3, NAT and provider features read it to answer, in
O(1), which routers touch a network, a router's interfaces and gateway port,
and which floating IPs a port has.

A router's ports are ordinary ports: its interfaces (device_owner
``network:router_interface``) and its gateway port (``network:router_gateway``),
both with ``device_id`` = the router's id. A floating IP's address is held by a
``network:floatingip`` port on the external network.
"""

from __future__ import annotations

from collections import defaultdict

from controller.model import OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE, FloatingIP, Port, Router


class L3Index:
    """Routers, router ports and floating IPs, indexed. Mutated only through Topology."""

    def __init__(self) -> None:
        self.routers: dict[str, Router] = {}
        self.floating_ips: dict[str, FloatingIP] = {}
        # router id -> its interface ports (by port id)
        self.interfaces: dict[str, dict[str, Port]] = defaultdict(dict)
        # router id -> its gateway port
        self.gateway_ports: dict[str, Port] = {}
        # network id -> routers with an interface on it -> how many interfaces
        self.routers_by_network: dict[str, dict[str, int]] = defaultdict(dict)
        # external network id -> routers whose gateway is on it
        self.gateway_routers: dict[str, set[str]] = defaultdict(set)
        # port id -> floating IPs associated with it
        self.fips_by_port: dict[str, set[str]] = defaultdict(set)
        # router id -> floating IPs it NATs
        self.fips_by_router: dict[str, set[str]] = defaultdict(set)
        # floating port id (network:floatingip) -> its floating IP
        self.fip_by_floating_port: dict[str, str] = {}
        # floating IP id -> its floating port id (the FIP may name it before the port is applied)
        self._fip_ports: dict[str, str] = {}

    # ------------------------------------------------------------ routers

    def put_router(self, router: Router) -> None:
        old = self.routers.get(router.id)
        if old is not None and old.gateway_network_id:
            self._discard(self.gateway_routers, old.gateway_network_id, router.id)
        self.routers[router.id] = router
        if router.gateway_network_id:
            self.gateway_routers[router.gateway_network_id].add(router.id)

    def delete_router(self, router_id: str) -> None:
        old = self.routers.pop(router_id, None)
        if old is not None and old.gateway_network_id:
            self._discard(self.gateway_routers, old.gateway_network_id, router_id)

    # ------------------------------------------------------------ floating IPs

    def put_floating_ip(self, fip: FloatingIP) -> None:
        self.delete_floating_ip(fip.id)
        self.floating_ips[fip.id] = fip
        if fip.port_id:
            self.fips_by_port[fip.port_id].add(fip.id)
        if fip.router_id:
            self.fips_by_router[fip.router_id].add(fip.id)
        if fip.floating_port_id:
            self.fip_by_floating_port[fip.floating_port_id] = fip.id
            self._fip_ports[fip.id] = fip.floating_port_id

    def delete_floating_ip(self, fip_id: str) -> None:
        old = self.floating_ips.pop(fip_id, None)
        if old is None:
            return
        if old.port_id:
            self._discard(self.fips_by_port, old.port_id, fip_id)
        if old.router_id:
            self._discard(self.fips_by_router, old.router_id, fip_id)
        port_id = self._fip_ports.pop(fip_id, None)
        if port_id is not None and self.fip_by_floating_port.get(port_id) == fip_id:
            del self.fip_by_floating_port[port_id]

    # ------------------------------------------------------------ ports

    def put_port(self, port: Port) -> None:
        if port.device_owner == OWNER_ROUTER_INTERFACE and port.device_id:
            self.interfaces[port.device_id][port.id] = port
            by_net = self.routers_by_network[port.network_id]
            by_net[port.device_id] = by_net.get(port.device_id, 0) + 1
        elif port.device_owner == OWNER_ROUTER_GATEWAY and port.device_id:
            self.gateway_ports[port.device_id] = port

    def remove_port(self, port: Port) -> None:
        if port.device_owner == OWNER_ROUTER_INTERFACE and port.device_id:
            ifaces = self.interfaces.get(port.device_id)
            if ifaces is not None:
                ifaces.pop(port.id, None)
                if not ifaces:
                    del self.interfaces[port.device_id]
            by_net = self.routers_by_network.get(port.network_id)
            if by_net is not None and port.device_id in by_net:
                by_net[port.device_id] -= 1
                if by_net[port.device_id] <= 0:
                    del by_net[port.device_id]
                if not by_net:
                    del self.routers_by_network[port.network_id]
        elif (
            port.device_owner == OWNER_ROUTER_GATEWAY
            and port.device_id
            and self.gateway_ports.get(port.device_id, port).id == port.id
        ):
            self.gateway_ports.pop(port.device_id, None)

    # ------------------------------------------------------------ queries

    def router_interfaces(self, router_id: str) -> list[Port]:
        """The router's interface ports, in a stable order (by port tag)."""
        return sorted(self.interfaces.get(router_id, {}).values(), key=lambda p: p.tag)

    def routers_on(self, network_id: str) -> set[str]:
        """Routers with an interface on the network, or their gateway there."""
        return set(self.routers_by_network.get(network_id, ())) | self.gateway_routers.get(network_id, set())

    def floating_ip_of_port(self, floating_port_id: str) -> FloatingIP | None:
        fip_id = self.fip_by_floating_port.get(floating_port_id)
        return self.floating_ips.get(fip_id) if fip_id else None

    @staticmethod
    def _discard(index: dict[str, set[str]], key: str, value: str) -> None:
        values = index.get(key)
        if values is not None:
            values.discard(value)
            if not values:
                del index[key]
