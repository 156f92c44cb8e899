"""Networks: segments (VNI, VLAN, flat) allocated once, MTU computed from the underlay, delete with care.

Deleting a network deletes its subnets and its ``network:dhcp`` port, but not
user ports (Neutron's behaviour).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from controller.api import validation as v
from controller.api.core import ResourceApi, new_id
from controller.api.errors import already_exists, failed_precondition
from controller.api.masks import NETWORK_RULES
from controller.api.paging import Page, paginate
from controller.ipam import max_mtu
from controller.model import Network
from dataplane.common.logs import get_logger

log = get_logger(__name__)


class NetworkResource(ResourceApi):
    """Network CRUD."""

    def get(self, network_id: str) -> Network:
        return self._get("network", network_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Network]:
        revision, objs = self.store.snapshot("network")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create(self, fields: Mapping[str, Any]) -> Network:
        name = v.text("network.name", fields.get("name", ""))
        project_id = v.text("network.project_id", fields.get("project_id", ""))
        network_type = v.network_type("network.network_type", fields.get("network_type", ""))
        segmentation_id, physical_network = v.segmentation(
            "network", network_type, fields.get("segmentation_id", 0), fields.get("physical_network", "")
        )
        mtu = v.mtu("network.mtu", fields.get("mtu", 0), max_mtu(network_type, self.settings.underlay_mtu))
        router_external = bool(fields.get("router_external", False))
        if router_external:
            v.external_network("network.router_external", network_type)
        with self.lock:
            segmentation_id = self._claim_segment(network_type, segmentation_id, physical_network)
            net = Network(
                id=new_id(),
                name=name,
                project_id=project_id,
                admin_state_up=fields.get("admin_state_up", True),
                mtu=mtu,
                network_type=network_type,
                segmentation_id=segmentation_id,
                physical_network=physical_network,
                port_security_enabled=fields.get("port_security_enabled", True),
                router_external=router_external,
            )
            self._commit([net])
            log.info("network created", network_id=net.id, vni=segmentation_id, type=network_type)
            return self._get("network", net.id)

    def _claim_segment(self, network_type: str, segmentation_id: int, physical_network: str) -> int:
        if network_type == "vxlan":
            if segmentation_id == 0:
                vni = self.index.allocate_vni()
                if vni is None:
                    lo, hi = self.settings.vni_range
                    raise failed_precondition(f"network.segmentation_id: the VNI range {lo}..{hi} is exhausted")
                return vni
            owner = self.index.vni_owner(segmentation_id)
            if owner is not None:
                raise already_exists("network.segmentation_id", f"VNI {segmentation_id} is used by network {owner}")
        elif network_type == "vlan":
            owner = self.index.vlan_owner(physical_network, segmentation_id)
            if owner is not None:
                raise already_exists(
                    "network.segmentation_id",
                    f"VLAN {segmentation_id} on {physical_network} is used by network {owner}",
                )
        else:
            owner = self.index.flat_owner(physical_network)
            if owner is not None:
                raise already_exists(
                    "network.physical_network", f"{physical_network} already carries flat network {owner}"
                )
        return segmentation_id

    def update(self, network_id: str, changes: Mapping[str, Any]) -> Network:
        NETWORK_RULES.check(changes)
        with self.lock:
            net: Network = self._get("network", network_id)
            updates: dict[str, Any] = {}
            if "name" in changes:
                updates["name"] = v.text("network.name", changes["name"])
            if "mtu" in changes:
                limit = max_mtu(net.network_type, self.settings.underlay_mtu)
                updates["mtu"] = v.mtu("network.mtu", changes["mtu"], limit)
            for flag in ("admin_state_up", "port_security_enabled"):
                if flag in changes:
                    updates[flag] = bool(changes[flag])
            if "router_external" in changes:
                updates["router_external"] = bool(changes["router_external"])
                if updates["router_external"]:
                    v.external_network("network.router_external", net.network_type)
                elif net.router_external and self.core.l3.routers_with_gateway_on(network_id):
                    routers = sorted(self.core.l3.routers_with_gateway_on(network_id))
                    raise failed_precondition(
                        f"network.router_external: router(s) {', '.join(routers[:3])} use network {network_id} "
                        "as their gateway"
                    )
            new = dataclasses.replace(net, **updates)
            if new != net:
                self._commit([new])
            return self._get("network", network_id)

    def delete(self, network_id: str) -> int:
        with self.lock:
            self._get("network", network_id)
            port_ids = self.index.port_ids(network_id)
            dhcp = set(self.index.dhcp_port_ids(network_id))
            in_use = [p for p in port_ids if p not in dhcp]
            if in_use:
                raise failed_precondition(
                    f"network {network_id} still has {len(in_use)} port(s) (e.g. {in_use[0]}); delete them first"
                )
            deletes = [("port", p) for p in dhcp]
            deletes += [("subnet", s) for s in self.index.subnet_ids(network_id)]
            deletes.append(("network", network_id))
            revision = self._commit(deletes=deletes)
            log.info("network deleted", network_id=network_id, revision=revision)
            return revision
