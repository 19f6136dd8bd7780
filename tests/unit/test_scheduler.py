"""The scheduler: which device a new VIP goes to, and why the others were not chosen."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbaas.api.device import DeviceSpec
from lbaas.api.vip import VIPSpec
from lbaas.placement.scheduler import Candidate, Decision, schedule

READY = "Ready"


def device(
    name: str,
    *,
    count: int = 0,
    max_vips: int = 10,
    phase: str | None = READY,
    labels: dict[str, str] | None = None,
    used: frozenset[str] = frozenset(),
    pool: list[str] | None = None,
    **spec: Any,
) -> Candidate:
    wire: dict[str, Any] = {
        "driver": "fake",
        "capacity": {"maxVIPs": max_vips},
        "addressPool": ["10.0.0.0/24"] if pool is None else pool,
        **spec,
    }
    return Candidate(
        name=name,
        spec=DeviceSpec.model_validate(wire),
        labels=labels or {},
        phase=phase,
        vip_count=count,
        used_addresses=used,
    )


def vip(**spec: Any) -> VIPSpec:
    return VIPSpec.model_validate({"port": 80, **spec})


def no_driver_problem(_c: Candidate) -> str | None:
    return None


def run(
    candidates: list[Candidate],
    v: VIPSpec | None = None,
    *,
    namespace: str = "team-a",
    ns_labels: dict[str, str] | None = None,
    driver_check: Any = no_driver_problem,
) -> Decision:
    return schedule(v or vip(), namespace, ns_labels or {}, candidates, driver_check)


def chosen_name(decision: Decision) -> str | None:
    return decision.chosen.name if decision.chosen else None


# ---- least loaded -----------------------------------------------------------------------------


def test_least_loaded_by_fill_ratio_not_by_count() -> None:
    # big: 5 of 100 (5 %), small: 1 of 10 (10 %) → big wins despite more VIPs.
    d = run([device("small", count=1, max_vips=10), device("big", count=5, max_vips=100)])
    assert chosen_name(d) == "big"
    assert d.exclusions == {}


def test_equal_ratio_prefers_fewer_vips() -> None:
    # Both 50 % full: "a" holds 2 of 4, "b" 1 of 2 → the one with fewer VIPs.
    d = run([device("a", count=2, max_vips=4), device("b", count=1, max_vips=2)])
    assert chosen_name(d) == "b"


def test_full_tie_is_broken_by_name() -> None:
    d = run([device("zeta", count=3), device("alpha", count=3), device("mid", count=3)])
    assert chosen_name(d) == "alpha"


# ---- deviceRef ---------------------------------------------------------------------------------


def test_device_ref_pins_even_a_more_loaded_device() -> None:
    d = run([device("idle"), device("busy", count=9)], vip(deviceRef="busy"))
    assert chosen_name(d) == "busy"
    assert d.exclusions == {"idle": "not the device pinned by deviceRef"}


def test_device_ref_to_missing_device() -> None:
    d = run([device("a"), device("b")], vip(deviceRef="gone"))
    assert d.chosen is None
    assert d.exclusions["gone"] == "pinned by deviceRef but no Device gone exists"
    assert d.exclusions["a"] == d.exclusions["b"] == "not the device pinned by deviceRef"
    assert "1 pinned by deviceRef but no Device gone exists" in d.explain()


def test_device_ref_to_a_device_that_is_not_ready_says_why() -> None:
    d = run([device("a"), device("b", phase="NotReady")], vip(deviceRef="b"))
    assert d.chosen is None
    assert d.exclusions["b"] == "not Ready (NotReady)"


# ---- state of the device ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "reason"),
    [
        ("NotReady", "not Ready (NotReady)"),
        ("Error", "not Ready (Error)"),
        (None, "not Ready (not probed yet)"),
    ],
)
def test_not_ready_is_excluded(phase: str | None, reason: str) -> None:
    d = run([device("down", phase=phase), device("up", count=9)])
    assert chosen_name(d) == "up"
    assert d.exclusions == {"down": reason}


def test_cordoned_is_excluded() -> None:
    d = run([device("cordoned", schedulable=False), device("open", count=9)])
    assert chosen_name(d) == "open"
    assert d.exclusions == {"cordoned": "cordoned (schedulable: false)"}


def test_at_capacity_is_excluded() -> None:
    d = run([device("full", count=10, max_vips=10), device("zero", max_vips=0), device("ok")])
    assert chosen_name(d) == "ok"
    assert d.exclusions == {"full": "at capacity", "zero": "at capacity"}


# ---- namespaces --------------------------------------------------------------------------------


def test_allowed_namespaces() -> None:
    devices = [
        device("only-b", allowedNamespaces=["team-b"]),
        device("a-too", count=9, allowedNamespaces=["team-a", "team-b"]),
    ]
    d = run(devices, namespace="team-a")
    assert chosen_name(d) == "a-too"
    assert d.exclusions == {"only-b": "not allowed for namespace team-a"}
    assert chosen_name(run(devices, namespace="team-b")) == "only-b"


def test_empty_allowed_namespaces_allows_none() -> None:
    d = run([device("closed", allowedNamespaces=[])])
    assert d.chosen is None
    assert d.exclusions == {"closed": "not allowed for namespace team-a"}


def test_namespace_selector_match_labels() -> None:
    dev = device("prod", namespaceSelector={"matchLabels": {"env": "prod", "tier": "web"}})
    assert chosen_name(run([dev], ns_labels={"env": "prod", "tier": "web", "x": "y"})) == "prod"
    assert run([dev], ns_labels={"env": "prod"}).chosen is None
    assert run([dev], ns_labels={"env": "dev", "tier": "web"}).chosen is None
    assert run([dev], ns_labels={}).exclusions == {"prod": "not allowed for namespace team-a"}


@pytest.mark.parametrize(
    ("expression", "labels", "allowed"),
    [
        ({"key": "env", "operator": "In", "values": ["prod", "stage"]}, {"env": "stage"}, True),
        ({"key": "env", "operator": "In", "values": ["prod", "stage"]}, {"env": "dev"}, False),
        ({"key": "env", "operator": "In", "values": ["prod"]}, {}, False),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {"env": "prod"}, True),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {"env": "dev"}, False),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {}, True),
        ({"key": "env", "operator": "Exists"}, {"env": ""}, True),
        ({"key": "env", "operator": "Exists"}, {"other": "x"}, False),
        ({"key": "env", "operator": "DoesNotExist"}, {"other": "x"}, True),
        ({"key": "env", "operator": "DoesNotExist"}, {"env": "prod"}, False),
    ],
)
def test_namespace_selector_match_expressions(
    expression: dict[str, Any], labels: dict[str, str], allowed: bool
) -> None:
    dev = device("d", namespaceSelector={"matchExpressions": [expression]})
    d = run([dev], ns_labels=labels)
    assert (d.chosen is not None) is allowed
    if not allowed:
        assert d.exclusions == {"d": "not allowed for namespace team-a"}


def test_namespace_selector_expressions_are_anded_with_labels() -> None:
    dev = device(
        "d",
        namespaceSelector={
            "matchLabels": {"team": "a"},
            "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}],
        },
    )
    assert run([dev], ns_labels={"team": "a", "env": "prod"}).chosen is not None
    assert run([dev], ns_labels={"team": "a", "env": "dev"}).chosen is None
    assert run([dev], ns_labels={"team": "b", "env": "prod"}).chosen is None


def test_allowed_namespaces_and_selector_must_both_pass() -> None:
    dev = device("d", allowedNamespaces=["team-a"], namespaceSelector={"matchLabels": {"ok": "1"}})
    assert run([dev], namespace="team-a", ns_labels={"ok": "1"}).chosen is not None
    assert run([dev], namespace="team-a", ns_labels={}).chosen is None
    assert run([dev], namespace="team-b", ns_labels={"ok": "1"}).chosen is None


# ---- deviceSelector ----------------------------------------------------------------------------


def test_device_selector() -> None:
    devices = [
        device("edge", labels={"zone": "edge", "vendor": "x"}, count=9),
        device("core", labels={"zone": "core"}),
        device("bare"),
    ]
    d = run(devices, vip(deviceSelector={"matchLabels": {"zone": "edge"}}))
    assert chosen_name(d) == "edge"
    assert d.exclusions == {
        "core": "labels do not match deviceSelector",
        "bare": "labels do not match deviceSelector",
    }
    d = run(
        devices,
        vip(deviceSelector={"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
    )
    assert chosen_name(d) == "core"
    assert d.exclusions == {"bare": "labels do not match deviceSelector"}


# ---- driver hooks ------------------------------------------------------------------------------


def test_driver_check_excludes_with_its_own_reason() -> None:
    seen: list[str] = []

    def check(c: Candidate) -> str | None:
        seen.append(c.name)
        return "protocol HTTPS not supported by this driver" if c.name == "old" else None

    d = run([device("old"), device("new", count=9)], driver_check=check)
    assert chosen_name(d) == "new"
    assert d.exclusions == {"old": "protocol HTTPS not supported by this driver"}
    assert sorted(seen) == ["new", "old"]


def test_driver_check_is_not_asked_about_devices_already_excluded() -> None:
    seen: list[str] = []

    def check(c: Candidate) -> str | None:
        seen.append(c.name)
        return None

    run(
        [device("down", phase="NotReady"), device("full", count=10), device("ok")],
        driver_check=check,
    )
    assert seen == ["ok"]


# ---- addresses ---------------------------------------------------------------------------------


def test_exhausted_address_pool_excludes_a_vip_without_address() -> None:
    full = device("full", pool=["10.0.0.1-10.0.0.2"], used=frozenset({"10.0.0.1", "10.0.0.2"}))
    empty = device("empty", pool=[])
    roomy = device("roomy", pool=["10.0.0.1-10.0.0.2"], used=frozenset({"10.0.0.1"}), count=9)
    d = run([full, empty, roomy])
    assert chosen_name(d) == "roomy"
    assert d.exclusions == {
        "full": "no free address in addressPool",
        "empty": "no free address in addressPool",
    }


def test_fixed_address_inside_the_pool_needs_no_free_address() -> None:
    full = device("full", pool=["10.0.0.0/30"], used=frozenset({"10.0.0.1", "10.0.0.2"}))
    d = run([full], vip(address="10.0.0.3"))
    assert chosen_name(d) == "full"
    assert d.exclusions == {}


def test_fixed_address_outside_every_pool_is_not_allowed() -> None:
    a = device("a", pool=["10.0.0.0/24"])
    b = device("b", pool=["10.1.0.0/24", "10.2.0.5-10.2.0.9"])
    d = run([a, b], vip(address="192.0.2.10"))
    assert d.chosen is None
    assert d.reason == "AddressNotAllowed"
    assert "10.1.0.0/24, 10.2.0.5-10.2.0.9" in d.explain() and "192.0.2.10" in d.explain()


def test_device_that_opts_out_takes_any_unicast_address() -> None:
    any_address = device("any", pool=[], vipAddressPolicy="Any")
    assert chosen_name(run([any_address], vip(address="192.0.2.10"))) == "any"
    for bad in ("0.0.0.0", "::", "224.0.0.1", "ff02::1"):
        d = run([any_address], vip(address=bad))
        assert d.reason == "AddressNotAllowed", bad


def test_a_listener_in_use_sends_the_vip_elsewhere_or_names_the_holder() -> None:
    taken = Candidate(
        name="taken",
        spec=DeviceSpec.model_validate({"driver": "fake", "addressPool": ["10.0.0.0/24"]}),
        labels={},
        phase=READY,
        vip_count=1,
        listeners={("10.0.0.7", 80, "TCP"): "team-b/other"},
    )
    free = device("free", count=5)
    assert chosen_name(run([taken, free], vip(address="10.0.0.7"))) == "free"
    d = run([taken], vip(address="10.0.0.7"))
    assert d.reason == "AddressInUse"
    assert "team-b/other" in d.explain()
    assert chosen_name(run([taken], vip(address="10.0.0.7", port=81))) == "taken"
    # UDP and TCP of one address and port are two listeners (a Service's 53/UDP and 53/TCP).
    assert chosen_name(run([taken], vip(address="10.0.0.7", protocol="UDP"))) == "taken"
    udp = dataclasses.replace(taken, name="udp", listeners={("10.0.0.7", 80, "UDP"): "b/dns"})
    d = run([udp], vip(address="10.0.0.7", protocol="UDP"))
    assert d.reason == "AddressInUse" and "10.0.0.7:80/udp is already used by VIP b/dns" in (
        d.explain()
    )
    assert chosen_name(run([udp], vip(address="10.0.0.7", protocol="HTTP"))) == "udp"


def test_per_namespace_quota_tries_another_device_first() -> None:
    def quota(name: str, used: int) -> Candidate:
        return Candidate(
            name=name,
            spec=DeviceSpec.model_validate(
                {
                    "driver": "fake",
                    "addressPool": ["10.0.0.0/24"],
                    "capacity": {"maxVIPsPerNamespace": 2},
                }
            ),
            labels={},
            phase=READY,
            vip_count=used,
            namespace_vips=used,
        )

    assert chosen_name(run([quota("full", 2), quota("room", 5 - 4)])) == "room"
    d = run([quota("full", 2)])
    assert d.reason == "QuotaExceeded"
    assert "namespace team-a already has 2 VIP(s) on device full" in d.explain()


# ---- explain -----------------------------------------------------------------------------------


def test_explain_counts_reasons() -> None:
    d = run(
        [
            device("c1", schedulable=False),
            device("full", count=10),
            device("c2", schedulable=False),
        ]
    )
    assert d.chosen is None
    assert d.explain() == (
        "no eligible device among the 3 open to namespace team-a:"
        " 1 at capacity, 2 cordoned (schedulable: false)"
    )


def test_explain_leaves_out_devices_closed_to_the_namespace() -> None:
    """Other tenants' devices are neither counted nor named: their changes (created, gone,
    NotReady) would otherwise rewrite every waiting VIP's status and post an Event each."""
    mine = device("mine", count=10)
    theirs = [device(f"t{i}", allowedNamespaces=["team-b"]) for i in range(3)]
    first = run([mine, *theirs]).explain()
    again = run([mine, theirs[0], device("t9", allowedNamespaces=["team-b"], phase=None)])
    assert (
        first
        == again.explain()
        == "no eligible device among the 1 open to namespace team-a: 1 at capacity"
    )
    assert "t0" not in first


def test_explain_when_every_device_is_closed_to_the_namespace() -> None:
    d = run([device("t0", allowedNamespaces=["team-b"])])
    assert d.explain() == (
        "no Device is open to namespace team-a: each is not allowed for namespace team-a"
        " (allowedNamespaces, namespaceSelector); ask a cluster administrator for one"
    )


def test_explain_a_pinned_vip_names_only_the_pinned_device() -> None:
    d = run([device("pinned", phase="NotReady"), device("other")], vip(deviceRef="pinned"))
    assert (
        d.explain()
        == "no eligible device among the 1 open to namespace team-a: 1 not Ready (NotReady)"
    )


def test_explain_without_any_device() -> None:
    d = run([])
    assert d.chosen is None
    assert d.eligible == ()
    assert d.explain() == "no Device exists; create one (kubectl get devices)"


# ---- property ----------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefgh", min_size=1, max_size=4)


@st.composite
def inventories(draw: st.DrawFn) -> list[Candidate]:
    names = draw(st.lists(NAMES, max_size=8, unique=True))
    out = []
    for name in names:
        max_vips = draw(st.integers(0, 6))
        used = draw(st.sets(st.sampled_from(["10.0.0.1", "10.0.0.2"])))
        out.append(
            device(
                name,
                count=draw(st.integers(0, 8)),
                max_vips=max_vips,
                phase=draw(st.sampled_from([READY, READY, "NotReady", None])),
                labels=draw(st.sampled_from([{}, {"zone": "a"}, {"zone": "b"}])),
                used=frozenset(used),
                pool=["10.0.0.1-10.0.0.2"],
                schedulable=draw(st.booleans()),
                allowedNamespaces=draw(st.sampled_from([None, ["team-a"], ["team-b"]])),
            )
        )
    return out


def _eligible_by_hand(v: VIPSpec, c: Candidate, banned: set[str]) -> bool:
    """The rules restated independently of the scheduler's code."""
    return (
        c.phase == READY
        and c.spec.schedulable
        and (c.spec.allowed_namespaces is None or "team-a" in c.spec.allowed_namespaces)
        and (v.device_selector is None or c.labels.get("zone") == "a")
        and c.vip_count < c.spec.capacity.max_vips
        and c.name not in banned
        and (v.address is not None or len(c.used_addresses) < 2)
    )


@settings(max_examples=300, deadline=None)
@given(
    candidates=inventories(),
    selector=st.booleans(),
    fixed=st.booleans(),
    banned=st.sets(NAMES, max_size=3),
)
def test_chosen_is_eligible_and_least_loaded(
    candidates: list[Candidate], selector: bool, fixed: bool, banned: set[str]
) -> None:
    spec: dict[str, Any] = {}
    if selector:
        spec["deviceSelector"] = {"matchLabels": {"zone": "a"}}
    if fixed:
        spec["address"] = "10.0.0.1"  # inside every pool below
    v = vip(**spec)
    d = run(
        candidates,
        v,
        driver_check=lambda c: "driver says no" if c.name in banned else None,
    )
    expected = {c.name for c in candidates if _eligible_by_hand(v, c, banned)}
    assert {c.name for c in d.eligible} == expected
    assert set(d.exclusions) == {c.name for c in candidates} - expected
    if not expected:
        assert d.chosen is None
        return
    chosen = d.chosen
    assert chosen is not None and chosen.name in expected

    def key(c: Candidate) -> tuple[float, int, str]:
        ratio = c.vip_count / c.spec.capacity.max_vips
        return (ratio, c.vip_count, c.name)

    for c in candidates:
        if c.name in expected:
            assert not key(c) < key(chosen), (c, chosen)
