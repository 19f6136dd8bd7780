"""Data planes driven through the operator: objects created through the API server, the real
operator process reconciling them onto a Device that it starts itself, and real HTTP/TCP
traffic through the VIP address the operator allocated.

Tests taking ``plane`` run on every data plane (``planes``: HAProxy and Envoy, the same
scenario; what differs is asked of the adapter); the others on HAProxy (``make_hx_device``).
Each test has its own namespace, its own Device (``allowedNamespaces: [namespace]``, a /28 of
127.0.10.x of its own as ``addressPool``, a private ``stateDir``) and its own backends.
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from dataplane.hxsupport import (
    Backends,
    Load,
    OperatorDevice,
    applied,
    get,
    refused,
    spread,
    wait_applied,
)
from dataplane.opsupport import Site, deploy
from dataplane.planes import Plane

from helpers import Api, wait_for

pytestmark = [pytest.mark.cluster]
haproxy_only = pytest.mark.haproxy

FAST_MONITOR = {
    "type": "HTTP",
    "urlPath": "/healthz",
    "delay": 1,
    "timeout": 1,
    "maxRetries": 1,
    "maxRetriesDown": 2,
    "expectedCodes": "200",
}


def within(count: int, expected: float, tolerance: float = 0.10) -> bool:
    return abs(count - expected) <= expected * tolerance


def operating(site: Site, kind: str, name: str | None = None) -> str | None:
    return site.status(kind, name).get("operatingStatus")


# -- balancing ---------------------------------------------------------------------------------


def test_round_robin_then_weights_3_to_1(
    api: Api,
    namespace: str,
    make_op_device: Callable[..., OperatorDevice],
    plane: Plane,
    backends: Backends,
) -> None:
    device = make_op_device("127.0.10.128/28")
    b0, b1, b2 = backends.http(3)
    site = deploy(api, namespace, device, "rr", [b0, b1, b2])
    assert site.address == "127.0.10.129"  # the first host of the device's addressPool
    assert operating(site, "VIP") == "ONLINE"
    seen = spread(*site.vip, 300)
    assert sum(seen.values()) == 300
    assert all(within(seen[b.name], 100) for b in (b0, b1, b2)), seen

    disruptions = plane.disruptions(device.state_dir)
    site.patch_member(b0, weight=3)
    site.patch_member(b1, weight=1)
    site.patch_member(b2, weight=0)  # drained: no new requests
    assert operating(site, "Member", site.member(b2)) == "DRAINING"
    seen = spread(*site.vip, 400)
    assert within(seen[b0.name], 300) and within(seen[b1.name], 100), seen
    assert seen[b2.name] == 0, seen
    assert plane.disruptions(device.state_dir) == disruptions  # weights change members only


@haproxy_only
def test_backup_member_serves_only_when_all_others_are_down(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    device = make_hx_device("127.0.10.144/28")
    p0, p1, backup = backends.http(3)
    site = deploy(
        api, namespace, device, "bk", [p0, p1, backup], monitor=FAST_MONITOR,
        member_spec={2: {"backup": True}},
    )  # fmt: skip
    assert backup.name not in spread(*site.vip, 40)

    # Admin down: one primary left still keeps the backup idle; none left brings it in.
    site.patch_member(p0, adminStateUp=False)
    assert spread(*site.vip, 20) == {p1.name: 20}
    site.patch_member(p1, adminStateUp=False)
    assert spread(*site.vip, 20) == {backup.name: 20}
    site.patch_member(p0, adminStateUp=True)
    site.patch_member(p1, adminStateUp=True)
    assert backup.name not in spread(*site.vip, 40)

    # Backends stopped: the monitor takes them down and the backup takes over. Until then a
    # request may wait for HAProxy's retries (1 s apart after a refused connection).
    for server in (p0, p1):
        server.shutdown()
        server.server_close()
    wait_for(lambda: get(*site.vip, timeout=10)[1] == backup.name, 15, "backup serving")
    assert spread(*site.vip, 20) == {backup.name: 20}


# -- health monitoring ---------------------------------------------------------------------------


def test_http_monitor_takes_a_failing_member_out_and_back(
    api: Api, namespace: str, make_op_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    device = make_op_device("127.0.10.160/28")
    members = backends.http(3)
    site = deploy(api, namespace, device, "hm", members, monitor=FAST_MONITOR)
    sick = members[1]
    sick_member = site.member(sick)
    wait_for(
        lambda: (
            all(operating(site, "Member", m) == "ONLINE" for m in site.members)
            and operating(site, "VIP") == "ONLINE"
        ),
        10,
        "all members ONLINE",
    )
    assert len(spread(*site.vip, 6)) == 3

    sick.healthy = False  # /healthz answers 500
    started = time.monotonic()
    wait_for(lambda: sick.name not in spread(*site.vip, 6), 10, "sick member out", 0.02)
    took = time.monotonic() - started
    limit = FAST_MONITOR["delay"] * FAST_MONITOR["maxRetriesDown"] + 1
    assert took <= limit, f"out of rotation after {took:.2f}s (limit {limit}s)"
    assert sick.name not in spread(*site.vip, 30)
    wait_for(lambda: operating(site, "Member", sick_member) == "ERROR", 10, "Member ERROR")
    assert operating(site, "VIP") == "DEGRADED"
    assert operating(site, "Pool") == "DEGRADED"
    assert all(operating(site, "Member", m) == "ONLINE" for m in site.members if m != sick_member)

    sick.healthy = True
    wait_for(lambda: operating(site, "Member", sick_member) == "ONLINE", 10, "Member ONLINE")
    wait_for(lambda: operating(site, "VIP") == "ONLINE", 5, "VIP ONLINE")
    # Status and traffic follow the health checks apart: traffic may need a moment more (seen
    # once on Envoy, on a host with a load of 10 on 2 cores).
    wait_for(lambda: sick.name in spread(*site.vip, 6), 3, "the member serving again")


# -- persistence ---------------------------------------------------------------------------------


@haproxy_only
def test_source_ip_and_http_cookie_persistence(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    device = make_hx_device("127.0.10.176/28")
    members = backends.http(3)
    by_src = deploy(
        api, namespace, device, "src", members, sessionPersistence={"type": "SOURCE_IP"}
    )
    by_cookie = deploy(
        api, namespace, device, "ck", members, sessionPersistence={"type": "HTTP_COOKIE"}
    )
    assert by_src.address != by_cookie.address

    chosen = set()
    for client in range(1, 7):
        seen = spread(*by_src.vip, 6, source=f"127.0.32.{client}")
        assert len(seen) == 1, seen
        chosen |= set(seen)
    assert len(chosen) == 3  # the first request of each client is still balanced

    for _ in range(3):
        _, first, headers = get(*by_cookie.vip)
        cookie = headers.get("set-cookie", "").split(";")[0]
        assert cookie == f"SRVID={by_cookie.member(next(b for b in members if b.name == first))}"
        assert spread(*by_cookie.vip, 15, headers={"Cookie": cookie}) == {first: 15}
    assert len(spread(*by_cookie.vip, 6)) == 3  # without the cookie: balanced


# -- limits and admin state ----------------------------------------------------------------------


@haproxy_only
def test_connection_limit_is_enforced(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    device = make_hx_device("127.0.10.192/28")
    members = backends.http(2)
    site = deploy(api, namespace, device, "cl", members, connectionLimit=2)
    slow = [
        threading.Thread(target=get, args=site.vip, kwargs={"path": "/?sleep=1.5", "timeout": 5})
        for _ in range(2)
    ]
    for thread in slow:
        thread.start()
    wait_for(lambda: sum(b.active for b in members) == 2, 3, "two requests in flight")
    with pytest.raises(TimeoutError):
        get(*site.vip, timeout=0.7)  # the third connection waits: it is not accepted
    for thread in slow:
        thread.join()
    # The queued third request may still be forwarded once a slot frees up (its client left).
    wait_for(lambda: max(b.active for b in members) == 0, 5, "no request in flight")
    assert get(*site.vip)[0] == 200


@haproxy_only
def test_member_and_vip_admin_state(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    device = make_hx_device("127.0.10.208/28")
    members = backends.http(2)
    site = deploy(api, namespace, device, "adm", members)
    reloads = device.reloads()

    result: list[tuple[int, str, dict[str, str]]] = []
    in_flight = threading.Thread(
        target=lambda: result.append(get(*site.vip, path="/?sleep=2", timeout=8))
    )
    in_flight.start()
    wait_for(lambda: any(b.active for b in members), 3, "a request in flight")
    busy = next(b for b in members if b.active)
    other = next(b for b in members if b is not busy)
    site.patch_member(busy, adminStateUp=False)  # drain: no new requests, the old one finishes
    assert spread(*site.vip, 20) == {other.name: 20}
    in_flight.join()
    assert result and result[0][:2] == (200, busy.name)
    wait_for(lambda: operating(site, "Member", site.member(busy)) == "OFFLINE", 5, "OFFLINE")
    site.patch_member(busy, adminStateUp=True)
    assert len(spread(*site.vip, 6)) == 2
    assert device.reloads() == reloads  # member admin state is a runtime change

    api.patch_spec("VIP", site.name, namespace, {"adminStateUp": False})
    wait_applied(api, "VIP", site.name, namespace)
    wait_for(lambda: refused(*site.vip), 5, "VIP stopped")
    assert operating(site, "VIP") == "OFFLINE"
    api.patch_spec("VIP", site.name, namespace, {"adminStateUp": True})
    wait_applied(api, "VIP", site.name, namespace)
    assert len(spread(*site.vip, 6)) == 2


# -- changes under load --------------------------------------------------------------------------


def test_fifty_changes_under_load_fail_no_request(
    api: Api,
    namespace: str,
    make_op_device: Callable[..., OperatorDevice],
    plane: Plane,
    backends: Backends,
) -> None:
    device = make_op_device("127.0.10.224/28")
    pool = backends.http(6)
    site = deploy(api, namespace, device, "ld", pool[:3])
    rng = random.Random(7)
    spares = itertools.cycle(pool)
    current = dict(site.members)  # Member name → backend
    changes: list[tuple[str, int]] = []  # (kind of change, disruptions it caused)
    state = device.state_dir

    def change(kind: str, do: Callable[[], None]) -> None:
        before = plane.disruptions(state), plane.member_updates(state)
        do()
        after = plane.disruptions(state), plane.member_updates(state)
        changes.append((kind, after[0] - before[0]))
        if kind in ("weight", "admin") and before[1] is not None:
            assert after[1] == before[1] + 1, kind  # one runtime update, where counted

    def add(round_: int) -> None:
        backend = next(b for b in spares if b not in current.values())
        name = f"ld-{backend.name}-r{round_}"
        spec = {"poolRef": site.name, "address": backend.address, "port": backend.port}
        api.create(
            {"kind": "Member", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        )
        wait_applied(api, "Member", name, namespace)
        current[name] = backend

    def patch(name: str, **spec: Any) -> None:
        api.patch_spec("Member", name, namespace, spec)
        wait_applied(api, "Member", name, namespace)

    def remove(name: str) -> None:
        # A Member carries no finalizer: it is gone at once, and the device follows.
        api.delete("Member", name, namespace)
        api.wait_gone("Member", name, namespace)
        vip_file = plane.tree_file(state, namespace, site.name)
        wait_for(lambda: name not in vip_file.read_text(), 5, f"{name} off the device")
        del current[name]

    with Load(*site.vip, max_requests=100_000, max_seconds=120) as load:
        wait_for(lambda: load.sent >= 20, 5, "load running")
        for round_ in range(10):
            change("add", lambda r=round_: add(r))
            weighted = rng.choice(sorted(current))
            change("weight", lambda n=weighted: patch(n, weight=rng.randint(2, 5)))
            down = rng.choice(sorted(current))
            change("admin", lambda n=down: patch(n, adminStateUp=False))
            change("admin", lambda n=down: patch(n, adminStateUp=True))
            oldest = next(iter(current))
            change("remove", lambda n=oldest: remove(n))
        sent_during_changes = load.sent
        time.sleep(0.3)
    print(
        f"\n{plane.driver}: 50 member changes under load: {load.sent} requests,"
        f" {len(load.failures)} failed, spread {dict(load.seen)}"
    )
    assert len(changes) == 50
    assert load.failures == [], f"{len(load.failures)} of {load.sent} failed: {load.failures[:5]}"
    assert sent_during_changes >= 500, sent_during_changes
    by_kind = {
        k: [r for kind, r in changes if kind == k] for k in ("add", "remove", "weight", "admin")
    }
    assert by_kind["weight"] == [0] * 10 and by_kind["admin"] == [0] * 20, by_kind
    # HAProxy >= 2.6 adds and removes servers at run time, Envoy rewrites one EDS file.
    assert by_kind["add"] == [0] * 10 and by_kind["remove"] == [0] * 10, by_kind
    assert len(load.seen) == 6  # every backend served while it was a member


# -- what must never reach HAProxy ---------------------------------------------------------------


@haproxy_only
def test_hostile_and_unsupported_values_never_reach_haproxy(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    # Imported late: importing kubernetes reads KUBECONFIG, which the kubeconfig fixture sets.
    from kubernetes.client.exceptions import ApiException

    device = make_hx_device("127.0.10.240/28")
    members = backends.http(2)
    site = deploy(api, namespace, device, "bad", members, monitor=FAST_MONITOR)
    live = device.config()
    reloads, pid = device.reloads(), device.master_pid()

    # A newline in urlPath would add a line to haproxy.cfg: the API server's schema refuses it.
    hostile = "/healthz\n    stats socket /tmp/owned level admin"
    with pytest.raises(ApiException) as created:
        api.create(
            {
                "kind": "HealthMonitor",
                "metadata": {"name": "evil", "namespace": namespace},
                "spec": {"poolRef": site.name, "type": "HTTP", "urlPath": hostile},
            }
        )
    assert created.value.status == 422 and "urlPath" in str(created.value.body)
    with pytest.raises(ApiException) as patched:
        api.patch_spec("HealthMonitor", site.name, namespace, {"urlPath": hostile})
    assert patched.value.status == 422
    assert applied(api, "HealthMonitor", site.name, namespace)

    # A cookie name with ' passes the schema (RFC 6265 allows it) but not the driver.
    api.patch_spec(
        "VIP",
        site.name,
        namespace,
        {"sessionPersistence": {"type": "HTTP_COOKIE", "cookieName": "sess'id"}},
    )
    vip = api.wait_phase("VIP", site.name, namespace, "Error", 15)
    message = vip["status"]["message"]
    assert vip["status"]["reason"] == "Unsupported", vip["status"]
    assert 'cookie name "sess\'id" cannot be used by HAProxy' in message, message
    for kind, name in [("Pool", site.name), ("HealthMonitor", site.name)] + [
        ("Member", m) for m in site.members
    ]:
        status = api.wait_phase(kind, name, namespace, "Error", 10)["status"]
        assert status["message"] == message, (kind, name, status)
    warnings = api.events(namespace, site.name)
    assert any(e.reason == "Unsupported" and "sess'id" in e.message for e in warnings), warnings
    # The running HAProxy never saw it: same process, same configuration, still serving.
    assert device.config() == live and "sess'id" not in device.config()
    assert not any("sess'id" in f.read_text() for f in (device.state_dir / "vips").iterdir())
    assert device.reloads() == reloads and device.master_pid() == pid
    seen = spread(*site.vip, 20)
    assert sum(seen.values()) == 20 and len(seen) == 2, seen

    # Fixed: the same VIP converges again with the cookie.
    api.patch_spec(
        "VIP",
        site.name,
        namespace,
        {"sessionPersistence": {"type": "HTTP_COOKIE", "cookieName": "SESS"}},
    )
    wait_applied(api, "VIP", site.name, namespace)
    for member in site.members:
        wait_applied(api, "Member", member, namespace)
    _, first, headers = get(*site.vip)
    assert headers["set-cookie"].startswith("SESS=")
    assert spread(*site.vip, 10, headers={"Cookie": headers["set-cookie"].split(";")[0]}) == {
        first: 10
    }


# -- TCP ------------------------------------------------------------------------------------------


@haproxy_only
def test_tcp_vip_carries_raw_tcp(
    api: Api, namespace: str, make_hx_device: Callable[..., OperatorDevice], backends: Backends
) -> None:
    device = make_hx_device("127.0.10.112/28")
    members = backends.echo(2)
    monitor = {"type": "TCP", "delay": 1, "timeout": 1, "maxRetries": 1, "maxRetriesDown": 2}
    site = deploy(api, namespace, device, "tcp", members, protocol="TCP", monitor=monitor)
    answers = set()
    for _ in range(4):
        with socket.create_connection(site.vip, timeout=3) as sock:
            sock.sendall(b"\x00\x01 not http\r\n")
            answer = sock.makefile("rb").readline()
        name, _, echoed = answer.partition(b":")
        assert echoed == b"\x00\x01 not http\r\n"
        answers.add(name)
    assert answers == {b"e0", b"e1"}
    assert "mode tcp" in device.config()
