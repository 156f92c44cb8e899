"""Device names from port ids, the tap MAC convention, OVSDB remote parsing, and the vif CLI's arguments."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataplane.ovs.idl import default_remote, normalize_remote
from vif import cli
from vif.names import IFNAMSIZ, tap_mac, vif_device_name


def test_device_name_is_tap_plus_eleven_characters_of_the_port_id() -> None:
    assert vif_device_name("3f2a9c1e-7b4d-4a4e-9d1c-0123456789ab") == "tap3f2a9c1e-7b"


@given(st.text(min_size=1, max_size=80))
def test_device_names_are_valid_and_deterministic(port_id: str) -> None:
    try:
        name = vif_device_name(port_id)
    except ValueError:
        assert not any(c.isascii() and (c.isalnum() or c in "_.-") for c in port_id)
        return
    assert name == vif_device_name(port_id)
    assert len(name) <= IFNAMSIZ and name.startswith("tap")
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)


def test_unusable_port_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="no characters usable"):
        vif_device_name("///")


def test_tap_mac_replaces_the_first_octet() -> None:
    assert tap_mac("FA:16:3E:01:02:03") == "fe:16:3e:01:02:03"


def test_ovsdb_remotes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVS_RUNDIR", "/tmp/lv-run")
    assert default_remote() == "unix:/tmp/lv-run/db.sock"
    assert normalize_remote(None) == "unix:/tmp/lv-run/db.sock"
    assert normalize_remote("/x/db.sock") == "unix:/x/db.sock"
    assert normalize_remote("tcp:127.0.0.1:6640") == "tcp:127.0.0.1:6640"
    monkeypatch.delenv("OVS_RUNDIR")
    assert default_remote() == "unix:/var/run/openvswitch/db.sock"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p


def test_cli_plug_arguments() -> None:
    args = parser().parse_args(
        [
            "plug",
            "--port-id",
            "p1",
            "--mac",
            "fa:16:3e:00:00:01",
            "--netns",
            "vm1",
            "--ofport",
            "100",
            "--ip",
            "10.0.0.5/24",
            "--ip",
            "fd00::5/64",
            "--gateway",
            "10.0.0.1",
            "--kind",
            "veth",
        ]
    )
    assert (args.vif_command, args.port_id, args.ofport, args.ip, args.mtu) == (
        "plug",
        "p1",
        100,
        ["10.0.0.5/24", "fd00::5/64"],
        None,
    )


def test_cli_rejects_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["unplug", "--port-id", "p1", "--ifname", "tap1"])  # one or the other
    with pytest.raises(SystemExit):
        parser().parse_args(["plug", "--mac", "fa:16:3e:00:00:01"])  # --port-id is required
    args = parser().parse_args(["plug", "--port-id", "p1", "--kind", "tap", "--mac", "m", "--netns", "vm1"])
    assert cli.run(args) == 1
    assert "apply to --kind veth only" in capsys.readouterr().err
