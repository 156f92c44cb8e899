"""How long the lab takes: start and stop of a 3-hypervisor lab, and plugging/unplugging a VM.

Each lab start includes Mininet hosts and Linux bridges, three private OVS
instances (ovsdb-server + ovs-vswitchd) started in parallel, br-phy with the
underlay IP, br-int and the VXLAN port. A VM is a namespace plus a veth
plugged into br-int by vif.plug_veth (returns once ovs-vswitchd numbered it).
Prints medians and writes bench/results/lab_start.json.
Run: .venv/bin/python bench/lab_start.py [repetitions]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lab.mininet import Lab, LabConfig

VMS_PER_LAB = 10


def main(repetitions: int = 3) -> dict[str, float]:
    starts, stops, plugs, unplugs = [], [], [], []
    for _ in range(repetitions):
        lab = Lab(config=LabConfig(hypervisors=3, prefix="labb", mgmt_cidr="198.18.9.0/24"))
        t0 = time.monotonic()
        lab.start()
        starts.append(time.monotonic() - t0)
        try:
            for i in range(VMS_PER_LAB):
                hv = lab.hypervisors[i % len(lab.hypervisors)]
                t0 = time.monotonic()
                lab.add_vm(
                    hv,
                    f"b{i}",
                    "lab" + uuid.uuid4().hex,
                    f"fa:16:3e:00:0b:{i:02x}",
                    ofport=100 + i,
                    ip=f"10.99.0.{i + 1}/24",
                )
                plugs.append(time.monotonic() - t0)
            for i in range(VMS_PER_LAB):
                t0 = time.monotonic()
                lab.remove_vm(f"b{i}")
                unplugs.append(time.monotonic() - t0)
        finally:
            t0 = time.monotonic()
            lab.stop()
            stops.append(time.monotonic() - t0)
    results = {
        "lab_start_s": round(statistics.median(starts), 3),
        "lab_start_max_s": round(max(starts), 3),
        "lab_stop_s": round(statistics.median(stops), 3),
        "add_vm_ms": round(statistics.median(plugs) * 1000, 2),
        "remove_vm_ms": round(statistics.median(unplugs) * 1000, 2),
        "hypervisors": 3,
        "repetitions": repetitions,
    }
    print(f"3-hypervisor lab, {repetitions} runs, {VMS_PER_LAB} VMs each (medians)")
    print(f"{'lab start':<14}{results['lab_start_s']:>8.2f} s   (max {results['lab_start_max_s']:.2f} s)")
    print(f"{'lab stop':<14}{results['lab_stop_s']:>8.2f} s")
    print(f"{'add_vm':<14}{results['add_vm_ms']:>8.1f} ms")
    print(f"{'remove_vm':<14}{results['remove_vm_ms']:>8.1f} ms")
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    with open(os.path.join(os.path.dirname(__file__), "results", "lab_start.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
