"""What the metadata proxy knows about one network: its namespace and who is behind each source address.

The agent writes one JSON file per network (``network_to_json``); the proxy process reads them
(``network_from_json``). The encoding is deterministic, so equal content means equal bytes and digests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dataplane.common.constants import METADATA_IP, METADATA_PORT


@dataclass(frozen=True, slots=True)
class MetadataIdentity:
    """The instance behind one source address on a network (port security makes the address trustworthy)."""

    ip: str
    port_id: str
    instance_id: str
    project_id: str


@dataclass(frozen=True, slots=True)
class MetadataNetwork:
    """One network's proxy: where to listen and whom to recognise.

    ``port_ids`` lists every local port of the network, also those without an instance (router ports): they
    need no identity, and count as "metadata ready" once the network is synced.
    """

    network_id: str
    namespace: str
    identities: tuple[MetadataIdentity, ...] = ()
    port_ids: tuple[str, ...] = ()
    listen_ip: str = METADATA_IP
    listen_port: int = METADATA_PORT


def network_to_json(network: MetadataNetwork) -> bytes:
    document = {
        "network_id": network.network_id,
        "namespace": network.namespace,
        "listen_ip": network.listen_ip,
        "listen_port": network.listen_port,
        "port_ids": sorted(network.port_ids),
        "identities": [
            {"ip": i.ip, "port_id": i.port_id, "instance_id": i.instance_id, "project_id": i.project_id}
            for i in sorted(network.identities, key=lambda i: (i.ip, i.port_id))
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def network_from_json(data: bytes) -> MetadataNetwork:
    document = json.loads(data)
    return MetadataNetwork(
        network_id=document["network_id"],
        namespace=document["namespace"],
        listen_ip=document.get("listen_ip", METADATA_IP),
        listen_port=int(document.get("listen_port", METADATA_PORT)),
        port_ids=tuple(document.get("port_ids", ())),
        identities=tuple(
            MetadataIdentity(ip=i["ip"], port_id=i["port_id"], instance_id=i["instance_id"], project_id=i["project_id"])
            for i in document.get("identities", ())
        ),
    )
