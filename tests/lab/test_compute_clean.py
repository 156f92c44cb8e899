"""A lab with a libvirtd per hypervisor whose owner died: `clean` also kills libvirtd, virtlogd and the guests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from dataplane.common import netns as ns
from tests.integration.vif_fixtures import REPO
from tests.lab.conftest import slot_config

pytestmark = pytest.mark.lab

CONFIG = slot_config("z", hypervisors=1)  # the clean test's names: no other lab of this session uses them
PREFIX = CONFIG.prefix

# The owner starts a lab, a libvirtd on its hypervisor and a guest there (the tiny guest, no NIC), prints the
# pids, and dies without cleaning up.
CRASHING_OWNER = f"""
import json, os, signal
import libvirt
from lab.mininet import Lab, LabConfig, guest_image
from lab.mininet.libvirt_instance import LibvirtInstance
lab = Lab(config=LabConfig(hypervisors=1, prefix="{PREFIX}", mgmt_cidr="{CONFIG.mgmt_cidr}")).start()
hv = lab.hypervisors[0]
lv = LibvirtInstance(hv.ovs.root, hv.netns, hv.name)
lv.start()
image = guest_image.build()
conn = libvirt.open(lv.uri)
dom = conn.createXML(f'''<domain type="qemu"><name>orphan</name><memory unit="MiB">128</memory>
<os><type arch="x86_64" machine="pc">hvm</type><kernel>{{image.kernel}}</kernel><initrd>{{image.initrd}}</initrd>
<cmdline>console=ttyS0 quiet</cmdline></os><devices><memballoon model="none"/></devices></domain>''', 0)
pids = {{
    "libvirtd": lv.proc.pid,
    "virtlogd": int((lv.root / "run" / "virtlogd.pid").read_text()),
    "qemu": lv.domain_pids()[0],
}}
print(json.dumps(pids), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def still_running(pids: dict[str, int], wait: float = 5.0) -> list[str]:
    """The processes still running once SIGKILL had ``wait`` seconds to land."""
    deadline = time.monotonic() + wait
    while (left := [name for name, pid in pids.items() if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.skipif(shutil.which("libvirtd") is None, reason="libvirtd is not installed (make bootstrap)")
def test_clean_kills_the_hypervisors_libvirtd_virtlogd_and_guests() -> None:
    owner = subprocess.run(
        [sys.executable, "-c", CRASHING_OWNER], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    try:
        assert owner.returncode == -signal.SIGKILL, owner.stderr[-3000:]
        pids = json.loads(owner.stdout.strip().splitlines()[-1])
        assert all(alive(pid) for pid in pids.values()), pids  # the crash left them running
    finally:
        out = subprocess.run(
            [sys.executable, "-m", "lab.mininet", "clean", "--prefix", PREFIX],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    assert still_running(pids) == []
    assert not ns.list_names(PREFIX)
    assert not os.path.exists(CONFIG.state_dir)
