"""The ready-file handshake between ``loom-controller`` and whoever started it.

The controller writes the port it listens on to ``--ready-file`` once it
takes calls (atomically, so a reader never sees half a number); a supervisor,
test harness or benchmark waits for the file instead of polling the port.
"""

from __future__ import annotations

import os
import subprocess
import time


class ControllerNotReady(RuntimeError):
    """The controller exited or timed out before writing its ready file."""


def write_ready_file(path: str, port: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def clear_ready_file(path: str) -> None:
    """Remove a ready file left by an earlier run, so waiting on it means this run."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def wait_ready_file(proc: subprocess.Popen, path: str, timeout: float = 30.0, log_path: str = "") -> int:
    """The port the controller started as ``proc`` listens on, once it is ready."""
    see = f"; see {log_path}" if log_path else ""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise ControllerNotReady(f"the controller exited with {proc.returncode}{see}")
        if time.monotonic() > deadline:
            raise ControllerNotReady(f"the controller did not become ready within {timeout:g} s{see}")
        time.sleep(0.02)
    with open(path) as f:
        return int(f.read())
