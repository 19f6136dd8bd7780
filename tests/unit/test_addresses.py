"""Address allocation from a Device's addressPool."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbaas.placement.addresses import allocate, has_free, pool_addresses, pool_contains, pool_size


def test_ipv4_subnet_skips_network_and_broadcast() -> None:
    assert list(pool_addresses(["10.0.0.0/29"])) == [f"10.0.0.{i}" for i in range(1, 7)]


def test_cidr_given_with_host_bits_set_means_its_network() -> None:
    assert list(pool_addresses(["10.0.0.5/30"])) == ["10.0.0.5", "10.0.0.6"]


def test_slash_32_is_a_single_address() -> None:
    assert list(pool_addresses(["192.0.2.7/32"])) == ["192.0.2.7"]
    assert allocate(["192.0.2.7/32"], []) == "192.0.2.7"
    assert allocate(["192.0.2.7/32"], ["192.0.2.7"]) is None


def test_point_to_point_subnets_have_two_usable_addresses() -> None:
    # RFC 3021 (/31) and RFC 6164 (/127): both addresses are hosts.
    assert list(pool_addresses(["192.0.2.0/31"])) == ["192.0.2.0", "192.0.2.1"]
    assert list(pool_addresses(["2001:db8::/127"])) == ["2001:db8::", "2001:db8::1"]


def test_range_includes_both_ends() -> None:
    assert list(pool_addresses(["10.0.0.250-10.0.1.2"])) == [
        "10.0.0.250",
        "10.0.0.251",
        "10.0.0.252",
        "10.0.0.253",
        "10.0.0.254",
        "10.0.0.255",
        "10.0.1.0",
        "10.0.1.1",
        "10.0.1.2",
    ]


def test_range_of_one() -> None:
    assert list(pool_addresses(["10.0.0.9-10.0.0.9"])) == ["10.0.0.9"]


def test_ipv6_cidr_and_range() -> None:
    assert list(pool_addresses(["2001:db8::/126"])) == [
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::3",
    ]
    assert list(pool_addresses(["2001:db8::1/128"])) == ["2001:db8::1"]
    assert list(pool_addresses(["2001:db8::fffe-2001:db8::1:1"])) == [
        "2001:db8::fffe",
        "2001:db8::ffff",
        "2001:db8::1:0",
        "2001:db8::1:1",
    ]


def test_small_ipv6_range_stays_ipv6() -> None:
    # Low integers must not turn into IPv4 addresses.
    assert list(pool_addresses(["::1-::3"])) == ["::1", "::2", "::3"]


def test_entries_are_used_in_order() -> None:
    pool = ["10.0.1.10-10.0.1.11", "10.0.0.0/30", "2001:db8::5/128"]
    assert list(pool_addresses(pool)) == [
        "10.0.1.10",
        "10.0.1.11",
        "10.0.0.1",
        "10.0.0.2",
        "2001:db8::5",
    ]


def test_first_free() -> None:
    pool = ["10.0.0.0/29"]
    assert allocate(pool, []) == "10.0.0.1"
    assert allocate(pool, ["10.0.0.1", "10.0.0.2"]) == "10.0.0.3"
    assert allocate(pool, ["10.0.0.2"]) == "10.0.0.1"
    # Addresses outside the pool do not matter.
    assert allocate(pool, ["10.9.9.9", "10.0.0.1"]) == "10.0.0.2"


def test_next_entry_once_the_first_is_used_up() -> None:
    pool = ["10.0.0.1-10.0.0.2", "2001:db8::/126"]
    assert allocate(pool, ["10.0.0.1", "10.0.0.2"]) == "2001:db8::1"


def test_exhaustion_returns_none() -> None:
    pool = ["10.0.0.0/30", "10.0.1.1-10.0.1.2"]
    used = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"]
    assert allocate(pool, used) is None
    assert not has_free(pool, used)
    assert has_free(pool, used[:-1])


def test_empty_pool_has_nothing() -> None:
    assert allocate([], []) is None
    assert not has_free([], [])


def test_used_ipv6_in_another_textual_form_counts_as_used() -> None:
    pool = ["2001:db8::1-2001:db8::3"]
    assert allocate(pool, ["2001:0db8:0000:0000:0000:0000:0000:0001"]) == "2001:db8::2"
    assert allocate(pool, ["2001:DB8::1", "2001:db8:0:0:0:0:0:2"]) == "2001:db8::3"
    expanded = [ipaddress.ip_address(a).exploded for a in pool_addresses(pool)]
    assert allocate(pool, expanded) is None


def test_pool_in_expanded_form_is_compared_by_value() -> None:
    pool = ["2001:0db8:0000:0000:0000:0000:0000:0001/128"]
    assert allocate(pool, ["2001:db8::1"]) is None
    assert allocate(pool, []) == "2001:db8::1"


# ---- property ----------------------------------------------------------------------------------


def _expected_hosts(entry: str) -> set[tuple[int, int]]:
    """(version, integer) of each address of one pool entry, worked out from first principles."""
    if "-" in entry:
        a, b = (ipaddress.ip_address(x) for x in entry.split("-"))
        return {(a.version, i) for i in range(int(a), int(b) + 1)}
    address, prefix = entry.split("/")
    base = ipaddress.ip_address(address)
    bits = 32 if base.version == 4 else 128
    size = 1 << (bits - int(prefix))
    first = int(base) & ~(size - 1)
    if size <= 2:  # a single address, or a point-to-point /31 (RFC 3021) or /127 (RFC 6164)
        hosts = range(first, first + size)
    elif base.version == 4:
        hosts = range(first + 1, first + size - 1)
    else:  # IPv6 has no broadcast; only the Subnet-Router anycast (network address) is skipped
        hosts = range(first + 1, first + size)
    return {(base.version, i) for i in hosts}


V4_BASE = int(ipaddress.IPv4Address("10.1.2.0"))
V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))


@st.composite
def entries(draw: st.DrawFn) -> str:
    v6 = draw(st.booleans())
    base = V6_BASE if v6 else V4_BASE
    make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    bits = 128 if v6 else 32
    if draw(st.booleans()):
        start = base + draw(st.integers(0, 40))
        end = start + draw(st.integers(0, 12))
        return f"{make(start)}-{make(end)}"
    prefix = draw(st.integers(bits - 5, bits))
    host = base + draw(st.integers(0, 40))
    return f"{make(host)}/{prefix}"


@settings(max_examples=200, deadline=None)
@given(pool=st.lists(entries(), min_size=0, max_size=4), expand=st.booleans())
def test_allocating_until_exhausted(pool: list[str], expand: bool) -> None:
    expected = set().union(*(_expected_hosts(e) for e in pool)) if pool else set()
    used: list[str] = []
    got: list[str] = []
    for _ in range(len(expected) + 5):
        address = allocate(pool, used)
        if address is None:
            break
        got.append(address)
        # The caller may store the address in another textual form.
        used.append(ipaddress.ip_address(address).exploded if expand else address)
    assert allocate(pool, used) is None
    assert len(got) == len(set(got)), "an address was handed out twice"
    assert {(ip.version, int(ip)) for ip in map(ipaddress.ip_address, got)} == expected
    assert len(got) == len(expected)


@settings(max_examples=200, deadline=None)
@given(
    pool=st.lists(entries(), min_size=0, max_size=4),
    used=st.lists(st.integers(0, 60), max_size=30),
    v6=st.booleans(),
)
def test_pool_size_and_has_free_agree_with_the_walk(
    pool: list[str], used: list[int], v6: bool
) -> None:
    """has_free counts instead of walking when it can: the count must be exact, overlapping
    entries once, and the answer the same as allocating."""
    expected = set().union(*(_expected_hosts(e) for e in pool)) if pool else set()
    assert pool_size(tuple(pool)) == len(expected)
    make = ipaddress.IPv6Address if v6 else ipaddress.IPv4Address
    taken = {str(make((V6_BASE if v6 else V4_BASE) + i)) for i in used}
    assert has_free(pool, taken) == (allocate(pool, taken) is not None)


def test_pool_size_leaves_out_what_no_vip_may_have() -> None:
    assert (
        pool_size(("224.0.0.0/3",)) == 2**28 - 1
    )  # 240.0.0.0 up to, not including, 255.255.255.255
    assert pool_size(("0.0.0.0/30",)) == 2
    assert pool_size(("ff00::/120",)) == 0


@pytest.mark.parametrize(
    ("pool", "first"),
    [
        (["0.0.0.0/31"], "0.0.0.1"),  # never the unspecified address
        (["0.0.0.0/0"], "0.0.0.1"),
        (["::/127"], "::1"),
        (["224.0.0.0/4"], None),  # multicast: nothing, and at once (2^28 addresses)
        (["ff00::/8", "ff02::1-ff02::9"], None),
        (["223.255.255.255-240.0.0.1"], "223.255.255.255"),
        (["255.255.255.255/32", "10.0.0.7/32"], "10.0.0.7"),  # limited broadcast
    ],
)
def test_allocation_skips_addresses_no_vip_may_have(pool: list[str], first: str | None) -> None:
    assert allocate(pool, []) == first


def test_allocation_steps_over_the_multicast_block() -> None:
    assert allocate(["223.255.255.255-240.0.0.1"], ["223.255.255.255"]) == "240.0.0.0"


def test_a_range_written_high_to_low_is_the_same_range() -> None:
    """``b-a`` is every address from a to b (the schema checks only the family)."""
    assert list(pool_addresses(["10.0.0.3-10.0.0.1"])) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert pool_contains(["fd00::9-fd00::1"], "fd00::5")
    assert not pool_contains(["fd00::9-fd00::1"], "fd00::a")
    assert allocate(["10.0.0.9-10.0.0.8"], ["10.0.0.8"]) == "10.0.0.9"
