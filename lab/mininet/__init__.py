"""The Mininet lab: several emulated hypervisors, each with its own Open vSwitch, on one machine.

``Lab`` (lab.py) starts and stops it and runs things inside it; ``LabConfig``
(config.py) fixes its size, addresses and names; ``clean`` (cleanup.py)
removes what a crashed run left. ``python -m lab.mininet up|clean``.
"""

from lab.mininet.config import LabConfig
from lab.mininet.lab import Hypervisor, Lab, LabError, Vm

__all__ = ["Hypervisor", "Lab", "LabConfig", "LabError", "Vm"]
