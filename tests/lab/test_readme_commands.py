"""Every command README.md and docs/lab.md show, run as a user would on a lab started by `make lab`.

`make lab` runs in its own process group (as in a terminal) with this test
session's lab names; the commands it prints must be the first session of
docs/lab.md with those names. Then every line of each block marked
``<!-- tested: -->`` runs in bash, in order, from the repository (the README's
block first; its objects are removed before the docs' session, which uses
the same names), with the default lab's names replaced by this lab's. Each
must exit 0; :data:`EXPECT` says what the important ones must print. The
daemon command lines (``<!-- parsed: -->``) go through the daemons' own
argument parsers. At the end the process group gets SIGINT, like Ctrl-C in
the terminal, and the lab must be gone: no namespace, link or state
directory with its prefix.

A documented command that fails is a bug: fix the code or the document.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from controller import config as controller_config
from dataplane import config as agent_config
from dataplane.common import netns as ns
from lab.mininet.config import LabConfig
from lab.mininet.howto import LabAddresses, first_session
from lab.mininet.lab import Lab
from tests.docs_commands import PARSED, ROOT, TESTED, localise, marked_blocks
from tests.lab.conftest import slot_config
from vif import link

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@dataclass(frozen=True)
class Expect:
    """What a documented command must print (every fragment), matched by a piece of the command line."""

    command: str
    prints: tuple[str, ...]
    retry: float = 0.0  # seconds to keep re-running it until it prints them (a state reached asynchronously)
    follow: float = 0.0  # a command that runs until Ctrl-C: stop it after this many seconds
    used: list[int] = field(default_factory=list)


EXPECT = [
    Expect("loomctl agent list", ("hv1", "hv2", "hv3", "yes")),
    Expect("loomctl port create --network blue --host hv1 --name vm1", ("binding_vif_type", "ovs", "ofport=")),
    Expect("loomctl vif plug --port-id vm1", ("plugged port",)),
    Expect("loomctl vif plug --port-id vm3 --kind tap", ("plugged port", "(tap")),
    Expect(
        "loomctl watch --kind port --since 0", ("CREATED", "UPDATED", "name=vm1", "status=ACTIVE"), retry=20, follow=3.0
    ),
    Expect("loomctl port show vm1", ("ACTIVE", "flows_installed", "up "), retry=30),
    Expect("loomctl port show vm2", ("ACTIVE",), retry=30),
    Expect("ping -c 3 10.0.0.12", (" 0% packet loss",)),
    Expect(
        "loomctl trace --from-port vm1 --to-port vm2 --proto tcp --dport 22",
        ("tunnel to hv2", "70. deliver: binding of port vm2", "result: delivered to vm2 on hv2"),
    ),
    Expect("loomctl trace --from-port vm2 --to-port vm1", ("tunnel to hv1", "result: delivered to vm1 on hv1")),
    Expect(
        "loomctl trace --switch --from-port vm1 --to-port vm2",
        ("[classify: binding of port vm1]", "continued on hv2's switch", "result: delivered to vm2 on hv2"),
    ),
    Expect(
        "loomctl trace --switch --from-port vm2 --to-port vm1",
        ("continued on hv1's switch", "result: delivered to vm1 on hv1"),
    ),
    Expect("loomctl security-group show web", ("ingress IPv4 tcp 80 from 0.0.0.0/0", "egress  IPv4 any any to")),
    Expect(
        "loomctl trace --from-port vm1 --to-port vm2 --proto tcp --dport 80",
        ("of group web", "result: delivered to vm2 on hv2"),
    ),
    Expect(
        "loomctl trace --from-port vm1 --to-port vm2 --proto udp --dport 53",
        ("security groups: no rule of the port's security groups allows it", "vm2 is NOT reached"),
    ),
    Expect("ovs-ofctl -O OpenFlow13 dump-flows br-int", ("cookie=0x4c", "table=70")),
    Expect("loomctl host flows hv1", ("flows compiled for hv1", "table=70", "(vm1)")),
    Expect("loomctl trace --from-port vm1 --to-port red1", ("result: red1 is NOT reached", "vm2 on hv2")),
    Expect("loomctl port show vm9", ("binding_failed", "host hv9 has no registered agent", "DOWN")),
]


def _expectation(command: str) -> Expect | None:
    found = [e for e in EXPECT if e.command in command]
    return max(found, key=lambda e: len(e.command)) if found else None


@dataclass
class Shell:
    """Runs documented commands one by one, carrying their ``export``s, as a user's shell would."""

    config: LabConfig
    exports: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)

    def run(self, documented: str) -> str:
        command = localise(documented, self.config)
        if command.startswith("export "):
            self.exports.append(command)
        script = "; ".join([*self.exports, command])
        expect = _expectation(documented)
        deadline = time.monotonic() + (expect.retry if expect else 0)
        while True:
            out, status = self._bash(script, expect.follow if expect else 0)
            missing = [f for f in (expect.prints if expect else ()) if f not in out]
            if status == 0 and not missing:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"documented command failed: {documented}\n  as run: {command}\n  exit {status}, "
                    f"missing {missing}\n{out}"
                )
            time.sleep(0.5)
        if expect:
            expect.used.append(1)
        self.ran.append(command)
        return out

    @staticmethod
    def _bash(script: str, follow: float) -> tuple[str, int]:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=follow or 90)
            return out, proc.returncode
        except subprocess.TimeoutExpired:
            if not follow:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                return out + "\n(timed out)", -1
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: what the documentation says to do
            out, _ = proc.communicate(timeout=10)
            return out, 0 if proc.returncode in (0, 130, -signal.SIGINT) else proc.returncode


@dataclass
class MadeLab:
    config: LabConfig
    proc: subprocess.Popen[str]
    guide: str


@pytest.fixture(scope="module")
def made_lab() -> Iterator[MadeLab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, OVS)")
    config = slot_config("u", hypervisors=3)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS=--prefix {config.prefix} --mgmt-cidr {config.mgmt_cidr}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    guide: list[str] = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            guide.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C here stops everything"):
                break
            assert time.monotonic() < deadline, "make lab did not come up in 120 s:\n" + "\n".join(guide)
        else:
            raise AssertionError("make lab exited before it was up:\n" + "\n".join(guide))
        yield MadeLab(config, proc, "\n".join(guide))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches make and the lab alike
            try:
                proc.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise AssertionError("make lab did not stop within 90 s of Ctrl-C") from None


def test_every_documented_command_works(made_lab: MadeLab) -> None:
    cfg = made_lab.config
    lab = Lab(config=cfg)  # its names and paths only; `make lab` runs it
    printed = first_session(LabAddresses(cfg, tuple(lab.hypervisors), bindir=str(ROOT / ".venv" / "bin")))
    for line in printed:
        assert f"  {line}" in made_lab.guide.splitlines(), f"`up` did not print: {line}\n{made_lab.guide}"

    readme = marked_blocks(ROOT / "README.md", TESTED)
    docs = marked_blocks(ROOT / "docs" / "lab.md", TESTED)

    shell = Shell(cfg)
    for block in readme:
        for command in block:
            shell.run(command)
    # The docs' session uses the README's names again: remove what the README made, as a user would.
    for hv, vm in (("hv1", "vm1"), ("hv2", "vm2"), ("hv1", "vm3")):
        netns = f" --delete-netns lab-{vm}" if vm != "vm3" else ""  # vm3 is a tap: no namespace
        shell.run(
            f"nsenter --net=/run/netns/lab{hv} env OVS_RUNDIR=/tmp/loom-lab/{hv}/run "
            f"loomctl vif unplug --port-id {vm}{netns}"
        )
    shell.run("loomctl port delete vm1 vm2 vm3 && loomctl network delete blue")
    for block in docs:
        for command in block:
            shell.run(command)
    unused = [e.command for e in EXPECT if not e.used]
    assert not unused, f"expected output for commands the documents no longer show: {unused}"


def test_daemon_command_lines_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (daemons,) = marked_blocks(ROOT / "README.md", PARSED)
    controller_line, agent_line, compute_agent_line = daemons
    argv = shlex.split(controller_line)
    assert argv[0] == "loom-controller"
    secret = tmp_path / "metadata-secret"
    secret.write_text("s3cret\n")
    argv = [str(secret) if a == "/etc/loom/metadata-secret" else a for a in argv]
    cfg = controller_config.from_args(argv[1:])
    assert (cfg.listen, cfg.metadata_listen, cfg.metadata_secret) == ("0.0.0.0:9696", "0.0.0.0:8775", "s3cret")
    monkeypatch.setenv("LOOM_LOG_LEVEL", os.environ.get("LOOM_LOG_LEVEL", "INFO"))  # the agent's parser sets it
    argv = shlex.split(agent_line)
    assert argv[0] == "loom-agent"
    agent = agent_config.parse_args(argv[1:])
    assert (agent.host, agent.controller, agent.tunnel_ip) == ("hv1", "ctl:9696", "198.51.100.1")
    compute_agent = agent_config.parse_args(shlex.split(compute_agent_line)[1:])
    assert (compute_agent.host, compute_agent.libvirt_uri) == ("hv2", "qemu:///system")


def test_ctrl_c_removes_the_lab(made_lab: MadeLab) -> None:
    """Last: stop `make lab` as Ctrl-C does, and nothing of its lab is left."""
    os.killpg(made_lab.proc.pid, signal.SIGINT)
    out, _ = made_lab.proc.communicate(timeout=90)
    prefix = made_lab.config.prefix
    assert "stopping" in out, out
    assert not ns.list_names(prefix), f"namespaces left: {ns.list_names(prefix)}"
    assert not [i.name for i in link.list_links() if i.name.startswith(prefix)]
    assert not os.path.exists(made_lab.config.state_dir)
