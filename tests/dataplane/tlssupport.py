"""Helpers of the TLS data-plane tests: certificates as the core hands them to drivers, TLS
clients that say which certificate they were served, TLS and header-echoing members, and a
steady client that counts failed handshakes and requests (rotation under load)."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lbaas.drivers import model
from lbaas.tls import certs as core
from tlskit import Issued, chain_pem


def served(name: str, issued: Issued, *chain: Issued) -> model.Certificate:
    """``issued`` (with ``chain``) as the core hands it to a driver, named ``name`` (its
    Secret's name)."""
    data = {"tls.crt": chain_pem(issued, *chain), "tls.key": issued.key_pem}
    return core.certificate(name, data, now=datetime.now(UTC))


def bundle(name: str, *cas: Issued) -> model.CABundle:
    return core.ca_bundle(name, chain_pem(*cas), what=name)


def client_context(
    *,
    client: Issued | None = None,
    directory: Path | None = None,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
    legacy: bool = False,
) -> ssl.SSLContext:
    """A client that trusts anything (the tests check fingerprints), optionally with a client
    certificate and a fixed range of versions; ``legacy`` lowers OpenSSL's security level so
    that TLS 1.0/1.1 can be offered at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if legacy:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if client is not None:
        assert directory is not None
        pem = directory / f"client-{client.fingerprint[:8].replace(':', '')}.pem"
        pem.write_bytes(client.cert_pem + client.key_pem)
        context.load_cert_chain(pem)
    return context


def fingerprint_of(der: bytes) -> str:
    return hashlib.sha256(der).digest().hex(":").upper()


def served_fingerprint(
    address: str, port: int, sni: str | None, context: ssl.SSLContext | None = None
) -> str:
    """The SHA-256 fingerprint of the certificate ``address:port`` serves for ``sni``."""
    context = context or client_context()
    with (
        socket.create_connection((address, port), 3) as raw,
        context.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return fingerprint_of(der)


def https_get(
    address: str,
    port: int,
    sni: str,
    path: str = "/",
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 3.0,
) -> tuple[int, str]:
    """One HTTPS request on a new connection (a new handshake): (status, body)."""
    context = context or client_context()
    conn = http.client.HTTPSConnection(address, port, timeout=timeout, context=context)
    conn.sock = context.wrap_socket(
        socket.create_connection((address, port), timeout), server_hostname=sni
    )
    try:
        conn.request("GET", path, headers={"Host": sni, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def curl(address: str, port: int, host: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``curl --resolve host:port:address https://host:port/`` (not verifying the server)."""
    argv = ["curl", "-sS", "-k", "--max-time", "5", "--resolve", f"{host}:{port}:{address}"]
    argv += [*extra, f"https://{host}:{port}/"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)


class _EchoHeaders(BaseHTTPRequestHandler):
    """Answers the request's headers as JSON (what the device added or removed), and its own
    port as ``x-member``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        headers["x-member"] = str(self.server.server_address[1])
        body = json.dumps(headers).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Member(ThreadingHTTPServer):
    """An HTTP member echoing the request's headers; with ``tls``, it speaks HTTPS with that
    certificate (re-encryption)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, tls: Issued | None = None, directory: Path | None = None):
        super().__init__((address, 0), _EchoHeaders)
        self.address = address
        self.port = self.server_address[1]
        if tls is not None:
            assert directory is not None
            pem = directory / f"member-{self.port}.pem"
            pem.write_bytes(tls.cert_pem + tls.key_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(pem)
            self.socket = context.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # health checks and refused handshakes close abruptly

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class SteadyClient:
    """Threads that each open a new TLS connection per request (a handshake each) and count
    what fails: the proof that a rotation loses nothing."""

    address: str
    port: int
    sni: str
    threads: int = 4
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)
    """Fingerprint served → when it was first seen (monotonic)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        context = client_context()
        while not self._stop.is_set():
            try:
                with (
                    socket.create_connection((self.address, self.port), 3) as raw,
                    context.wrap_socket(raw, server_hostname=self.sni) as tls,
                ):
                    der = tls.getpeercert(binary_form=True) or b""
                    tls.sendall(f"GET / HTTP/1.1\r\nHost: {self.sni}\r\n\r\n".encode())
                    answer = _read_response(tls)
                ok, error = answer.startswith(b"HTTP/1.1 200"), answer[:60]
            except (OSError, ssl.SSLError) as exc:
                ok, error, der = False, repr(exc).encode(), b""
            with self._lock:
                self.sent += 1
                if not ok:
                    self.failures.append(error.decode(errors="replace"))
                elif der:
                    self.seen.setdefault(fingerprint_of(der), time.monotonic())

    def start(self) -> SteadyClient:
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(10)

    @contextlib.contextmanager
    def running(self) -> Iterator[SteadyClient]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def _read_response(tls: ssl.SSLSocket) -> bytes:
    """The whole response of a ``Connection: close``-less request: read until the body the
    headers announce is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return data
