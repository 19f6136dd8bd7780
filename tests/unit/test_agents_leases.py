"""Lease records, names, observation-based expiry and transfer reasons (no API server)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from lbaas.agents.transfer import TransferReason, transfer_for
from lbaas.leases import (
    AGENT_LABELS_ANNOTATION,
    INCARNATION_ANNOTATION,
    RELEASE_REASON_ANNOTATION,
    RELEASED_BY_ANNOTATION,
    LeaseRecord,
    Observer,
    device_lease_name,
    lease_seconds,
    now_utc,
)

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
subdomains = st.lists(label, min_size=1, max_size=8).map(".".join).filter(lambda s: len(s) <= 253)


def test_short_device_names_are_kept() -> None:
    assert device_lease_name("haproxy-1.example") == "lbaas-device-haproxy-1.example"


@given(subdomains)
def test_every_device_name_gives_a_valid_stable_lease_name(device: str) -> None:
    name = device_lease_name(device)
    assert len(name) <= 253
    assert SUBDOMAIN.match(name), name
    assert device_lease_name(device) == name


def test_long_names_are_cut_and_hashed_without_collisions() -> None:
    a = "x" * 240 + "a"
    b = "x" * 240 + "b"
    assert device_lease_name(a) != device_lease_name(b)
    assert len(device_lease_name("y" * 253)) == 253
    cut_at_dot = "a" * 229 + "." + "b" * 23  # the cut would end the name with a dot
    assert SUBDOMAIN.match(device_lease_name(cut_at_dot))


def test_records_round_trip_and_change_as_holders_want() -> None:
    base = LeaseRecord("l", labels={"k": "v"}, annotations={AGENT_LABELS_ANNOTATION: '{"z":"a"}'})
    mine = base.acquired("a", "inc1", 2.5)
    assert (mine.holder, mine.transitions, mine.duration_seconds) == ("a", 1, 3)
    assert mine.annotations[INCARNATION_ANNOTATION] == "inc1"
    assert mine.held_by("a", "inc1") and not mine.held_by("a", "inc2")
    wire = {**mine.to_wire(), "metadata": {**mine.to_wire()["metadata"], "resourceVersion": "7"}}
    read = LeaseRecord.from_wire(wire)
    assert read.resource_version == "7" and read.holder == "a" and read.agent_labels() == {"z": "a"}
    released = read.released("balance")
    assert released.holder is None and INCARNATION_ANNOTATION not in released.annotations
    assert released.annotations[RELEASED_BY_ANNOTATION] == "a"
    assert released.annotations[RELEASE_REASON_ANNOTATION] == "balance"
    assert released.to_wire()["spec"].get("holderIdentity") is None
    again = released.acquired("b", "inc2", 2)
    assert again.transitions == 2 and RELEASED_BY_ANNOTATION not in again.annotations


def test_times_always_carry_microseconds_and_durations_round_up() -> None:
    assert all(now_utc().microsecond for _ in range(100))
    assert lease_seconds(2.0) == 2 and lease_seconds(1.2) == 2 and lease_seconds(0.1) == 1


def test_observer_expires_a_lease_only_after_it_stayed_unchanged() -> None:
    obs = Observer()
    held = LeaseRecord("l", holder="a", duration_seconds=2, resource_version="1")
    assert not obs.is_free(held, 2, 1000.0)  # never seen: not free
    obs.observe(held, 10.0)
    assert not obs.is_free(held, 2, 11.9)
    assert obs.is_free(held, 2, 12.0)
    obs.observe(held, 11.0)  # same resourceVersion: no change
    assert obs.is_free(held, 2, 12.0)
    renewed = LeaseRecord("l", holder="a", duration_seconds=2, resource_version="2")
    obs.observe(renewed, 11.5)
    assert not obs.is_free(renewed, 2, 13.0) and obs.is_free(renewed, 2, 13.5)
    # A holder that published a longer lease is waited for that long.
    assert (
        obs.expires_at(LeaseRecord("l", holder="a", duration_seconds=5, resource_version="2"), 2)
        == 16.5
    )
    # Released: free at once, even unseen.
    assert obs.is_free(LeaseRecord("m", holder=None), 2, 0.0)
    obs.observe_all([renewed], 20.0)
    obs.observe_all([], 21.0)
    assert obs.changed_at("l") is None


def test_transfer_reasons_and_messages() -> None:
    assert transfer_for(None, "b", "i").reason is TransferReason.NEW
    expired = transfer_for(LeaseRecord("l", holder="a"), "b", "i")
    assert expired.message == "agent b took over from a: lease expired"
    released = LeaseRecord("l", holder="a").released("balance")
    handed = transfer_for(released, "b", "i")
    assert handed.message == "agent b took over from a: handed over by a for balance"
    stopped = transfer_for(LeaseRecord("l", holder="a").released("stopped"), "b", "i")
    assert stopped.message == "agent b took over from a: a stopped (released)"
    mine = LeaseRecord("l").acquired("b", "i", 2)
    assert transfer_for(mine, "b", "i").reason is TransferReason.RESUMED
    assert transfer_for(mine, "b", "other").reason is TransferReason.RESTARTED
