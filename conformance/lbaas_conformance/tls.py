"""What the TLS profile's tests need: certificates made on the spot (``cryptography``) and
handed to the driver as the operator hands them (``lbaas.tls.certs``: parsed, checked,
re-encoded, the key ``Sensitive``), TLS members, and clients that say which certificate they
were served (a SHA-256 fingerprint, as ``openssl x509 -fingerprint -sha256`` prints it)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import random
import socket
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lbaas.drivers import model
from lbaas.drivers.model import LoadBalancer, Protocol
from lbaas.tls import certs
from lbaas_conformance.backends import Backends, Member, _Server, port_free
from lbaas_conformance.client import Answer, until
from lbaas_conformance.kit import Kit

_FILES = Path(tempfile.mkdtemp(prefix="lbaas-conformance-tls-"))


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex(":").upper()

    def pem_file(self) -> Path:
        path = _FILES / f"{self.fingerprint.replace(':', '')[:16]}.pem"
        path.write_bytes(self.cert_pem + self.key_pem)
        return path


def issue(cn: str, *names: str, issuer: Issued | None = None, ca: bool = False) -> Issued:
    """An ECDSA P-256 certificate for ``names`` (subjectAltName DNS), valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def certificate(name: str, issued: Issued) -> model.Certificate:
    """``issued`` as the operator hands it to a driver, from a Secret named ``name``."""
    data = {"tls.crt": issued.cert_pem, "tls.key": issued.key_pem}
    return certs.certificate(name, data, now=datetime.now(UTC))


def bundle(name: str, *cas: Issued) -> model.CABundle:
    return certs.ca_bundle(name, b"".join(c.cert_pem for c in cas), what=name)


def client(*, own: Issued | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client that trusts any server (the tests compare fingerprints)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.maximum_version = maximum
    if own is not None:
        context.load_cert_chain(own.pem_file())
    return context


def fingerprint_served(
    address: str, port: int, sni: str | None, context: ssl.SSLContext | None = None
) -> str:
    context = context or client()
    with (
        socket.create_connection((address, port), 5) as raw,
        context.wrap_socket(raw, server_hostname=sni) as conn,
    ):
        der = conn.getpeercert(binary_form=True) or b""
    return hashlib.sha256(der).digest().hex(":").upper()


def https(
    address: str,
    port: int,
    sni: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTPS request on a new connection (a new handshake)."""
    context = context or client()
    conn = http.client.HTTPSConnection(address, port, timeout=5, context=context)
    conn.sock = context.wrap_socket(socket.create_connection((address, port), 5),
                                    server_hostname=sni)  # fmt: skip
    try:
        conn.request("GET", "/", headers={"Host": sni, "Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return Answer(response.status, response.read().decode(errors="replace"),
                      {k.lower(): v for k, v in response.getheaders()})  # fmt: skip
    finally:
        conn.close()


def try_https(address: str, port: int, sni: str, **kw: Any) -> Answer | None:
    try:
        return https(address, port, sni, **kw)
    except (OSError, http.client.HTTPException):
        return None


def serve_tls(
    kit: Kit,
    members: Sequence[Member],
    tls: model.ListenerTLS,
    *,
    backend: model.BackendTLS | None = None,
    sni: str = "",
    context: ssl.SSLContext | None = None,
    refused: bool = False,
) -> LoadBalancer:
    """Apply a TERMINATED_HTTPS tree (skipped when it asks for undeclared features) and wait
    until it answers 200 over HTTPS for ``sni`` (the first certificate's first name by
    default) and ``context`` (a client); ``refused``: until it answers no 200 (the tree
    refuses what the one before it served)."""
    pool = kit.trees.pool(members, protocol=Protocol.HTTP, tls=backend)
    lb = kit.trees.lb(*kit.slot(), protocol=Protocol.TERMINATED_HTTPS, listener={"tls": tls},
                      pools=(pool,))  # fmt: skip
    kit.require(lb)
    kit.apply(lb)
    name = sni or (tls.certificates[0].dns_names or ("x.test",))[0]
    address, port = lb.address, lb.listeners[0].port

    def answered() -> bool:
        found = try_https(address, port, name, context=context)
        return (found is not None and found.status == 200) != refused

    what = "refusing" if refused else "served over TLS"
    until(answered, kit.device.timing.settle, f"{lb.key} {what} on {address}:{port}")
    return lb


class TLSMember(Member):
    """A member speaking HTTPS with ``issued``'s certificate (re-encryption)."""

    def __init__(self, name: str, address: str, port: int, issued: Issued) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(issued.pem_file())
        super().__init__(name, address, port)

    def start(self) -> None:
        if self._server is None:
            self._server = _Server(self, (self.address, self.port))
            self._server.socket = self.context.wrap_socket(self._server.socket, server_side=True)
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()


def tls_member(backends: Backends, name: str, issued: Issued) -> TLSMember:
    """A TLS member on the device config's backend addresses (stopped with ``backends``)."""
    first, last = backends.ports
    address = backends.addresses[0]
    for _ in range(100):
        port = random.randint(first, last)
        if port_free(address, port):
            with contextlib.suppress(OSError):
                member = TLSMember(name, address, port, issued)
                backends.started.append(member)
                return member
    raise RuntimeError(f"no free port in {first}-{last} on {address} for a TLS member")


@dataclass
class Handshakes:
    """A client opening a new TLS connection per request until stopped: the fingerprints it
    was served, and every failed handshake or request."""

    address: str
    port: int
    sni: str
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Handshakes:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                served = fingerprint_served(self.address, self.port, self.sni)
                answer = https(self.address, self.port, self.sni)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{self.sent}: {type(exc).__name__}: {exc}")
                continue
            if answer.status != 200:
                self.failures.append(f"{self.sent}: HTTP {answer.status}")
            self.seen[served] += 1
