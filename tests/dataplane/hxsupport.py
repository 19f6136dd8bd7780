"""Helpers of the HAProxy data-plane tests: HTTP and TCP members, VIP addresses, clients.

Addresses come from ``LBAAS_TEST_NET`` (two octets, default ``127.0``): backends on
``<net>.20.x``, VIPs on ``<net>.10.x``, extra client sources on ``<net>.30.x`` and up. Two
people running data-plane tests on one machine pick different nets (``LBAAS_TEST_NET=127.3``).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from helpers import Api, free_port, port_free
from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.haproxy import HAProxyDriver, runtime
from lbaas.drivers.haproxy.store import DriverState
from lbaas.drivers.model import (
    HealthMonitor,
    Listener,
    LoadBalancer,
    Member,
    MemberStatus,
    MonitorType,
    Persistence,
    Pool,
    Protocol,
)
from lbaas.drivers.toolkit.process import children, pid_alive, read_pid

_ADDRESSES = itertools.count(1)
NET = os.environ.get("LBAAS_TEST_NET", "127.0")
if not re.fullmatch(r"127\.\d{1,3}", NET):
    raise ValueError(f"LBAAS_TEST_NET must be two octets of 127.0.0.0/8, like 127.3: {NET!r}")


def net(third: int, fourth: int) -> str:
    """An address of the test net: ``net(10, 1)`` is ``127.0.10.1`` by default."""
    return f"{NET}.{third}.{fourth}"


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
            if "echo" in query:  # what reached the member (L7 tests: header changes, XFF)
                seen = [[k.lower(), v] for k, v in self.headers.items()]
                body = json.dumps({"name": backend.name, "path": self.path, "headers": seen})
                self._reply(200, body.encode(), {"Server": "member", "X-Secret": "s"})
                return
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

    def handle_error(self, request: Any, client_address: Any) -> None:
        # HAProxy resets a health check's connection once it has read the status line.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


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
    third: int = 20
    """The third octet of the backends' addresses (``<net>.<third>.x``)."""

    def http(self, count: int) -> list[Backend]:
        made = [Backend(f"b{i}", self._address()) for i in range(count)]
        self.started.extend(made)
        return made

    def echo(self, count: int) -> list[EchoBackend]:
        made = [EchoBackend(f"e{i}", self._address()) for i in range(count)]
        self.started.extend(made)
        return made

    def _address(self) -> str:
        return net(self.third, next(_ADDRESSES) % 250 + 1)


FAST_MONITOR_SPEC = {
    "type": "HTTP",
    "urlPath": "/healthz",
    "delay": 1,
    "timeout": 1,
    "maxRetries": 1,
    "maxRetriesDown": 1,
}
"""A HealthMonitor's spec (through the API) that notices a member's failure within 1 s."""
FAST_MONITOR = HealthMonitor(
    "hm", MonitorType.HTTP, url_path="/healthz", delay=1, timeout=1, max_retries=1,
    max_retries_down=1,
)  # fmt: skip
"""The same as a pool's monitor of a driver tree."""


def members_of(
    backends: Sequence[Backend] | Sequence[EchoBackend],
    member_spec: dict[str, dict[str, Any]] | None = None,
) -> tuple[Member, ...]:
    """A member per backend, named after it (``member_spec``: Member fields by name)."""
    return tuple(
        Member(
            b.name, **{"address": b.address, "port": b.port, **(member_spec or {}).get(b.name, {})}
        )
        for b in backends
    )


def make_lb(
    vip: tuple[str, int],
    members: Sequence[Backend] | Sequence[EchoBackend],
    *,
    name: str = "web",
    pool: dict[str, Any] | None = None,
    monitor: HealthMonitor | None = None,
    persistence: Persistence | None = None,
    member_spec: dict[str, dict[str, Any]] | None = None,
    **listener: Any,
) -> LoadBalancer:
    """The tree the core builds for a VIP ``dp/<name>`` on ``vip`` (HTTP unless ``protocol``
    says otherwise): one listener named after it whose default pool ``pool`` holds a member
    per backend. ``pool`` and ``listener`` take Pool and Listener fields."""
    listener.setdefault("protocol", Protocol.HTTP)
    return LoadBalancer(
        "dp",
        name,
        vip[0],
        (Listener(name, vip[1], default_pool="pool", **listener),),
        (
            Pool(
                "pool",
                members=members_of(members, member_spec),
                monitor=monitor,
                persistence=persistence,
                **(pool or {}),
            ),
        ),
    )


def vip_of(lb: LoadBalancer) -> tuple[str, int]:
    """Address and port of ``lb``'s (first) listener."""
    return lb.address, lb.listeners[0].port


def serving(lb: LoadBalancer) -> set[str]:
    """Names of the members of ``lb``'s default pool that take traffic (weight above 0)."""
    pool = lb.pool(lb.listeners[0].default_pool or "")
    return {m.name for m in pool.members if m.weight} if pool is not None else set()


def refused(address: str, port: int) -> bool:
    """A connection to ``address:port`` is refused (nothing listens)."""
    try:
        with socket.create_connection((address, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def within(count: int, expected: float, tolerance: float = 0.10) -> bool:
    return abs(count - expected) <= expected * tolerance


def free_vip() -> tuple[str, int]:
    """A fresh VIP address on <net>.10.x with a port free on it."""
    address = net(10, next(_ADDRESSES) % 250 + 1)
    return address, free_port(address)


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


def device_config(state_dir: Path) -> str:
    """What the device's HAProxy loads: haproxy.cfg, then conf.d/*.cfg in order ("" if none)."""
    files = [state_dir / "haproxy.cfg", *sorted((state_dir / "conf.d").glob("*.cfg"))]
    return "".join(path.read_text() for path in files if path.exists())


@dataclass
class Device:
    handle: DeviceHandle
    state_dir: Path
    driver: HAProxyDriver

    def master_pid(self) -> int | None:
        return read_pid(self.state_dir / "haproxy.pid")

    def config(self) -> str:
        return device_config(self.state_dir)

    def fragment(self, name: str, namespace: str = "dp") -> str:
        return (self.state_dir / "conf.d" / f"{namespace}__{name}.cfg").read_text()

    def cli(self, line: str) -> str:
        """A command on the runtime API, as an administrator would send it by hand."""
        return runtime.command(self.state_dir / "haproxy.sock", line)

    def master_cli(self, line: str) -> str:
        return runtime.command(self.state_dir / "master.sock", line)

    def reloads(self) -> int:
        return self.driver.reload_count(self.handle)

    def statuses(self, lb: LoadBalancer) -> Mapping[str, MemberStatus]:
        """``lb``'s member statuses as ``member_statuses`` reports them (KeyError: not served)."""
        return self.driver.member_statuses(self.handle, [lb])[lb.key]


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


# -- through the operator: Devices of driver haproxy, created through the API ----------------


def free_port_in(cidr: str, tries: int = 50) -> int:
    """A port free on every host address of ``cidr`` (VIPs get their address from the pool
    only once scheduled, so the port is chosen first)."""
    hosts = [str(h) for h in ipaddress.ip_network(cidr).hosts()]
    for _ in range(tries):
        port = free_port(hosts[0])
        if all(port_free(host, port) for host in hosts):
            return port
    raise AssertionError(f"no port free on all of {cidr}")


@dataclass
class OperatorDevice:
    """A Device of driver haproxy that the operator manages: its HAProxy runs from
    ``state_dir``, where the driver also keeps its counters (``driver-state.json``)."""

    api: Api
    name: str
    state_dir: Path
    address_pool: str

    def driver_state(self) -> DriverState:
        return DriverState.load(self.state_dir / "driver-state.json")

    def reloads(self) -> int:
        return self.driver_state().reloads

    def runtime_updates(self) -> int:
        return self.driver_state().runtime_updates

    def config(self) -> str:
        return device_config(self.state_dir)

    def master_pid(self) -> int | None:
        return read_pid(self.state_dir / "haproxy.pid")


def names_in(api: Api, kind: str, namespace: str) -> list[str]:
    """Names of the objects of ``kind`` in ``namespace`` (Api has no list call)."""
    from helpers import GROUP, PLURALS, VERSION

    found = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
    return [item["metadata"]["name"] for item in found.get("items", [])]


def applied(api: Api, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    """The object once it is Active at its current generation, else None."""
    obj = api.get(kind, name, namespace)
    if obj is None:
        return None
    status = obj.get("status") or {}
    if status.get("phase") == "Active" and status.get("observedGeneration") == obj["metadata"].get(
        "generation"
    ):
        return obj
    return None


def wait_applied(
    api: Api, kind: str, name: str, namespace: str, timeout: float = 30
) -> dict[str, Any]:
    """Wait until ``kind`` ``name`` is Active at its current generation (its change applied)."""
    from helpers import wait_for as wait_until

    return dict(
        wait_until(
            lambda: applied(api, kind, name, namespace),
            timeout,
            f"{kind} {namespace}/{name} Active at its generation",
        )
    )


@dataclass
class Load:
    """A client thread sending requests to a VIP back to back, one connection each, until
    stopped or until ``max_requests`` or ``max_seconds`` is reached. Counts what failed."""

    address: str
    port: int
    max_requests: int = 50_000
    max_seconds: float = 120.0
    pause: float = 0.0
    """Seconds between requests (0: back to back; a refused request takes microseconds)."""
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    events: list[tuple[float, bool]] = field(default_factory=list)
    """(time.monotonic() when the request was sent, whether it succeeded)"""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while (
            not self._stop.is_set()
            and self.sent < self.max_requests
            and time.monotonic() < deadline
        ):
            self.sent += 1
            started = time.monotonic()
            try:
                code, body, _ = get(self.address, self.port, timeout=5)
            except (OSError, http.client.HTTPException) as exc:  # a cut response, too
                self.failures.append(f"request {self.sent}: {type(exc).__name__}: {exc}")
                self.events.append((started, False))
                if self.pause:
                    self._stop.wait(self.pause)
                continue
            if code != 200:
                self.failures.append(f"request {self.sent}: HTTP {code} {body[:80]!r}")
            else:
                self.seen[body] += 1
            self.events.append((started, code == 200))
            if self.pause:
                self._stop.wait(self.pause)

    def first_success_after(self, moment: float) -> float | None:
        """When the first request sent after ``moment`` that succeeded was sent."""
        return next((t for t, ok in self.events if t >= moment and ok), None)
