"""TLS through a real HAProxy, driven by the driver: SNI, the minimum version, cipher suites,
ALPN, mutual TLS and the client-subject header, re-encryption to TLS members with and without
verification, rotation without a reload under load, and the certificate files (0600, gone
with their VIP, never a key in a tree file).

Certificates are made in the tests (``tlskit``, ``cryptography``) and handed to the driver as
the core would (``lbaas.tls.certs``); clients are Python's ``ssl``, ``curl --resolve`` and
``openssl s_client``.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane.hxsupport import Backends, Device, free_vip, net, stop_haproxy
from dataplane.tlssupport import (
    Member,
    SteadyClient,
    bundle,
    client_context,
    curl,
    https_get,
    served,
    served_fingerprint,
)

from helpers import need_tool
from lbaas.drivers.haproxy import runtime
from lbaas.drivers.model import (
    BackendTLS,
    ClientValidation,
    ClientValidationMode,
    Listener,
    ListenerTLS,
    LoadBalancer,
    Pool,
    Protocol,
    TLSVersion,
)
from lbaas.drivers.model import Member as ModelMember
from tlskit import Issued, issue, leaked_forms

pytestmark = pytest.mark.haproxy
CA = issue("Test CA", ca=True, days=365)
OTHER_CA = issue("Other CA", ca=True, days=365)


def tls_lb(
    vip: tuple[str, int], members: list[Any], tls: ListenerTLS, *, name: str = "web",
    backend: BackendTLS | None = None,
) -> LoadBalancer:  # fmt: skip
    pool = Pool(
        "pool",
        protocol=Protocol.HTTP,
        members=tuple(ModelMember(f"m{i}", m.address, m.port) for i, m in enumerate(members)),
        tls=backend,
    )
    listener = Listener(name, vip[1], Protocol.TERMINATED_HTTPS, default_pool="pool", tls=tls)
    return LoadBalancer("dp", name, vip[0], (listener,), (pool,))


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Callable[..., Member]]:
    made: list[Member] = []

    def make(tls: Issued | None = None) -> Member:
        member = Member(net(20, 200 + len(made)), tls, tmp_path)
        made.append(member)
        return member

    yield make
    for member in made:
        member.stop()


def workers(device: Device) -> set[int]:
    return set(runtime.show_proc(device.state_dir / "master.sock").current_workers)


def apply(device: Device, *lbs: LoadBalancer) -> None:
    outcome = device.driver.apply_many(device.handle, list(lbs))
    assert all(error is None for error in outcome.values()), outcome


def test_sni_picks_the_certificate_and_the_first_is_the_default(
    device: Device, backends: Backends
) -> None:
    b = backends.http(1)
    vip = free_vip()
    a = served("a", issue("a", names=("a.example.com",), issuer=CA), CA)
    wild = served("w", issue("w", names=("*.example.org",), issuer=CA))
    apply(device, tls_lb(vip, b, ListenerTLS((a, wild))))
    assert served_fingerprint(*vip, "a.example.com") == a.fingerprint
    assert served_fingerprint(*vip, "shop.example.org") == wild.fingerprint
    assert served_fingerprint(*vip, "unknown.test") == a.fingerprint, "the first is the default"
    assert served_fingerprint(*vip, None) == a.fingerprint
    assert https_get(*vip, "shop.example.org") == (200, "b0")
    if not shutil.which("curl"):
        need_tool("curl not found")
    answer = curl(*vip, "shop.example.org", "-w", "%{http_code}", "-o", "/dev/null", "-v")
    assert answer.stdout == "200", answer.stderr
    assert "CN=w" in answer.stderr or "CN = w" in answer.stderr, answer.stderr
    crt_list = device.state_dir / "certs/dp__web/l/web/crt-list"
    assert f"ssl crt-list {crt_list} ssl-min-ver TLSv1.2" in device.fragment("web")
    assert crt_list.read_text() == "dp__web/l/web/crt/a.pem\ndp__web/l/web/crt/w.pem\n"
    files = sorted((device.state_dir / "certs").rglob("*.pem"))
    assert [f.relative_to(device.state_dir / "certs").as_posix() for f in files] == [
        "dp__web/l/web/crt/a.pem",
        "dp__web/l/web/crt/w.pem",
    ]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in [*files, crt_list])
    assert (device.state_dir / "certs").stat().st_mode & 0o777 == 0o700
    # The key is in its PEM file and nowhere else the driver writes.
    assert a.private_key.reveal().splitlines()[1] in files[0].read_text()
    for path in device.state_dir.rglob("*"):
        if path.is_file() and path.suffix != ".pem" and not path.name.endswith(".sock"):
            text = path.read_bytes().decode(errors="replace")
            assert not any(form in text for form in leaked_forms(a.private_key.reveal().encode()))
    # Removed with its VIP.
    device.driver.delete(device.handle, "dp/web")
    assert not (device.state_dir / "certs" / "dp__web").exists()


def _tls_1_1_works_somewhere(tmp_path: Path) -> bool:
    """A hand-written HAProxy that allows TLS 1.1: does this machine's OpenSSL let a client
    and HAProxy speak it at all? (Else a refusal would prove nothing.)"""
    leaf = issue("old", names=("old.test",))
    pem = tmp_path / "old.pem"
    pem.write_bytes(leaf.cert_pem + leaf.key_pem)
    address, port = free_vip()
    config = tmp_path / "old.cfg"
    config.write_text(
        "global\n    ssl-default-bind-ciphers DEFAULT:@SECLEVEL=0\n"
        "defaults\n    mode http\n    timeout client 5s\n    timeout connect 5s\n"
        "    timeout server 5s\n"
        f"frontend f\n    bind {address}:{port} ssl crt {pem} ssl-min-ver TLSv1.1\n"
        "    http-request return status 200\n"
    )
    proc = subprocess.Popen([shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection((address, port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        legacy = client_context(
            minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1, legacy=True
        )
        served_fingerprint(address, port, "old.test", legacy)
        return True
    except (OSError, ssl.SSLError, ValueError):
        return False
    finally:
        proc.terminate()
        proc.wait(5)


def test_minimum_versions_refuse_older_clients(
    device: Device, backends: Backends, tmp_path: Path
) -> None:
    """TLS 1.1 refused by a TLSv1.2 listener (the control proves a TLS 1.1 client exists on
    this machine), TLS 1.2 refused by a TLSv1.3 one; each serves the versions it allows."""
    b = backends.http(1)
    v12, v13 = free_vip(), free_vip()
    cert = served("a", issue("a", names=("a.test",)))
    apply(
        device,
        tls_lb(v12, b, ListenerTLS((cert,)), name="v12"),
        tls_lb(v13, b, ListenerTLS((cert,), min_version=TLSVersion.TLS_1_3), name="v13"),
    )
    if not _tls_1_1_works_somewhere(tmp_path):
        pytest.fail("no TLS 1.1 client on this machine: the TLS 1.1 refusal would prove nothing")
    legacy = client_context(
        minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1, legacy=True
    )
    with pytest.raises(ssl.SSLError):
        served_fingerprint(*v12, "a.test", legacy)
    only12 = client_context(maximum=ssl.TLSVersion.TLSv1_2)
    assert served_fingerprint(*v12, "a.test", only12) == cert.fingerprint
    with pytest.raises(ssl.SSLError):
        served_fingerprint(*v13, "a.test", only12)
    assert served_fingerprint(*v13, "a.test") == cert.fingerprint


def test_cipher_suites_and_alpn(device: Device, backends: Backends) -> None:
    b = backends.http(1)
    vip, bad_vip = free_vip(), free_vip()
    cert = served("a", issue("a", names=("a.test",)))
    tls = ListenerTLS(
        (cert,), cipher_suites=("ECDHE-ECDSA-AES128-GCM-SHA256",), alpn=("h2", "http/1.1")
    )
    apply(device, tls_lb(vip, b, tls))
    context = client_context(maximum=ssl.TLSVersion.TLSv1_2)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(vip, 3) as raw,
        context.wrap_socket(raw, server_hostname="a.test") as conn,
    ):
        assert conn.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
        assert conn.selected_alpn_protocol() == "h2"
    other = client_context(maximum=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with pytest.raises(ssl.SSLError):
        served_fingerprint(*vip, "a.test", other)
    # A suite this device's OpenSSL does not enable by default (unknown, or weak): that VIP
    # is refused, naming it; the other goes on serving.
    for suite in ("NOT-A-CIPHER", "AECDH-NULL-SHA"):
        bad = ListenerTLS((cert,), cipher_suites=(suite,))
        outcome = device.driver.apply_many(device.handle, [tls_lb(bad_vip, b, bad, name="bad")])
        error = outcome["dp/bad"]
        assert error is not None and error.reason == "Unsupported", error
        assert suite in error.user_message
        assert suite in (device.driver.supports(tls_lb(bad_vip, b, bad, name="bad"), {}) or "")
    assert https_get(*vip, "a.test") == (200, "b0")
    assert not (device.state_dir / "certs" / "dp__bad").exists(), "its files put back"


def test_mutual_tls_and_the_subject_header(device: Device, members: Any, tmp_path: Path) -> None:
    echo = members()
    strict, lenient = free_vip(), free_vip()
    cert = served("a", issue("a", names=("a.test",)))
    client = issue("alice", issuer=CA)
    stranger = issue("mallory", issuer=OTHER_CA)

    def validation(mode: ClientValidationMode) -> ListenerTLS:
        check = ClientValidation(bundle("clients", CA), mode, subject_header="X-Client-Subject")
        return ListenerTLS((cert,), client_validation=check)

    apply(
        device,
        tls_lb(strict, [echo], validation(ClientValidationMode.ALLOW_VALID_ONLY), name="strict"),
        tls_lb(lenient, [echo], validation(ClientValidationMode.ALLOW_INSECURE_FALLBACK),
               name="lenient"),
    )  # fmt: skip
    forged = {"X-Client-Subject": "CN=admin"}
    valid = client_context(client=client, directory=tmp_path)
    status, body = https_get(*strict, "a.test", context=valid, headers=forged)
    assert status == 200 and json.loads(body)["x-client-subject"] == "CN=alice"
    for context in (client_context(), client_context(client=stranger, directory=tmp_path)):
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            https_get(*strict, "a.test", context=context)
    # AllowInsecureFallback: served without (or with an invalid) certificate, never with the
    # header (a forged one is removed); a valid client still gets it.
    for context in (client_context(), client_context(client=stranger, directory=tmp_path)):
        status, body = https_get(*lenient, "a.test", context=context, headers=forged)
        assert status == 200 and "x-client-subject" not in json.loads(body)
    status, body = https_get(*lenient, "a.test", context=valid)
    assert json.loads(body)["x-client-subject"] == "CN=alice"
    assert (device.state_dir / "certs/dp__strict/l/strict/client-ca.pem").read_text() == (
        CA.cert_pem.decode()
    )


def test_re_encryption_to_tls_members(device: Device, members: Any) -> None:
    good = members(issue("backend", names=("backend.internal",), issuer=CA))
    selfsigned = members(issue("self", names=("self.internal",)))
    cert = served("a", issue("a", names=("a.test",)))
    verified, wrong_name, wrong_ca, unverified = (free_vip() for _ in range(4))
    ca = bundle("backend-ca", CA)
    apply(
        device,
        tls_lb(verified, [good], ListenerTLS((cert,)), name="verified",
               backend=BackendTLS("backend.internal", True, ca)),
        tls_lb(wrong_name, [good], ListenerTLS((cert,)), name="wrongname",
               backend=BackendTLS("other.internal", True, ca)),
        tls_lb(wrong_ca, [selfsigned], ListenerTLS((cert,)), name="wrongca",
               backend=BackendTLS("self.internal", True, ca)),
        tls_lb(unverified, [selfsigned], ListenerTLS((cert,)), name="unverified",
               backend=BackendTLS(None, False, None)),
    )  # fmt: skip
    status, body = https_get(*verified, "a.test")
    assert status == 200 and json.loads(body)["host"] == "a.test"
    assert https_get(*unverified, "a.test")[0] == 200, "verify: false talks to anyone"
    for vip, why in ((wrong_name, "the member's name"), (wrong_ca, "the member's CA")):
        started = time.monotonic()
        assert https_get(*vip, "a.test", timeout=20)[0] == 503, f"{why} is verified"
        print(f"refused member: 503 after {time.monotonic() - started:.2f}s")
    backend = next(line for line in device.fragment("verified").splitlines() if "server m0" in line)
    assert "ssl verify required ca-file dp__verified/p/pool/ca.pem" in backend
    assert "sni str(backend.internal) verifyhost backend.internal" in backend


def test_a_member_added_to_a_tls_pool_needs_no_reload(device: Device, members: Any) -> None:
    """``add server`` of HAProxy 2.6 takes the ssl options (and a CA loaded at start)."""
    first = members(issue("backend", names=("backend.internal",), issuer=CA))
    second = members(issue("backend", names=("backend.internal",), issuer=CA))
    cert = served("a", issue("a", names=("a.test",)))
    vip = free_vip()
    backend = BackendTLS("backend.internal", True, bundle("backend-ca", CA))
    apply(device, tls_lb(vip, [first], ListenerTLS((cert,)), backend=backend))
    reloads = device.reloads()
    apply(device, tls_lb(vip, [first, second], ListenerTLS((cert,)), backend=backend))
    assert device.reloads() == reloads
    served_by = set()
    for _ in range(8):
        status, body = https_get(*vip, "a.test")
        assert status == 200
        served_by.add(json.loads(body)["x-member"])
    assert served_by == {str(first.port), str(second.port)}, "both, verified"
    assert device.driver.state(device.handle).runtime_updates >= 1


def test_rotation_under_load_without_a_reload(device: Device, backends: Backends) -> None:
    """A renewed certificate (same Secret name) is swapped in the running HAProxy: 0 failed
    handshakes or requests under a steady client, the new certificate served, the same
    worker, no reload; the file is written for the next start."""
    b = backends.http(1)
    vip = free_vip()
    names = ("a.test",)
    lb = tls_lb(vip, b, ListenerTLS((served("a", issue("a", names=names)),)))
    apply(device, lb)
    before, reloads = workers(device), device.reloads()
    renewed = []
    with SteadyClient(*vip, "a.test").running() as client:
        time.sleep(0.3)
        for i in range(5):
            cert = served("a", issue(f"a{i}", names=names))
            renewed.append(cert)
            swapped_at = time.monotonic()
            apply(device, tls_lb(vip, b, ListenerTLS((cert,))))
            deadline = time.monotonic() + 2
            while cert.fingerprint not in client.seen and time.monotonic() < deadline:
                time.sleep(0.01)
            assert client.seen[cert.fingerprint] - swapped_at < 2
        time.sleep(0.3)
    print(f"\nrotation: {client.sent} requests, {len(client.failures)} failed")
    assert client.failures == [] and client.sent > 50
    assert served_fingerprint(*vip, "a.test") == renewed[-1].fingerprint
    assert workers(device) == before and device.reloads() == reloads
    pem = (device.state_dir / "certs/dp__web/l/web/crt/a.pem").read_text()
    assert pem.startswith(renewed[-1].certificate)
    assert device.driver.verify(device.handle, tls_lb(vip, b, ListenerTLS((renewed[-1],)))) == []


def test_certificate_files_are_checked_and_repaired(device: Device, backends: Backends) -> None:
    b = backends.http(1)
    vip = free_vip()
    cert = served("a", issue("a", names=("a.test",)))
    lb = tls_lb(vip, b, ListenerTLS((cert,)))
    apply(device, lb)
    pem = device.state_dir / "certs/dp__web/l/web/crt/a.pem"
    pem.write_text("edited by hand\n")
    assert [d.kind for d in device.driver.verify(device.handle, lb)] == ["CertificateChanged"]
    pem.unlink()
    assert [d.kind for d in device.driver.verify(device.handle, lb)] == ["CertificateMissing"]
    apply(device, lb)  # what the operator does on drift
    assert device.driver.verify(device.handle, lb) == []
    assert pem.read_text().startswith(cert.certificate)


def test_a_new_driver_serves_the_certificates_from_the_files(
    backends: Backends, make_device: Any
) -> None:
    """The VIP files hold no key: a restarted device renders again from them and serves the
    certificates its PEM files hold."""
    device = make_device()
    b = backends.http(1)
    vip = free_vip()
    cert = served("a", issue("a", names=("a.test",)))
    apply(device, tls_lb(vip, b, ListenerTLS((cert,))))
    stop_haproxy(device.state_dir)
    fresh = type(device)(device.handle, device.state_dir, type(device.driver)())
    assert fresh.driver.probe(fresh.handle).ready
    assert served_fingerprint(*vip, "a.test") == cert.fingerprint
    tree = (device.state_dir / "vips" / "dp__web.json").read_text()
    assert "PRIVATE KEY" not in tree and cert.private_key.fingerprint in tree


def test_the_certificate_set_changes_by_a_reload_and_sixty_four_fit(
    device: Device, backends: Backends
) -> None:
    """A certificate added or removed changes the crt-list: one hitless reload; the API's
    maximum of 64 certificates on one listener is served (a bind line holds 64 words at most:
    hence the crt-list)."""
    b = backends.http(1)
    vip = free_vip()
    first = served("c00", issue("c00", names=("c00.test",)))
    apply(device, tls_lb(vip, b, ListenerTLS((first,))))
    reloads = device.reloads()
    many = (first, *(served(f"c{i:02d}", issue(f"c{i}", names=(f"c{i:02d}.test",)))
                     for i in range(1, 64)))  # fmt: skip
    apply(device, tls_lb(vip, b, ListenerTLS(many)))
    assert device.reloads() == reloads + 1
    for cert in (many[1], many[40], many[63]):
        assert served_fingerprint(*vip, cert.dns_names[0]) == cert.fingerprint
    assert served_fingerprint(*vip, "nobody.test") == first.fingerprint
    apply(device, tls_lb(vip, b, ListenerTLS(many[:2])))
    files = sorted(p.name for p in (device.state_dir / "certs/dp__web/l/web/crt").iterdir())
    assert files == ["c00.pem", "c01.pem"], "the others are removed"
    assert served_fingerprint(*vip, "c40.test") == first.fingerprint
