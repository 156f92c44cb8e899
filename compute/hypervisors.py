"""The hypervisors as their agents last reported them: capacity, libvirtd's health, liveness.

Held in memory, not in the store: a report every few seconds must not become
a commit (and a recompilation) every few seconds. After a controller restart
the agents report again within seconds; until then nothing is scheduled to a
host the registry has not heard from.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from protos.loom.v1 import hypervisor_pb2


@dataclass(frozen=True, slots=True)
class HypervisorInfo:
    host: str
    vcpus: int
    memory_mb: int
    up: bool  # libvirtd answers
    error: str
    virt_type: str
    last_report: float  # time.time()
    last_seen: float  # time.monotonic()


class HypervisorRegistry:
    def __init__(self, report_timeout: float) -> None:
        self.report_timeout = report_timeout
        self._lock = threading.Lock()
        self._hosts: dict[str, HypervisorInfo] = {}

    def report(self, r: hypervisor_pb2.HypervisorReport) -> HypervisorInfo:
        info = HypervisorInfo(
            r.host, r.vcpus, r.memory_mb, r.hypervisor_up, r.error, r.virt_type, time.time(), time.monotonic()
        )
        with self._lock:
            self._hosts[r.host] = info
        return info

    def get(self, host: str) -> HypervisorInfo | None:
        with self._lock:
            return self._hosts.get(host)

    def all(self) -> list[HypervisorInfo]:
        with self._lock:
            return sorted(self._hosts.values(), key=lambda h: h.host)

    def alive(self, info: HypervisorInfo) -> bool:
        return time.monotonic() - info.last_seen < self.report_timeout
