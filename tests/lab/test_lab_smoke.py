"""The lab itself: its networks, its OVS instances, running things inside, VMs, agents, no route out."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid

import pytest

from dataplane.common.constants import BR_INT, BR_PHY, TUNNEL_OFPORT, TUNNEL_PORT_NAME
from lab.mininet import Lab
from lab.mininet.cleanup import clean
from tests.integration.vif_fixtures import REPO

pytestmark = pytest.mark.lab


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_each_hypervisor_has_its_own_ovs_and_bridges(lab: Lab) -> None:
    system_ids = set()
    for hv in lab.hypervisors:
        assert lab.run(hv, ["ovs-vsctl", "get", "Bridge", BR_INT, "fail_mode"]).stdout.strip() == "secure"
        assert lab.run(hv, ["ovs-vsctl", "get", "Bridge", BR_PHY, "datapath_type"]).stdout.strip() == "netdev"
        assert lab.run(hv, ["ovs-vsctl", "get", "Interface", TUNNEL_PORT_NAME, "ofport"]).stdout.strip() == str(
            TUNNEL_OFPORT
        )
        system_ids.add(lab.run(hv, ["ovs-vsctl", "get", "Open_vSwitch", ".", "external_ids:system-id"]).stdout)
        # The OpenFlow management socket the agent will use exists.
        assert os.path.exists(hv.mgmt_socket())
        assert lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "show", f"unix:{hv.mgmt_socket()}"]).returncode == 0
        addrs = json.loads(lab.run(hv, ["ip", "-j", "-4", "addr", "show", BR_PHY]).stdout)[0]["addr_info"]
        assert [a["local"] for a in addrs] == [hv.tunnel_ip]
    assert len(system_ids) == len(lab.hypervisors)


def test_management_and_underlay_reach_but_nothing_routes_out(lab: Lab) -> None:
    hv1, hv2 = lab.hypervisors[:2]
    lab.run(hv1, ["ping", "-c", "1", "-W", "2", lab.config.controller_ip])
    lab.run(hv1, ["ping", "-c", "1", "-W", "2", hv2.mgmt_ip])
    lab.run(hv1, ["ping", "-c", "1", "-W", "2", hv2.tunnel_ip])
    for hv in lab.hypervisors:
        assert lab.run(hv, ["ip", "route", "show", "default"]).stdout.strip() == ""
    # The machine's own gateway is unreachable from inside the lab.
    gateway = os.popen("ip route show default").read().split()
    if len(gateway) > 2:
        assert lab.run(hv1, ["ping", "-c", "1", "-W", "1", gateway[2]], check=False).returncode != 0


def test_a_controller_in_the_root_namespace_is_reachable_over_tcp(lab: Lab) -> None:
    import socket

    with socket.socket() as server:
        server.bind((lab.config.controller_ip, 0))
        server.listen(1)
        port = server.getsockname()[1]
        probe = lab.run(
            "hv2",
            [
                sys.executable,
                "-c",
                f"import socket; s=socket.create_connection(('{lab.config.controller_ip}', {port}), 3);"
                "s.sendall(b'hello')",
            ],
        )
        assert probe.returncode == 0
        conn, peer = server.accept()
        with conn:
            assert conn.recv(5) == b"hello" and peer[0] == lab.hv("hv2").mgmt_ip


def test_add_and_remove_vm(lab_vms: Lab) -> None:
    lab = lab_vms
    pid = "lab" + uuid.uuid4().hex
    vm = lab.add_vm("hv2", f"smoke-{pid[3:9]}", pid, "fa:16:3e:5a:00:01", ofport=150, ip="10.20.0.5/24")
    assert vm.vif.ofport == 150 and vm.hypervisor == "hv2"
    assert (
        lab.run("hv2", ["ovs-vsctl", "get", "Interface", vm.vif.device, "external_ids:iface-id"])
        .stdout.strip()
        .strip('"')
        == pid
    )
    assert "10.20.0.5/24" in lab.vm_run(vm, ["ip", "-o", "addr", "show", "eth0"]).stdout
    # The VM's device lives in hv2's namespace, not in the root namespace.
    assert lab.run("hv2", ["ip", "link", "show", vm.vif.device]).returncode == 0
    assert os.system(f"ip link show {vm.vif.device} >/dev/null 2>&1") != 0
    lab.remove_vm(vm.name)
    assert not os.path.exists(f"/run/netns/{vm.netns}")
    assert lab.run("hv2", ["ip", "link", "show", vm.vif.device], check=False).returncode != 0


def test_vif_cli_runs_inside_a_hypervisor(lab: Lab) -> None:
    """loomctl vif from a process in the hypervisor's namespace, OVSDB found through $OVS_RUNDIR."""
    pid = "lab" + uuid.uuid4().hex
    netns = f"{lab.config.prefix}-cli-{pid[3:9]}"
    try:
        out = lab.run(
            "hv3",
            [
                sys.executable,
                "-m",
                "vif.cli",
                "plug",
                "--port-id",
                pid,
                "--mac",
                "fa:16:3e:5a:00:02",
                "--netns",
                netns,
                "--ofport",
                "160",
                "--json",
            ],
            env={"PYTHONPATH": REPO},
        ).stdout
        assert json.loads(out)["ofport"] == 160
        assert (
            lab.run("hv3", ["ovs-vsctl", "get", "Interface", json.loads(out)["device"], "ofport"]).stdout.strip()
            == "160"
        )
    finally:
        lab.run(
            "hv3",
            [sys.executable, "-m", "vif.cli", "unplug", "--port-id", pid, "--delete-netns", netns],
            env={"PYTHONPATH": REPO},
            check=False,
        )
    assert not os.path.exists(f"/run/netns/{netns}")


def test_agent_hooks(lab: Lab) -> None:
    hv = lab.hv("hv1")
    script = "import os, time; print(os.environ['OVS_RUNDIR'], os.environ['LOOM_LAB_HOST'], flush=True); time.sleep(60)"
    proc = lab.start_agent(hv, [sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and hv.ovs_rundir not in read(lab.agent_log_path(hv)):
            time.sleep(0.05)
        assert f"{hv.ovs_rundir} hv1" in read(lab.agent_log_path(hv))
        # It runs inside hv1's network namespace (`ip netns exec` execs the command: same pid).
        assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.stat(f"/run/netns/{hv.netns}").st_ino
        with pytest.raises(Exception, match="running already"):
            lab.start_agent(hv, ["sleep", "1"])
    finally:
        status = lab.stop_agent(hv, signal.SIGKILL)
    assert status == -signal.SIGKILL
    assert lab.stop_agent(hv) is None


def test_clean_leaves_a_running_lab_alone(lab: Lab) -> None:
    report = clean(lab.config.prefix)
    assert lab.config.state_dir in report.skipped_live
    assert not any(n.startswith(lab.config.prefix) for n in report.netns)
    lab.run("hv1", ["ping", "-c", "1", "-W", "2", lab.hv("hv2").tunnel_ip])
