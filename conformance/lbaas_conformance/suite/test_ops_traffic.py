"""Operational promises seen in traffic: health reported, drain, hitless member changes,
traffic counters."""

from __future__ import annotations

import dataclasses

from lbaas.drivers.model import MemberStatus, MonitorType
from lbaas_conformance.backends import Backends
from lbaas_conformance.client import InFlight, Steady, until
from lbaas_conformance.features import TRAFFIC, feature
from lbaas_conformance.kit import Kit
from lbaas_conformance.traffic import reaches, requests, serve, where
from lbaas_conformance.trees import member, monitor


@feature("ops.member-status", layer=TRAFFIC)
def test_member_status_follows_health(kit: Kit, backends: Backends) -> None:
    """A member whose health check starts failing is reported ERROR, then ONLINE again."""
    steady, flaky = backends.http(2)
    kind = MonitorType.TCP if kit.declares("monitor.tcp") else MonitorType.HTTP
    lb = serve(kit, [steady, flaky], monitor=monitor(kind))

    def status(name: str) -> MemberStatus | None:
        return kit.member_statuses([lb]).get(lb.key, {}).get(name)

    wait = kit.device.timing.health
    until(lambda: status(flaky.name) == MemberStatus.ONLINE, wait, "ONLINE while healthy")
    flaky.stop()
    until(lambda: status(flaky.name) == MemberStatus.ERROR, wait, "ERROR once it fails")
    assert status(steady.name) == MemberStatus.ONLINE
    flaky.start()
    until(lambda: status(flaky.name) == MemberStatus.ONLINE, wait, "ONLINE once healthy")


@feature("ops.drain", layer=TRAFFIC)
def test_a_removed_member_finishes_its_request(kit: Kit, backends: Backends) -> None:
    members = backends.http(2)
    lb = serve(kit, members)
    slow = InFlight(*where(lb), seconds=3)
    until(lambda: any(m.active for m in members), 5, "the slow request reaching a member")
    busy, kept = sorted(members, key=lambda m: -m.active)
    kit.apply(dataclasses.replace(lb, pools=(kit.trees.pool([kept]),)))
    slow.wait(15)
    assert slow.error is None, f"the request in flight on the removed member failed: {slow.error}"
    assert slow.answer is not None and (slow.answer.status, slow.answer.body) == (200, busy.name)


@feature("ops.hitless-members", layer=TRAFFIC)
def test_member_changes_fail_no_request(kit: Kit, backends: Backends) -> None:
    """A client sending all along sees no failed request while members are added, reweighted
    and removed."""
    a, b, c = backends.http(3)
    lb = serve(kit, [a, b])
    weighted = kit.declares("member.weight")
    with Steady(*where(lb)) as client:
        until(lambda: client.sent >= 20, 10, "the client under way")
        kit.apply(dataclasses.replace(lb, pools=(kit.trees.pool([a, b, c]),)))
        until(lambda: c.hits > 0, kit.device.timing.settle, "the added member serving")
        if weighted:
            reweighted = [member(a, weight=3), member(b), member(c)]
            kit.apply(dataclasses.replace(lb, pools=(kit.trees.pool(reweighted),)))
        sent = client.sent
        until(lambda: client.sent >= sent + 20, 10, "requests after the change")
        kit.apply(dataclasses.replace(lb, pools=(kit.trees.pool([a, c]),)))
        sent = client.sent
        until(lambda: client.sent >= sent + 40, 10, "requests after the removal")
    assert not client.failures, f"{len(client.failures)} of {client.sent}: {client.failures[:5]}"


@feature("ops.traffic-stats", layer=TRAFFIC)
def test_traffic_stats_count_the_requests(kit: Kit, backends: Backends) -> None:
    (a,) = backends.http(1)
    lb = serve(kit, [a])

    def counted() -> int:
        stats = kit.call(lambda: kit.driver.traffic_stats(kit.handle(), [lb])).get(lb.key)
        return sum(s.requests for s in stats.listeners.values()) if stats else -1

    before = counted()
    assert before >= 0, "no traffic stats for a load balancer the device serves"
    requests(lb, 10)
    until(lambda: counted() >= before + 10, kit.device.timing.settle, "10 more requests counted")
    reaches(lb, a, kit, "still serving")
