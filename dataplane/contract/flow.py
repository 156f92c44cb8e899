"""Flow objects: the vocabulary shared by the compiler, the encoder and the agent.

A :class:`Flow` is an immutable value. Two flows with the same ``key`` (table,
priority, match) occupy the same slot in an OpenFlow table, which is what the
agent diffs on. Values are normalised to integers at construction so equal
flows compare and hash equal whatever spelling built them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Literal, Union, get_args

from dataplane.contract.fields import FIELDS, OFPP_IN_PORT, FieldSpec, format_value, to_int


@dataclass(frozen=True, slots=True, order=True)
class MatchField:
    name: str
    value: int
    mask: int | None = None

    @property
    def spec(self) -> FieldSpec:
        return FIELDS[self.name]


# The same few (field, value) pairs recur in most flows: normalising them is a hot path of compiling.
@lru_cache(maxsize=1 << 16)
def _normalise(name: str, raw: int | str | tuple[int | str, int | str]) -> MatchField:
    spec = FIELDS.get(name)
    if spec is None:
        raise ValueError(f"unknown match field {name!r}")
    mask: int | None
    if isinstance(raw, tuple):
        value, mask = to_int(spec, raw[0]), to_int(spec, raw[1])
        if not spec.maskable:
            raise ValueError(f"field {name} cannot be masked")
        if mask == spec.all_ones:
            mask = None
        elif mask == 0:
            raise ValueError(f"field {name} with an all-zero mask matches everything; omit it")
        else:
            value &= mask
    else:
        value, mask = to_int(spec, raw), None
    return MatchField(name, value, mask)


_BY_NAME = attrgetter("name")


@dataclass(frozen=True, slots=True)
class Match:
    """A set of match fields, kept sorted by name so equal matches are equal."""

    fields: tuple[MatchField, ...] = ()

    @classmethod
    def of(cls, **fields: int | str | tuple[int | str, int | str]) -> Match:
        """``Match.of(in_port=3, eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00"))``."""
        # Keyword names are unique, so ordering by name alone is the fields' full order (and far cheaper).
        return cls(tuple(sorted((_normalise(n, v) for n, v in fields.items()), key=_BY_NAME)))

    def get(self, name: str) -> MatchField | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def text(self) -> str:
        parts = []
        for f in self.fields:
            spec = f.spec
            val = format_value(spec, f.value)
            if f.mask is not None:
                val += "/" + format_value(spec, f.mask)
            parts.append(f"{spec.ofctl_name}={val}")
        return ",".join(parts)


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Output:
    port: int

    def text(self) -> str:
        return "IN_PORT" if self.port == OFPP_IN_PORT else f"output:{self.port}"


@dataclass(frozen=True, slots=True)
class SetField:
    """Set a field to a value; ``SetField.of`` also takes MAC and IPv4 text."""

    field: str
    value: int

    def __post_init__(self) -> None:
        if not isinstance(self.value, int):  # text given to the constructor: normalise it anyway
            object.__setattr__(self, "value", to_int(FIELDS[self.field], self.value))

    @classmethod
    def of(cls, field: str, value: int | str) -> SetField:
        return cls(field, to_int(FIELDS[field], value))

    def text(self) -> str:
        name = _SET_FIELD_NAMES.get(self.field, self.field)
        return f"set_field:{format_value(FIELDS[self.field], self.value)}->{name}"


# The names OVS prints in a set_field action (its meta-flow names), where they differ from Loom's.
_SET_FIELD_NAMES = {
    "ipv4_src": "ip_src",
    "ipv4_dst": "ip_dst",
    "ip_proto": "nw_proto",
    "icmpv4_type": "icmp_type",
    "icmpv4_code": "icmp_code",
    "tunnel_id": "tun_id",
    "tun_ipv4_src": "tun_src",
    "tun_ipv4_dst": "tun_dst",
}


@dataclass(frozen=True, slots=True)
class Move:
    """Copy ``n_bits`` from one field to another (Nicira reg_move)."""

    src: str
    dst: str
    n_bits: int
    src_ofs: int = 0
    dst_ofs: int = 0

    def text(self) -> str:
        s, d = FIELDS[self.src].ofctl_name, FIELDS[self.dst].ofctl_name
        return (
            f"move:{s}[{self.src_ofs}..{self.src_ofs + self.n_bits - 1}]"
            f"->{d}[{self.dst_ofs}..{self.dst_ofs + self.n_bits - 1}]"
        )


@dataclass(frozen=True, slots=True)
class Resubmit:
    """Run ``table`` as a subroutine (Nicira resubmit), then continue here."""

    table: int

    def text(self) -> str:
        return f"resubmit(,{self.table})"


@dataclass(frozen=True, slots=True)
class Nat:
    """The nat() clause of a ct action. Addresses as dotted quads."""

    src: bool = False
    dst: bool = False
    ip_min: str | None = None
    ip_max: str | None = None
    port_min: int | None = None
    port_max: int | None = None

    def text(self) -> str:
        if not (self.src or self.dst):
            return "nat"
        kind = "src" if self.src else "dst"
        rng = ""
        if self.ip_min:
            rng = f"={self.ip_min}" + (f"-{self.ip_max}" if self.ip_max and self.ip_max != self.ip_min else "")
            if self.port_min:
                rng += f":{self.port_min}" + (f"-{self.port_max}" if self.port_max else "")
        return f"nat({kind}{rng})"


@dataclass(frozen=True, slots=True)
class Ct:
    """Send the packet through conntrack (Nicira ct action).

    ``zone_field`` names a 16-bit slice source (e.g. ``reg5``) for the zone; if
    it is None, ``zone`` is an immediate. ``table`` recirculates after conntrack.
    ``actions`` may hold SetField on ct_mark / ct_label (applied on commit).
    """

    commit: bool = False
    zone: int = 0
    zone_field: str | None = None
    table: int | None = None
    nat: Nat | None = None
    actions: tuple[SetField, ...] = ()

    def text(self) -> str:
        parts = []
        if self.commit:
            parts.append("commit")
        parts.append(f"zone={FIELDS[self.zone_field].ofctl_name}[0..15]" if self.zone_field else f"zone={self.zone}")
        if self.table is not None:
            parts.append(f"table={self.table}")
        if self.nat is not None:
            parts.append(self.nat.text())
        if self.actions:
            parts.append("exec(" + ",".join(a.text() for a in self.actions) + ")")
        return "ct(" + ",".join(parts) + ")"


@dataclass(frozen=True, slots=True)
class CtClear:
    def text(self) -> str:
        return "ct_clear"


@dataclass(frozen=True, slots=True)
class Conjunction:
    id: int
    clause: int  # 1-based, as ovs-ofctl writes it
    n_clauses: int

    def text(self) -> str:
        return f"conjunction({self.id},{self.clause}/{self.n_clauses})"


@dataclass(frozen=True, slots=True)
class DecTtl:
    def text(self) -> str:
        return "dec_ttl"


# The hash inputs a bundle action can use (OVS lib/flow.c flow_hash_fields), in ovs-ofctl's spelling.
BundleFields = Literal[
    "eth_src", "symmetric_l4", "symmetric_l3l4", "symmetric_l3l4+udp", "nw_src", "nw_dst", "symmetric_l3"
]
BundleAlgorithm = Literal["active_backup", "hrw"]
BUNDLE_FIELDS: tuple[BundleFields, ...] = get_args(BundleFields)
BUNDLE_ALGORITHMS: tuple[BundleAlgorithm, ...] = get_args(BundleAlgorithm)


@dataclass(frozen=True, slots=True)
class Bundle:
    """Output to one live member port (Nicira bundle action).

    ``active_backup`` picks the first live member in list order; ``hrw``
    (highest random weight) hashes ``fields`` with ``basis`` and picks among
    the live members. Liveness is the port's (carrier and BFD), as OVS sees it.
    """

    members: tuple[int, ...]
    algorithm: BundleAlgorithm = "active_backup"
    fields: BundleFields = "eth_src"
    basis: int = 0

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a bundle needs at least one member port")
        if self.algorithm not in BUNDLE_ALGORITHMS:
            raise ValueError(f"unknown bundle algorithm {self.algorithm!r}")
        if self.fields not in BUNDLE_FIELDS:
            raise ValueError(f"unknown bundle hash fields {self.fields!r}")
        if not 0 <= self.basis <= 0xFFFF:
            raise ValueError(f"bundle basis {self.basis} does not fit 16 bits")
        if any(not 0 < p < 0xFF00 for p in self.members):  # physical ports: 16 bits on the wire
            raise ValueError(f"bundle members must be physical OpenFlow ports: {self.members}")

    def text(self) -> str:
        members = ",".join(str(p) for p in self.members)
        return f"bundle({self.fields},{self.basis},{self.algorithm},ofport,members:{members})"


@dataclass(frozen=True, slots=True)
class BundleLoad:
    """Write the live member a bundle would pick into ``dst`` (Nicira bundle_load), without outputting.

    The member is written as a 16-bit OpenFlow port number; with no live
    member OVS writes 0xffff (OFPP_NONE in 16 bits). Loom uses it where a
    choice needs a fallback a plain ``bundle`` cannot express (a gateway host
    that is itself next in line).
    """

    members: tuple[int, ...]
    dst: str
    n_bits: int = 16
    dst_ofs: int = 0
    algorithm: BundleAlgorithm = "active_backup"
    fields: BundleFields = "eth_src"
    basis: int = 0

    NONE = 0xFFFF  # what is written when no member is live

    def __post_init__(self) -> None:
        Bundle(self.members, self.algorithm, self.fields, self.basis)  # the same checks
        if self.n_bits < 16:
            raise ValueError("bundle_load needs 16 bits to write an OpenFlow port number")

    def text(self) -> str:
        members = ",".join(str(p) for p in self.members)
        dst = f"{FIELDS[self.dst].ofctl_name}[{self.dst_ofs}..{self.dst_ofs + self.n_bits - 1}]"
        return f"bundle_load({self.fields},{self.basis},{self.algorithm},ofport,{dst},members:{members})"


@dataclass(frozen=True, slots=True)
class PushVlan:
    """Push an 802.1Q header (VID 0; a set_field on vlan_vid follows)."""

    ethertype: int = 0x8100

    def text(self) -> str:
        return f"push_vlan:{self.ethertype:#06x}"


@dataclass(frozen=True, slots=True)
class PopVlan:
    """Remove the outermost 802.1Q header."""

    def text(self) -> str:
        return "pop_vlan"


@dataclass(frozen=True, slots=True)
class Group:
    """Hand the packet to a group (OpenFlow group action); see :class:`GroupDef`."""

    group_id: int

    def text(self) -> str:
        return f"group:{self.group_id}"


Action = Union[
    Output, SetField, Move, Resubmit, Ct, CtClear, Conjunction, DecTtl, Bundle, BundleLoad, PushVlan, PopVlan, Group
]


# ---------------------------------------------------------------- groups

GroupType = Literal["all", "select", "indirect", "fast_failover"]
GROUP_TYPES: tuple[GroupType, ...] = get_args(GroupType)
_GROUP_TYPE_TEXT = {"all": "all", "select": "select", "indirect": "indirect", "fast_failover": "ff"}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket of a group. Its actions are an OpenFlow *action set*, not a list.

    OVS executes a bucket's actions in action-set order: dec_ttl first,
    set_field/move in the order given, then only the last of the "final"
    actions (ct, ct_clear, resubmit, output, group: the later kind wins), and
    nothing at all if there is no final action. ``weight`` matters only in
    select groups (0 disables the bucket); ``watch_port``/``watch_group``
    decide liveness in fast-failover groups.
    """

    actions: tuple[Action, ...]
    watch_port: int | None = None
    watch_group: int | None = None
    weight: int = 1

    def text(self, group_type: GroupType) -> str:
        parts = []
        if group_type == "select" and self.weight != 1:
            parts.append(f"weight:{self.weight}")  # as ovs-ofctl prints it: the default weight 1 is implied
        if self.watch_port is not None:
            parts.append(f"watch_port:{self.watch_port}")
        if self.watch_group is not None:
            parts.append(f"watch_group:{self.watch_group}")
        parts.append("actions=" + (",".join(a.text() for a in self.actions) if self.actions else "drop"))
        return "bucket=" + ",".join(parts)


@dataclass(frozen=True, slots=True)
class GroupDef:
    """An OpenFlow group: id, type and buckets (what ``ovs-ofctl add-group`` takes)."""

    group_id: int
    type: GroupType
    buckets: tuple[Bucket, ...]

    def __post_init__(self) -> None:
        if self.type not in GROUP_TYPES:
            raise ValueError(f"unknown group type {self.type!r}")
        if self.type == "indirect" and len(self.buckets) != 1:
            raise ValueError("an indirect group has exactly one bucket")
        if not 0 <= self.group_id <= 0xFFFFFF00:
            raise ValueError(f"group id {self.group_id} is out of range")

    def text(self) -> str:
        """The group as ``ovs-ofctl add-group`` reads it (and ``dump-groups`` prints it)."""
        head = f"group_id={self.group_id},type={_GROUP_TYPE_TEXT[self.type]}"
        return ",".join([head, *(b.text(self.type) for b in self.buckets)])


# ---------------------------------------------------------------- flows

FlowKey = tuple[int, int, Match]


@dataclass(frozen=True, slots=True)
class Flow:
    """One OpenFlow 1.3 flow: apply-actions, then an optional goto-table.

    A flow with neither actions nor goto drops the packet.
    """

    table: int
    priority: int
    match: Match = field(default_factory=Match)
    actions: tuple[Action, ...] = ()
    goto: int | None = None
    cookie: int = 0

    @property
    def key(self) -> FlowKey:
        return (self.table, self.priority, self.match)

    def text(self) -> str:
        """Render like `ovs-ofctl dump-flows` would, for logs and docs."""
        acts = [a.text() for a in self.actions]
        if self.goto is not None:
            acts.append(f"goto_table:{self.goto}")
        m = self.match.text()
        return (
            f"cookie={self.cookie:#x}, table={self.table}, priority={self.priority}"
            + (f",{m}" if m else "")
            + " actions="
            + (",".join(acts) if acts else "drop")
        )
