#!/usr/bin/env bash
# Starts the system Open vSwitch (ovsdb-server + ovs-vswitchd) without systemd,
# if it is not running. There is no openvswitch kernel module on these
# machines, so every Loom bridge uses datapath_type=netdev (userspace).
set -euo pipefail
if ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  exit 0
fi
ctl=/usr/share/openvswitch/scripts/ovs-ctl
"$ctl" start --system-id=random --no-ovs-vswitchd >/dev/null
# ovs-ctl tries to raise the fd limit, which this sandbox refuses; harmless.
"$ctl" start --system-id=random --no-ovsdb-server >/dev/null 2>&1 || true
ovs-vsctl --timeout=10 show >/dev/null
echo "start-ovs: Open vSwitch $(ovs-vsctl --version | head -1 | awk '{print $NF}') running"
