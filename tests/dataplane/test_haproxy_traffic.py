"""The HAProxy driver's traffic counters (``traffic_stats``, feature ``ops.traffic-stats``)
against a real HAProxy with real traffic: what the clients did is what the counters say."""

from __future__ import annotations

import socket
from collections import Counter

import pytest
from dataplane.hxsupport import Backends, Device, free_vip, get, make_lb

from lbaas.drivers.model import LoadBalancer, Protocol

pytestmark = pytest.mark.haproxy


def test_http_counters_follow_the_requests(device: Device, backends: Backends) -> None:
    members = backends.http(2)
    lb = make_lb(free_vip(), members)
    device.driver.apply(device.handle, lb)
    before = device.driver.traffic_stats(device.handle, [lb])[lb.key]
    answered = Counter(get(lb.address, lb.listeners[0].port)[1] for _ in range(30))
    health = get(lb.address, lb.listeners[0].port, "/healthz")[0]  # one more, 200 too
    stats = device.driver.traffic_stats(device.handle, [lb])[lb.key]
    listener = stats.listeners["web"]
    grew = listener.requests - before.listeners["web"].requests
    assert grew == 31, grew
    assert listener.responses["2xx"] - before.listeners["web"].responses["2xx"] == 31
    assert listener.bytes_in > before.listeners["web"].bytes_in and listener.bytes_out > 0
    assert listener.response_time_ms is None  # HAProxy keeps none for a frontend
    assert stats.pools["pool"].requests - before.pools["pool"].requests == 31
    assert stats.pools["pool"].response_time_ms is not None
    for backend in members:
        share = stats.members[backend.name].requests - before.members[backend.name].requests
        assert share >= answered[backend.name], (backend.name, share, answered)
    assert health == 200
    unknown = make_lb(free_vip(), members, name="other")
    assert device.driver.traffic_stats(device.handle, [unknown]) == {}, "a VIP it does not serve"


def test_tcp_counts_connections_and_a_reload_is_told(device: Device, backends: Backends) -> None:
    members = backends.echo(1)
    lb = make_lb(free_vip(), members, protocol=Protocol.TCP)
    device.driver.apply(device.handle, lb)
    first = device.driver.traffic_stats(device.handle, [lb])[lb.key]
    for _ in range(5):
        with socket.create_connection((lb.address, lb.listeners[0].port), timeout=3) as conn:
            conn.sendall(b"hi\n")
            assert conn.recv(100).startswith(members[0].name.encode())
    stats = device.driver.traffic_stats(device.handle, [lb])[lb.key]
    assert stats.listeners["web"].requests - first.listeners["web"].requests == 5
    assert stats.listeners["web"].responses == {}  # no HTTP classes for TCP
    reloads = device.reloads()
    device.driver.apply(device.handle, make_lb(lb_address(lb), members, protocol=Protocol.TCP,
                                               connection_limit=100))  # fmt: skip
    assert device.reloads() == reloads + 1
    after = device.driver.traffic_stats(device.handle, [lb])[lb.key]
    assert after.listeners["web"].restarts == stats.listeners["web"].restarts + 1
    assert after.listeners["web"].requests < stats.listeners["web"].requests  # a new worker


def lb_address(lb: LoadBalancer) -> tuple[str, int]:
    return lb.address, lb.listeners[0].port
