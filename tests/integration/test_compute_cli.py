"""loomctl's compute commands against a live controller: images, volumes, booted instances, hypervisors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from protos.loom.v1 import hypervisor_pb2, hypervisor_pb2_grpc
from tests.integration.controller_harness import LiveController
from tests.integration.test_controller_cli import fields, loomctl

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed")


def test_image_volume_instance_walkthrough(live: LiveController, tmp_path: Path) -> None:
    hv = hypervisor_pb2_grpc.HypervisorServiceStub(live.channel)
    hv.Report(hypervisor_pb2.HypervisorReport(host="cli-hv", vcpus=2, memory_mb=4096, hypervisor_up=True))
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"], check=True)
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\x7fkernel" * 1000)
    k = fields(loomctl(live, "image", "upload", str(kernel), "--disk-format", "aki", "--name", "cli-kernel").stdout)
    img = fields(
        loomctl(
            live, "image", "upload", str(disk), "--disk-format", "qcow2", "--name", "cli-disk",
            "--kernel", "cli-kernel", "--cmdline", "console=ttyS0",
        ).stdout
    )  # fmt: skip
    assert (img["status"], img["virtual_size"], k["disk_format"]) == ("active", str(1 << 30), "aki")
    assert f"kernel_id={k['id']}" in img["properties"]
    out = tmp_path / "back"
    loomctl(live, "image", "download", "cli-kernel", "-o", str(out))
    assert out.read_bytes() == kernel.read_bytes()

    loomctl(live, "network", "create", "cli-compute")
    loomctl(live, "subnet", "create", "10.81.0.0/24", "--network", "cli-compute")
    inst = fields(
        loomctl(
            live, "instance", "create", "cli-vm", "--image", "cli-disk", "--vcpus", "1", "--ram", "256",
            "--network", "cli-compute", "--host", "cli-hv",
        ).stdout
    )  # fmt: skip
    assert (inst["status"], inst["task_state"], inst["host"]) == ("BUILD", "spawning", "cli-hv")
    assert inst["flavor"] == "1 vCPUs, 256 MiB, 0 GiB"
    listed = json.loads(loomctl(live, "--json", "hypervisor", "list").stdout)
    assert [(h["host"], h["instances"]) for h in listed if h["host"] == "cli-hv"] == [("cli-hv", 1)]

    vol = fields(loomctl(live, "volume", "create", "cli-vol", "--size", "1").stdout)
    assert vol["status"] == "available"
    attached = fields(loomctl(live, "volume", "attach", "cli-vol", "cli-vm").stdout)
    assert (attached["status"], attached["device"]) == ("attaching", "/dev/vdb")
    refused = loomctl(live, "image", "delete", "cli-kernel", ok=False)
    assert refused.returncode != 0 and "in use" in refused.stderr
    stopped = fields(loomctl(live, "instance", "stop", "cli-vm").stdout)
    assert stopped["task_state"] == "powering-off"
    assert loomctl(live, "instance", "console", "cli-vm").stdout == "\n"  # nothing reported yet
    loomctl(live, "instance", "delete", "cli-vm")
    loomctl(live, "volume", "show", "cli-vol")
