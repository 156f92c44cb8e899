"""What ``python -m lab.mininet up`` prints: how to reach a running lab, as commands that work as printed.

:func:`first_session` is the first session of ``docs/lab.md`` with a lab's
names and paths filled in (prefix, controller address, each hypervisor's
namespace and OVS run directory, where ``loomctl`` is installed), so a user
can paste it into another shell. The docs show it for the default lab
(``tests/unit/test_lab_howto.py`` checks they are the same), and
``tests/lab/test_readme_commands.py`` runs it on a lab started by ``make lab``.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass

from lab.mininet.config import API_PORT, LabConfig
from lab.mininet.lab import Hypervisor


@dataclass(frozen=True, slots=True)
class LabAddresses:
    """The facts the printed commands need."""

    config: LabConfig
    hypervisors: tuple[Hypervisor, ...]
    bindir: str = ""  # where loomctl is (default: beside this Python)

    @property
    def api_address(self) -> str:
        return f"{self.config.controller_ip}:{API_PORT}"

    @property
    def loomctl_dir(self) -> str:
        return self.bindir or os.path.dirname(sys.executable)

    def vm_netns(self, vm: str) -> str:
        return self.config.vm_netns(vm)

    def plug(self, hv: Hypervisor, port: str, vm: str, ip: str) -> str:
        """Plug a VM namespace for ``port`` into ``hv``'s br-int: inside hv's network namespace, with its OVS."""
        return (
            f"nsenter --net=/run/netns/{hv.netns} env OVS_RUNDIR={hv.ovs_rundir} "
            f"loomctl vif plug --port-id {port} --netns {self.vm_netns(vm)} --ip {ip}"
        )

    def hv_rundirs(self, hosts: tuple[Hypervisor, ...] | None = None) -> str:
        return " ".join(f"--hv-rundir {hv.name}={hv.ovs_rundir}" for hv in (hosts or self.hypervisors))


def _bindir(lab: LabAddresses) -> str:
    d = lab.loomctl_dir
    return d if d.startswith("$") else shlex.quote(d)


def first_session(lab: LabAddresses) -> list[str]:
    """The commands of docs/lab.md's first session, for this lab: two VMs on two hypervisors, ping, trace."""
    hv1 = lab.hypervisors[0]
    hv2 = lab.hypervisors[1] if len(lab.hypervisors) > 1 else hv1
    vm1 = lab.vm_netns("vm1")
    return [
        f"export PATH={_bindir(lab)}:$PATH LOOM_SERVER={lab.api_address}",
        "loomctl agent list",
        "loomctl network create blue",
        "loomctl subnet create --network blue 10.0.0.0/24",
        f"loomctl port create --network blue --host {hv1.name} --name vm1 --fixed-ip ip=10.0.0.11",
        f"loomctl port create --network blue --host {hv2.name} --name vm2 --fixed-ip ip=10.0.0.12",
        lab.plug(hv1, "vm1", "vm1", "10.0.0.11/24"),
        lab.plug(hv2, "vm2", "vm2", "10.0.0.12/24"),
        "loomctl port show vm2",
        f"ip netns exec {vm1} ping -c 3 10.0.0.12",
        "loomctl trace --from-port vm1 --to-port vm2 --proto tcp --dport 22",
        "loomctl trace --from-port vm2 --to-port vm1",
        f"OVS_RUNDIR={hv1.ovs_rundir} loomctl trace --switch --from-port vm1 --to-port vm2 --proto tcp --dport 22 "
        f"{lab.hv_rundirs((hv2,))}",
        f"OVS_RUNDIR={hv2.ovs_rundir} loomctl trace --switch --from-port vm2 --to-port vm1 {lab.hv_rundirs((hv1,))}",
        f"OVS_RUNDIR={hv1.ovs_rundir} ovs-ofctl -O OpenFlow13 dump-flows br-int",
        f"loomctl host flows {hv1.name}",
    ]


def bare_guide(lab: LabAddresses, started_in: float) -> str:
    """A lab without Loom: namespaces and their OVS, nothing else (``up --bare``)."""
    lines = [
        f"lab {lab.config.prefix}: {len(lab.hypervisors)} hypervisors (no controller, no agents), "
        f"started in {started_in:.1f}s",
        f"  root namespace on the management network: {lab.config.controller_ip}",
    ]
    for hv in lab.hypervisors:
        lines.append(
            f"  {hv.name}: netns {hv.netns}, mgmt {hv.mgmt_ip}, tunnel {hv.tunnel_ip} (br-phy), "
            f"ovsdb unix:{hv.ovsdb_socket}"
        )
        lines.append(f"      ip netns exec {hv.netns} env OVS_RUNDIR={hv.ovs_rundir} ovs-vsctl show")
    lines.append("Ctrl-C to stop and remove everything.")
    return "\n".join(lines)


def loom_guide(lab: LabAddresses, started_in: float) -> str:
    """Loom on the lab: where everything is, and a first session to paste into another shell."""
    cfg = lab.config
    hvs = lab.hypervisors
    names = f"{hvs[0].name}..{hvs[-1].name}" if len(hvs) > 1 else hvs[0].name
    out = [
        f'Loom lab "{cfg.prefix}" is up: a controller and {len(hvs)} hypervisors ({names}) with their agents, '
        f"in {started_in:.1f} s.",
        f"  controller  {lab.api_address}  log {os.path.join(cfg.state_dir, 'controller.log')}",
    ]
    for hv in hvs:
        out.append(
            f"  {hv.name:<10}  netns {hv.netns}  mgmt {hv.mgmt_ip}  tunnel {hv.tunnel_ip}  "
            f"OVS_RUNDIR={hv.ovs_rundir}  agent log {os.path.join(hv.ovs.root, 'agent.log')}"
        )
    out += [
        "",
        "A first session (docs/lab.md explains each step); in another shell, as root:",
        "",
        *(f"  {line}" for line in first_session(lab)),
        "",
        "Every hypervisor's switch, and the trace across all of them:",
        "",
        *(f"  OVS_RUNDIR={hv.ovs_rundir} ovs-ofctl -O OpenFlow13 dump-flows br-int" for hv in hvs),
        f"  loomctl trace --switch ... {lab.hv_rundirs()}",
        "",
        f"Ctrl-C here stops everything and removes it (VM namespaces named {cfg.prefix}-* too).",
    ]
    return "\n".join(out)
