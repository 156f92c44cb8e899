"""The OVSDB driver: bridges, ports, the tunnel port, the interface monitor.

Every call is idempotent ("ensure"): it reads the replica, writes only what
differs and, when it wrote, waits until ovs-vswitchd applied the change (like
ovs-vsctl), so callers see final OpenFlow port numbers. Errors name the bridge
or port. The driver talks to one ovsdb-server (``ovsdb``: a socket path or
``unix:``/``tcp:`` remote; default: $OVS_RUNDIR/db.sock). It speaks OVSDB
only: devices (veths, the underlay NIC) are ``vif`` and ``dataplane.underlay``'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dataplane.common.constants import BR_INT, TUNNEL_OFPORT, TUNNEL_PORT_NAME, VXLAN_UDP_PORT
from dataplane.common.logs import get_logger
from dataplane.ovs.idl import OvsdbClient, OvsdbError, TxnContext, opt_value
from dataplane.ovs.monitor import InterfaceMonitor
from dataplane.ovs.types import ATTACHED_MAC, IFACE_ID, LOOM_OWNER, InterfaceEvent, PortInfo

log = get_logger(__name__)


def port_info(bridge: Any, port: Any) -> PortInfo:
    """A PortInfo from IDL rows (the port's first interface)."""
    iface = port.interfaces[0] if port.interfaces else None
    ext = dict(iface.external_ids) if iface is not None else {}
    return PortInfo(
        name=port.name,
        bridge=bridge.name,
        ofport=(opt_value(iface.ofport) or 0) if iface is not None else 0,
        type=iface.type if iface is not None else "",
        iface_id=ext.get(IFACE_ID, ""),
        attached_mac=ext.get(ATTACHED_MAC, ""),
        ofport_request=opt_value(iface.ofport_request) if iface is not None else None,
        error=opt_value(iface.error) if iface is not None else None,
        external_ids=ext,
        options=dict(iface.options) if iface is not None else {},
        bfd=dict(iface.bfd) if iface is not None else {},
        bfd_status=dict(iface.bfd_status) if iface is not None else {},
    )


class OvsDriver:
    """OVSDB operations of one Open vSwitch instance (one hypervisor)."""

    def __init__(self, ovsdb: str | OvsdbClient | None = None, timeout: float = 10.0) -> None:
        if isinstance(ovsdb, OvsdbClient):
            self.client = ovsdb
            self._owns_client = False
        else:
            self.client = OvsdbClient(ovsdb, timeout)
            self._owns_client = True

    @property
    def remote(self) -> str:
        return self.client.remote

    def start(self) -> OvsDriver:
        self.client.start()
        return self

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> OvsDriver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- bridges ------------------------------------------------------------

    def ensure_bridge(
        self,
        bridge: str,
        *,
        datapath_type: str = "netdev",
        fail_mode: str | None = None,
        protocols: Sequence[str] | None = None,
        other_config: Mapping[str, str] | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        """A bridge with these settings (None: leave as OVS defaults it)."""

        def body(ctx: TxnContext) -> None:
            br = ctx.find("Bridge", name=bridge)
            if br is None:
                br = ctx.insert("Bridge")
                br.name = bridge
                local_iface = ctx.insert("Interface")
                local_iface.name = bridge
                local_iface.type = "internal"
                local_port = ctx.insert("Port")
                local_port.name = bridge
                local_port.interfaces = [local_iface]
                br.ports = [local_port]
                ctx.add_ref(ctx.root(), "bridges", br)
            ctx.set(br, "datapath_type", datapath_type)
            if fail_mode is not None:
                ctx.set(br, "fail_mode", [fail_mode])
            if protocols is not None:
                ctx.set(br, "protocols", sorted(protocols))
            if other_config:
                ctx.set_keys(br, "other_config", other_config)
            if external_ids:
                ctx.set_keys(br, "external_ids", external_ids)

        self.client.transact(body, what=f"ensure bridge {bridge}")
        log.debug("bridge ensured", bridge=bridge, datapath_type=datapath_type)

    def ensure_integration_bridge(
        self,
        datapath_type: str = "netdev",
        bridge: str = BR_INT,
        protocols: Sequence[str] = ("OpenFlow13",),
    ) -> None:
        """br-int: fail_mode=secure (flows survive agent restarts), OpenFlow 1.3, no in-band rules.

        No controller is set: the agent speaks OpenFlow over $OVS_RUNDIR/br-int.mgmt.
        """
        self.ensure_bridge(
            bridge,
            datapath_type=datapath_type,
            fail_mode="secure",
            protocols=protocols,
            other_config={"disable-in-band": "true"},
        )

    def delete_bridge(self, bridge: str) -> bool:
        """Remove a bridge and its ports; True if it existed."""

        def body(ctx: TxnContext) -> bool:
            br = ctx.find("Bridge", name=bridge)
            if br is None:
                return False
            ctx.remove_ref(ctx.root(), "bridges", br)
            for port in br.ports:
                for iface in port.interfaces:
                    ctx.delete(iface)
                ctx.delete(port)
            ctx.delete(br)
            return True

        return self.client.transact(body, what=f"delete bridge {bridge}")

    def bridge_exists(self, bridge: str) -> bool:
        return self.client.read(lambda idl: any(r.name == bridge for r in idl.tables["Bridge"].rows.values()))

    # -- ports --------------------------------------------------------------

    def ensure_port(
        self,
        bridge: str,
        name: str,
        *,
        type: str = "",
        options: Mapping[str, str] | None = None,
        external_ids: Mapping[str, str] | None = None,
        ofport_request: int | None = None,
        mtu_request: int | None = None,
        bfd: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> int:
        """Port ``name`` (one interface of that name) on ``bridge``; returns its ofport (-1: failed).

        ``options`` and ``bfd`` are set exactly, ``external_ids`` keys are merged. A port of
        that name on another bridge is moved. ``wait=False`` does not wait for ovs-vswitchd
        (the ofport returned may then be 0).
        """

        def body(ctx: TxnContext) -> None:
            br = ctx.find("Bridge", name=bridge)
            if br is None:
                raise OvsdbError(f"cannot add port {name}: bridge {bridge} does not exist")
            port = ctx.find("Port", name=name)
            if port is not None and port not in br.ports:
                # Move the row itself, so the interface keeps its external_ids and other columns.
                for other in ctx.rows("Bridge"):
                    if port in other.ports:
                        ctx.remove_ref(other, "ports", port)
                ctx.add_ref(br, "ports", port)
            if port is None:
                iface = ctx.insert("Interface")
                iface.name = name
                port = ctx.insert("Port")
                port.name = name
                port.interfaces = [iface]
                ctx.add_ref(br, "ports", port)
            else:
                iface = port.interfaces[0]
            ctx.set(iface, "type", type)
            if options is not None:
                ctx.set(iface, "options", dict(options))
            if external_ids:
                ctx.set_keys(iface, "external_ids", external_ids)
            ctx.set(iface, "ofport_request", [ofport_request] if ofport_request is not None else [])
            if mtu_request is not None:
                ctx.set(iface, "mtu_request", [mtu_request])
            if bfd is not None:
                ctx.set(iface, "bfd", dict(bfd))

        self.client.transact(body, what=f"ensure port {name} on {bridge}", wait_vswitchd=wait)
        info = self.get_port(name)
        return info.ofport if info is not None else 0

    def delete_port(self, name: str) -> bool:
        """Remove port ``name`` from whatever bridge has it; True if it existed."""

        def body(ctx: TxnContext) -> bool:
            port = ctx.find("Port", name=name)
            if port is None:
                return False
            for br in ctx.rows("Bridge"):
                if port in br.ports:
                    ctx.remove_ref(br, "ports", port)
            for iface in port.interfaces:
                ctx.delete(iface)
            ctx.delete(port)
            return True

        return self.client.transact(body, what=f"delete port {name}")

    def set_interface_external_ids(self, name: str, values: Mapping[str, str]) -> None:
        def body(ctx: TxnContext) -> None:
            iface = ctx.find("Interface", name=name)
            if iface is None:
                raise OvsdbError(f"cannot set external_ids on interface {name}: it does not exist")
            ctx.set_keys(iface, "external_ids", values)

        self.client.transact(body, what=f"set external_ids of {name}", wait_vswitchd=False)

    def get_port(self, name: str) -> PortInfo | None:
        def read(idl: Any) -> PortInfo | None:
            for br in idl.tables["Bridge"].rows.values():
                for port in br.ports:
                    if port.name == name:
                        return port_info(br, port)
            return None

        return self.client.read(read)

    def list_ports(self, bridge: str | None = BR_INT) -> list[PortInfo]:
        """A snapshot of the ports on ``bridge`` (None: on every bridge), sorted by name."""

        def read(idl: Any) -> list[PortInfo]:
            found = []
            for br in idl.tables["Bridge"].rows.values():
                if bridge is None or br.name == bridge:
                    found.extend(port_info(br, port) for port in br.ports)
            return sorted(found, key=lambda p: (p.bridge, p.name))

        return self.client.read(read)

    def find_ports(self, iface_id: str, bridge: str | None = None) -> list[PortInfo]:
        return [p for p in self.list_ports(bridge) if p.iface_id == iface_id]

    # -- the tunnel and the underlay -----------------------------------------

    def ensure_tunnel_port(
        self,
        local_ip: str,
        bridge: str = BR_INT,
        name: str = TUNNEL_PORT_NAME,
        ofport: int = TUNNEL_OFPORT,
        dst_port: int = VXLAN_UDP_PORT,
    ) -> int:
        """The one flow-based VXLAN port: flows set tun_id (VNI) and tun_ipv4_dst per packet."""
        options = {"remote_ip": "flow", "key": "flow", "local_ip": local_ip}
        if dst_port != VXLAN_UDP_PORT:
            options["dst_port"] = str(dst_port)
        got = self.ensure_port(
            bridge, name, type="vxlan", options=options, ofport_request=ofport, external_ids={LOOM_OWNER: "tunnel"}
        )
        if got != ofport:
            raise OvsdbError(f"tunnel port {name} on {bridge} got ofport {got}, not the requested {ofport}")
        return got

    # -- the interface monitor ----------------------------------------------

    def monitor_interfaces(
        self,
        callback: Callable[[InterfaceEvent], None] | None = None,
        bridge: str = BR_INT,
    ) -> InterfaceMonitor:
        """Start an InterfaceMonitor on this connection (see dataplane.ovs.monitor)."""
        return InterfaceMonitor(self.client, bridge=bridge, callback=callback).start()
