"""loomctl against a live controller: tables, JSON, name resolution, errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from controller.cli.registry import discover
from tests.integration.controller_harness import ROOT, LiveController, scratch_dir


def loomctl(live: LiveController, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "controller.cli", "--server", live.address, "--timeout", "10", *args]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def fields(output: str) -> dict[str, str]:
    """A ``show`` listing as a dict (first line of each field)."""
    out = {}
    for line in output.splitlines():
        if line and not line[0].isspace():
            name, _, value = line.partition(" ")
            out[name] = value.strip()
    return out


def test_groups_are_discovered() -> None:
    names = [g.name for g in discover()]
    assert {"network", "subnet", "port", "instance", "watch"} <= set(names)
    assert names == sorted(names)


def test_network_subnet_port_walkthrough(live: LiveController) -> None:
    net = fields(loomctl(live, "network", "create", "cli-blue", "--mtu", "1400").stdout)
    assert net["name"] == "cli-blue" and net["mtu"] == "1400" and net["network_type"] == "vxlan"
    listed = json.loads(loomctl(live, "--json", "network", "list", "--name", "cli-blue").stdout)
    assert [n["id"] for n in listed] == [net["id"]] and listed[0]["segmentation_id"] == int(net["segmentation_id"])

    sub = fields(
        loomctl(
            live,
            "subnet",
            "create",
            "10.80.0.0/24",
            "--network",
            "cli-blue",
            "--name",
            "cli-sub",
            "--dns",
            "8.8.8.8",
            "--route",
            "192.168.0.0/16,10.80.0.254",
            "--pool",
            "10.80.0.10-10.80.0.100",
        ).stdout
    )
    assert sub["network_id"] == net["id"] and sub["gateway_ip"] == "10.80.0.1"
    assert (
        sub["allocation_pools"] == "10.80.0.10-10.80.0.100" and sub["host_routes"] == "192.168.0.0/16 via 10.80.0.254"
    )

    port = fields(
        loomctl(
            live,
            "port",
            "create",
            "--network",
            "cli-blue",
            "--name",
            "cli-vm",
            "--host",
            "hv9",
            "--fixed-ip",
            "subnet=cli-sub,ip=10.80.0.50",
        ).stdout
    )
    assert port["fixed_ips"].startswith("10.80.0.50 ") and port["binding_vif_details"].endswith("ofport=100")
    shown = loomctl(live, "port", "show", "cli-vm").stdout  # by name
    assert "accepted" in fields(shown)["stages"] and fields(shown)["id"] == port["id"]

    table = loomctl(live, "port", "list", "--network", "cli-blue").stdout.splitlines()
    header, rows = table[0], table[1:]
    assert header.split()[:4] == ["ID", "NAME", "NETWORK", "MAC"] and len(rows) == 2  # + the DHCP port
    for column in ("NAME", "MAC", "STATUS"):  # aligned: every row's cell starts under its header
        at = header.index(column)
        assert all(row[at - 1] == " " and row[at] != " " for row in rows)
    vm_row = next(r for r in rows if "cli-vm" in r)
    assert "10.80.0.50" in vm_row and "hv9" in vm_row

    updated = fields(loomctl(live, "port", "update", "cli-vm", "--unbind", "--name", "cli-vm2").stdout)
    assert updated["name"] == "cli-vm2" and updated["binding_host_id"] == ""
    assert loomctl(live, "port", "delete", "cli-vm2").stdout.startswith("deleted port cli-vm2")
    loomctl(live, "network", "delete", "cli-blue")
    assert json.loads(loomctl(live, "--json", "network", "list", "--name", "cli-blue").stdout) == []


def test_errors_print_status_and_exit_1(live: LiveController) -> None:
    loomctl(live, "network", "create", "cli-err")
    bad = loomctl(live, "subnet", "create", "10.0.0.0/33", "--network", "cli-err", ok=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: INVALID_ARGUMENT: subnet.cidr: '10.0.0.0/33' is not a valid IPv4 CIDR"
    loomctl(live, "port", "create", "--network", "cli-err")
    busy = loomctl(live, "network", "delete", "cli-err", ok=False)
    assert busy.returncode == 1 and busy.stderr.startswith("error: FAILED_PRECONDITION: network ")
    missing = loomctl(live, "port", "show", "no-such-port", ok=False)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    loomctl(live, "network", "create", "cli-twin")
    loomctl(live, "network", "create", "cli-twin")
    twins = loomctl(live, "network", "show", "cli-twin", ok=False)
    assert twins.returncode == 1 and "2 networks are named 'cli-twin'" in twins.stderr
    down = subprocess.run(
        [sys.executable, "-m", "controller.cli", "--server", "127.0.0.1:1", "--timeout", "2", "network", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1 and down.stderr.startswith("error: UNAVAILABLE")


def test_instance_commands(live: LiveController) -> None:
    with scratch_dir() as tmp:
        data = os.path.join(tmp, "user-data")
        with open(data, "wb") as f:
            f.write(b"#cloud-config\n\x00\xff")
        inst = fields(
            loomctl(
                live,
                "instance",
                "create",
                "CLI Box",
                "--user-data",
                data,
                "--key",
                "default=ssh-ed25519 AAAAkey me",
                "--meta",
                "role=web",
            ).stdout
        )
    assert inst["hostname"] == "cli-box" and inst["user_data"] == "16 bytes" and inst["metadata"] == "role=web"
    got = json.loads(loomctl(live, "--json", "instance", "show", inst["id"]).stdout)
    assert got["public_keys"] == {"default": "ssh-ed25519 AAAAkey me"}
    loomctl(live, "instance", "update", "CLI Box", "--hostname", "box2", "--no-meta")
    again = json.loads(loomctl(live, "--json", "instance", "show", inst["id"]).stdout)
    assert again["hostname"] == "box2" and "metadata" not in again
    assert "CLI Box" in loomctl(live, "instance", "list").stdout
    loomctl(live, "instance", "delete", inst["id"])


def test_watch_replays_as_json_lines(live: LiveController) -> None:
    net = json.loads(loomctl(live, "--json", "network", "create", "cli-watch").stdout)
    since = int(net["revision_number"]) - 1
    cmd = [
        sys.executable,
        "-m",
        "controller.cli",
        "--server",
        live.address,
        "--json",
        "watch",
        "--since",
        str(since),
        "--kind",
        "network",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        event = json.loads(line)
        assert event["type"] == "CREATED" and event["network"]["name"] == "cli-watch"
        assert int(event["revision"]) == since + 1
    finally:
        proc.terminate()
        proc.wait(10)


def test_security_group_commands(live: LiveController) -> None:
    loomctl(live, "network", "create", "cli-sg", "--project", "cli-proj")
    loomctl(live, "subnet", "create", "10.81.0.0/24", "--network", "cli-sg")
    web = fields(loomctl(live, "security-group", "create", "cli-web", "--project", "cli-proj").stdout)
    assert web["name"] == "cli-web" and "egress" in web["rules"]
    rule = fields(
        loomctl(
            live,
            "security-group-rule",
            "create",
            "cli-web",
            "--protocol",
            "tcp",
            "--dst-port",
            "8000:8080",
            "--remote-group",
            "default",
            "--project",
            "cli-proj",
        ).stdout
    )
    assert rule["direction"] == "ingress" and rule["ports"] == "8000:8080" and rule["protocol"] == "tcp"
    default = fields(loomctl(live, "security-group", "show", "default", "--project", "cli-proj").stdout)
    assert rule["remote_group_id"] == default["id"]
    table = loomctl(live, "security-group-rule", "list", "--group", "cli-web").stdout
    assert "8000:8080" in table and f"group {default['id']}" in table
    port = fields(
        loomctl(
            live,
            "port",
            "create",
            "--network",
            "cli-sg",
            "--security-group",
            "cli-web",
            "--allowed-address-pair",
            "ip-address=10.81.0.0/28,mac-address=fa:16:3e:01:02:03",
        ).stdout
    )
    assert port["security_groups"] == web["id"] and port["allowed_address_pairs"] == "10.81.0.0/28 fa:16:3e:01:02:03"
    busy = loomctl(live, "security-group", "delete", "cli-web", ok=False)
    assert busy.returncode == 1 and port["id"] in busy.stderr and "FAILED_PRECONDITION" in busy.stderr
    none = fields(
        loomctl(live, "port", "update", port["id"], "--no-security-groups", "--no-allowed-address-pairs").stdout
    )
    assert none["security_groups"] == "" and none["allowed_address_pairs"] == ""
    plain = fields(loomctl(live, "port", "create", "--network", "cli-sg").stdout)
    assert plain["security_groups"] == default["id"], "a port without --security-group gets the default group"
    loomctl(live, "security-group-rule", "delete", rule["id"])
    assert loomctl(live, "security-group", "delete", "cli-web").stdout.startswith("deleted security group cli-web")


def test_router_and_floating_ip_walkthrough(live: LiveController) -> None:
    ext = fields(
        loomctl(
            live, "network", "create", "cli-public", "--type", "flat", "--physical-network", "clinet", "--external"
        ).stdout
    )
    assert ext["router_external"] == "yes"
    loomctl(live, "subnet", "create", "203.0.113.0/24", "--network", "cli-public", "--name", "cli-public-sub")
    loomctl(live, "network", "create", "cli-inner")
    loomctl(live, "subnet", "create", "10.81.0.0/24", "--network", "cli-inner", "--name", "cli-inner-sub")
    router = fields(loomctl(live, "router", "create", "cli-r", "--external-network", "cli-public").stdout)
    assert router["external_network_id"] == ext["id"] and router["enable_snat"] == "yes"
    assert "(none reported)" in router["active_gateway_host"]
    added = loomctl(live, "router", "add-interface", "cli-r", "--subnet", "cli-inner-sub").stdout
    assert added.startswith("interface added")
    vm = fields(
        loomctl(live, "port", "create", "--network", "cli-inner", "--name", "cli-fip-vm", "--host", "h1").stdout
    )
    fip = fields(loomctl(live, "floating-ip", "create", "--network", "cli-public", "--port", "cli-fip-vm").stdout)
    assert fip["router_id"] == router["id"] and fip["status"] == "ACTIVE" and fip["host"] == "h1"
    assert fip["fixed_ip_address"] == vm["fixed_ips"].split()[0]
    refused = loomctl(live, "router", "delete", "cli-r", ok=False)
    assert refused.returncode != 0 and "FAILED_PRECONDITION" in refused.stderr
    down = fields(loomctl(live, "floating-ip", "disassociate", fip["floating_ip_address"]).stdout)
    assert down["status"] == "DOWN" and down["port_id"] == ""
    listed = json.loads(loomctl(live, "--json", "router", "list", "--name", "cli-r").stdout)
    assert listed[0]["interfaces"] and listed[0]["snat_zone"] == listed[0]["dnat_zone"] + 1
    loomctl(live, "floating-ip", "delete", fip["id"])
    loomctl(live, "router", "remove-interface", "cli-r", "--subnet", "cli-inner-sub")
    loomctl(live, "router", "clear-gateway", "cli-r")
    assert "deleted router" in loomctl(live, "router", "delete", "cli-r").stdout
