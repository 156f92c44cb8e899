"""A lab whose owner died (SIGKILL) leaves processes, namespaces, bridges and files; `clean` removes them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dataplane.common import netns as ns
from tests.integration.vif_fixtures import REPO
from tests.lab.conftest import slot_config
from vif import link

pytestmark = pytest.mark.lab

CONFIG = slot_config("z", hypervisors=2)  # not the session lab's prefix, nor its management range
PREFIX = CONFIG.prefix
STATE_DIR = f"/tmp/loom-{PREFIX}"
AGENT_SLEEP = "299.123"  # a command line no other process has

CRASHING_OWNER = f"""
import os, signal, uuid
from lab.mininet import Lab, LabConfig
lab = Lab(config=LabConfig(hypervisors=2, prefix="{PREFIX}", mgmt_cidr="{CONFIG.mgmt_cidr}")).start()
lab.add_vm("hv1", "orphan", "lab" + uuid.uuid4().hex, "fa:16:3e:00:0d:01", ip="10.13.0.1/24")
lab.start_agent("hv2", ["sleep", "{AGENT_SLEEP}"])
print("up", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def leftovers() -> list[str]:
    found = [f"netns {n}" for n in ns.list_names(PREFIX)]
    found += [f"link {i.name}" for i in link.list_links() if i.name.startswith(PREFIX)]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if STATE_DIR.encode() + b"/" in cmd or f"mininet:{PREFIX}".encode() in cmd or AGENT_SLEEP.encode() in cmd:
            found.append(f"process {pid}")
    if os.path.exists(STATE_DIR):
        found.append(STATE_DIR)
    return found


def test_clean_after_the_owner_was_killed() -> None:
    owner = subprocess.run(
        [sys.executable, "-c", CRASHING_OWNER], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    try:
        assert owner.returncode == -signal.SIGKILL and "up" in owner.stdout, owner.stderr
        time.sleep(0.2)
        left = leftovers()
        # The crash really left things behind: OVS daemons, Mininet shells, namespaces, bridges, files.
        assert sum(s.startswith("process") for s in left) >= 5  # 2 x (ovsdb-server, ovs-vswitchd), the agent
        assert f"netns {PREFIX}hv1" in left
        assert f"netns {PREFIX}-orphan" in left and f"link {PREFIX}mgmt" in left and STATE_DIR in left
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
    assert leftovers() == []
