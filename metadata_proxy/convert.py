"""Build the proxy's ``MetadataNetwork`` from the agent's protobuf desired state (``LocalNetwork``/``LocalPort``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from dataplane.common.addresses import is_ipv4
from dataplane.common.constants import OWNER_COMPUTE_PREFIX
from protos.loom.v1 import agent_pb2

from .model import MetadataIdentity, MetadataNetwork


def instance_of(port: agent_pb2.LocalPort) -> str:
    """The instance behind a port: its ``instance_id``, else the ``device_id`` of a compute port, else ""."""
    if port.instance_id:
        return port.instance_id
    if port.device_owner.startswith(OWNER_COMPUTE_PREFIX):
        return port.device_id
    return ""


def metadata_network_from_proto(
    network: agent_pb2.LocalNetwork, ports: Iterable[agent_pb2.LocalPort], namespace: str
) -> MetadataNetwork:
    """The network's proxy config: an identity per IPv4 address of each of its ports that has an instance."""
    identities: list[MetadataIdentity] = []
    port_ids: list[str] = []
    for port in ports:
        if port.network_id != network.network_id or port.port_id == network.localport_id:
            continue
        port_ids.append(port.port_id)
        instance_id = instance_of(port)
        if not instance_id:
            continue
        for ip in port.ip_addresses:
            if is_ipv4(ip):  # the proxy listens on 169.254.169.254 only
                identities.append(MetadataIdentity(ip, port.port_id, instance_id, port.project_id))
    return MetadataNetwork(
        network_id=network.network_id, namespace=namespace, identities=tuple(identities), port_ids=tuple(port_ids)
    )


def metadata_networks_from_proto(
    networks: Iterable[agent_pb2.LocalNetwork],
    ports: Iterable[agent_pb2.LocalPort],
    namespace_of: Callable[[str], str],
) -> list[MetadataNetwork]:
    """Everything ``MetadataProxyManager.sync`` takes, from a host's desired state (one pass over the ports)."""
    by_network: dict[str, list[agent_pb2.LocalPort]] = defaultdict(list)
    for port in ports:
        by_network[port.network_id].append(port)
    return [metadata_network_from_proto(n, by_network[n.network_id], namespace_of(n.network_id)) for n in networks]
