"""Building blocks for end-to-end tests on the Loom lab: tenants' networks and VMs, removed afterwards."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import grpc

from lab.mininet import guest
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2, security_pb2

_names = itertools.count(1)


class Scenario:
    def __init__(self, loom: LoomLab, workdir: Path) -> None:
        self.loom = loom
        self.workdir = workdir
        os.chmod(workdir, 0o755)
        self.vms: list[Vm] = []
        self.ports: list[str] = []
        self.networks: list[str] = []
        self.instances: list[str] = []
        self.groups: list[str] = []

    def unique(self, name: str) -> str:
        return f"{name}{next(_names)}"

    def network(self, name: str, cidr: str = "10.0.0.0/24", **subnet: object) -> LabNetwork:
        net = self.loom.create_network(self.unique(name), cidr, **subnet)
        self.networks.append(net.id)
        return net

    def port(self, net: LabNetwork, host: str, name: str = "p", **fields: str) -> resources_pb2.Port:
        port = self.loom.create_port(net, host, self.unique(name), **fields)
        self.ports.append(port.id)
        return port

    def instance(self, name: str, **fields: object) -> resources_pb2.Instance:
        inst = self.loom.create_instance(self.unique(name), **fields)
        self.instances.append(inst.id)
        return inst

    def vm(
        self,
        host: str,
        net: LabNetwork,
        name: str = "vm",
        dhcp: bool = False,
        instance: resources_pb2.Instance | None = None,
        wait: bool = True,
        ip: str = "",
        mac: str = "",
        groups: Sequence[str] | None = None,
        port_security: bool | None = None,
        routed: bool = False,
    ) -> Vm:
        """A VM on ``host`` whose port is ACTIVE; its address is static unless ``dhcp``.

        ``groups``: its security groups (ids); None: its project's default group; []: none.
        ``routed``: with a default route via its subnet's gateway.
        """
        vm = self.loom.boot_vm(
            self.unique(name),
            host,
            net,
            ip=ip,
            mac=mac,
            dhcp=dhcp,
            instance=instance,
            wait=False,
            security_groups=groups,
            port_security=port_security,
            routed=routed,
        )
        # Recorded before the wait, so cleanup removes them if the port never becomes ACTIVE.
        self.ports.append(vm.port_id)
        self.vms.append(vm)
        if wait:
            self.loom.wait_port(vm.port_id)
        return vm

    def udhcpc(self, vm: Vm, *extra: str, apply: bool = True) -> dict[str, str] | None:
        lease, _ = guest.udhcpc(vm.netns, "eth0", self.workdir / vm.name, *extra, apply=apply, tries=3)
        return lease

    def security_group(self, name: str, project: str = "") -> resources_pb2.SecurityGroup:
        """A group (it starts with Neutron's all-egress rule), deleted with its rules afterwards."""
        group = resources_pb2.SecurityGroup(name=self.unique(name), project_id=project)
        created = self.loom.security.CreateSecurityGroup(
            security_pb2.CreateSecurityGroupRequest(security_group=group), timeout=10
        )
        self.groups.append(created.id)
        return created

    def rule(self, group_id: str, direction: str = "ingress", **fields: object) -> resources_pb2.SecurityGroupRule:
        rule = resources_pb2.SecurityGroupRule(security_group_id=group_id, direction=direction, **fields)
        return self.loom.security.CreateSecurityGroupRule(
            security_pb2.CreateSecurityGroupRuleRequest(security_group_rule=rule), timeout=10
        )

    def delete_rule(self, rule_id: str) -> None:
        self.loom.security.DeleteSecurityGroupRule(network_pb2.DeleteRequest(id=rule_id), timeout=10)

    def default_group(self, project: str = "") -> resources_pb2.SecurityGroup:
        request = security_pb2.ListSecurityGroupsRequest(project_id=project, name="default")
        groups = self.loom.security.ListSecurityGroups(request, timeout=10).security_groups
        (group,) = [g for g in groups if g.project_id == project]
        return group

    def ip_of(self, vm: Vm) -> str:
        port = self.loom.get_port(vm.port_id)
        return port.fixed_ips[0].ip_address

    def remove_vm(self, vm: Vm) -> None:
        self.loom.lab.remove_vm(vm.name)
        self.vms.remove(vm)

    def cleanup(self) -> None:
        for vm in list(self.vms):
            self.loom.lab.remove_vm(vm.name)
        api = self.loom.network
        for port_id in self.ports:
            _ignore_missing(lambda p=port_id: api.DeletePort(network_pb2.DeleteRequest(id=p), timeout=10))
        for inst in self.instances:
            _ignore_missing(
                lambda i=inst: self.loom.compute.DeleteInstance(network_pb2.DeleteRequest(id=i), timeout=10)
            )
        for net_id in self.networks:
            _ignore_missing(lambda n=net_id: api.DeleteNetwork(network_pb2.DeleteRequest(id=n), timeout=10))
        # Groups last (a port using one, or a rule naming one, would keep it); their rules go with them.
        sec = self.loom.security
        for group_id in self.groups:
            try:
                rules = sec.GetSecurityGroup(network_pb2.GetRequest(id=group_id), timeout=10).rules
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                continue
            for rule in rules:
                if rule.remote_group_id and rule.remote_group_id != group_id:
                    _ignore_missing(lambda r=rule.id: self.delete_rule(r))
        for group_id in self.groups:
            _ignore_missing(lambda g=group_id: sec.DeleteSecurityGroup(network_pb2.DeleteRequest(id=g), timeout=10))


def _ignore_missing(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
