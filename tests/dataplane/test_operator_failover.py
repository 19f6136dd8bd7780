"""VIP failover between two HAProxy devices through the operator (issue 11).

Two managed HAProxy devices on this host (their own address pools and state dirs), both with
``failover: {policy: Reschedule, afterSeconds: 2}``. The first one fails and stays down (its
HAProxy is killed and its binary taken away): after ``afterSeconds`` NotReady its VIPs move to
the second, with a ``FailedOver`` Event each; the VIP with an explicit address keeps it, the
other gets a new one from the second device's pool (``status.address``). Traffic follows.
When the first device comes back, its HAProxy starts again from files that still hold the VIPs
that left: the explicit address is left out (the other device holds the port), the other VIP's
old address is served for a moment, until the orphan removal the device's return triggers takes
both off. No address:port is ever held by two HAProxy processes.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dataplane.hxsupport import (
    Backends,
    Load,
    OperatorDevice,
    free_port_in,
    haproxy_binary,
    refused,
    spread,
)
from dataplane.opsupport import (
    BACKEND_THIRD,
    Binary,
    deploy,
    event_messages,
    kill_master,
    listeners,
    outage,
)

from helpers import Api, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]

AFTER = 2
OPERATOR_ENV = {"LBAAS_PROBE_INTERVAL": "1"}
FAILOVER = {"policy": "Reschedule", "afterSeconds": AFTER}
POOL_1, POOL_2 = "127.0.70.128/28", "127.0.70.144/28"
EXPLICIT = "127.0.70.170"  # in neither pool: both devices take any address
FAILOVER_LIMIT = AFTER + 6.0
"""NotReady at once (the watch), ``afterSeconds``, the move, the apply on the other device."""


@pytest.fixture
def backends() -> Iterator[Backends]:
    made = Backends(third=BACKEND_THIRD)
    yield made
    for server in made.started:
        server.shutdown()
        server.server_close()


def no_listener_held_twice() -> bool:
    return all(len(dirs) == 1 for dirs in listeners().values())


class Sampler(threading.Thread):
    """Looks at who listens where every few milliseconds while the old device comes back, and
    keeps every address:port it finds held by two HAProxy processes."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.samples = 0
        self.twice: list[dict[tuple[str, int], set[str]]] = []

    def run(self) -> None:
        while not self.done.wait(0.01):
            held = listeners()
            self.samples += 1
            if any(len(dirs) > 1 for dirs in held.values()):
                self.twice.append(held)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(5)


def test_vips_fail_over_and_the_old_device_is_cleaned_when_back(
    api: Api,
    namespace: str,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    tmp_path: Path,
) -> None:
    binary = Binary(haproxy_binary(), tmp_path / "bin")
    first = make_hx_device(
        POOL_1,
        config={"haproxyBinary": str(binary.path)},
        failover=FAILOVER,
        vipAddressPolicy="Any",
    )
    members = backends.http(2)
    auto = deploy(api, namespace, first, "auto", members)
    fixed = deploy(
        api, namespace, first, "fixed", members, address=EXPLICIT, port=free_port_in(EXPLICIT)
    )
    second = make_hx_device(POOL_2, failover=FAILOVER, vipAddressPolicy="Any")
    old_auto = auto.vip

    with Load(*fixed.vip, pause=0.01) as load:
        wait_for(lambda: load.sent >= 10, 5, "load running")
        binary.take_away()
        killed = time.monotonic()
        kill_master(first)
        wait_for(lambda: api.status("Device", first.name)["phase"] == "NotReady", 5, "NotReady")
        for site in (auto, fixed):
            wait_for(
                lambda s=site: s.status().get("device") == second.name,
                FAILOVER_LIMIT,
                f"{site.name} moved",
            )
        wait_for(lambda: outage(load, killed) is not None, FAILOVER_LIMIT, "traffic back")
        back = outage(load, killed) or 0.0
    print(
        f"\nfailover: traffic back on the explicit address {back:.1f} s after the kill"
        f" (afterSeconds {AFTER}), {len(load.failures)} of {load.sent} requests failed"
    )
    assert AFTER - 1 <= back < FAILOVER_LIMIT  # notReadySince has whole seconds

    for site in (auto, fixed):
        (message,) = event_messages(api, namespace, site.name, "FailedOver")
        assert f"moved from device {first.name} (NotReady) to {second.name}" in message
        site.api.wait_phase("VIP", site.name, namespace, "Active", 15)
    assert fixed.status()["address"] == EXPLICIT  # explicit: kept
    moved = auto.status()["address"]
    assert ipaddress.ip_address(moved) in ipaddress.ip_network(POOL_2)  # re-allocated
    auto.address = moved
    assert auto.serves_all() and fixed.serves_all()
    assert no_listener_held_twice()

    # The first device comes back: its HAProxy starts from its files, and the VIPs that
    # left are taken off it at once.
    with Sampler() as sampler:
        binary.give_back()
        wait_for(lambda: api.status("Device", first.name)["phase"] == "Ready", 10, "Ready")
        wait_for(lambda: refused(*old_auto), 5, "the old address of auto no longer served")
        wait_for(lambda: not list((first.state_dir / "vips").glob("*.json")), 5, "first cleaned")
    assert sampler.samples >= 2 and sampler.twice == [], sampler.twice
    assert not list((first.state_dir / "conf.d").glob("*.cfg"))
    removed = event_messages(api, None, first.name, "DriftRepaired")
    assert any(f"{namespace}/auto" in m for m in removed), removed
    held = listeners()
    assert no_listener_held_twice(), held
    assert held[fixed.vip] == {str(second.state_dir)}
    assert not any(str(first.state_dir) in dirs for dirs in held.values()), held
    assert set(spread(*fixed.vip, 20)) == {b.name for b in members}
    assert auto.serves_all()
