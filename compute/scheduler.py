"""Placing an instance: Nova's filter scheduler in miniature, pure.

Filters: the hypervisor reported recently, its libvirtd answers, and after
the instances already placed there (whatever their status: a BUILD instance
holds its share too) it has the vCPUs and the RAM the flavor asks for, with
Nova's allocation ratios (16 vCPUs per core, 1.5x RAM, 512 MiB reserved).
Weigher: the most free RAM wins (Nova's default spreads), then the fewest
instances, then the name, so equal hosts are picked the same way every time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HostCandidate:
    host: str
    vcpus: int
    memory_mb: int
    alive: bool
    up: bool  # libvirtd answers
    error: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    vcpus: int = 0
    memory_mb: int = 0
    instances: int = 0


@dataclass(frozen=True, slots=True)
class Ratios:
    cpu: float = 16.0
    ram: float = 1.5
    reserved_memory_mb: int = 512


@dataclass(frozen=True, slots=True)
class Verdict:
    host: str
    fits: bool
    free_vcpus: float
    free_memory_mb: float
    reason: str  # why it does not fit


class NoValidHost(Exception):
    """No hypervisor can take the instance; the message lists each one and why."""


def judge(c: HostCandidate, used: Usage, vcpus: int, memory_mb: int, ratios: Ratios) -> Verdict:
    free_vcpus = c.vcpus * ratios.cpu - used.vcpus
    free_mem = (c.memory_mb - ratios.reserved_memory_mb) * ratios.ram - used.memory_mb
    if not c.alive:
        reason = "its agent has not reported recently"
    elif not c.up:
        reason = f"its hypervisor is down ({c.error or 'libvirtd does not answer'})"
    elif free_vcpus < vcpus:
        reason = f"{free_vcpus:g} vCPUs free, {vcpus} wanted"
    elif free_mem < memory_mb:
        reason = f"{free_mem:.0f} MiB free, {memory_mb} wanted"
    else:
        reason = ""
    return Verdict(c.host, not reason, free_vcpus, free_mem, reason)


def schedule(
    candidates: Iterable[HostCandidate],
    usage: dict[str, Usage],
    vcpus: int,
    memory_mb: int,
    ratios: Ratios = Ratios(),
    exclude: Sequence[str] = (),
) -> str:
    """The host to place the instance on; NoValidHost naming every hypervisor's reason otherwise."""
    verdicts = [
        judge(c, usage.get(c.host, Usage()), vcpus, memory_mb, ratios) for c in candidates if c.host not in exclude
    ]
    fitting = [v for v in verdicts if v.fits]
    if not fitting:
        detail = "; ".join(f"{v.host}: {v.reason}" for v in verdicts) or "no hypervisor has reported"
        raise NoValidHost(f"no hypervisor can take {vcpus} vCPUs and {memory_mb} MiB ({detail})")
    best = min(fitting, key=lambda v: (-v.free_memory_mb, usage.get(v.host, Usage()).instances, v.host))
    return best.host
