"""IPAM: range allocators, default pools, subnet address books, MACs, MTUs."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.ipam import (
    IntAllocator,
    SubnetAddresses,
    bounds,
    default_pools,
    generate_mac,
    int_to_ip,
    ip_to_int,
    max_mtu,
)


def test_allocator_hands_out_in_order_and_skips_used() -> None:
    a = IntAllocator([(10, 14)])
    a.mark(11)
    got = []
    for _ in range(4):
        v = a.allocate()
        assert v is not None
        got.append(v)
        a.mark(v)
    assert got == [10, 12, 13, 14]
    assert a.allocate() is None
    assert a.free == 0


def test_allocator_exclude_does_not_consume() -> None:
    a = IntAllocator([(1, 3)])
    assert a.allocate(exclude={1}) == 2
    assert a.allocate(exclude={1, 2}) == 3
    assert a.allocate(exclude={1, 2, 3}) is None
    # Nothing was marked: the same values are still free.
    assert a.allocate() == 1
    assert a.free == 3


def test_allocator_recycles_released_values_after_the_cursor_passes_the_end() -> None:
    a = IntAllocator([(1, 4)])
    for _ in range(4):
        a.mark(a.allocate())  # type: ignore[arg-type]
    a.release(2)
    a.release(3)
    assert a.free == 2
    first = a.allocate()
    assert first in (2, 3)
    a.mark(first)  # type: ignore[arg-type]
    second = a.allocate()
    assert second in (2, 3) and second != first
    a.mark(second)  # type: ignore[arg-type]
    assert a.allocate() is None


def test_allocator_prefers_never_used_values_over_recycled_ones() -> None:
    a = IntAllocator([(1, 10)])
    for _ in range(3):
        a.mark(a.allocate())  # type: ignore[arg-type]
    a.release(1)
    assert a.allocate() == 4


def test_allocator_multiple_ranges_and_membership() -> None:
    a = IntAllocator([(20, 21), (5, 6)])
    assert 5 in a and 21 in a and 7 not in a and 19 not in a
    out = []
    while (v := a.allocate()) is not None:
        a.mark(v)
        out.append(v)
    assert out == [5, 6, 20, 21]
    a.mark(100)  # outside every range: ignored
    assert a.free == 0


def test_allocator_rejects_overlapping_ranges() -> None:
    with pytest.raises(ValueError):
        IntAllocator([(1, 10), (10, 20)])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "release"]), st.integers(0, 40)), max_size=120))
def test_allocator_matches_a_reference_set(ops: list[tuple[str, int]]) -> None:
    """Whatever the sequence of allocations and releases, no value is handed out twice."""
    a = IntAllocator([(0, 15), (30, 40)])
    universe = set(range(16)) | set(range(30, 41))
    used: set[int] = set()
    for op, value in ops:
        if op == "alloc":
            got = a.allocate()
            if used == universe:
                assert got is None
            else:
                assert got in universe and got not in used
                a.mark(got)  # type: ignore[arg-type]
                used.add(got)  # type: ignore[arg-type]
        elif value in used:
            a.release(value)
            used.discard(value)
        assert a.free == len(universe) - len(used)


def test_default_pools_split_around_the_gateway() -> None:
    net = ipaddress.IPv4Network("10.0.0.0/24")
    gw = ip_to_int("10.0.0.1")
    assert default_pools(net, gw) == [(ip_to_int("10.0.0.2"), ip_to_int("10.0.0.254"))]
    mid = ip_to_int("10.0.0.100")
    assert default_pools(net, mid) == [
        (ip_to_int("10.0.0.1"), ip_to_int("10.0.0.99")),
        (ip_to_int("10.0.0.101"), ip_to_int("10.0.0.254")),
    ]
    assert default_pools(net, None) == [(ip_to_int("10.0.0.1"), ip_to_int("10.0.0.254"))]
    assert default_pools(ipaddress.IPv4Network("10.0.0.0/30"), ip_to_int("10.0.0.1")) == [
        (ip_to_int("10.0.0.2"), ip_to_int("10.0.0.2"))
    ]


def test_subnet_addresses_track_owners_and_reconfigure() -> None:
    net = ipaddress.IPv4Network("192.168.1.0/29")  # hosts .1-.6, gateway .1: pool .2-.6
    first, last = bounds(net)
    book = SubnetAddresses("s", first, last, first + 1, default_pools(net, first + 1))
    book.assign(ip_to_int("192.168.1.2"), "p1")
    assert book.allocate() == ip_to_int("192.168.1.3")
    book.unassign(ip_to_int("192.168.1.2"), "other")  # not its owner: ignored
    assert book.owners[ip_to_int("192.168.1.2")] == "p1"
    book.reconfigure(None, [(ip_to_int("192.168.1.2"), ip_to_int("192.168.1.3"))])
    assert book.allocate() == ip_to_int("192.168.1.3")
    book.assign(ip_to_int("192.168.1.3"), "p2")
    assert book.allocate() is None
    book.unassign(ip_to_int("192.168.1.2"), "p1")
    assert book.allocate() == ip_to_int("192.168.1.2")


def test_big_subnet_allocation_stays_fast() -> None:
    """10k allocations in a /16 with scattered holes: the cursor never rescans the pool."""
    net = ipaddress.IPv4Network("10.20.0.0/16")
    first, last = bounds(net)
    book = SubnetAddresses("s", first, last, first + 1, default_pools(net, first + 1))
    rng = random.Random(7)
    for ip in rng.sample(range(first + 2, first + 20_000), 5_000):  # requested addresses, ahead of the cursor
        book.assign(ip, "fixed")
    calls = 0
    original = book.allocator._value_at

    def counting(offset: int) -> int:
        nonlocal calls
        calls += 1
        return original(offset)

    book.allocator._value_at = counting  # type: ignore[method-assign]
    for i in range(10_000):
        ip = book.allocate()
        assert ip is not None
        book.assign(ip, f"p{i}")
    # Each step of the cursor costs one lookup; a rescan per allocation would cost ~10k*5k.
    assert calls < 3 * 15_000


def test_ip_conversions_are_strict() -> None:
    assert int_to_ip(ip_to_int("10.1.2.3")) == "10.1.2.3"
    for bad in ["10.1", "010.0.0.1", "1.2.3.256", " 1.2.3.4", "::1", ""]:
        with pytest.raises(ValueError):
            ip_to_int(bad)


def test_generated_macs_are_unicast_local_and_avoid_taken_ones() -> None:
    taken: set[str] = set()
    for _ in range(2000):
        mac = generate_mac(taken)
        assert mac.startswith("fa:16:3e:") and mac not in taken
        first = int(mac[:2], 16)
        assert not first & 1 and first & 2  # unicast, locally administered
        taken.add(mac)


def test_a_generated_mac_avoids_every_collection_it_is_given() -> None:
    stored, this_request = {"fa:16:3e:00:00:01"}, set()
    for _ in range(2000):
        mac = generate_mac(stored, this_request)
        assert mac not in stored and mac not in this_request
        (stored if len(stored) < 1000 else this_request).add(mac)


def test_generate_mac_gives_up_when_everything_is_taken() -> None:
    class Everything:
        def __contains__(self, item: object) -> bool:
            return True

        def __len__(self) -> int:
            return 1 << 24

        def __iter__(self):  # type: ignore[no-untyped-def]
            return iter(())

    with pytest.raises(RuntimeError):
        generate_mac(Everything())  # type: ignore[arg-type]


def test_max_mtu() -> None:
    assert max_mtu("vxlan", 1500) == 1450
    assert max_mtu("vlan", 1500) == 1500
    assert max_mtu("flat", 9000) == 9000
