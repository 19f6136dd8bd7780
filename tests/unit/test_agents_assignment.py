"""Fair-share assignment of Devices to agents: balance, stickiness, selectors, determinism."""

from __future__ import annotations

import random
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from lbaas.agents.assignment import assign, eligible_agents, loads
from lbaas.api.meta import LabelSelector

ZONES = ("a", "b", "c")


def zone(z: str) -> LabelSelector:
    return LabelSelector(match_labels={"zone": z})


def test_three_agents_six_devices_two_each() -> None:
    devices = {f"d{i}": None for i in range(6)}
    agents = {"x": {}, "y": {}, "z": {}}
    result = assign(devices, agents, {})
    assert sorted(loads(result, agents).values()) == [2, 2, 2]
    assert assign(devices, agents, result) == result  # no churn when nothing changed


def test_a_device_nobody_may_own_gets_none() -> None:
    result = assign({"d": zone("c")}, {"x": {"zone": "a"}}, {"d": "x"})
    assert result == {"d": None}


def test_holders_that_are_not_live_or_not_eligible_are_ignored() -> None:
    devices = {"d1": zone("a"), "d2": None}
    agents = {"x": {"zone": "b"}, "y": {"zone": "a"}}
    result = assign(devices, agents, {"d1": "x", "d2": "gone"})
    assert result["d1"] == "y"
    assert result["d2"] == "x"


def test_selectors_constrain_the_balance() -> None:
    # Four devices only zone a may own, two for anyone: a gets its four, b the other two.
    devices = {**{f"a{i}": zone("a") for i in range(4)}, "f1": None, "f2": None}
    agents = {"x": {"zone": "a"}, "y": {"zone": "b"}}
    result = assign(devices, agents, {})
    assert loads(result, agents) == {"x": 4, "y": 2}
    assert {result["f1"], result["f2"]} == {"y"}


def test_a_new_agent_takes_only_from_the_most_loaded() -> None:
    agents = {"x": {}, "y": {}, "z": {}}
    devices = {f"d{i}": None for i in range(6)}
    before = assign(devices, agents, {})
    after = assign(devices, {**agents, "w": {}}, before)
    moved = {d for d in devices if before[d] != after[d]}
    assert {after[d] for d in moved} == {"w"}
    assert sorted(loads(after, {**agents, "w": {}}).values()) == [1, 1, 2, 2]


# ---- properties -------------------------------------------------------------------------

names = st.text("abcdefghij0123456789-", min_size=1, max_size=6)


@st.composite
def worlds(
    draw: st.DrawFn, selectors: bool = True
) -> tuple[dict[str, LabelSelector | None], dict[str, dict[str, str]], dict[str, str | None]]:
    agent_ids = draw(st.lists(names, min_size=1, max_size=7, unique=True))
    agents = {a: {"zone": draw(st.sampled_from(ZONES))} for a in agent_ids}
    device_ids = draw(st.lists(names.map(lambda n: "d" + n), max_size=30, unique=True))
    choice = st.sampled_from((None, *ZONES)) if selectors else st.none()
    devices = {}
    for d in device_ids:
        z = draw(choice)
        devices[d] = None if z is None else zone(z)
    owner_pool = st.sampled_from((None, "departed", *agent_ids))
    owners = {d: draw(owner_pool) for d in device_ids}
    return devices, agents, owners


def check_balanced(
    result: Mapping[str, str | None],
    devices: Mapping[str, LabelSelector | None],
    agents: Mapping[str, Mapping[str, str]],
) -> None:
    load = loads(result, agents)
    for d, owner in result.items():
        eligible = eligible_agents(devices[d], agents)
        if not eligible:
            assert owner is None
            continue
        assert owner in eligible  # exactly one owner, and one the selector allows
        for other in eligible:
            assert load[owner] - load[other] <= 1, (d, owner, other, load)


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_every_eligible_device_gets_one_eligible_owner_and_loads_are_within_one(
    world: tuple[dict, dict, dict],
) -> None:
    devices, agents, owners = world
    check_balanced(assign(devices, agents, owners), devices, agents)


@settings(max_examples=300, deadline=None)
@given(worlds(selectors=False))
def test_without_selectors_max_minus_min_is_at_most_one(world: tuple[dict, dict, dict]) -> None:
    devices, agents, owners = world
    load = loads(assign(devices, agents, owners), agents)
    assert max(load.values()) - min(load.values()) <= 1


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_an_assignment_is_its_own_fixed_point(world: tuple[dict, dict, dict]) -> None:
    devices, agents, owners = world
    result = assign(devices, agents, owners)
    assert assign(devices, agents, result) == result


@settings(max_examples=200, deadline=None)
@given(worlds(), st.randoms(use_true_random=False))
def test_every_agent_computes_the_same_answer(
    world: tuple[dict, dict, dict], rnd: random.Random
) -> None:
    devices, agents, owners = world

    def shuffled(m: Mapping) -> dict:
        items = list(m.items())
        rnd.shuffle(items)
        return dict(items)

    assert assign(devices, agents, owners) == assign(
        shuffled(devices), shuffled(agents), shuffled(owners)
    )


@settings(max_examples=200, deadline=None)
@given(worlds(selectors=False))
def test_only_overloaded_owners_give_devices_away(world: tuple[dict, dict, dict]) -> None:
    """Stickiness: a device leaves a live owner only if that owner had 2 more than another."""
    devices, agents, owners = world
    result = assign(devices, agents, owners)
    before = loads({d: o for d, o in owners.items() if o in agents}, agents)
    for d, old in owners.items():
        if old in agents and old in eligible_agents(devices[d], agents) and result[d] != old:
            assert before[old] >= min(before.values()) + 2


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(1, 6))
def test_a_new_agent_gets_its_share_and_only_it_gains(m: int, n: int) -> None:
    devices = {f"d{i}": None for i in range(m)}
    agents: dict[str, dict[str, str]] = {f"a{i}": {} for i in range(n)}
    before = assign(devices, agents, {})
    grown = {**agents, "new": {}}
    after = assign(devices, grown, before)
    assert loads(after, grown)["new"] >= m // (n + 1)
    assert all(after[d] == "new" for d in devices if after[d] != before[d])


@settings(max_examples=200, deadline=None)
@given(worlds(selectors=False), st.data())
def test_when_an_agent_leaves_only_its_devices_move(
    world: tuple[dict, dict, dict], data: st.DataObject
) -> None:
    devices, agents, owners = world
    balanced = assign(devices, agents, owners)
    leaving = data.draw(st.sampled_from(sorted(agents)))
    rest = {a: labels for a, labels in agents.items() if a != leaving}
    after = assign(devices, rest, balanced)
    for d, owner in balanced.items():
        if owner != leaving:
            assert after[d] == owner
