"""One bad tree never disturbs the others on an Envoy device: refused before anything is
written (values, addresses) or, should Envoy refuse a resource anyway, put back alone."""

from __future__ import annotations

import time

import pytest
from dataplane.envoysupport import EnvoyDevice, http_lb
from dataplane.hxsupport import Backends, Load, free_vip, get

from lbaas.drivers.envoy.render import checks
from lbaas.drivers.model import (
    Action,
    ActionType,
    L7Policy,
    Match,
    PathMatch,
    PathMatchType,
    WeightedPool,
)

pytestmark = pytest.mark.envoy


def _regex_policy(pattern: str) -> L7Policy:
    return L7Policy(
        "re",
        1,
        Match(path=PathMatch(PathMatchType.REGEX, pattern)),
        Action(ActionType.FORWARD, pools=(WeightedPool("p"),)),
    )


def test_a_bad_tree_in_a_batch_is_refused_alone(
    envoy: EnvoyDevice, backends: Backends, squatter: tuple[str, int]
) -> None:
    b = backends.http(2)
    steady_vip = free_vip()
    envoy.apply(http_lb(steady_vip, b[:1], name="steady"))
    good = http_lb(free_vip(), b[1:], name="good")
    bad_regex = http_lb(
        free_vip(), b, name="badre", listener={"policies": (_regex_policy("(?=x)"),)}
    )
    taken = http_lb(squatter, b, name="taken")
    absent = http_lb(("10.255.1.1", 8080), b, name="absent")
    steady_moved = http_lb(steady_vip, b, name="steady")  # a change of the steady tree too
    with Load(*steady_vip) as load:
        time.sleep(0.2)
        outcome = envoy.driver.apply_many(
            envoy.handle, [good, bad_regex, taken, absent, steady_moved]
        )
        time.sleep(0.2)
    print(f"\nsteady tree during a batch with three bad trees: {len(load.failures)} failed of"
          f" {load.sent}")  # fmt: skip
    assert load.failures == [] and load.sent > 20
    assert outcome["dp/good"] is None and outcome["dp/steady"] is None
    reasons = {key: (e.reason, e.retryable) for key, e in outcome.items() if e is not None}
    assert reasons == {
        "dp/badre": ("InvalidConfiguration", False),
        "dp/taken": ("AddressInUse", False),
        "dp/absent": ("AddressNotAvailable", False),
    }
    assert "(?=x)" in outcome["dp/badre"].user_message  # type: ignore[union-attr]
    assert get(good.address, good.listeners[0].port)[1] == "b1"
    assert sorted(envoy.driver.orphans(envoy.handle, [])) == ["dp/good", "dp/steady"]


def test_a_port_another_tree_holds_is_in_use(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(1)
    vip = free_vip()
    envoy.apply(http_lb(vip, b, name="first"))
    error = envoy.driver.apply_many(envoy.handle, [http_lb(vip, b, name="second")])["dp/second"]
    assert error is not None and error.reason == "AddressInUse"
    assert f"{vip[0]}:{vip[1]} is already used by VIP dp/first on this device" in error.user_message
    assert get(*vip)[1] == "b0"


def test_a_resource_envoy_refuses_anyway_is_put_back(
    envoy: EnvoyDevice, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net behind the checks: with the regex check switched off, Envoy itself
    refuses the listener; its tree is put back as it was, the batch's other tree applied."""
    b = backends.http(2)
    vip = free_vip()
    envoy.apply(http_lb(vip, b[:1], name="web"))
    monkeypatch.setattr(checks, "regex", lambda where, value: None)
    bad = http_lb(vip, b, name="web", listener={"policies": (_regex_policy("(?=x)"),)})
    other = http_lb(free_vip(), b[1:], name="other")
    with Load(*vip) as load:
        time.sleep(0.2)
        outcome = envoy.driver.apply_many(envoy.handle, [bad, other])
        time.sleep(0.2)
    assert load.failures == []
    error = outcome["dp/web"]
    assert error is not None and error.reason == "InvalidConfiguration"
    assert "Envoy refused dp/web/l" in error.user_message
    assert outcome["dp/other"] is None
    assert get(other.address, other.listeners[0].port)[1] == "b1"
    monkeypatch.undo()
    assert envoy.driver.verify(envoy.handle, http_lb(vip, b[:1], name="web")) == []
