"""HTTP listeners through the data plane: requests, HTTP health checks, cookies, headers."""

from __future__ import annotations

import ipaddress

from lbaas.drivers.model import MonitorType, Persistence, PersistenceType, Protocol
from lbaas_conformance.backends import Backends
from lbaas_conformance.client import get
from lbaas_conformance.features import TRAFFIC, feature
from lbaas_conformance.kit import Kit
from lbaas_conformance.traffic import failures, only, reaches, requests, serve, where
from lbaas_conformance.trees import monitor

HTTP = Protocol.HTTP


@feature("protocol.http", layer=TRAFFIC)
def test_an_http_listener_forwards_requests(kit: Kit, backends: Backends) -> None:
    members = backends.http(2)
    lb = serve(kit, members, proto=HTTP)
    counts = requests(lb, 10)
    assert not failures(counts) and set(counts) == {m.name for m in members}, counts


@feature("monitor.http", layer=TRAFFIC)
def test_a_member_failing_its_http_check_is_avoided(kit: Kit, backends: Backends) -> None:
    """The member still accepts connections: only an HTTP check can tell it is sick."""
    steady, sick = backends.http(2)
    lb = serve(kit, [steady, sick], proto=HTTP, monitor=monitor(MonitorType.HTTP))
    reaches(lb, sick, kit, "both healthy")
    sick.healthy = False
    only(lb, [steady], kit, "/healthz answering 503")
    sick.healthy = True
    reaches(lb, sick, kit, "/healthz answering 200 again")


@feature("persistence.http-cookie", layer=TRAFFIC)
def test_the_inserted_cookie_keeps_a_client_on_its_member(kit: Kit, backends: Backends) -> None:
    members = backends.http(3)
    cookie = Persistence(PersistenceType.HTTP_COOKIE, "SRVID")
    lb = serve(kit, members, proto=HTTP, persistence=cookie)
    first = get(*where(lb))
    assert "set-cookie" in first.headers, f"no cookie inserted: {first.headers}"
    sent = {"Cookie": first.headers["set-cookie"].split(";", 1)[0]}
    counts = requests(lb, 12, headers=sent)
    assert counts == {first.body: 12}, counts
    assert len(requests(lb, 12)) > 1, "without the cookie, requests are balanced"


@feature("persistence.app-cookie", layer=TRAFFIC)
def test_the_applications_cookie_keeps_a_client_on_its_member(kit: Kit, backends: Backends) -> None:
    members = backends.http(3)
    cookie = Persistence(PersistenceType.APP_COOKIE, "JSESSIONID")
    lb = serve(kit, members, proto=HTTP, persistence=cookie)
    login = get(*where(lb), "/login")
    session = login.headers.get("set-cookie", "").split(";", 1)[0]
    assert session.startswith("JSESSIONID="), login.headers
    counts = requests(lb, 12, headers={"Cookie": session})
    assert counts == {login.body: 12}, counts


@feature("http.forwarded-headers", layer=TRAFFIC)
def test_forwarded_headers_name_the_client(kit: Kit, backends: Backends) -> None:
    (a,) = backends.http(1)
    lb = serve(kit, [a], proto=HTTP, listener={"forwarded_headers": True})
    get(*where(lb))
    seen = a.last_headers
    assert "x-forwarded-for" in seen, f"no X-Forwarded-For: {seen}"
    ipaddress.ip_address(seen["x-forwarded-for"].split(",")[-1].strip())
    assert seen.get("x-forwarded-proto") == "http", seen
    assert seen.get("x-forwarded-port") == str(lb.listeners[0].port), seen
