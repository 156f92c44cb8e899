"""The ready-file handshake: the waiter gets the port, or a reason when the controller never gets ready."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.ready_file import ControllerNotReady, clear_ready_file, wait_ready_file, write_ready_file


def test_the_waiter_reads_the_port_the_process_wrote(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = (
        "import time; from controller.ready_file import write_ready_file; "
        f"time.sleep(0.2); write_ready_file({str(ready)!r}, 6653)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2])
    try:
        assert wait_ready_file(proc, str(ready), timeout=30) == 6653
    finally:
        proc.wait(10)
    assert not (tmp_path / "ready.tmp").exists()


def test_a_process_that_exits_first_is_reported_with_its_code_and_log(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(ControllerNotReady, match=r"exited with 3; see /x/controller.log"):
        wait_ready_file(proc, str(tmp_path / "ready"), timeout=30, log_path="/x/controller.log")


def test_a_stale_file_is_cleared_and_a_silent_process_times_out(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    write_ready_file(str(ready), 1)
    clear_ready_file(str(ready))
    clear_ready_file(str(ready))  # already gone: fine
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(ControllerNotReady, match=r"did not become ready within 0\.3 s"):
            wait_ready_file(proc, str(ready), timeout=0.3)
    finally:
        proc.kill()
        proc.wait(10)
