"""TLS and UDP through a real Envoy: SNI picks the certificate, a new certificate is served
without a restart and without a failed request, TLS 1.3 minimum, passthrough, UDP echo."""

from __future__ import annotations

import http.client
import ssl
import time
from pathlib import Path

import pytest
from dataplane.envoysupport import (
    EnvoyDevice,
    http_lb,
    make_certificate,
    members,
    served_fingerprint,
    udp_ask,
    udp_backends,
)
from dataplane.hxsupport import Backends, free_vip

from lbaas.drivers.model import (
    Listener,
    ListenerTLS,
    LoadBalancer,
    Method,
    Pool,
    Protocol,
    TLSVersion,
)

pytestmark = pytest.mark.envoy


def _https_get(address: str, port: int, server_name: str) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(address, port, timeout=3, context=context)
    conn.sock = context.wrap_socket(
        __import__("socket").create_connection((address, port), 3), server_hostname=server_name
    )
    try:
        conn.request("GET", "/", headers={"Host": server_name})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def _tls_lb(vip: tuple[str, int], backends: list, tls: ListenerTLS) -> LoadBalancer:  # type: ignore[type-arg]
    return http_lb(vip, backends, protocol=Protocol.TERMINATED_HTTPS, listener={"tls": tls})


def test_sni_picks_the_certificate_and_rotation_needs_no_restart(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    b = backends.http(1)
    vip = free_vip()
    a = make_certificate(tmp_path, "a", "a.example.com")
    wild = make_certificate(tmp_path, "w", "*.example.org", "b.example.org")
    envoy.apply(_tls_lb(vip, b, ListenerTLS((a, wild))))
    assert served_fingerprint(*vip, "a.example.com") == a.fingerprint
    assert served_fingerprint(*vip, "x.example.org") == wild.fingerprint
    assert served_fingerprint(*vip, "other.test") == a.fingerprint  # the first is the default
    assert served_fingerprint(*vip, None) == a.fingerprint
    assert _https_get(*vip, "a.example.com") == "b0"
    pid = envoy.pid()
    rotated = make_certificate(tmp_path, "a2", "a.example.com")
    rotated = type(rotated)("a", rotated.certificate, rotated.private_key, rotated.dns_names,
                            fingerprint=rotated.fingerprint)  # fmt: skip
    failures, sent = [], 0
    listeners_before = (envoy.state_dir / "xds" / "lds" / "lds.json").read_text()
    deadline = time.monotonic() + 1.5
    envoy.apply(_tls_lb(vip, b, ListenerTLS((rotated, wild))))
    rotated_at = time.monotonic()
    while time.monotonic() < deadline:
        sent += 1
        try:
            assert _https_get(*vip, "a.example.com") == "b0"
        except (OSError, AssertionError, http.client.HTTPException) as exc:
            failures.append(repr(exc))
    print(f"\nrotation: {len(failures)} failed of {sent} requests")
    assert failures == []
    assert served_fingerprint(*vip, "a.example.com") == rotated.fingerprint
    assert envoy.pid() == pid
    assert (envoy.state_dir / "xds" / "lds" / "lds.json").read_text() == listeners_before
    assert time.monotonic() - rotated_at > 0
    secret = next((envoy.state_dir / "secrets").glob("dp__web__l__a.json"))
    assert secret.stat().st_mode & 0o777 == 0o600
    tree = (envoy.state_dir / "trees" / "dp__web.json").read_text()
    assert "PRIVATE KEY" not in tree and "sha256:" in tree


def test_rotation_under_load_loses_nothing(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    b = backends.http(1)
    vip = free_vip()
    certs = [make_certificate(tmp_path, f"c{i}", "a.example.com") for i in range(3)]
    envoy.apply(_tls_lb(vip, b, ListenerTLS((certs[0],))))
    failures, sent = [], 0
    for cert in certs[1:]:
        same_name = type(cert)("c0", cert.certificate, cert.private_key, cert.dns_names,
                               fingerprint=cert.fingerprint)  # fmt: skip
        envoy.apply(_tls_lb(vip, b, ListenerTLS((same_name,))))
        for _ in range(30):
            sent += 1
            try:
                _https_get(*vip, "a.example.com")
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
        assert served_fingerprint(*vip, "a.example.com") == cert.fingerprint
    assert failures == [] and sent == 60


def test_tls13_minimum_refuses_tls12(
    envoy: EnvoyDevice, backends: Backends, tmp_path: Path
) -> None:
    b = backends.http(1)
    vip = free_vip()
    cert = make_certificate(tmp_path, "a", "a.example.com")
    envoy.apply(_tls_lb(vip, b, ListenerTLS((cert,), min_version=TLSVersion.TLS_1_3)))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        context.wrap_socket(__import__("socket").create_connection(vip, 3))
    assert _https_get(*vip, "a.example.com") == "b0"


def test_https_passthrough_reaches_the_member(envoy: EnvoyDevice, tmp_path: Path) -> None:
    cert = make_certificate(tmp_path, "m", "member.test")
    member = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    (tmp_path / "m.key").write_text(cert.private_key.reveal())
    member.load_cert_chain(tmp_path / "m.crt", tmp_path / "m.key")
    import socket
    import threading

    server = socket.create_server(("127.13.20.250", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with server:
            conn, _ = server.accept()
            with member.wrap_socket(conn, server_side=True) as tls:
                tls.recv(100)
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nmember"
                )

    threading.Thread(target=serve, daemon=True).start()
    vip = free_vip()
    envoy.apply(LoadBalancer("dp", "pt", vip[0],
        listeners=(Listener("l", vip[1], Protocol.HTTPS, default_pool="p"),),
        pools=(Pool("p", Protocol.HTTPS, members=members([_Spot("m", "127.13.20.250", port)])),),
    ))  # fmt: skip
    assert served_fingerprint(*vip, "member.test") == cert.fingerprint


class _Spot:
    def __init__(self, name: str, address: str, port: int) -> None:
        self.name, self.address, self.port = name, address, port


def test_udp_echo_through_a_udp_listener(envoy: EnvoyDevice) -> None:
    echo = udp_backends(2)
    try:
        vip = free_vip()
        lb = LoadBalancer("dp", "dns", vip[0],
            listeners=(Listener("l", vip[1], Protocol.UDP, default_pool="p"),),
            pools=(Pool("p", Protocol.UDP, Method.SOURCE_IP, members=members(echo)),),
        )  # fmt: skip
        envoy.apply(lb)
        answers = {udp_ask(*vip, f"ping{i}".encode()) for i in range(5)}
        names = {a.split(b":")[0] for a in answers}
        assert len(names) == 1  # one source IP: one member (hashed)
        assert {a.split(b":")[1] for a in answers} == {f"ping{i}".encode() for i in range(5)}
        assert envoy.driver.verify(envoy.handle, lb) == []
    finally:
        for server in echo:
            server.close()
