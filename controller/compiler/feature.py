"""Compiler features: what each one owns and what it depends on, declared in one place.

A feature (L2 today; security groups, L3 and NAT next) owns *groups* of flows
on a host, each named by a :data:`GroupKey` ``(kind, object id)`` whose kind
the feature declares. For each group it says how to compile it (pure: topology
and host in, flows out), which cookie its flows carry, and — the part that
makes incremental compilation safe — which groups on which hosts a change to
the model touches (``affected``), and which groups appear or vanish on a host
when that host joins or leaves a network (``membership``).

The distributor never encodes dependencies itself: it asks every registered
feature (the registry of ``controller.compiler.host``) and recompiles the
union. A missed dependency shows up in the differential test
(``tests/unit/test_distributor_differential.py``), which compares what
agents end up with against a compilation from scratch.

Host-wide groups: each feature may own groups that exist on every host it is
present on, keyed ``("host", feature name)``; their cookie is the pipeline
cookie with the feature's number as tag. The table misses declared by the
pipeline are the group ``("pipeline", "")``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

from controller.compiler.topology import Topology
from controller.model import Resource
from dataplane.contract.flow import Flow

# What owns a group of flows: (kind, object id), e.g. ("port", id) or ("host", "l2").
GroupKey = tuple[str, str]
# Which groups on which hosts a change touches.
HostGroups = dict[str, set[GroupKey]]

# Asks for every group of a host to be recompiled (an agent registered, moved or left).
ALL_GROUPS: GroupKey = ("*", "")
PIPELINE_KEY: GroupKey = ("pipeline", "")
HOST_KIND = "host"


def touch(out: HostGroups, host: str, *keys: GroupKey) -> None:
    """Add ``keys`` to what ``host`` must recompile."""
    out.setdefault(host, set()).update(keys)


class Feature(ABC):
    """One part of the dataplane: its groups, their compilation, cookies and dependencies."""

    name: ClassVar[str]
    # The kinds of GroupKey this feature owns (besides its host-wide group ("host", name)).
    group_kinds: ClassVar[tuple[str, ...]]
    # Stable number of the feature: the tag of its host-wide group's cookie. Never reuse one.
    number: ClassVar[int]
    # Whether what its groups stand for can change a host's tunnel peers or L3 spec, beyond hosts joining
    # or leaving networks and agents changing (the distributor recomputes those hosts' specs anyway).
    # False lets a change that dirties only such features' groups skip recomputing them on every touched host.
    shapes_host_specs: ClassVar[bool] = True

    @abstractmethod
    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        """The flows ``key`` owns on ``host`` (empty: none there)."""

    @abstractmethod
    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        """The cookie of ``key``'s flows, or None when its object is unknown."""

    @abstractmethod
    def host_groups(self, topo: Topology, host: str) -> Iterable[GroupKey]:
        """Every group of this feature that can have flows on ``host``."""

    @abstractmethod
    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        """The groups, per host, whose flows may depend on ``old`` or ``new``.

        The distributor asks twice per change: with the object before the change
        (``old``, ``new`` None) on the topology before it is applied, and with the
        object after it (``new``, ``old`` None) on the topology after. A feature
        only has to say, for the topology and object it is given, which groups
        read the object; the union covers what disappears and what appears.
        Return ``ALL_GROUPS`` for a host to recompile all of it.
        """

    def membership(self, topo: Topology, host: str, network_id: str) -> set[GroupKey]:
        """Groups on ``host`` that exist because the host has a port on ``network_id``.

        Called after ``host`` joined or left the network (the topology already
        says which), so those groups appear or vanish.
        """
        return set()
