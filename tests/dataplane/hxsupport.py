"""Helpers of the HAProxy data-plane tests: HTTP and TCP members, VIP addresses, clients."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import shutil
import signal
import socket
import socketserver
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from lbaas.drivers.base import DeviceHandle
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.process import children, pid_alive, read_pid

_ADDRESSES = itertools.count(1)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not found:
        if os.environ.get("LBAAS_STRICT") == "1":
            pytest.fail("haproxy binary not found (LBAAS_STRICT=1 forbids skipping)")
        pytest.skip("haproxy binary not found")
    return found


class _Handler(BaseHTTPRequestHandler):
    server: Backend
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        backend = self.server
        url = urlparse(self.path)
        if url.path == "/healthz":
            backend.health_checks += 1
            self._reply(200 if backend.healthy else 500, b"ok" if backend.healthy else b"sick")
            return
        with backend.lock:
            backend.hits += 1
            backend.active += 1
        try:
            query = parse_qs(url.query)
            if "sleep" in query:
                time.sleep(float(query["sleep"][0]))
            headers = {}
            if url.path == "/login":
                headers["Set-Cookie"] = f"JSESSIONID={backend.name}-{backend.hits}; Path=/"
            self._reply(200, backend.name.encode(), headers)
        finally:
            with backend.lock:
                backend.active -= 1

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


class Backend(ThreadingHTTPServer):
    """An HTTP member answering its own name; ``/healthz`` fails while ``healthy`` is False."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str, address: str) -> None:
        super().__init__((address, 0), _Handler)
        self.name = name
        self.address = address
        self.port = self.server_address[1]
        self.healthy = True
        self.hits = 0
        self.active = 0
        self.health_checks = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


class _EchoHandler(socketserver.StreamRequestHandler):
    server: EchoBackend

    def handle(self) -> None:
        line = self.rfile.readline()
        self.wfile.write(self.server.name.encode() + b":" + line)


class EchoBackend(socketserver.ThreadingTCPServer):
    """A raw TCP member: answers ``<name>:<the line it read>``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str, address: str) -> None:
        super().__init__((address, 0), _EchoHandler)
        self.name = name
        self.address = address
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


@dataclass
class Backends:
    started: list[socketserver.BaseServer] = field(default_factory=list)

    def http(self, count: int) -> list[Backend]:
        made = [Backend(f"b{i}", f"127.0.20.{next(_ADDRESSES) % 250 + 1}") for i in range(count)]
        self.started.extend(made)
        return made

    def echo(self, count: int) -> list[EchoBackend]:
        made = [
            EchoBackend(f"e{i}", f"127.0.20.{next(_ADDRESSES) % 250 + 1}") for i in range(count)
        ]
        self.started.extend(made)
        return made


def free_vip() -> tuple[str, int]:
    """A fresh VIP address on 127.0.10.x with a port free on it."""
    address = f"127.0.10.{next(_ADDRESSES) % 250 + 1}"
    with socket.socket() as probe:
        probe.bind((address, 0))
        return address, probe.getsockname()[1]


def stop_haproxy(state_dir: Path) -> None:
    """Kill the master named by the pid file and its workers, then any other HAProxy whose
    command line names this state dir (one a broken driver might have started twice)."""
    procs = []
    pid = read_pid(state_dir / "haproxy.pid")
    if pid is not None and pid_alive(pid):
        procs += [pid, *children(pid)]
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if b"haproxy" in cmdline and f"{state_dir}/".encode() in cmdline:
            procs.append(int(entry.name))
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc, signal.SIGTERM)
    deadline = time.monotonic() + 3
    for proc in procs:
        while pid_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc, signal.SIGKILL)


@dataclass
class Device:
    handle: DeviceHandle
    state_dir: Path
    driver: HAProxyDriver

    def master_pid(self) -> int | None:
        return read_pid(self.state_dir / "haproxy.pid")


def get(
    address: str,
    port: int,
    path: str = "/",
    *,
    source: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 3.0,
) -> tuple[int, str, dict[str, str]]:
    """One request on a new connection: (status, body, lower-cased headers)."""
    conn = http.client.HTTPConnection(
        address, port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return (
            response.status,
            response.read().decode(),
            {k.lower(): v for k, v in response.getheaders()},
        )
    finally:
        conn.close()


def spread(address: str, port: int, count: int, **kw: Any) -> Counter[str]:
    """Which member answered each of ``count`` requests."""
    return Counter(get(address, port, **kw)[1] for _ in range(count))


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``predicate`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start
