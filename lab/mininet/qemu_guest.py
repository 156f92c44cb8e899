"""A real qemu guest on a tap, driven from the host through its serial console.

    image = guest_image.build()
    with QemuGuest.start(image, netns="labhv1", tap="tap3f2a9c1e-7b", mac=mac, workdir=tmp) as vm:
        lease = vm.wait_lease()                    # what udhcpc got and applied (address, MTU, routes)
        out = vm.check("sha256sum /tmp/blob")      # a shell command in the guest; raises on non-zero

qemu runs under TCG (KVM hangs on these machines) inside the hypervisor's
network namespace, so ``-netdev tap,ifname=...`` opens the tap the hypervisor
plugged. Its network options are qemu's defaults, which are libvirt's too
(vnet_hdr on, so the guest hands checksum and segmentation work to the host);
``vnet_hdr=False`` or ``device_options`` change them for comparisons.

The serial port is a unix socket (the host's end of the shell the guest
serves) and is logged to ``console.log`` in ``workdir``, which is what tests
read the DHCP lease from and what to look at when a guest misbehaves.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from dataplane.common.logs import get_logger
from lab.mininet.guest_image import LEASE_MARKER, NO_LEASE_MARKER, READY_MARKER, GuestImage

log = get_logger(__name__)

QEMU = "qemu-system-x86_64"
_SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes; keep a margin
_LEASE = re.compile(rf"^{LEASE_MARKER} (.*)$", re.M)
_FIELD = re.compile(r'(\w+)=("[^"]*"|\S*)')


class GuestError(RuntimeError):
    """The guest did not boot, answer or behave; the message says which guest and points at its console log."""


# A status line the guest's init writes on its own (LOOM-LEASE, LOOM-HOSTNAME, LOOM-USERDATA-...).
_GUEST_STATUS_LINE = re.compile(r"^LOOM-[A-Z-]+(?: [^\n]*)?\n", re.M)


@dataclass(frozen=True, slots=True)
class Lease:
    """The DHCP lease the guest applied, as its udhcpc hook printed it."""

    ip: str
    mask: str
    router: str
    mtu: str
    staticroutes: str

    @classmethod
    def parse(cls, line: str) -> Lease:
        fields = {k: v.strip('"') for k, v in _FIELD.findall(line)}
        return cls(*(fields.get(k, "") for k in ("ip", "mask", "router", "mtu", "staticroutes")))


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int  # 0: no HTTP answer
    body: str
    raw: str  # everything the guest's nc printed, for failure messages


@dataclass
class SerialConsole:
    """A guest's serial port: its log, and the shell the Loom test guest serves on it (through a unix socket).

    Works for any guest whose serial port is a unix socket logged to a file: a
    qemu started here (``QemuGuest``) or a domain libvirt started for an
    instance (``lab/mininet/compute.py``).
    """

    name: str
    console_log: Path
    socket_path: Path
    _sock: socket.socket | None = field(default=None, repr=False)
    _buffer: bytes = field(default=b"", repr=False)
    _seq: int = field(default=0, repr=False)

    def _check_alive(self) -> None:
        """Raise GuestError if the guest is known to be gone (subclasses know how to tell)."""

    def close(self) -> None:
        """Drop the connection to the serial port (the next command opens a new one: after a reboot, say)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    # ------------------------------------------------------------ boot

    def console(self, since: int = 0) -> str:
        """Everything the guest printed on its serial port so far (from byte ``since`` of the log)."""
        try:
            with open(self.console_log, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """Where the console log ends now: pass it as ``since`` to look only at what comes next (a reboot)."""
        try:
            return self.console_log.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_ready(self, timeout: float = 60.0, since: int = 0) -> str:
        """Until the guest has its DHCP answer (or gave up) and serves its shell; returns the console so far."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.console(since)
            if READY_MARKER in text:
                return text
            self._check_alive()
            if time.monotonic() > deadline:
                raise GuestError(f"guest {self.name} not ready after {timeout} s; console:\n{text[-2000:]}")
            time.sleep(0.1)

    def wait_lease(self, timeout: float = 60.0, since: int = 0) -> Lease:
        """The lease the guest applied at boot; GuestError if it got none."""
        text = self.wait_ready(timeout, since)
        found = _LEASE.findall(text)
        if not found or NO_LEASE_MARKER in text:
            raise GuestError(f"guest {self.name} got no DHCP lease; console:\n{text[-2000:]}")
        return Lease.parse(found[-1])

    # ------------------------------------------------------------ shell

    def _connect(self, timeout: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
                self._sock = sock
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                self._check_alive()
                if time.monotonic() > deadline:
                    raise GuestError(f"guest {self.name}: console socket {self.socket_path} never opened") from None
                time.sleep(0.05)

    def run(self, command: str, timeout: float = 30.0) -> tuple[int, str]:
        """Run ``command`` in the guest's shell; its exit status and output (stdout and stderr)."""
        sock = self._connect(timeout)
        try:
            sock.getpeername()
        except OSError:  # the guest's qemu was restarted: a new socket
            self.close()
            sock = self._connect(timeout)
        self._seq += 1
        marker = f"@@loom-end-{self._seq}@@"
        end = re.compile(rf"{marker}(\d+)@@".encode())
        # $? is expanded by the guest's shell, so the marker with a number in it only appears in the output.
        # (The guest's shell gives commands /dev/null as stdin and the serial port as stdout and stderr.)
        sock.sendall(f'{command}\necho "{marker}$?@@"\n'.encode())
        deadline = time.monotonic() + timeout
        while (m := end.search(self._buffer)) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestError(f"guest {self.name}: `{command}` did not finish in {timeout} s")
            sock.settimeout(min(remaining, 1.0))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                self._check_alive()
                continue
            if not chunk:
                raise GuestError(f"guest {self.name}: console closed while running `{command}`")
            self._buffer += chunk
        output, self._buffer = self._buffer[: m.start()], self._buffer[m.end() :]
        # The guest's init prints its own status lines (LOOM-HOSTNAME ..., its cloud-init) on the same
        # serial port whenever they happen: they are not the command's output (console() keeps them).
        text = _GUEST_STATUS_LINE.sub("", output.decode(errors="replace"))
        return int(m.group(1)), text

    def check(self, command: str, timeout: float = 30.0) -> str:
        """``run``, raising GuestError with the output when the command fails."""
        status, output = self.run(command, timeout)
        if status != 0:
            raise GuestError(f"guest {self.name}: `{command}` exited {status}: {output.strip()[-1000:]}")
        return output

    def http_get(
        self, path: str, host: str = "169.254.169.254", port: int = 80, connect_timeout: int = 10
    ) -> HttpReply:
        """GET ``http://host:port/path`` from the guest with busybox nc (busybox wget crashes in this guest).

        Status 0 means no HTTP answer at all (no connection, or nothing came back).
        """
        request = "GET %s HTTP/1.0\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n"
        command = f"printf '{request}' {shlex.quote(path)} {shlex.quote(host)} | nc -w {connect_timeout} {host} {port}"
        _, output = self.run(command, connect_timeout + 30)
        head, _, body = output.partition("\r\n\r\n")
        m = re.search(r"HTTP/1\.[01] (\d{3})", head)
        return HttpReply(int(m.group(1)) if m else 0, body if m else "", output)


@dataclass
class QemuGuest(SerialConsole):
    """One running qemu; ``stop()`` (or leaving the ``with``) kills it and removes its files."""

    proc: subprocess.Popen[bytes] | None = None
    workdir: Path = Path(".")
    _own_socket_dir: Path | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        image: GuestImage,
        *,
        netns: str | None,
        tap: str,
        mac: str,
        workdir: Path,
        name: str = "guest",
        memory_mb: int = 256,
        vnet_hdr: bool | None = None,
        device_options: str = "",
        extra_args: tuple[str, ...] = (),
    ) -> QemuGuest:
        """Boot ``image`` with its NIC on the existing tap ``tap`` (in namespace ``netns``).

        ``vnet_hdr`` None leaves qemu's default (on where the kernel supports it);
        ``device_options`` are appended to ``-device virtio-net-pci`` (e.g. ``csum=off``).
        """
        workdir.mkdir(parents=True, exist_ok=True)
        console_log = workdir / f"{name}.console.log"
        socket_path = workdir / f"{name}.console.sock"
        own_dir = None
        if len(str(socket_path)) > _SUN_PATH_MAX:
            own_dir = Path(tempfile.mkdtemp(prefix="loom-guest-"))
            socket_path = own_dir / "console.sock"
        console_log.unlink(missing_ok=True)
        socket_path.unlink(missing_ok=True)
        netdev = f"tap,id=net0,ifname={tap},script=no,downscript=no"
        if vnet_hdr is not None:
            netdev += f",vnet_hdr={'on' if vnet_hdr else 'off'}"
        device = f"virtio-net-pci,netdev=net0,mac={mac}" + (f",{device_options}" if device_options else "")
        argv = [
            QEMU,
            "-name",
            name,
            "-accel",
            "tcg",
            "-m",
            str(memory_mb),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            str(image.kernel),
            "-initrd",
            str(image.initrd),
            "-append",
            "console=ttyS0 panic=-1 quiet",
            "-netdev",
            netdev,
            "-device",
            device,
            "-chardev",
            f"socket,id=console,path={socket_path},server=on,wait=off,logfile={console_log}",
            "-serial",
            "chardev:console",
            *extra_args,
        ]
        if netns:
            argv = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
        stderr = open(workdir / f"{name}.qemu.log", "wb")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, start_new_session=True
            )
        finally:
            stderr.close()
        log.info("guest started", guest=name, pid=proc.pid, netns=netns or "", tap=tap, mac=mac, netdev=netdev)
        return cls(name, console_log, socket_path, proc=proc, workdir=workdir, _own_socket_dir=own_dir)

    # ------------------------------------------------------------ life cycle

    def __enter__(self) -> QemuGuest:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill qemu (it has nothing to save) and close the console; safe to call twice."""
        self.close()
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            log.info("guest stopped", guest=self.name, pid=self.proc.pid)
        self.socket_path.unlink(missing_ok=True)
        if self._own_socket_dir is not None:
            shutil.rmtree(self._own_socket_dir, ignore_errors=True)

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise GuestError(f"guest {self.name}: qemu exited ({self.proc.returncode}); see {self.workdir}")
