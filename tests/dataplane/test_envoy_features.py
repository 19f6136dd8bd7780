"""Each feature the Envoy driver declares, with real traffic: L7 routing, persistence,
methods, backup members, admin states, connection limits, forwarded headers, monitors."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from dataplane.envoysupport import FAST_HTTP_MONITOR, EnvoyDevice, http_lb, members
from dataplane.hxsupport import Backends, free_vip, get, refused, spread, wait_for

from lbaas.drivers.errors import UnsupportedError
from lbaas.drivers.model import (
    Action,
    ActionType,
    Header,
    HeaderChanges,
    HealthMonitor,
    L7Policy,
    Listener,
    LoadBalancer,
    Match,
    Method,
    MonitorType,
    PathMatch,
    PathMatchType,
    Persistence,
    PersistenceType,
    Pool,
    Protocol,
    Redirect,
    ValueMatch,
    ValueMatchType,
    WeightedPool,
)

pytestmark = pytest.mark.envoy


def _forward(*pools: tuple[str, int]) -> Action:
    return Action(ActionType.FORWARD, pools=tuple(WeightedPool(p, w) for p, w in pools))


def test_l7_policies_route_redirect_reject_and_modify(
    envoy: EnvoyDevice, backends: Backends
) -> None:
    b = backends.http(4)
    vip = free_vip()

    def path(kind: PathMatchType, value: str) -> Match:
        return Match(path=PathMatch(kind, value))

    team = ValueMatch("X-Team", "^bl.e$", ValueMatchType.REGEX)
    moved = Redirect(
        scheme="https", hostname="new.test", replace_prefix_match="/new", status_code=301
    )
    policies = (
        L7Policy("host", 1, Match(hostnames=("*.api.test",)), _forward(("p1", 1)),
                 response_headers=HeaderChanges(set=(Header("x-route", "host 100%"),))),
        L7Policy("exact", 2, path(PathMatchType.EXACT, "/exact"), _forward(("p2", 1))),
        L7Policy("prefix", 3, path(PathMatchType.PREFIX, "/pre/"), _forward(("p2", 1))),
        L7Policy("regex", 4, path(PathMatchType.REGEX, "/r/[0-9]+"), _forward(("p3", 1))),
        L7Policy("header", 5, Match(headers=(team,)), _forward(("p3", 1))),
        L7Policy("method", 6, Match(method="DELETE"), _forward(("p1", 1))),
        L7Policy("query", 7, Match(query_params=(ValueMatch("v", "2"),)), _forward(("p1", 1))),
        L7Policy("redirect", 8, path(PathMatchType.PREFIX, "/old"),
                 Action(ActionType.REDIRECT, redirect=moved)),
        L7Policy("reject", 9, path(PathMatchType.PREFIX, "/admin"),
                 Action(ActionType.REJECT, status_code=403)),
        L7Policy("split", 10, path(PathMatchType.PREFIX, "/split"), _forward(("p2", 3), ("p3", 1))),
    )  # fmt: skip
    lb = LoadBalancer("dp", "l7", vip[0],
        listeners=(Listener("l", vip[1], Protocol.HTTP, default_pool="p0", policies=policies),),
        pools=tuple(Pool(f"p{i}", Protocol.HTTP, members=members([b[i]])) for i in range(4)),
    )  # fmt: skip
    envoy.apply(lb)
    code, body, headers = get(*vip, "/", headers={"Host": "x.api.test"})
    assert (body, headers["x-route"]) == ("b1", "host 100%")
    assert get(*vip, "/exact")[1] == "b2" and get(*vip, "/exact/no")[1] == "b0"
    assert get(*vip, "/pre")[1] == "b2" and get(*vip, "/pre/x")[1] == "b2"
    assert get(*vip, "/prefix")[1] == "b0"  # element-wise
    assert get(*vip, "/r/42")[1] == "b3" and get(*vip, "/r/x")[1] == "b0"
    assert get(*vip, "/", headers={"X-Team": "blue"})[1] == "b3"
    assert get(*vip, "/?v=2")[1] == "b1" and get(*vip, "/?v=3")[1] == "b0"
    code, _, headers = get(*vip, "/old/page")
    assert (code, headers["location"]) == (301, "https://new.test/new/page")
    assert get(*vip, "/admin")[0] == 403
    split = Counter(get(*vip, "/split")[1] for _ in range(80))
    assert set(split) == {"b2", "b3"} and split["b2"] > split["b3"]
    assert envoy.driver.verify(envoy.handle, lb) == []


def test_method_is_routed(envoy: EnvoyDevice, backends: Backends) -> None:
    import http.client

    b = backends.http(2)
    vip = free_vip()
    policy = L7Policy("m", 1, Match(method="HEAD"), _forward(("p1", 1)))
    envoy.apply(LoadBalancer("dp", "m", vip[0],
        listeners=(Listener("l", vip[1], Protocol.HTTP, default_pool="p0", policies=(policy,)),),
        pools=tuple(Pool(f"p{i}", Protocol.HTTP, members=members([b[i]])) for i in range(2)),
    ))  # fmt: skip
    conn = http.client.HTTPConnection(*vip, timeout=3)
    conn.request("HEAD", "/")
    assert conn.getresponse().status == 501  # b1's server has no do_HEAD: it answered
    conn.close()
    assert b[1].hits == 0 and get(*vip)[1] == "b0"


def test_persistence_cookie_app_cookie_and_source_ip(
    envoy: EnvoyDevice, backends: Backends
) -> None:
    b = backends.http(3)
    vip = free_vip()
    envoy.apply(
        http_lb(vip, b, pool={"persistence": Persistence(PersistenceType.HTTP_COOKIE, "LB")})
    )
    _, first, headers = get(*vip)
    cookie = headers["set-cookie"].split(";")[0]
    assert cookie.startswith("LB=")
    assert spread(*vip, 12, headers={"Cookie": cookie}) == Counter({first: 12})
    app = Persistence(PersistenceType.APP_COOKIE, "JSESSIONID")  # not learned: not declared
    with pytest.raises(UnsupportedError) as refused:
        envoy.apply(http_lb(vip, b, pool={"persistence": app}))
    assert refused.value.feature == "persistence.app-cookie"
    assert spread(*vip, 12, headers={"Cookie": cookie}) == Counter({first: 12})  # untouched
    envoy.apply(http_lb(vip, b, pool={"method": Method.SOURCE_IP}))
    for third in (31, 32):
        assert len(spread(*vip, 8, source=f"{vip[0].rsplit('.', 2)[0]}.{third}.1")) == 1


def test_least_connections_avoids_the_busy_member(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(2)
    vip = free_vip()
    least = {"method": Method.LEAST_CONNECTIONS}
    envoy.apply(http_lb(vip, b[:1], pool=least))
    slow = [
        threading.Thread(target=get, args=vip, kwargs={"path": "/?sleep=1.5", "timeout": 5})
        for _ in range(3)
    ]
    for thread in slow:
        thread.start()
    wait_for(lambda: b[0].active == 3, 3)
    envoy.apply(http_lb(vip, b, pool=least))  # b1 joins with no request open
    assert spread(*vip, 6) == Counter({"b1": 6})  # round robin would alternate
    for thread in slow:
        thread.join()


def test_backup_admin_states_and_monitors(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(3)
    vip = free_vip()
    lb = http_lb(vip, b, pool={"monitor": FAST_HTTP_MONITOR}, b2={"backup": True})
    envoy.apply(lb)
    wait_for(lambda: set(spread(*vip, 6)) == {"b0", "b1"}, 5)
    b[0].healthy = b[1].healthy = False
    wait_for(lambda: set(spread(*vip, 4)) == {"b2"}, 6)  # only the backup is left
    b[0].healthy = b[1].healthy = True
    wait_for(lambda: set(spread(*vip, 6)) == {"b0", "b1"}, 6)
    envoy.apply(http_lb(vip, b, b0={"admin_state_up": False}, b2={"backup": True}))
    assert set(spread(*vip, 6)) == {"b1"}
    envoy.apply(http_lb(vip, b, pool={"admin_state_up": False}))
    assert get(*vip)[0] == 503
    tcp = HealthMonitor("t", MonitorType.TCP, delay=1, timeout=1, max_retries=1, max_retries_down=1)
    checked = http_lb(vip, b[:1], pool={"monitor": tcp})
    envoy.apply(checked)
    wait_for(
        lambda: envoy.driver.member_statuses(envoy.handle, [checked])["dp/web"] == {"b0": "ONLINE"},
        5,
    )


def test_listener_admin_state_limit_and_forwarded_headers(
    envoy: EnvoyDevice, backends: Backends
) -> None:
    b = backends.http(1)
    vip = free_vip()
    echo = _HeaderEcho(b[0].address)
    try:
        envoy.apply(http_lb(vip, [echo], listener={"forwarded_headers": True}))  # type: ignore[list-item]
        _, body, _ = get(*vip, source=f"{vip[0].rsplit('.', 2)[0]}.33.7")
        assert body.splitlines() == [f"{vip[0].rsplit('.', 2)[0]}.33.7", "http", str(vip[1])]
        envoy.apply(http_lb(vip, [echo]))  # type: ignore[list-item]
        assert get(*vip)[1].splitlines()[0] == "None"
    finally:
        echo.shutdown()
        echo.server_close()
    envoy.apply(http_lb(vip, b, listener={"admin_state_up": False}))
    wait_for(lambda: refused(*vip), 3)
    envoy.apply(http_lb(vip, b, protocol=Protocol.TCP, pool={"protocol": Protocol.TCP},
                        listener={"connection_limit": 2}))  # fmt: skip
    held = [socket.create_connection(vip, 2) for _ in range(2)]
    try:
        time.sleep(0.2)
        with socket.create_connection(vip, 2) as third:
            third.settimeout(2)
            third.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                answer = third.recv(100)
            except ConnectionResetError:
                answer = b""
            assert answer == b""  # closed: over the limit
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.2)
    assert get(*vip)[1] == "b0"


class _EchoHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        names = ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port")
        body = "\n".join(str(self.headers.get(n)) for n in names).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _HeaderEcho(ThreadingHTTPServer):
    """A member answering the X-Forwarded-* headers it got, one per line."""

    daemon_threads = True

    def __init__(self, address: str) -> None:
        super().__init__((address, 0), _EchoHandler)
        self.name, self.address, self.port = "echo", address, self.server_address[1]
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


def test_two_listeners_share_an_address(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(2)
    vip = free_vip()
    other_port = free_vip()[1]
    envoy.apply(LoadBalancer("dp", "two", vip[0],
        listeners=(Listener("a", vip[1], Protocol.HTTP, default_pool="p0"),
                   Listener("b", other_port, Protocol.HTTP, default_pool="p1")),
        pools=tuple(Pool(f"p{i}", Protocol.HTTP, members=members([b[i]])) for i in range(2)),
    ))  # fmt: skip
    assert get(*vip)[1] == "b0" and get(vip[0], other_port)[1] == "b1"
