"""What `python -m lab.mininet up` prints is what docs/lab.md shows, for the default lab."""

from __future__ import annotations

from lab.mininet.config import LabConfig
from lab.mininet.howto import LabAddresses, first_session, loom_guide
from lab.mininet.lab import Lab
from tests.docs_commands import PARSED, ROOT, TESTED, localise, marked_blocks


def addresses(config: LabConfig, bindir: str = "$PWD/.venv/bin") -> LabAddresses:
    lab = Lab(config=config)  # not started: only its names and paths
    return LabAddresses(lab.config, tuple(lab.hypervisors), bindir=bindir)


def test_docs_first_session_is_what_up_prints_for_the_default_lab() -> None:
    first, *_ = marked_blocks(ROOT / "docs" / "lab.md", TESTED)
    assert first == first_session(addresses(LabConfig()))


def test_the_printed_guide_holds_the_session_with_the_labs_own_names() -> None:
    cfg = LabConfig(prefix="labq", mgmt_cidr="198.18.40.0/24")
    guide = loom_guide(addresses(cfg, bindir="/opt/loom/.venv/bin"), 4.2)
    assert "  export PATH=/opt/loom/.venv/bin:$PATH LOOM_SERVER=198.18.40.254:9696" in guide
    assert (
        "  nsenter --net=/run/netns/labqhv1 env OVS_RUNDIR=/tmp/loom-labq/hv1/run loomctl vif plug --port-id vm1 "
        "--netns labq-vm1 --ip 10.0.0.11/24" in guide
    )
    assert "--hv-rundir hv3=/tmp/loom-labq/hv3/run" in guide
    assert "OVS_RUNDIR=/tmp/loom-labq/hv3/run ovs-ofctl -O OpenFlow13 dump-flows br-int" in guide
    assert "Ctrl-C" in guide


def test_default_names_are_rewritten_for_another_lab() -> None:
    cfg = LabConfig(prefix="lab6u", mgmt_cidr="198.18.106.0/24")
    doc = (
        "nsenter --net=/run/netns/labhv1 env OVS_RUNDIR=/tmp/loom-lab/hv1/run loomctl vif plug --port-id vm1 "
        "--netns lab-vm1 && ip netns exec lab-vm1 true && export LOOM_SERVER=198.18.0.254:9696"
    )
    assert localise(doc, cfg) == (
        "nsenter --net=/run/netns/lab6uhv1 env OVS_RUNDIR=/tmp/loom-lab6u/hv1/run loomctl vif plug --port-id vm1 "
        "--netns lab6u-vm1 && ip netns exec lab6u-vm1 true && export LOOM_SERVER=198.18.106.254:9696"
    )


def test_every_marked_block_has_commands() -> None:
    for path in (ROOT / "README.md", ROOT / "docs" / "lab.md"):
        for marker in (TESTED, PARSED):
            for block in marked_blocks(path, marker):
                assert block, f"{path.name}: an empty {marker} block"
    assert marked_blocks(ROOT / "README.md", PARSED)[0][0].startswith("loom-controller --listen 0.0.0.0:9696 --db ")
