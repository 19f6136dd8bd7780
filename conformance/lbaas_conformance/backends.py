"""The members the kit starts: small HTTP servers in threads, each answering its own name.

Every request is counted (``hits``), as are those in flight (``active``) and the most at once
(``peak``), so a test tells where requests went and how many were open together without
trusting the device's own counters. Paths:

- ``/`` answers the member's name; ``?sleep=S`` first waits S seconds (a slow request);
- ``/healthz`` answers 200 while ``healthy``, else 503 (HTTP health checks), uncounted;
- ``/login`` also sets ``JSESSIONID=<name>-<n>`` (an application's session cookie).

``stop()`` closes the listening socket (TCP health checks fail, connections are refused) and
``start()`` binds the same port again. The request's headers are kept in ``last_headers``.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        member = self.server.member
        url = urlparse(self.path)
        if url.path == "/healthz":
            self._reply(200 if member.healthy else 503, b"ok" if member.healthy else b"sick")
            return
        member.entered(dict(self.headers.items()))
        try:
            query = parse_qs(url.query)
            if "sleep" in query:
                time.sleep(float(query["sleep"][0]))
            headers = {}
            if url.path == "/login":
                headers["Set-Cookie"] = f"JSESSIONID={member.name}-{member.hits}; Path=/"
            self._reply(200, member.name.encode(), headers)
        finally:
            member.left()

    def _reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, member: Member, address: tuple[str, int]) -> None:
        self.member = member
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client (the device) hanging up mid-response is not the test's failure


class Member:
    """One HTTP member: ``name`` answers every request at ``address:port``."""

    def __init__(self, name: str, address: str, port: int) -> None:
        self.name, self.address, self.port = name, address, port
        self.healthy = True
        self.hits = 0
        self.active = 0
        self.peak = 0
        self.last_headers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self.start()

    def start(self) -> None:
        if self._server is None:
            self._server = _Server(self, (self.address, self.port))
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        """Stop listening (in-flight requests finish)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def entered(self, headers: dict[str, str]) -> None:
        with self._lock:
            self.hits += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.last_headers = {k.lower(): v for k, v in headers.items()}

    def left(self) -> None:
        with self._lock:
            self.active -= 1

    def reset(self) -> None:
        with self._lock:
            self.hits, self.peak = 0, self.active

    def __repr__(self) -> str:
        return f"Member({self.name} {self.address}:{self.port})"


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


_NUMBERS = itertools.count(1)
"""Member numbers, unique in the run: a member of one test is never mistaken for another's
(a device may keep a member's health by name across trees)."""


class Backends:
    """Members started on the device config's backend addresses, stopped at the end."""

    def __init__(self, addresses: tuple[str, ...], ports: tuple[int, int]) -> None:
        self.addresses = addresses
        self.ports = ports
        self.started: list[Member] = []

    def http(self, count: int, prefix: str = "m") -> list[Member]:
        """``count`` new members named ``<prefix><n>`` (unique in the run)."""
        made = []
        for _ in range(count):
            number = next(_NUMBERS)
            address = self.addresses[number % len(self.addresses)]
            made.append(self._start(f"{prefix}{number}", address))
        return made

    def _start(self, name: str, address: str) -> Member:
        first, last = self.ports
        for _ in range(100):
            port = random.randint(first, last)
            if port_free(address, port):
                with contextlib.suppress(OSError):
                    member = Member(name, address, port)
                    self.started.append(member)
                    return member
        raise RuntimeError(f"no free port in {first}-{last} on {address} for a member")

    def reset(self) -> None:
        for member in self.started:
            member.reset()

    def close(self) -> None:
        for member in self.started:
            member.stop()
        self.started.clear()
