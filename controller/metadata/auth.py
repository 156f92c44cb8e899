"""Who is asking: the metadata service trusts a request only when a proxy that holds the shared secret signed it,
and only for the instance whose port owns the forwarded source address.

The proxies identify callers by (network, source IP), which port security makes unforgeable; they send
``X-Instance-ID``, ``X-Tenant-ID``, ``X-Forwarded-For`` and ``X-Instance-ID-Signature`` = hex
HMAC-SHA256(secret, instance id). Checking that the forwarded address belongs to one of the signed
instance's ports means that even a confused proxy cannot hand one instance another's data.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from .content import Caller
from .source import MetadataSource

HEADER_INSTANCE = "x-instance-id"
HEADER_SIGNATURE = "x-instance-id-signature"
HEADER_TENANT = "x-tenant-id"
HEADER_FORWARDED_FOR = "x-forwarded-for"
HEADER_NETWORK = "x-loom-network-id"  # optional: the network the proxy received the request on


def sign(secret: bytes, instance_id: str) -> str:
    return hmac.new(secret, instance_id.encode(), hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, instance_id: str, signature: str) -> bool:
    """Constant-time comparison of ``signature`` with the expected one."""
    expected = sign(secret, instance_id).encode()
    return hmac.compare_digest(expected, signature.encode(errors="replace"))


@dataclass(frozen=True, slots=True)
class Denied:
    status: int  # 403: not signed, badly signed or not this instance's address; 404: no such instance
    reason: str


def identify(headers: Mapping[str, str], secret: bytes, source: MetadataSource) -> Caller | Denied:
    """The verified caller of a request (header names lower-case), or why it is refused."""
    instance_id = headers.get(HEADER_INSTANCE, "")
    signature = headers.get(HEADER_SIGNATURE, "")
    if not instance_id or not signature:
        return Denied(403, "unsigned request")
    if not signature_valid(secret, instance_id, signature):
        return Denied(403, "bad signature")
    instance = source.instance(instance_id)
    if instance is None:
        return Denied(404, "no such instance")
    tenant = headers.get(HEADER_TENANT)
    if tenant is not None and tenant != instance.project_id:
        return Denied(403, "project does not match the instance")
    forwarded = headers.get(HEADER_FORWARDED_FOR, "").split(",")[0].strip()
    if not forwarded:
        return Denied(403, "no forwarded address")
    network_id = headers.get(HEADER_NETWORK)
    ports = tuple(source.ports_of_instance(instance_id))
    for port in ports:
        if forwarded in port.ips and (network_id is None or port.network_id == network_id):
            return Caller(instance=instance, ports=ports, ip=forwarded)
    return Denied(403, "address does not belong to the instance")
