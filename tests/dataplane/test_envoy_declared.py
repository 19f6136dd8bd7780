"""The features the Envoy driver rendered before it declared them, each proved with real
traffic before it was declared: HTTPS and PING monitors, monitor address and port, backend
TLS, ALPN, cipher suites, client certificates, drain of a removed member, traffic statistics.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dataplane.envoysupport import (
    EnvoyDevice,
    http_lb,
    make_certificate,
    members,
    udp_ask,
    udp_backends,
)
from dataplane.hxsupport import Backend, Backends, free_vip, get, spread, wait_for

from lbaas.drivers import capabilities
from lbaas.drivers.envoy import EnvoyDriver
from lbaas.drivers.model import (
    BackendTLS,
    CABundle,
    ClientValidation,
    ClientValidationMode,
    HealthMonitor,
    Listener,
    ListenerTLS,
    LoadBalancer,
    MemberStatus,
    MonitorType,
    Pool,
    Protocol,
)

pytestmark = pytest.mark.envoy


def _monitor(kind: MonitorType) -> HealthMonitor:
    return HealthMonitor("hm", kind, delay=1, timeout=1, max_retries=1, max_retries_down=1,
                         url_path="/healthz")  # fmt: skip


class TLSBackend(Backend):
    """An HTTPS member (``Backend`` behind TLS, the handshake in the request's thread)."""

    def __init__(self, name: str, address: str, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        super().__init__(name, address)

    def get_request(self) -> tuple[Any, Any]:
        conn, peer = self.socket.accept()
        return self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), peer


def _tls_files(tmp_path: Path, name: str, *dns: str) -> tuple[Path, Path, str, str]:
    """(cert, key, PEM, fingerprint) of a self-signed certificate for ``dns``."""
    cert = make_certificate(tmp_path, name, *dns)
    (tmp_path / f"{name}.key").write_text(cert.private_key.reveal())
    return tmp_path / f"{name}.crt", tmp_path / f"{name}.key", cert.certificate, cert.fingerprint


def _statuses(envoy: EnvoyDevice, lb: LoadBalancer) -> dict[str, MemberStatus]:
    return dict(envoy.driver.member_statuses(envoy.handle, [lb])[lb.key])


def test_https_and_ping_monitors_check_where_the_member_says(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    """HTTPS checks go to each member's monitorAddress:monitorPort, over TLS (the health
    endpoints speak nothing else): a failing endpoint takes its member out, though the member
    itself answers; PING (a TCP connect) takes a closed member out."""
    cert, key, _, _ = _tls_files(tmp_path, "hc", "hc.test")
    b = backends.http(2)
    health = [TLSBackend(f"h{i}", backends._address(), cert, key) for i in range(2)]
    backends.started.extend(health)
    at = {m.name: {"monitor_address": h.address, "monitor_port": h.port}
          for m, h in zip(b, health, strict=True)}  # fmt: skip
    vip = free_vip()
    lb = http_lb(vip, b, pool={"monitor": _monitor(MonitorType.HTTPS)}, **at)
    assert {"monitor.https", "member.monitor-address"} <= capabilities.required_features(lb)
    envoy.apply(lb)
    wait_for(lambda: set(spread(*vip, 6)) == {"b0", "b1"}, 10)
    wait_for(lambda: health[1].health_checks > 0, 5)
    health[1].healthy = False  # its health endpoint fails; b1 itself still answers
    wait_for(lambda: set(spread(*vip, 6)) == {"b0"}, 5)
    wait_for(lambda: _statuses(envoy, lb) == {"b0": MemberStatus.ONLINE,
                                             "b1": MemberStatus.ERROR}, 5)  # fmt: skip
    assert get(b[1].address, b[1].port)[0] == 200
    health[1].healthy = True
    wait_for(lambda: set(spread(*vip, 6)) == {"b0", "b1"}, 5)

    (alive,) = backends.http(1)
    closed = Backend("gone", backends._address())
    closed.shutdown()
    closed.server_close()  # nothing listens there any more
    ping_vip = free_vip()
    ping = http_lb(ping_vip, [alive, closed], name="ping",
                   pool={"monitor": _monitor(MonitorType.PING)})  # fmt: skip
    envoy.apply(ping)
    wait_for(lambda: _statuses(envoy, ping).get("gone") == MemberStatus.ERROR, 5)
    assert _statuses(envoy, ping)[alive.name] == MemberStatus.ONLINE
    assert set(spread(*ping_vip, 10)) == {alive.name}


def test_backend_tls_verifies_the_members_name_and_ca(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    cert, key, pem, fingerprint = _tls_files(tmp_path, "member", "member.test")
    tls_members = [TLSBackend(f"t{i}", backends._address(), cert, key) for i in range(2)]
    backends.started.extend(tls_members)
    ca = CABundle("members-ca", pem, fingerprint)
    vip = free_vip()

    def lb(tls: BackendTLS, monitor: MonitorType | None = None) -> LoadBalancer:
        pool: dict[str, Any] = {"tls": tls, "monitor": _monitor(monitor) if monitor else None}
        return http_lb(vip, tls_members, pool=pool)

    verified = lb(BackendTLS(server_name="member.test", ca=ca), MonitorType.HTTPS)
    assert {"tls.backend", "monitor.https"} <= capabilities.required_features(verified)
    envoy.apply(verified)
    wait_for(lambda: set(spread(*vip, 6)) == {"t0", "t1"}, 10)
    wait_for(lambda: set(_statuses(envoy, verified).values()) == {MemberStatus.ONLINE}, 5)
    tls_members[0].healthy = False  # checked over the same TLS
    wait_for(lambda: set(spread(*vip, 6)) == {"t1"}, 5)
    tls_members[0].healthy = True

    envoy.apply(lb(BackendTLS(server_name="other.test", ca=ca)))  # the name does not match
    wait_for(lambda: get(*vip)[0] == 503, 5)
    stranger = CABundle("other-ca", _tls_files(tmp_path, "other", "member.test")[2], "x")
    envoy.apply(lb(BackendTLS(server_name="member.test", ca=stranger)))  # another CA
    wait_for(lambda: get(*vip)[0] == 503, 5)
    envoy.apply(lb(BackendTLS(server_name="member.test", verify=False)))  # said explicitly
    wait_for(lambda: set(spread(*vip, 6)) == {"t0", "t1"}, 5)


def _tls_client(alpn: list[str] | None = None, ciphers: str | None = None,
                cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    if ciphers:
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are not configurable
        context.set_ciphers(ciphers)
    if cert:
        context.load_cert_chain(*cert)
    return context


def _handshake(vip: tuple[str, int], context: ssl.SSLContext) -> ssl.SSLSocket:
    conn = context.wrap_socket(socket.create_connection(vip, 3), server_hostname="a.test")
    conn.settimeout(3)
    return conn


def test_alpn_and_cipher_suites_are_offered_as_said(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    b = backends.http(1)
    cert = make_certificate(tmp_path, "a", "a.test")
    vip = free_vip()

    def apply(**tls: Any) -> None:
        listener_tls = ListenerTLS((cert,), **tls)
        envoy.apply(http_lb(vip, b, protocol=Protocol.TERMINATED_HTTPS,
                            listener={"tls": listener_tls}))  # fmt: skip

    apply(alpn=("h2", "http/1.1"))
    with _handshake(vip, _tls_client(["h2", "http/1.1"])) as conn:
        assert conn.selected_alpn_protocol() == "h2"
    apply(alpn=("http/1.1",))
    with _handshake(vip, _tls_client(["h2", "http/1.1"])) as conn:
        assert conn.selected_alpn_protocol() == "http/1.1"

    apply(cipher_suites=("ECDHE-RSA-AES256-GCM-SHA384",))
    with _handshake(vip, _tls_client(ciphers="ECDHE-RSA-AES256-GCM-SHA384:AES128-SHA")) as conn:
        assert conn.cipher()[0] == "ECDHE-RSA-AES256-GCM-SHA384"
    with pytest.raises(ssl.SSLError):
        _handshake(vip, _tls_client(ciphers="ECDHE-RSA-AES128-GCM-SHA256"))


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _client_ca(tmp_path: Path, name: str) -> tuple[CABundle, tuple[Path, Path]]:
    """A CA and a client certificate it signed (CN=client-of-<name>): (bundle, (cert, key))."""
    ca_key, ca_crt = tmp_path / f"{name}-ca.key", tmp_path / f"{name}-ca.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout",
             str(ca_key), "-out", str(ca_crt), "-subj", f"/CN={name} CA")  # fmt: skip
    key, csr, crt = (tmp_path / f"{name}-client.{x}" for x in ("key", "csr", "crt"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN=client-of-{name}")  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-out", str(crt))  # fmt: skip
    pem = ca_crt.read_text()
    return CABundle(f"{name}-ca", pem, "sha256-of-" + name), (crt, key)


class _SubjectEcho(ThreadingHTTPServer):
    """A member answering the X-Client-Subject header it got."""

    daemon_threads = True

    def __init__(self, address: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = str(self.headers.get("X-Client-Subject")).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__((address, 0), Handler)
        self.name, self.address, self.port = "subject", address, self.server_address[1]
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


def _request(vip: tuple[str, int], context: ssl.SSLContext, headers: str = "") -> bytes:
    with _handshake(vip, context) as conn:
        conn.sendall(f"GET / HTTP/1.1\r\nHost: a.test\r\n{headers}Connection: close\r\n\r\n"
                     .encode())  # fmt: skip
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
        return answer


def test_client_certificates_of_the_ca_only_and_their_subject_to_the_members(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    ca, client = _client_ca(tmp_path, "good")
    _, stranger = _client_ca(tmp_path, "evil")
    echo = _SubjectEcho(backends._address())
    backends.started.append(echo)
    cert = make_certificate(tmp_path, "a", "a.test")
    vip = free_vip()
    validation = ClientValidation(ca, subject_header="X-Client-Subject")
    lb = http_lb(vip, [echo], protocol=Protocol.TERMINATED_HTTPS,  # type: ignore[list-item]
                 listener={"tls": ListenerTLS((cert,), client_validation=validation)})  # fmt: skip
    assert "tls.client-validation" in capabilities.required_features(lb)
    envoy.apply(lb)
    answer = _request(vip, _tls_client(cert=client), "X-Client-Subject: CN=forged\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"CN=client-of-good"), answer
    for refused in (_tls_client(), _tls_client(cert=stranger)):  # none, or another CA's
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            _request(vip, refused)
    fallback = ClientValidation(ca, ClientValidationMode.ALLOW_INSECURE_FALLBACK)
    insecure = http_lb(
        vip,
        [echo],
        protocol=Protocol.TERMINATED_HTTPS,  # type: ignore[list-item]
        listener={"tls": ListenerTLS((cert,), client_validation=fallback)},
    )
    why = EnvoyDriver().supports(insecure, {})
    assert why is not None and "AllowInsecureFallback cannot be served by Envoy" in why


def test_a_removed_member_finishes_its_request(envoy: EnvoyDevice, backends: Backends) -> None:
    b = backends.http(2)
    vip = free_vip()
    envoy.apply(http_lb(vip, b))
    result: list[tuple[int, str, dict[str, str]]] = []
    slow = threading.Thread(target=lambda: result.append(get(*vip, path="/?sleep=2", timeout=8)))
    slow.start()
    wait_for(lambda: any(m.active for m in b), 3)
    busy, kept = sorted(b, key=lambda m: -m.active)
    envoy.apply(http_lb(vip, [kept]))  # the busy member removed while its request runs
    assert spread(*vip, 10) == {kept.name: 10}
    slow.join()
    assert result and result[0][:2] == (200, busy.name)


def test_traffic_stats_count_requests_connections_and_sessions(
    envoy: EnvoyDevice, backends: Backends
) -> None:
    b = backends.http(2)
    (echo,) = backends.echo(1)
    udp = udp_backends(1, third=23)
    web_vip, tcp_vip, udp_vip = free_vip(), free_vip(), free_vip()
    web = http_lb(web_vip, b)
    tcp = LoadBalancer("dp", "tcp", tcp_vip[0],
                       (Listener("l", tcp_vip[1], Protocol.TCP, default_pool="p"),),
                       (Pool("p", members=members([echo])),))  # fmt: skip
    dns = LoadBalancer("dp", "dns", udp_vip[0],
                       (Listener("l", udp_vip[1], Protocol.UDP, default_pool="p"),),
                       (Pool("p", Protocol.UDP, members=members(udp)),))  # fmt: skip
    try:
        for lb in (web, tcp, dns):
            envoy.apply(lb)
        spread(*web_vip, 10)
        for _ in range(3):
            with socket.create_connection(tcp_vip, 3) as conn:
                conn.sendall(b"hello\n")
                conn.recv(100)
        for i in range(2):
            udp_ask(*udp_vip, f"q{i}".encode())
        stats = envoy.driver.traffic_stats(envoy.handle, [web, tcp, dns])
        listener = stats[web.key].listeners["l"]
        assert listener.requests == 10 and listener.responses["2xx"] == 10, listener
        assert listener.bytes_in > 0 and listener.bytes_out > 0
        assert stats[web.key].pools["p"].requests == 10
        assert sum(m.requests for m in stats[web.key].members.values()) == 10
        assert set(stats[web.key].members) == {"b0", "b1"}
        assert stats[tcp.key].listeners["l"].requests == 3
        assert stats[tcp.key].members["e0"].requests == 3
        assert stats[dns.key].listeners["l"].requests == 2  # a session per client socket
        assert stats[dns.key].listeners["l"].bytes_in == 4
    finally:
        for server in udp:
            server.close()
