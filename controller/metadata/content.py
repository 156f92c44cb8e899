"""The metadata trees a guest reads at 169.254.169.254, as pure functions of the (verified) caller.

Two trees, the same facts:

- EC2 style: ``/`` lists versions; ``/<version>/meta-data/...`` (instance-id, hostname, local-hostname,
  local-ipv4, public-ipv4, public-keys/, placement/availability-zone, ami-launch-index) and
  ``/<version>/user-data``.
- OpenStack style: ``/openstack`` lists versions; ``/openstack/<version>/`` holds ``meta_data.json``,
  ``network_data.json``, ``user_data``, ``vendor_data.json`` and ``vendor_data2.json``.

Every version serves the current data (the formats only ever grew). A directory answers with its listing,
with or without the trailing slash; sub-directories are listed with a trailing slash, as EC2 does.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from controller.model import Instance, Port

from .source import MetadataSource

EC2_VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "latest",
)
OPENSTACK_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "latest",
)

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BINARY = "application/octet-stream"

_LABEL_UNSAFE = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True, slots=True)
class Caller:
    """A request's verified origin: the instance, its ports, and the address it called from."""

    instance: Instance
    ports: tuple[Port, ...]
    ip: str


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = TEXT


NOT_FOUND = Reply(404, b"Not Found\n")


def hostname_of(instance: Instance) -> str:
    """The instance's hostname, or one derived from its name (then its id) when it has none."""
    if instance.hostname:
        return instance.hostname
    label = _LABEL_UNSAFE.sub("-", instance.name.lower()).strip("-")[:63]
    return label or instance.id


def render(path: str, caller: Caller, source: MetadataSource) -> Reply:
    """The reply for a GET of ``path`` (no query string) by ``caller``."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "openstack":
        return _openstack(parts[1:], caller, source)
    return _ec2(parts, caller)


# ---------------------------------------------------------------------- EC2


def _listing(names: list[str]) -> Reply:
    return Reply(200, "\n".join(names).encode())


def _ec2_meta_data(caller: Caller) -> dict[str, Any]:
    instance = caller.instance
    hostname = hostname_of(instance)
    tree: dict[str, Any] = {
        "ami-launch-index": "0",
        "hostname": hostname,
        "instance-id": instance.id,
        "local-hostname": hostname,
        "local-ipv4": caller.ip,
        "placement": {"availability-zone": instance.availability_zone},
        "public-ipv4": "",  # no floating IPs yet
    }
    if instance.public_keys:
        tree["public-keys"] = {str(i): {"openssh-key": key} for i, (_, key) in enumerate(instance.public_keys)}
    return tree


def _ec2(parts: list[str], caller: Caller) -> Reply:
    if not parts:
        return _listing(list(EC2_VERSIONS))
    if parts[0] not in EC2_VERSIONS:
        return NOT_FOUND
    instance = caller.instance
    if len(parts) == 1:
        return _listing(["meta-data/", *(["user-data"] if instance.user_data else [])])
    if parts[1] == "user-data" and len(parts) == 2:
        return Reply(200, instance.user_data, BINARY) if instance.user_data else NOT_FOUND
    if parts[1] != "meta-data":
        return NOT_FOUND
    node: Any = _ec2_meta_data(caller)
    for depth, name in enumerate(parts[2:]):
        if not isinstance(node, dict) or name not in node:
            return NOT_FOUND
        if depth == 0 and name == "public-keys":
            keys = parts[3:]
            return _public_keys(keys, caller)
        node = node[name]
    if isinstance(node, dict):
        return _listing([k + "/" if isinstance(v, dict) else k for k, v in sorted(node.items())])
    return Reply(200, str(node).encode())


def _public_keys(parts: list[str], caller: Caller) -> Reply:
    """EC2 lists keys as ``0=name``; ``0/`` lists ``openssh-key``."""
    keys = caller.instance.public_keys
    if not parts:
        return _listing([f"{i}={name}" for i, (name, _) in enumerate(keys)])
    index = parts[0].split("=", 1)[0]
    if not index.isdigit() or int(index) >= len(keys):
        return NOT_FOUND
    if len(parts) == 1:
        return _listing(["openssh-key"])
    if parts[1:] == ["openssh-key"]:
        return Reply(200, keys[int(index)][1].encode())
    return NOT_FOUND


# ---------------------------------------------------------------------- OpenStack


def _openstack(parts: list[str], caller: Caller, source: MetadataSource) -> Reply:
    if not parts:
        return _listing(list(OPENSTACK_VERSIONS))
    if parts[0] not in OPENSTACK_VERSIONS:
        return NOT_FOUND
    instance = caller.instance
    if len(parts) == 1:
        names = ["meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json"]
        if instance.user_data:
            names.append("user_data")
        return _listing(sorted(names))
    if len(parts) != 2:
        return NOT_FOUND
    name = parts[1]
    if name == "meta_data.json":
        return _json(meta_data(caller))
    if name == "network_data.json":
        return _json(network_data(caller, source))
    if name == "user_data":
        return Reply(200, instance.user_data, BINARY) if instance.user_data else NOT_FOUND
    if name in ("vendor_data.json", "vendor_data2.json"):
        return _json({})
    return NOT_FOUND


def _json(document: dict[str, Any]) -> Reply:
    return Reply(200, json.dumps(document, separators=(",", ":")).encode(), JSON)


def meta_data(caller: Caller) -> dict[str, Any]:
    """OpenStack's ``meta_data.json``."""
    instance = caller.instance
    return {
        "uuid": instance.id,
        "name": instance.name,
        "hostname": hostname_of(instance),
        "project_id": instance.project_id,
        "availability_zone": instance.availability_zone,
        "launch_index": 0,
        "public_keys": dict(instance.public_keys),
        "keys": [{"name": name, "type": "ssh", "data": key} for name, key in instance.public_keys],
        "meta": dict(instance.metadata),
        "devices": [],
        # Fresh entropy for the guest's RNG at first boot, as Nova does.
        "random_seed": base64.b64encode(os.urandom(512)).decode(),
    }


def network_data(caller: Caller, source: MetadataSource) -> dict[str, Any]:
    """OpenStack's ``network_data.json``: one link per port, one network per fixed IP, DNS services."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    dns: list[str] = []
    for port in caller.ports:
        link_id = f"tap{port.id[:11]}"
        network = source.network(port.network_id)
        links.append(
            {
                "id": link_id,
                "vif_id": port.id,
                "type": "ovs",
                "mtu": network.mtu if network and network.mtu else None,
                "ethernet_mac_address": port.mac_address,
            }
        )
        for fixed in port.fixed_ips:
            subnet = source.subnet(fixed.subnet_id)
            if subnet is None:
                continue
            cidr = ipaddress.ip_network(subnet.cidr, strict=False)
            family = f"ipv{cidr.version}"
            routes = [
                _route(route.destination, route.nexthop)
                for route in subnet.host_routes
                if ipaddress.ip_network(route.destination, strict=False).version == cidr.version
            ]
            if subnet.gateway_ip:
                routes.append(_route("::/0" if cidr.version == 6 else "0.0.0.0/0", subnet.gateway_ip))
            services = [{"type": "dns", "address": ip} for ip in subnet.dns_nameservers]
            dns.extend(ip for ip in subnet.dns_nameservers if ip not in dns)
            networks.append(
                {
                    "id": f"network{len(networks)}",
                    "type": f"{family}_dhcp" if subnet.enable_dhcp and cidr.version == 4 else family,
                    "link": link_id,
                    "network_id": port.network_id,
                    "ip_address": fixed.ip_address,
                    "netmask": str(cidr.netmask) if cidr.version == 4 else str(cidr.prefixlen),
                    "routes": routes,
                    "services": services,
                }
            )
    return {"links": links, "networks": networks, "services": [{"type": "dns", "address": ip} for ip in dns]}


def _route(destination: str, gateway: str) -> dict[str, str]:
    network = ipaddress.ip_network(destination, strict=False)
    netmask = str(network.netmask) if network.version == 4 else str(network.prefixlen)
    return {"network": str(network.network_address), "netmask": netmask, "gateway": gateway}
