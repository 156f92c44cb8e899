"""What compute tests build on the compute lab (networks, ports, instances, volumes), removed afterwards.

Deleting an instance through the API is all it takes: its host's agent then
destroys the domain and removes its disk and taps (``leftovers`` checks that
nothing stays behind).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import libvirt

from lab.mininet import compute as c
from lab.mininet.loom import LabNetwork, LoomLab
from lab.mininet.qemu_guest import SerialConsole
from protos.loom.v1 import network_pb2, resources_pb2

_names = itertools.count(1)


@dataclass(frozen=True)
class Leftovers:
    domains: list[str]
    instance_dirs: list[str]
    taps: list[str]
    ovs_ports: list[str]

    def empty(self) -> bool:
        return not (self.domains or self.instance_dirs or self.taps or self.ovs_ports)


class Cloud:
    def __init__(self, loom: LoomLab) -> None:
        self.loom = loom
        self.networks: list[str] = []
        self.ports: list[str] = []
        self.instances: list[str] = []
        self.volumes: list[str] = []

    def unique(self, name: str) -> str:
        return f"{name}{next(_names)}"

    # ------------------------------------------------------------ building

    def network(self, name: str, cidr: str = "10.30.0.0/24") -> LabNetwork:
        net = self.loom.create_network(self.unique(name), cidr)
        self.networks.append(net.id)
        return net

    def port(self, net: LabNetwork, name: str = "p") -> resources_pb2.Port:
        """An unbound port (its address is known before the instance that will take it exists)."""
        port = self.loom.network.CreatePort(
            network_pb2.CreatePortRequest(port=resources_pb2.Port(network_id=net.id, name=self.unique(name))),
            timeout=10,
        )
        self.ports.append(port.id)
        return port

    def boot(
        self,
        name: str,
        image: resources_pb2.Image,
        net: LabNetwork | None = None,
        host: str = "",
        **fields: object,
    ) -> resources_pb2.Instance:
        inst = c.create_instance(self.loom, self.unique(name), image.id, [net.id] if net else [], host=host, **fields)
        self.instances.append(inst.id)
        return inst

    def volume(self, name: str = "vol", size_gb: int = 1) -> resources_pb2.Volume:
        vol = c.create_volume(self.loom, self.unique(name), size_gb)
        self.volumes.append(vol.id)
        return vol

    def console(self, inst: resources_pb2.Instance) -> SerialConsole:
        return c.console(self.loom, c.get_instance(self.loom, inst.id))

    # ------------------------------------------------------------ what a host holds

    def leftovers(self, host: str, instance_id: str, port_ids: list[str]) -> Leftovers:
        """Whatever of the instance its host still has: domain, files, tap devices, OVS ports."""
        conn = libvirt.open(self.loom.libvirt[host].uri)
        try:
            domains = [d.name() for d in conn.listAllDomains(0) if d.UUIDString() == instance_id]
        finally:
            conn.close()
        directory = c.instance_dir(self.loom, host, instance_id)
        dirs = [str(directory)] if directory.exists() else []
        links = self.loom.lab.run(host, ["ip", "-o", "link", "show"]).stdout
        taps = [name for pid in port_ids for prefix in ("tap", "lvt", "lvo") if (name := prefix + pid[:11]) in links]
        ovs = self.loom.lab.run(host, ["ovs-vsctl", "--bare", "--columns=external_ids", "list", "Interface"]).stdout
        ovs_ports = [pid for pid in port_ids if pid in ovs]
        return Leftovers(domains, dirs, taps, ovs_ports)

    def wait_gone(self, host: str, instance_id: str, port_ids: list[str], timeout: float = 30.0) -> Leftovers:
        deadline = time.monotonic() + timeout
        while True:
            left = self.leftovers(host, instance_id, port_ids)
            if left.empty() or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    # ------------------------------------------------------------ cleanup

    def cleanup(self) -> None:
        for iid in self.instances:
            c.delete_instance(self.loom, iid)
        for vid in self.volumes:
            deadline = time.monotonic() + 30
            while True:  # a volume of a deleted instance is available once its host let go of it
                try:
                    c.volumes(self.loom).DeleteVolume(network_pb2.DeleteRequest(id=vid), timeout=10)
                    break
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        break
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        for pid in self.ports:
            _ignore_missing(lambda p=pid: self.loom.network.DeletePort(network_pb2.DeleteRequest(id=p), timeout=10))
        for nid in self.networks:
            _ignore_missing(lambda n=nid: self.loom.network.DeleteNetwork(network_pb2.DeleteRequest(id=n), timeout=10))


def _ignore_missing(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise


def image_dir_files(loom: LoomLab) -> set[str]:
    d = Path(loom.state_dir) / "images"
    return {p.name for p in d.iterdir() if p.is_file()} if d.exists() else set()
