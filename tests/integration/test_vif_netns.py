"""Named namespaces: idempotent create/delete, entering one from a thread, attach, executors."""

from __future__ import annotations

import os
import subprocess
import threading
import time

from dataplane.common import netns as ns
from tests.integration.vif_fixtures import Janitor, sh, unique
from vif import link


def inode(path: str) -> int:
    return os.stat(path).st_ino


def test_create_and_delete_are_idempotent(janitor: Janitor) -> None:
    name = janitor.netns()
    assert ns.create(name) is True and ns.create(name) is False
    assert name in ns.list_names("lv-ns") and name in sh("ip", "netns", "list")
    assert "UP" in sh("ip", "-n", name, "link", "show", "lo")  # loopback is up
    assert ns.delete(name) is True and ns.delete(name) is False
    assert not ns.exists(name) and name not in sh("ip", "netns", "list")


def test_entered_moves_only_the_calling_thread(janitor: Janitor) -> None:
    name = janitor.netns()
    ns.create(name)
    home = inode("/proc/thread-self/ns/net")
    seen: dict[str, int] = {}

    def other_thread() -> None:
        seen["other"] = inode("/proc/thread-self/ns/net")

    with ns.entered(name):
        assert inode("/proc/thread-self/ns/net") == inode(ns.path(name))
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        # Devices made here are made in that namespace.
        link.ensure_tap("lvtapin0", mac="fe:16:3e:00:00:30", mtu=1400)
    assert inode("/proc/thread-self/ns/net") == home
    assert seen["other"] == inode(ns.path(name))  # threads started inside inherit it
    assert link.get_link("lvtapin0") is None and link.get_link("lvtapin0", name) is not None


def test_executor_and_attach(janitor: Janitor) -> None:
    name = janitor.netns()
    ns.create(name)
    with ns.NetnsExecutor(name) as inside:
        assert inside.submit(inode, "/proc/thread-self/ns/net").result() == inode(ns.path(name))
    # attach names the namespace of a running process (Mininet's hosts get their names this way).
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "30"])
    janitor.processes.append(sleeper)
    deadline = time.monotonic() + 5
    while inode(f"/proc/{sleeper.pid}/ns/net") != inode(ns.path(name)) and time.monotonic() < deadline:
        time.sleep(0.01)  # `ip netns exec` has not entered the namespace yet
    alias = janitor.netns(unique("lv-al"))
    ns.attach(alias, sleeper.pid)
    assert inode(ns.path(alias)) == inode(ns.path(name))
    assert sleeper.pid in ns.pids(alias)
