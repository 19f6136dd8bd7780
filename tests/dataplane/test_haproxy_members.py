"""Member changes reach traffic through HAProxy's runtime API, without a reload (issue 13):
create, delete, weight, admin state and address; the file is still written, so a later reload
keeps them, and a later runtime change still works."""

from __future__ import annotations

import threading

import pytest
from dataplane.hxsupport import (
    FAST_MONITOR,
    Backends,
    Device,
    Load,
    free_vip,
    get,
    make_lb,
    net,
    spread,
    wait_for,
    within,
)

from lbaas.drivers.haproxy.servers import DRAIN_SECONDS
from lbaas.drivers.model import MemberStatus, Method, Persistence, PersistenceType

pytestmark = pytest.mark.haproxy


def test_member_create_and_delete_without_reload(device: Device, backends: Backends) -> None:
    a, b, c = backends.http(3)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a], monitor=FAST_MONITOR))
    reloads, updates = device.reloads(), driver.state(handle).runtime_updates
    with Load(*vip) as load:
        driver.apply(handle, make_lb(vip, [a, b, c], monitor=FAST_MONITOR))
        # Added UP (checks enabled before the server leaves maintenance): served at once.
        assert set(spread(*vip, 30)) == {"b0", "b1", "b2"}
        driver.apply(handle, make_lb(vip, [a, c], monitor=FAST_MONITOR))
        hits = b.hits
        assert set(spread(*vip, 30)) == {"b0", "b2"}
        assert b.hits == hits  # deleted: no new request
    assert load.failures == [] and load.sent > 20
    assert device.reloads() == reloads
    assert driver.state(handle).runtime_updates == updates + 2
    assert "server b1 " not in device.fragment("web") and "server b2 " in device.fragment("web")
    statuses = device.statuses(make_lb(vip, [a, c], monitor=FAST_MONITOR))
    assert statuses == {"b0": MemberStatus.ONLINE, "b2": MemberStatus.ONLINE}


def test_runtime_servers_survive_a_reload_and_change_again(
    device: Device, backends: Backends
) -> None:
    a, b, c = backends.http(3)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a]))
    driver.apply(handle, make_lb(vip, [a, b], member_spec={"b1": {"weight": 3}}))  # runtime
    reloads = device.reloads()
    driver.apply(
        handle, make_lb(vip, [a, b], member_spec={"b1": {"weight": 3}}, connection_limit=9)
    )
    assert device.reloads() == reloads + 1  # b1 now comes from the file
    seen = spread(*vip, 200)
    assert within(seen["b1"], 150) and within(seen["b0"], 50), seen
    # Runtime changes on a server the reload read from the file: weight, delete, add.
    driver.apply(handle, make_lb(vip, [a, b], connection_limit=9))
    seen = spread(*vip, 200)
    assert within(seen["b1"], 100), seen
    driver.apply(handle, make_lb(vip, [b, c], connection_limit=9))
    assert set(spread(*vip, 30)) == {"b1", "b2"}
    assert device.reloads() == reloads + 1
    assert driver.verify(handle, make_lb(vip, [b, c], connection_limit=9)) == []


def test_member_address_change_replaces_the_server(device: Device, backends: Backends) -> None:
    a, b = backends.http(2)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a]))
    reloads = device.reloads()
    moved = make_lb(vip, [a], member_spec={"b0": {"address": b.address, "port": b.port}})
    driver.apply(handle, moved)
    assert spread(*vip, 10) == {"b1": 10}  # b1 answers its own name: the member moved
    assert device.reloads() == reloads


@pytest.mark.parametrize(
    ("pool", "persistence"),
    [
        ({"method": Method.SOURCE_IP}, Persistence(PersistenceType.SOURCE_IP)),
        (
            {"method": Method.LEAST_CONNECTIONS},
            Persistence(PersistenceType.APP_COOKIE, "JSESSIONID"),
        ),
    ],
    ids=["source", "leastconn-app-cookie"],
)
def test_runtime_members_with_other_methods_and_persistence(
    device: Device, backends: Backends, pool: dict[str, Method], persistence: Persistence
) -> None:
    a, b = backends.http(2)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a], pool=pool, persistence=persistence))
    reloads = device.reloads()
    driver.apply(handle, make_lb(vip, [a, b], pool=pool, persistence=persistence))
    assert device.reloads() == reloads
    chosen = set()
    for client in range(1, 21):
        seen = spread(*vip, 3, source=net(33, client))
        assert len(seen) == 1 or persistence.type != PersistenceType.SOURCE_IP, seen
        chosen |= set(seen)
    assert chosen == {"b0", "b1"}


def test_http_cookie_members_are_added_by_reload(device: Device, backends: Backends) -> None:
    """``add server`` has no ``cookie`` keyword in HAProxy 2.6: adding a member reloads, and
    the new member's cookie pins clients to it; weights stay runtime changes."""
    a, b = backends.http(2)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    cookie = Persistence(PersistenceType.HTTP_COOKIE)
    driver.apply(handle, make_lb(vip, [a], persistence=cookie))
    reloads = device.reloads()
    driver.apply(handle, make_lb(vip, [a, b], persistence=cookie))
    assert device.reloads() == reloads + 1
    assert spread(*vip, 10, headers={"Cookie": "SRVID=b1"}) == {"b1": 10}
    driver.apply(
        handle, make_lb(vip, [a, b], persistence=cookie, member_spec={"b1": {"weight": 0}})
    )
    assert device.reloads() == reloads + 1
    assert spread(*vip, 10) == {"b0": 10}


def test_a_removed_member_finishes_what_it_serves(device: Device, backends: Backends) -> None:
    """``del server`` needs the server without connections: it is drained first; a request
    still in flight when the drain wait ends is not cut (the member goes by a reload, whose old
    worker finishes it) — one that ends within the wait costs no reload."""
    a, b = backends.http(2)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a, b]))
    results: list[object] = []

    def slow(seconds: float) -> None:
        try:
            results.append(get(*vip, f"/?sleep={seconds}", timeout=10))
        except OSError as exc:
            results.append(exc)

    served = []
    for seconds, more_reloads in ((DRAIN_SECONDS / 4, 0), (DRAIN_SECONDS + 1.5, 1)):
        driver.apply(handle, make_lb(vip, [a, b]))
        request = threading.Thread(target=slow, args=(seconds,))
        request.start()
        wait_for(lambda: a.active + b.active == 1, timeout=2)
        busy, kept = (a, b) if a.active else (b, a)
        served.append(busy.name)
        reloads = device.reloads()
        driver.apply(handle, make_lb(vip, [kept]))
        # Ended within the drain wait: no reload; still serving at its end: one.
        assert device.reloads() == reloads + more_reloads
        request.join()
        assert spread(*vip, 10) == {kept.name: 10}
    assert [r[:2] if isinstance(r, tuple) else r for r in results] == [
        (200, served[0]),
        (200, served[1]),
    ]
    assert any(isinstance(r, tuple) and r[1] == "b0" for r in results), results


def test_health_is_carried_over_a_reload_only_where_it_still_means_something(
    device: Device, backends: Backends
) -> None:
    """A reload carries checked servers' health over (server-state file), but not that of a
    server left without checks (DOWN would stay for good: nothing brings it back) nor of one
    moved to another address (a new server)."""
    a, b, c = backends.http(3)
    vip = free_vip()
    driver, handle = device.driver, device.handle
    driver.apply(handle, make_lb(vip, [a, b], monitor=FAST_MONITOR))
    b.healthy = False
    wait_for(lambda: device.statuses(make_lb(vip, [a, b]))["b1"] == MemberStatus.ERROR, 10)
    driver.apply(handle, make_lb(vip, [a, b]))  # the monitor goes: a reload
    wait_for(lambda: set(spread(*vip, 20)) == {"b0", "b1"}, 5)
    # Checked again: b1 is down (its check says so, nothing carried it over as UP).
    driver.apply(handle, make_lb(vip, [a, b], monitor=FAST_MONITOR))
    wait_for(lambda: set(spread(*vip, 20)) == {"b0"}, 10)
    # b1 moves to c's address, a healthy backend, in the same apply as a balancing change (a
    # reload): the DOWN of its old address is not carried over.
    moved = make_lb(vip, [a, b], monitor=FAST_MONITOR, pool={"method": Method.LEAST_CONNECTIONS},
                    member_spec={"b1": {"address": c.address, "port": c.port}})  # fmt: skip
    reloads = device.reloads()
    driver.apply(handle, moved)
    assert device.reloads() == reloads + 1
    wait_for(lambda: set(spread(*vip, 20)) == {"b0", "b2"}, 10)
