"""TLS termination, with goals (issue 19; part of `make bench`).

1. **Throughput**: TLS handshakes/s (``wrk`` with ``Connection: close``: one handshake per
   request) and requests/s (keep-alive) through a VIP the HAProxy driver terminates, next to
   the same HAProxy binary with a hand-written minimal configuration on the same machine: same
   certificate (ECDSA P-256), same backend (a third HAProxy answering 200 itself, so the
   backend is never the bottleneck), same client. Runs alternate (driver, minimal, driver...)
   and the medians are compared: the ratio is the figure (goal >= 0.9).
2. **Rotation through the operator**: the real operator serves a TERMINATED_HTTPS VIP from a
   Secret on a managed HAProxy Device; the Secret is renewed ``ROTATIONS`` times under a steady
   client that opens a new TLS connection per request. Per renewal: from the Secret's update
   to the first handshake that shows the new certificate (p50, p95: goal p95 < 2 s); failed
   handshakes or requests (goal 0); reloads and workers of HAProxy (goal: none, the same).

Run alone: ``.venv/bin/python bench/tls.py`` (KUBECONFIG set, no other operator on it).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
for path in (TESTS, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import defaults  # noqa: E402
from hxdriver import _hxsupport  # noqa: E402
from table import Row, percentile, print_table  # noqa: E402

from helpers import Api, kubectl, wait_for  # noqa: E402
from lbaas.drivers.contract import DeviceHandle  # noqa: E402
from lbaas.drivers.haproxy import HAProxyDriver, runtime  # noqa: E402
from lbaas.drivers.model import (  # noqa: E402
    Listener,
    ListenerTLS,
    LoadBalancer,
    Member,
    Pool,
    Protocol,
)
from tlskit import issue, tls_secret  # noqa: E402

ROTATIONS = int(os.environ.get("BENCH_TLS_ROTATIONS", "100"))
SECONDS = int(os.environ.get("BENCH_TLS_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_TLS_ROUNDS", "8"))
POOL = "127.0.70.192/28"


def _tlssupport() -> ModuleType:
    """tests/dataplane/tlssupport.py, loaded by path (bench/dataplane.py shadows the package)."""
    name = "lbaas_bench_tlssupport"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "dataplane" / "tlssupport.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ---- 1. throughput --------------------------------------------------------------------------


def _haproxy(binary: str, config: Path) -> subprocess.Popen[bytes]:
    """HAProxy on ``config``, in a session of its own as the driver starts it. With the
    kernel's autogroup scheduling each session is a CPU group of its own: an HAProxy sharing
    the bench's session (and wrk's group) ran up to twice as fast as the driver's on this busy
    machine, with the very same configuration."""
    return subprocess.Popen([binary, "-db", "-f", str(config)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _wait_listening(address: str, port: int) -> None:
    import socket

    def up() -> bool:
        try:
            socket.create_connection((address, port), 0.2).close()
            return True
        except OSError:
            return False

    wait_for(up, 10, f"{address}:{port} listening")


def _wrk(address: str, port: int, *, close: bool) -> float:
    """Requests per second ``wrk`` reaches over SECONDS (``close``: a handshake each)."""
    argv = ["wrk", "-t2", "-c32", f"-d{SECONDS}s"]  # whole seconds: wrk takes no others
    argv += ["-H", "Connection: close"] if close else []
    out = subprocess.run([*argv, f"https://{address}:{port}/"], capture_output=True, text=True,
                         timeout=SECONDS + 30, check=True).stdout  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(f"wrk said: {out[-300:]}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx or (errors and any(int(x) for x in errors.groups()[:1])):
        raise RuntimeError(f"wrk saw errors: {out[-300:]}")
    return float(found[1])


def throughput(work: Path) -> dict[str, list[float]]:
    """(driver | minimal) x (handshakes | requests) → requests/s of each round."""
    hx = _hxsupport()
    tls = _tlssupport()
    binary = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not binary or not shutil.which("wrk"):
        raise RuntimeError("haproxy and wrk are needed")
    leaf = issue("bench", names=("bench.test",))
    pem = work / "bench.pem"
    pem.write_bytes(leaf.cert_pem + leaf.key_pem)
    backend, vip, minimal = hx.free_vip(), hx.free_vip(), hx.free_vip()
    (work / "backend.cfg").write_text(
        "defaults\n    mode http\n    timeout client 5s\n    timeout connect 5s\n"
        "    timeout server 5s\n"
        f"frontend answer\n    bind {backend[0]}:{backend[1]}\n"
        "    http-request return status 200 content-type text/plain string ok\n"
    )
    (work / "minimal.cfg").write_text(
        "defaults\n    mode http\n    timeout client 50s\n    timeout connect 5s\n"
        "    timeout server 50s\n"
        f"frontend f\n    bind {minimal[0]}:{minimal[1]} ssl crt {pem}\n    default_backend b\n"
        f"backend b\n    server s {backend[0]}:{backend[1]}\n"
    )
    state_dir = Path(tempfile.mkdtemp(prefix="lbbt-", dir="/tmp"))
    handle = DeviceHandle("bench-tls", "haproxy", {"stateDir": str(state_dir),
                                                   "haproxyBinary": binary})  # fmt: skip
    driver = HAProxyDriver()
    procs = [_haproxy(binary, work / "backend.cfg"), _haproxy(binary, work / "minimal.cfg")]
    found: dict[str, list[float]] = {}
    try:
        certificate = tls.served("bench", leaf)
        lb = LoadBalancer("bench", "tls", vip[0], (
            Listener("tls", vip[1], Protocol.TERMINATED_HTTPS, default_pool="p",
                     tls=ListenerTLS((certificate,))),
        ), (Pool("p", members=(Member("answer", *backend),)),))  # fmt: skip
        driver.apply(handle, lb)
        for address, port in (backend, minimal, vip):
            _wait_listening(address, port)
        for _ in range(ROUNDS):
            for name, (address, port) in (("driver", vip), ("minimal", minimal)):
                for close, what in ((True, "handshakes"), (False, "requests")):
                    found.setdefault(f"{name} {what}", []).append(_wrk(address, port, close=close))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        driver.close()
        hx.stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    return found


# ---- 2. rotation through the operator -------------------------------------------------------


def rotation(work: Path) -> dict[str, Any]:
    hx = _hxsupport()
    tls = _tlssupport()
    binary = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not binary:
        raise RuntimeError("haproxy binary not found")
    api = Api()
    ns = f"bench-tls-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    state_dir = Path(tempfile.mkdtemp(prefix="lbbr-", dir="/tmp"))
    device = f"{ns}-hx"
    backends = hx.Backends(third=71)
    operator = defaults.operator(work / "tls-operator.log", LBAAS_NAMESPACES=ns).start()
    try:
        config = {"managed": True, "stateDir": str(state_dir), "haproxyBinary": binary}
        api.create({"kind": "Device", "metadata": {"name": device}, "spec": {
            "driver": "haproxy", "config": config, "addressPool": [POOL],
            "allowedNamespaces": [ns], "memberNetworks": ["127.0.0.0/8"]}})  # fmt: skip
        api.wait_phase("Device", device, None, "Ready", 30)
        first = issue("web", names=("web.bench",))
        api.core.create_namespaced_secret(ns, tls_secret("web-tls", first.cert_pem,
                                                         first.key_pem))  # fmt: skip
        port = hx.free_port_in(POOL)
        refs = {"certificateRefs": [{"name": "web-tls"}]}
        objs = [
            ("VIP", "web", {"port": port, "protocol": "TERMINATED_HTTPS", "tls": refs}),
            ("Pool", "web", {"vipRef": "web", "protocol": "HTTP"}),
        ] + [
            ("Member", f"web-{b.name}", {"poolRef": "web", "address": b.address, "port": b.port})
            for b in backends.http(2)
        ]
        for kind, name, body in objs:
            api.create({"kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": body})
        for kind, name, _ in objs:
            hx.wait_applied(api, kind, name, ns)
        address = api.status("VIP", "web", ns)["address"]
        reloads = hx.DriverState.load(state_dir / "driver-state.json").reloads
        workers = set(runtime.show_proc(state_dir / "master.sock").current_workers)
        latencies = []
        client = tls.SteadyClient(address, port, "web.bench")
        with client.running():
            time.sleep(0.5)
            for i in range(ROTATIONS):
                renewed = issue(f"web{i}", names=("web.bench",))
                data = tls_secret("web-tls", renewed.cert_pem, renewed.key_pem)["data"]
                changed = time.monotonic()
                api.core.patch_namespaced_secret("web-tls", ns, {"data": data})
                wait_for(lambda c=renewed: c.fingerprint in client.seen, 10, "the new certificate",
                         interval=0.005)  # fmt: skip
                latencies.append(client.seen[renewed.fingerprint] - changed)
            time.sleep(0.3)
        return {
            "latencies": latencies,
            "sent": client.sent,
            "failures": list(client.failures),
            "reloads": hx.DriverState.load(state_dir / "driver-state.json").reloads - reloads,
            "same worker": set(runtime.show_proc(state_dir / "master.sock").current_workers)
            == workers,
        }
    finally:
        api.delete("VIP", "web", ns)
        try:
            api.wait_gone("VIP", "web", ns, 30)
            api.delete("Device", device)
            wait_for(lambda: api.get("Device", device) is None, 30, "device gone")
        finally:
            operator.stop()
            hx.stop_haproxy(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)
            for server in backends.started:
                server.shutdown()
                server.server_close()


def rows(work: Path) -> list[Row]:
    found = throughput(work)
    out = []
    for what in ("handshakes", "requests"):
        driver = statistics.median(found[f"driver {what}"])
        minimal = statistics.median(found[f"minimal {what}"])
        ratio = driver / minimal
        label = "TLS handshakes/s (a new connection per request)" if what == "handshakes" else (
            "requests/s over kept-alive TLS connections")  # fmt: skip
        out.append(Row(f"{label}: driver / minimal config",
                       f"{driver:.0f} / {minimal:.0f}"))  # fmt: skip
        out.append(Row(f"{label}: ratio (median of {ROUNDS} rounds)", f"{ratio:.2f}",
                       ">= 0.9", ratio >= 0.9))  # fmt: skip
    turn = rotation(work)
    latencies = turn["latencies"]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    what = f"Secret renewed -> new certificate served ({len(latencies)} rotations)"
    out += [
        Row(f"{what}: p50 / p95", f"{p50 * 1000:.0f} / {p95 * 1000:.0f} ms", "p95 < 2 s", p95 < 2),
        Row(f"{what}: max", f"{max(latencies) * 1000:.0f} ms"),
        Row(
            "failed handshakes or requests during the rotations",
            f"{len(turn['failures'])} of {turn['sent']}",
            "0",
            not turn["failures"],
        ),
        Row(
            "HAProxy reloads during the rotations", str(turn["reloads"]), "0", turn["reloads"] == 0
        ),
        Row(
            "the same HAProxy worker throughout",
            str(turn["same worker"]),
            "True",
            bool(turn["same worker"]),
        ),
    ]
    return out


if __name__ == "__main__":
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-tls-"))
    print_table("TLS termination (HAProxy)", rows(work))  # needs KUBECONFIG
