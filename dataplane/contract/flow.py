"""Flow objects: the vocabulary shared by the compiler, the encoder and the agent.

A :class:`Flow` is an immutable value. Two flows with the same ``key`` (table,
priority, match) occupy the same slot in an OpenFlow table, which is what the
agent diffs on. Values are normalised to integers at construction so equal
flows compare and hash equal whatever spelling built them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from dataplane.contract.fields import FIELDS, OFPP_IN_PORT, FieldSpec, format_value, to_int


@dataclass(frozen=True, slots=True, order=True)
class MatchField:
    name: str
    value: int
    mask: int | None = None

    @property
    def spec(self) -> FieldSpec:
        return FIELDS[self.name]


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


@dataclass(frozen=True, slots=True)
class Match:
    """A set of match fields, kept sorted by name so equal matches are equal."""

    fields: tuple[MatchField, ...] = ()

    @classmethod
    def of(cls, **fields: int | str | tuple[int | str, int | str]) -> Match:
        """``Match.of(in_port=3, eth_dst=("01:00:00:00:00:00", "01:00:00:00:00:00"))``."""
        return cls(tuple(sorted(_normalise(n, v) for n, v in fields.items())))

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
        return f"set_field:{format_value(FIELDS[self.field], self.value)}->{FIELDS[self.field].ofctl_name}"


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


Action = Union[Output, SetField, Move, Resubmit, Ct, CtClear, Conjunction, DecTtl]


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
