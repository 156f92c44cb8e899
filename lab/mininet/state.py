"""The lab's record of itself (lab.json in its state directory), for teardown after a crash.

It is written before anything is created and updated when VMs come and go,
so ``clean`` knows which namespaces, bridges and directories belong to a lab
whose owner process is gone, and which belong to a lab still running.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import asdict, dataclass, field

from lab.mininet.config import STATE_DIR_PREFIX

STATE_FILE = "lab.json"


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell a pid from its reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class LabState:
    """What one lab owns."""

    prefix: str
    state_dir: str
    owner_pid: int
    owner_start: int | None
    hypervisor_netns: list[str] = field(default_factory=list)
    vm_netns: list[str] = field(default_factory=list)
    linux_bridges: list[str] = field(default_factory=list)

    @classmethod
    def for_this_process(cls, prefix: str, state_dir: str) -> LabState:
        pid = os.getpid()
        return cls(prefix=prefix, state_dir=state_dir, owner_pid=pid, owner_start=process_start_time(pid))

    @property
    def path(self) -> str:
        return os.path.join(self.state_dir, STATE_FILE)

    def save(self) -> None:
        os.makedirs(self.state_dir, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: str) -> LabState | None:
        try:
            with open(path) as f:
                return cls(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None

    def owner_alive(self) -> bool:
        return self.owner_start is not None and process_start_time(self.owner_pid) == self.owner_start

    @property
    def netns(self) -> list[str]:
        return [*self.hypervisor_netns, *self.vm_netns]

    def owns_netns(self, name: str) -> bool:
        """True for the lab's hypervisor and VM namespaces, the ones its agents made
        (localports: ``<hypervisor netns>-<network>``), and VMs a user plugged by hand
        in a lab started with ``up`` (``<prefix>-<vm>``, docs/lab.md): no state file lists those."""
        return (
            name in self.netns
            or name.startswith(self.prefix + "-")
            or any(name.startswith(hv + "-") for hv in self.hypervisor_netns)
        )

    def owns_link(self, name: str) -> bool:
        """True for the lab's Linux bridges and the veths Mininet attached to them (BRIDGE-ethN)."""
        return any(name == br or name.startswith(br + "-") for br in self.linux_bridges)


def find_states(state_root: str, prefix: str) -> list[tuple[str, LabState | None]]:
    """Every state directory of labs whose prefix starts with ``prefix``, with its record if readable."""
    found = []
    for path in sorted(glob.glob(os.path.join(state_root, f"{STATE_DIR_PREFIX}{prefix}*"))):
        if os.path.isdir(path):
            found.append((path, LabState.load(os.path.join(path, STATE_FILE))))
    return found
