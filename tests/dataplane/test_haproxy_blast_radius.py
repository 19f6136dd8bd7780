"""Blast radius of one (issue 10): a VIP the device cannot take never disturbs the others.

An uninvolved VIP serves a client that sends requests back to back, one connection each,
while hostile VIPs are applied again and again: not one request may fail, and the refusals
must not reload the device (only the legitimate changes made meanwhile do).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from dataplane.hxsupport import Backends, Device, Load, free_vip, get, make_lb

from lbaas.drivers.errors import DriverError
from lbaas.drivers.haproxy import device as device_module
from lbaas.drivers.haproxy.process import Supervisor
from lbaas.drivers.haproxy.render import Fragment
from lbaas.drivers.model import (
    HealthMonitor,
    LoadBalancer,
    MonitorType,
    Persistence,
    PersistenceType,
    Protocol,
)

pytestmark = pytest.mark.haproxy

ROUNDS = 4


def bogus_for(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """VIP ``name`` renders a fragment HAProxy refuses (standing in for any value that passes
    the driver's token checks but not HAProxy's parser)."""
    real = device_module.render_vip

    def render(lb: LoadBalancer, certs_dir: str = "") -> Fragment:
        fragment = real(lb, certs_dir)
        if lb.name != name:
            return fragment
        return dataclasses.replace(fragment, text=fragment.text + "    bogus-keyword 1\n")

    monkeypatch.setattr(device_module, "render_vip", render)


def hostile(
    web: LoadBalancer, members: Any, squatter: tuple[str, int]
) -> list[tuple[LoadBalancer, str]]:
    """Specs the API schema accepts that this device cannot serve, with the expected reason."""
    port = web.listeners[0].port
    monitor = HealthMonitor("hm", MonitorType.HTTP, expected_codes="204-200")
    return [
        (make_lb(("10.99.0.1", port), members, name="unbindable"), "AddressNotAvailable"),
        (make_lb(squatter, members, name="foreign-port"), "AddressInUse"),
        (make_lb((web.address, port), members, name="same-listener"), "AddressInUse"),
        (make_lb(("0.0.0.0", port), members, name="wildcard"), "AddressNotAllowed"),
        (
            make_lb(
                free_vip(),
                members,
                name="cookie-quote",
                persistence=Persistence(PersistenceType.APP_COOKIE, "a'b"),
            ),
            "Unsupported",
        ),
        (
            make_lb(
                free_vip(),
                members,
                name="cookie-on-tcp",
                protocol=Protocol.TCP,
                persistence=Persistence(PersistenceType.HTTP_COOKIE),
            ),
            "Unsupported",
        ),
        (make_lb(free_vip(), members, name="codes", monitor=monitor), "InvalidConfiguration"),
        (make_lb(free_vip(), members, name="rejected"), "InvalidConfiguration"),
    ]


def test_hostile_vips_lose_no_request_of_another_vip_and_never_reload(
    device: Device,
    backends: Backends,
    squatter: tuple[str, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    members = backends.http(2)
    driver, handle = device.driver, device.handle
    web = make_lb(free_vip(), members)
    friend_vip = free_vip()
    driver.apply(handle, web)
    driver.apply(handle, make_lb(friend_vip, members, name="friend"))
    bogus_for("rejected", monkeypatch)
    cases = hostile(web, members, squatter)
    reloads = device.reloads()
    refusals: dict[str, set[tuple[str, bool]]] = {}
    with Load(web.address, web.listeners[0].port) as load:
        for round_ in range(ROUNDS):
            for lb, _ in cases:
                with pytest.raises(DriverError) as err:
                    driver.apply(handle, lb)
                refusals.setdefault(lb.name, set()).add((err.value.reason, err.value.retryable))
            # A legitimate change meanwhile: a reload, which must serve web throughout.
            friend = make_lb(friend_vip, members, name="friend", connection_limit=round_ + 1)
            driver.apply(handle, friend)
    assert refusals == {lb.name: {(reason, False)} for lb, reason in cases}
    assert device.reloads() == reloads + ROUNDS  # the friend's changes, none for the refusals
    assert load.failures == [], load.failures[:5]
    assert load.sent > 100
    print(
        f"blast radius: {load.sent} requests, {len(load.failures)} failed,"
        f" {ROUNDS * len(cases)} refusals, {device.reloads() - reloads} reloads"
    )
    assert sorted(p.name for p in (device.state_dir / "vips").iterdir()) == [
        "dp__friend.json",
        "dp__web.json",
    ]
    assert driver.verify(handle, web) == []
    assert get(*friend_vip)[0] == 200


def test_a_reload_that_fails_anyway_is_rolled_back_without_a_gap(
    device: Device, backends: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configuration that passed the checks but that the reload refuses (here: ``haproxy
    -c`` skipped, the fragment invalid): files restored, the old worker kept serving."""
    members = backends.http(2)
    driver, handle = device.driver, device.handle
    web = make_lb(free_vip(), members)
    driver.apply(handle, web)
    live = device.config()
    bogus_for("broken", monkeypatch)
    monkeypatch.setattr(Supervisor, "check", lambda self, files: None)
    with Load(web.address, web.listeners[0].port) as load:
        with pytest.raises(DriverError) as err:
            driver.apply(handle, make_lb(free_vip(), members, name="broken"))
        assert err.value.reason == "ReloadFailed" and not err.value.retryable
        assert "bogus-keyword" in err.value.user_message
        later = make_lb(free_vip(), members, name="later")
        driver.apply(handle, later)  # the device still takes good changes
    assert load.failures == [], load.failures[:5]
    assert load.sent > 20
    assert not (device.state_dir / "vips" / "dp__broken.json").exists()
    assert device.config() != live and "broken" not in device.config()
    assert driver.verify(handle, web) == [] and driver.verify(handle, later) == []
    assert not driver.state(handle).pending_reload
