"""The Gateway API through real HAProxy: Gateways, TCPRoutes and TLSRoutes (passthrough)
created through the API, the real operator process (``LBAAS_GATEWAY_API=true``) and a Device
of driver haproxy it starts itself, with real connections to the Gateway's address.

Addresses: the Gateway's address from ``<net>.90.0/24`` (a /28 per test), backends on
``<net>.91.x``. Each backend ("pod") has its own EndpointSlice whose port ``tcp`` names its
port, so a Service's named ``targetPort`` is resolved per slice.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane.envoysupport import UDPEcho, udp_ask
from dataplane.hxsupport import (
    Backends,
    OperatorDevice,
    free_port_in,
    get,
    haproxy_binary,
    net,
)
from dataplane.opsupport import operator_devices
from dataplane.planes import PLANES
from gwkit import backend, gateway, gateway_class, grant, listener, parent, passthrough, route
from gwsupport import Gw, install_crds

from helpers import Api, OperatorProcess, kubectl, need_tool, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]

_BLOCKS = itertools.count(0)
SERVICE_PORT = {"name": "tcp", "port": 80, "targetPort": "tcp", "protocol": "TCP"}


@pytest.fixture(scope="module")
def operator(
    kubeconfig: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The CRDs before the operator: it decides at start whether the Gateway API is on."""
    haproxy_binary()
    install_crds()
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    proc = OperatorProcess(
        log, LBAAS_GATEWAY_API="true", LBAAS_DRIVER_TIMEOUT="5", LBAAS_LEASE_DURATION="8"
    ).start()
    yield proc
    proc.stop()
    print(f"operator log: {log}")


@pytest.fixture
def gw(api: Api) -> Gw:
    return Gw(api)


@pytest.fixture
def cls(gw: Gw, namespace: str, make_hx_device: Callable[..., OperatorDevice]) -> Iterator[str]:
    """A GatewayClass of this test (no parameters: the test's Device is the only one open to
    its namespace). Set up after ``make_hx_device``, so torn down before it: the Gateways go
    first (their finalizer waits for the trees to leave HAProxy), then the devices."""
    name = f"hx-{namespace}"
    gw.create(gateway_class(name))
    yield name
    for item in gw.items("Gateway", namespace):
        gw.delete("Gateway", namespace, item["metadata"]["name"])
    wait_for(lambda: not gw.items("Gateway", namespace), 30, "the Gateways gone")
    gw.delete("GatewayClass", None, name)


@pytest.fixture
def device(cls: str, make_hx_device: Callable[..., OperatorDevice]) -> OperatorDevice:
    block = next(_BLOCKS) % 16
    return make_hx_device(net(90, block * 16) + "/28")


@pytest.fixture
def pods() -> Iterator[Backends]:
    made = Backends(third=91)
    yield made
    for server in made.started:
        server.shutdown()
        server.server_close()


def serve_pods(gw: Gw, namespace: str, service: str, pods: list[Any]) -> None:
    """A Service whose endpoints are ``pods``: one EndpointSlice each."""
    gw.service(namespace, service, SERVICE_PORT)
    for pod in pods:
        gw.endpoints(
            namespace,
            service,
            [pod.address],
            pod.port,
            port_name="tcp",
            slice_name=f"{service}-{pod.name}",
        )


def ask(address: str, port: int, line: bytes = b"hi\n", timeout: float = 2) -> str:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(line)
        return sock.recv(256).decode().split(":", 1)[0]


def answers(address: str, port: int, count: int) -> Counter[str]:
    found: Counter[str] = Counter()
    for _ in range(count):
        with contextlib.suppress(OSError):
            found[ask(address, port) or "(closed)"] += 1
    return found


def address_of(gw: Gw, namespace: str, name: str = "gw") -> str:
    gw.wait_condition("Gateway", namespace, name, "Programmed", "True", "Programmed", timeout=60)
    status = gw.get("Gateway", namespace, name)["status"]  # type: ignore[index]
    return str(status["addresses"][0]["value"])


def test_tcp_route_serves_weighted_and_follows_the_endpoints(
    gw: Gw, cls: str, namespace: str, device: OperatorDevice, pods: Backends
) -> None:
    a1, a2, b1 = pods.echo(3)
    for pod, name in ((a1, "a1"), (a2, "a2"), (b1, "b1")):
        pod.name = name
    serve_pods(gw, namespace, "a", [a1, a2])
    serve_pods(gw, namespace, "b", [b1])
    port = free_port_in(device.address_pool)
    gw.create(gateway("gw", namespace, listener("tcp", port, "TCP"), cls=cls))
    gw.create(
        route(
            "TCPRoute",
            "r",
            namespace,
            [parent("gw")],
            [backend("a", 80, weight=80), backend("b", 80, weight=20)],
        )
    )
    address = address_of(gw, namespace)
    assert address.startswith(net(90, 0).rsplit(".", 1)[0] + "."), address
    wait_for(lambda: set(answers(address, port, 12)) == {"a1", "a2", "b1"}, 20, "all pods")
    seen = answers(address, port, 200)
    share = seen["b1"] / sum(seen.values())
    assert abs(share - 0.20) <= 0.05, seen  # service a: 80 % over two pods, b: 20 %
    assert abs(seen["a1"] - seen["a2"]) <= 0.1 * seen["a1"], seen

    gw.discovery.delete_namespaced_endpoint_slice("a-a1", namespace)
    wait_for(lambda: "a1" not in answers(address, port, 20), 10, "a1 no longer served")
    assert set(answers(address, port, 30)) == {"a2", "b1"}

    gw.delete("Gateway", namespace, "gw")
    wait_for(lambda: gw.get("Gateway", namespace, "gw") is None, 30, "the Gateway gone")
    with pytest.raises(OSError):
        ask(address, port, timeout=1)
    assert f"fe_{namespace}__" not in device.config(), "HAProxy serves nothing of it"


# ---- TLS passthrough ---------------------------------------------------------------------------


def certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (openssl), and its key."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                f"/CN={name}",
                "-addext",
                f"subjectAltName=DNS:{name}",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError:
        need_tool("openssl not found")
    return cert, key


class _TLSEcho(socketserver.StreamRequestHandler):
    server: TLSEchoBackend

    def handle(self) -> None:
        conn = self.request
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError):
            return  # a TCP health check: connected, then closed
        line = self.rfile.readline()
        self.wfile.write(self.server.name.encode() + b":" + line)


class TLSEchoBackend(socketserver.ThreadingTCPServer):
    """A member that speaks TLS with its own certificate, then echoes as EchoBackend does."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str, address: str, cert: Path, key: Path) -> None:
        super().__init__((address, 0), _TLSEcho)
        self.name = name
        self.address = address
        self.port = self.server_address[1]
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def get_request(self) -> tuple[Any, Any]:
        sock, peer = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), peer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # health checks hang up mid-handshake


def tls_ask(address: str, port: int, hostname: str, ca: Path) -> tuple[str, str]:
    """(the backend's answer, the subject CN of the certificate the client was shown)."""
    context = ssl.create_default_context(cafile=str(ca))
    raw = socket.create_connection((address, port), timeout=3)
    with context.wrap_socket(raw, server_hostname=hostname) as sock:
        subject = dict(x[0] for x in sock.getpeercert()["subject"])  # type: ignore[index]
        sock.sendall(b"hi\n")
        return sock.recv(256).decode().split(":", 1)[0], str(subject["commonName"])


def test_tls_route_passes_tls_through_to_the_backend(
    gw: Gw, cls: str, namespace: str, device: OperatorDevice, pods: Backends, tmp_path: Path
) -> None:
    host = "app.example.com"
    cert, key = certificate(tmp_path, host)
    server = TLSEchoBackend("tls1", net(91, 200 + next(_BLOCKS) % 50), cert, key)
    pods.started.append(server)
    serve_pods(gw, namespace, "app", [server])
    port = free_port_in(device.address_pool)
    gw.create(gateway("gw", namespace, passthrough("tls", port, hostname="*.example.com"), cls=cls))
    gw.create(
        route("TLSRoute", "app", namespace, [parent("gw")], [backend("app", 80)], hostnames=[host])
    )
    address = address_of(gw, namespace)
    vip = gw.generated(namespace, "gw", "VIP")[f"gw-{port}"]
    assert vip["spec"]["protocol"] == "HTTPS", "TLS passed through, not terminated"
    answer = wait_for(lambda: _try(lambda: tls_ask(address, port, host, cert)), 20, "TLS answer")
    # The client verified the backend's own certificate: the device never terminated TLS.
    assert answer == ("tls1", host)
    assert "ssl crt" not in device.config()


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (OSError, ssl.SSLError):
        return None


def test_cross_namespace_backend_served_only_with_a_reference_grant(
    gw: Gw, cls: str, namespace: str, device: OperatorDevice, pods: Backends
) -> None:
    other = f"{namespace}-db"
    kubectl("create", "namespace", other)
    try:
        (pod,) = pods.echo(1)
        pod.name = "db1"
        serve_pods(gw, other, "db", [pod])
        port = free_port_in(device.address_pool)
        gw.create(gateway("gw", namespace, listener("tcp", port, "TCP"), cls=cls))
        gw.create(
            route("TCPRoute", "db", namespace, [parent("gw")], [backend("db", 80, namespace=other)])
        )
        address = address_of(gw, namespace)
        gw.wait_condition(
            "TCPRoute", namespace, "db", "ResolvedRefs", "False", "RefNotPermitted", parent="gw"
        )
        assert "db1" not in answers(address, port, 5), "no grant, no traffic"
        gw.create(grant(other, from_namespace=namespace))
        wait_for(lambda: answers(address, port, 3) == Counter({"db1": 3}), 20, "served")
        gw.delete("ReferenceGrant", other, "g")
        wait_for(lambda: "db1" not in answers(address, port, 5), 20, "revoked")
    finally:
        kubectl("delete", "namespace", other, "--wait=false")


# ---- HTTPRoutes --------------------------------------------------------------------------------


def http_route(name: str, namespace: str, hostnames: list[str], *rules: dict[str, Any]) -> dict:
    r = route("HTTPRoute", name, namespace, [parent("gw")], [], hostnames=hostnames)
    r["spec"]["rules"] = list(rules)
    return r


def to(*backends: dict[str, Any], prefix: str = "/", **extra: Any) -> dict[str, Any]:
    return {
        "matches": [{"path": {"type": "PathPrefix", "value": prefix}}],
        "backendRefs": list(backends),
        **extra,
    }


def ask_http(address: str, port: int, host: str, path: str = "/", **headers: str) -> Any:
    return get(address, port, path, headers={"Host": host, **headers})


def test_http_routes_split_by_host_path_and_header_and_redirect(
    gw: Gw, cls: str, namespace: str, device: OperatorDevice, pods: Backends
) -> None:
    w1, w2, a1 = pods.http(3)
    for pod, name in ((w1, "w1"), (w2, "w2"), (a1, "a1")):
        pod.name = name
    for service, members in (("web", [w1, w2]), ("api", [a1])):
        gw.service(namespace, service, {"name": "http", "port": 80, "targetPort": "http"})
        for pod in members:
            gw.endpoints(
                namespace,
                service,
                [pod.address],
                pod.port,
                port_name="http",
                slice_name=f"{service}-{pod.name}",
            )
    port = free_port_in(device.address_pool)
    gw.create(gateway("gw", namespace, listener("web", port, "HTTP"), cls=cls))
    gw.create(
        http_route(
            "shop",
            namespace,
            ["shop.example.com"],
            to(backend("api", 80), prefix="/api"),
            to(backend("web", 80)),
        )
    )
    canary = to(backend("api", 80))
    canary["matches"][0]["headers"] = [{"name": "x-canary", "value": "yes"}]
    gw.create(http_route("other", namespace, ["other.example.com"], canary, to(backend("web", 80))))
    gw.create(
        http_route(
            "old",
            namespace,
            ["old.example.com"],
            {
                "filters": [
                    {
                        "type": "RequestRedirect",
                        "requestRedirect": {"hostname": "shop.example.com", "statusCode": 301},
                    }
                ]
            },
        )
    )
    gw.create(
        http_route(
            "split",
            namespace,
            ["split.example.com"],
            to(backend("web", 80, weight=80), backend("api", 80, weight=20)),
            {
                **to(backend("web", 80), prefix="/rewrite"),
                "filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "x.example.com"}}],
            },
        )
    )
    address = address_of(gw, namespace)
    for name in ("shop", "other", "old"):
        gw.wait_condition("HTTPRoute", namespace, name, "Accepted", "True", parent="gw")
        gw.wait_condition("HTTPRoute", namespace, name, "ResolvedRefs", "True", parent="gw")
    partial = gw.wait_condition(
        "HTTPRoute", namespace, "split", "PartiallyInvalid", "True", "UnsupportedValue", parent="gw"
    )
    assert partial["message"].startswith("Dropped Rule") and "URLRewrite" in partial["message"]
    assert gw.listener(namespace, "gw", "web")["attachedRoutes"] == 4

    def body(host: str, path: str = "/", **headers: str) -> str:
        status, text, _ = ask_http(address, port, host, path, **headers)
        return text if status == 200 else str(status)

    # The routes' policies may reach HAProxy one after the other: each answer is awaited.
    wait_for(lambda: body("shop.example.com", "/api/x") == "a1", 20, "host + path to api")
    wait_for(
        lambda: {body("shop.example.com", "/shop") for _ in range(6)} == {"w1", "w2"},
        20,
        "host to web",
    )
    wait_for(lambda: body("other.example.com", "/", **{"x-canary": "yes"}) == "a1", 20, "header")
    wait_for(lambda: {body("other.example.com") for _ in range(6)} == {"w1", "w2"}, 20, "no header")
    wait_for(lambda: ask_http(address, port, "old.example.com", "/a/b")[0] == 301, 20, "redirect")
    location = ask_http(address, port, "old.example.com", "/a/b")[2]["location"]
    assert location.startswith("http://shop.example.com") and location.endswith("/a/b"), location
    assert body("nowhere.example.com") == "404", "no route takes it: 404 as the API says"
    wait_for(lambda: body("split.example.com") in ("w1", "w2", "a1"), 20, "the split")
    assert body("split.example.com", "/rewrite") in {"w1", "w2", "a1"}, "the dropped rule is gone"
    # HAProxy draws each request's share at random: 2,000 requests put 80/20 within 5 % (5 sigma).
    seen = Counter(body("split.example.com") for _ in range(2000))
    share = seen["a1"] / sum(seen.values())
    assert abs(share - 0.20) <= 0.05, seen  # 80/20 between the Services
    generation = gw.get("Gateway", namespace, "gw")["metadata"]["generation"]  # type: ignore[index]
    assert {
        c["observedGeneration"] for c in gw.get("Gateway", namespace, "gw")["status"]["conditions"]
    } == {generation}  # type: ignore[index]

    gw.delete("Gateway", namespace, "gw")
    wait_for(lambda: gw.get("Gateway", namespace, "gw") is None, 30, "the Gateway gone")
    assert not any(gw.everything(namespace, "gw").values()), "no generated object left"
    with pytest.raises(OSError):
        ask_http(address, port, "shop.example.com")


# ---- HTTPS listeners: TLS terminated on the device ---------------------------------------------


def https_get(address: str, port: int, host: str, ca: Path, path: str = "/") -> tuple[int, str]:
    """A GET over TLS with SNI ``host``, verifying the device's certificate against ``ca``."""
    import http.client

    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection(address, port, timeout=3, context=context)
    conn.sock = context.wrap_socket(
        socket.create_connection((address, port), timeout=3), server_hostname=host
    )
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_https_listener_terminates_tls_and_routes_like_http(
    gw: Gw, cls: str, namespace: str, device: OperatorDevice, pods: Backends, tmp_path: Path
) -> None:
    shop, api = pods.http(2)
    shop.name, api.name = "shop1", "api1"
    for service, pod in (("shop", shop), ("api", api)):
        gw.service(namespace, service, {"name": "http", "port": 80, "targetPort": "http"})
        gw.endpoints(
            namespace,
            service,
            [pod.address],
            pod.port,
            port_name="http",
            slice_name=f"{service}-{pod.name}",
        )
    cert, key = certificate(tmp_path, "shop.example.com")
    kubectl(
        "create", "secret", "tls", "shop-cert", f"--cert={cert}", f"--key={key}", "-n", namespace
    )
    port, plain = free_port_in(device.address_pool), free_port_in(device.address_pool)
    refs = [{"group": "", "kind": "Secret", "name": "shop-cert"}]
    gw.create(
        gateway(
            "gw",
            namespace,
            listener("web", plain, "HTTP"),
            listener("secure", port, "HTTPS", tls={"mode": "Terminate", "certificateRefs": refs}),
            listener(
                "broken",
                port + 1,
                "HTTPS",
                tls={"mode": "Terminate", "certificateRefs": [{**refs[0], "name": "missing"}]},
            ),
            cls=cls,
        )
    )
    gw.create(
        http_route(
            "r",
            namespace,
            ["shop.example.com"],
            to(backend("api", 80), prefix="/api"),
            to(backend("shop", 80)),
        )
    )
    gw.wait_condition("Gateway", namespace, "gw", "ResolvedRefs", "True", listener="secure")
    cond = gw.wait_condition(
        "Gateway",
        namespace,
        "gw",
        "ResolvedRefs",
        "False",
        "InvalidCertificateRef",
        listener="broken",
        timeout=60,
    )
    assert "missing" in cond["message"], cond
    address = str(
        wait_for(
            lambda: (gw.get("Gateway", namespace, "gw") or {}).get("status", {}).get("addresses"),
            60,
            "an address",
        )[0]["value"]
    )
    vips = gw.generated(namespace, "gw", "VIP")
    assert vips[f"gw-{port}"]["spec"]["tls"]["certificateRefs"] == [{"name": "shop-cert"}]
    # The device's certificate verifies against the Secret's (TLS ends on the device), and
    # the route's policies serve behind it once they reached the device (each awaited).
    for path, want in (("/", (200, "shop1")), ("/api/x", (200, "api1"))):
        wait_for(
            lambda p=path, w=want: (
                _try(lambda: https_get(address, port, "shop.example.com", cert, p)) == w
            ),
            30,
            f"HTTPS {path}: TLS terminated by the device, the route behind it",
        )
    wait_for(
        lambda: get(address, plain, "/", headers={"Host": "shop.example.com"})[1] == "shop1",
        20,
        "the same route on the HTTP listener",
    )
    assert gw.listener(namespace, "gw", "secure")["attachedRoutes"] == 1


# ---- UDP: a UDPRoute on an Envoy device (HAProxy serves no UDP) ---------------------------------


@pytest.mark.envoy
@pytest.mark.usefixtures("operator")
def test_udp_route_answers_through_envoy(gw: Gw, api: Api, namespace: str) -> None:
    """A Gateway's UDP listener is a UDP VIP on the Envoy device (the only device of its
    class that declares protocol.udp); datagrams to the Gateway's address reach the pods of
    the UDPRoute's Service, every one answered, the scaled-down pod no more; the route and
    listener say so; the Gateway deleted, nothing answers."""
    echoes = [UDPEcho(f"u{n}", net(93, 200 + n)) for n in range(2)]
    cls = f"ev-{namespace}"
    gw.create(gateway_class(cls))
    try:
        with operator_devices(api, namespace, PLANES["envoy"]) as make:
            device = make(net(92, 16 * (next(_BLOCKS) % 16)) + "/28")
            port = free_port_in(device.address_pool)
            gw.service(namespace, "dns", {"name": "dns", "port": 53, "targetPort": "dns",
                                          "protocol": "UDP"})  # fmt: skip
            for echo in echoes:
                gw.endpoints(namespace, "dns", [echo.address], echo.port, port_name="dns",
                             protocol="UDP", slice_name=f"dns-{echo.name}")  # fmt: skip
            gw.create(gateway("gw", namespace, listener("dns", port, "UDP"), cls=cls))
            gw.create(route("UDPRoute", "r", namespace, [parent("gw")], [backend("dns", 53)]))
            address = address_of(gw, namespace)
            for type_ in ("Accepted", "ResolvedRefs"):
                gw.wait_condition("UDPRoute", namespace, "r", type_, "True", parent="gw")
            gw.wait_condition(
                "Gateway", namespace, "gw", "Programmed", "True", "Programmed", listener="dns"
            )
            assert sorted(gw.generated(namespace, "gw", "VIP")) == [f"gw-{port}-udp"]

            def answered(count: int) -> Counter[bytes]:
                found: Counter[bytes] = Counter()
                for n in range(count):
                    with contextlib.suppress(OSError):
                        reply = udp_ask(address, port, f"q{n}".encode(), timeout=1)
                        assert reply.split(b":", 1)[1] == f"q{n}".encode(), reply
                        found[reply.split(b":")[0]] += 1
                return found

            wait_for(lambda: set(answered(10)) == {b"u0", b"u1"}, 20, "both pods answering")
            seen = answered(200)
            print(f"\n200 datagrams through the Gateway's UDP listener: {dict(seen)}")
            assert sum(seen.values()) == 200 and min(seen.values()) >= 50, seen
            gw.discovery.delete_namespaced_endpoint_slice("dns-u1", namespace)
            wait_for(lambda: set(answered(10)) == {b"u0"}, 10, "only the remaining pod")
            gw.delete("Gateway", namespace, "gw")
            wait_for(lambda: gw.get("Gateway", namespace, "gw") is None, 30, "the Gateway gone")
            assert not answered(5), "nothing answers once the Gateway is gone"
    finally:
        for item in gw.items("Gateway", namespace):
            gw.delete("Gateway", namespace, item["metadata"]["name"])
        wait_for(lambda: not gw.items("Gateway", namespace), 30, "the Gateways gone")
        gw.delete("GatewayClass", None, cls)
        for echo in echoes:
            echo.close()
