"""The Envoy driver against a real Envoy: hitless member changes under load, one round of
files per batch, the death of Envoy noticed and repaired, drift, crash safety, fencing.

Every figure a test measures is printed (``-s`` shows them): the lead's report quotes them.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest
from dataplane.envoysupport import FAST_HTTP_MONITOR, EnvoyDevice, http_lb
from dataplane.hxsupport import Backends, Load, free_vip, get, spread, wait_for

from lbaas.drivers.envoy import EnvoyDriver
from lbaas.drivers.errors import StaleOwnerError

pytestmark = pytest.mark.envoy


@pytest.mark.parametrize("endpoints", ["files", "inline"])
def test_member_add_remove_and_weight_under_load_lose_nothing(
    make_envoy: Callable[..., EnvoyDevice], backends: Backends, endpoints: str
) -> None:
    envoy = make_envoy(endpoints=endpoints)
    b = backends.http(3)
    vip = free_vip()
    envoy.apply(http_lb(vip, b[:2]))
    pid = envoy.pid()
    with Load(*vip) as load:
        time.sleep(0.3)
        envoy.apply(http_lb(vip, b))  # add b2
        time.sleep(0.3)
        envoy.apply(http_lb(vip, b, b0={"weight": 5}))
        time.sleep(0.3)
        envoy.apply(http_lb(vip, b[1:]))  # remove b0
        hits_after_removal = b[0].hits
        time.sleep(0.3)
        envoy.apply(http_lb(vip, b[1:], b1={"weight": 0}))  # drain b1
        time.sleep(0.3)
    print(f"\nmember changes under load ({endpoints}): {len(load.failures)} failed of {load.sent}")
    assert load.sent > 100
    assert load.failures == []
    assert b[0].hits == hits_after_removal  # nothing reached the removed member after apply
    assert spread(*vip, 10) == Counter({"b2": 10})  # b1 drains at weight 0
    assert envoy.pid() == pid  # no restart


def test_weights_share_requests(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(2)
    vip = free_vip()
    envoy.apply(http_lb(vip, b, b0={"weight": 3}))
    seen = spread(*vip, 80)
    assert seen["b0"] == 60 and seen["b1"] == 20  # round robin: exact shares


def test_a_batch_is_one_round_of_files(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(1)
    vips = [free_vip() for _ in range(5)]
    lbs = [http_lb(vip, b, name=f"web{i}") for i, vip in enumerate(vips)]
    envoy.apply(lbs[0])  # starts Envoy
    before = envoy.pushes()
    outcome = envoy.driver.apply_many(envoy.handle, lbs[1:])
    assert outcome == dict.fromkeys(lb.key for lb in lbs[1:])
    assert envoy.pushes() - before == 2  # one CDS and one LDS file for four new trees
    assert all(get(*vip)[1] == "b0" for vip in vips)
    before = envoy.pushes()
    for lb in lbs[1:]:
        envoy.driver.delete(envoy.handle, lb.key)
    assert envoy.pushes() - before == 8  # one at a time: LDS then CDS each


def test_killed_envoy_is_noticed_and_restarted_by_probe(
    envoy: EnvoyDevice, backends: Backends
) -> None:
    b = backends.http(1)
    vip = free_vip()
    envoy.apply(http_lb(vip, b))
    died = threading.Event()
    stop = envoy.driver.watch(envoy.handle, died.set)
    try:
        old = envoy.pid()
        assert old is not None
        with Load(*vip, pause=0.002) as load:
            time.sleep(0.2)
            killed = time.monotonic()
            os.kill(old, signal.SIGKILL)
            assert died.wait(2)
            noticed = time.monotonic() - killed
            result = envoy.driver.probe(envoy.handle)
            wait_for(lambda: load.first_success_after(killed) is not None, 5)
            time.sleep(0.1)
        back = load.first_success_after(killed)
        assert back is not None
        print(f"\nSIGKILL: noticed in {noticed * 1000:.0f} ms, traffic back in"
              f" {(back - killed) * 1000:.0f} ms")  # fmt: skip
        assert result.ready, result.message
        assert envoy.pid() not in (None, old)
        assert back - killed < 2.0
        assert get(*vip)[1] == "b0"
    finally:
        stop()


def test_drift_is_found_and_repaired_by_apply(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(2)
    vip = free_vip()
    lb = http_lb(vip, b)
    envoy.apply(lb)
    assert envoy.driver.verify(envoy.handle, lb) == []
    eds = next((envoy.state_dir / "xds" / "eds").glob("*.json"))
    eds.write_text(eds.read_text().replace(str(b[1].port), "9"))  # by hand, in place
    drifts = envoy.driver.verify(envoy.handle, lb)
    assert {d.kind for d in drifts} == {"ConfigChanged"}
    envoy.apply(lb)
    assert envoy.driver.verify(envoy.handle, lb) == []
    assert set(spread(*vip, 10)) == {"b0", "b1"}


def test_a_new_driver_renders_from_stored_trees(
    make_envoy: Callable[..., EnvoyDevice], backends: Backends
) -> None:
    b = backends.http(1)
    vip = free_vip()
    first = make_envoy()
    lb = http_lb(vip, b)
    first.apply(lb)
    (first.state_dir / "xds" / "lds" / "lds.json").unlink()  # an apply cut short, say
    second = EnvoyDriver()
    assert second.probe(first.handle).ready
    assert get(*vip)[1] == "b0"
    assert second.verify(first.handle, lb) == []
    assert second.orphans(first.handle, []) == ["dp/web"]
    second.delete(first.handle, "dp/web")
    assert second.orphans(first.handle, []) == []


def test_an_older_owner_is_refused(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(1)
    vip = free_vip()
    newer = replace(envoy.handle, owner="agent-b", fence=2)
    older = replace(envoy.handle, owner="agent-a", fence=1)
    envoy.driver.apply(newer, http_lb(vip, b))
    with pytest.raises(StaleOwnerError):
        envoy.driver.apply(older, http_lb(vip, b, b0={"weight": 2}))


def test_member_statuses_follow_health_checks(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(3)
    vip = free_vip()
    lb = http_lb(vip, b, pool={"monitor": FAST_HTTP_MONITOR}, b2={"admin_state_up": False})
    envoy.apply(lb)
    statuses = lambda: envoy.driver.member_statuses(envoy.handle, [lb])["dp/web"]  # noqa: E731
    wait_for(lambda: statuses() == {"b0": "ONLINE", "b1": "ONLINE", "b2": "OFFLINE"}, 5)
    b[1].healthy = False
    wait_for(lambda: statuses()["b1"] == "ERROR", 5)
    assert set(spread(*vip, 10)) == {"b0"}
