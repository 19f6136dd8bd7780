"""Driver-level figures of the HAProxy driver, each with its goal and pass/fail (no Kubernetes).

(1) Member changes without a reload (issue 13): ``HAProxyDriver.apply`` time of a member
    create, delete and weight change on one VIP of a device holding 10 VIPs and one holding
    1,000 VIPs (10 members each, HTTP checks every 10 min): p50/p95 of ``REPEATS`` (100,
    ``BENCH_SAMPLES``); goal: the big device no more than 1.5x slower ("cost follows the
    change, not the device"), and no reload. Plus member create -> first request served
    through the VIP (driver apply, the bench's fixed-rate client: bench/fixedrate.py), the
    driver's share of the operator goal p50 < 100 ms, p95 < 150 ms, of ``REPEATS``.
(2) Liveness (issue 11): SIGKILL of the HAProxy master under the fixed-rate client, ``watch``
    calling back and ``probe`` restarting it: time to detection (goal < 1 s) and traffic back
    (``FixedRate.traffic_back``: to the first success after the last failure; goal < 2 s),
    the worst of ``KILLS`` and each value (five are too few for a percentile).
(3) Blast radius (issue 10): an uninvolved VIP under the fixed-rate client while hostile VIPs
    (address not on the host, port held by another process, a VIP's listener, 0.0.0.0,
    cookie names HAProxy cannot parse, reversed expectedCodes) are applied ``ROUNDS`` times:
    requests lost (goal 0) and reloads caused by the refusals (goal 0).
(4) Batches (``apply_many``): 1,000 VIPs x 10 members loaded into an empty device (HAProxy
    running, no VIP) with one call: time, reloads (goal 1), every VIP verified in sync
    afterwards; against the per-VIP path (``apply`` each: one reload per VIP), measured on the
    first ``PER_VIP`` VIPs of another empty device and extrapolated to 1,000 from that and
    the cost of one apply on the 1,000-VIP device (it grows with the configuration). Then one
    batch of 100 member creates (100 VIPs of the 1,000-VIP device, one member each): time and
    reloads (goal 0), against the same creates applied one by one (median of 3, in turns).
    Last, the cold start as the operator runs it: every call under the default 5 s deadline,
    the deferred VIPs sent again at once: calls, reloads, total time until all are in, and
    the longest call (goal: within the deadline).

VIPs listen on ``$LBAAS_BENCH_NET.40.1`` and up (default net 127.0); backends are the tests'
(``$LBAAS_TEST_NET.20.x``). Run alone: ``.venv/bin/python bench/hxdriver.py`` (``BIG=200`` for a
smaller big device, ``python bench/hxdriver.py batch`` for (4) alone); bench/dataplane.py
includes these rows in ``make bench``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"

from fixedrate import FixedRate  # noqa: E402
from table import Row, print_table  # noqa: E402

from lbaas.drivers.contract import DeviceHandle  # noqa: E402
from lbaas.drivers.deadline import deadline_scope  # noqa: E402
from lbaas.drivers.errors import DriverError  # noqa: E402
from lbaas.drivers.haproxy import HAProxyDriver  # noqa: E402
from lbaas.drivers.haproxy.store import dump_tree  # noqa: E402
from lbaas.drivers.model import (  # noqa: E402
    HealthMonitor,
    Listener,
    LoadBalancer,
    Member,
    MonitorType,
    Persistence,
    PersistenceType,
    Pool,
    Protocol,
)

NET = os.environ.get("LBAAS_BENCH_NET", "127.0")
SMALL, BIG = 10, int(os.environ.get("BIG", "1000"))
MEMBERS, KILLS, ROUNDS = 10, 5, 5
REPEATS = int(os.environ.get("BENCH_SAMPLES", "100"))
"""Samples per percentile (no percentile is printed from fewer than 100)."""
RATE, ROTATE = 500.0, 4
PER_VIP, MEMBER_BATCH = int(os.environ.get("PER_VIP", "50")), 100
DEADLINE = 5.0
"""The operator's default driverTimeout: each call of a paced cold start gets this long."""


def _hxsupport() -> ModuleType:
    """tests/dataplane/hxsupport.py (backends, clients), loaded by path."""
    name = "lbaas_bench_hxsupport"
    if name not in sys.modules:
        if str(TESTS) not in sys.path:
            sys.path.insert(0, str(TESTS))
        spec = importlib.util.spec_from_file_location(name, TESTS / "dataplane" / "hxsupport.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _vip_address(i: int) -> str:
    return f"{NET}.{40 + i // 250}.{i % 250 + 1}"


def _free_port(count: int) -> int:
    """A port free on the first ``count`` bench VIP addresses (the tests' port helpers)."""
    hx = _hxsupport()
    for _ in range(50):
        port = hx.free_port(_vip_address(0))
        if all(hx.port_free(_vip_address(i), port) for i in range(count)):
            return port
    raise RuntimeError("no port free on every bench VIP address")


def tree(
    name: str,
    address: str,
    port: int,
    backends: list[Any],
    *,
    weight: int = 1,
    weights: Mapping[int, int] | None = None,
    member_prefix: str = "m",
    delay: int = 600,
    **listener: Any,
) -> LoadBalancer:
    """A bench VIP as the core sends it: an HTTP listener ``name`` whose pool ``name`` holds
    a member per backend (``<member_prefix><j>``, ``weights`` by position, else ``weight``)
    checked over HTTP every ``delay`` seconds."""
    members = tuple(
        Member(f"{member_prefix}{j}", b.address, b.port, weight=(weights or {}).get(j, weight))
        for j, b in enumerate(backends)
    )
    monitor = HealthMonitor(name, MonitorType.HTTP, delay=delay, url_path="/healthz")
    return LoadBalancer(
        "bench",
        name,
        address,
        (Listener(name, port, Protocol.HTTP, default_pool=name, **listener),),
        (Pool(name, Protocol.HTTP, members=members, monitor=monitor),),
    )


def _lb(
    i: int, port: int, backends: list[Any], weights: dict[int, int] | None = None
) -> LoadBalancer:
    return tree(f"v{i:04d}", _vip_address(i), port, backends, weights=weights)


@dataclass
class BenchDevice:
    driver: HAProxyDriver
    handle: DeviceHandle
    state_dir: Path
    port: int


@contextlib.contextmanager
def empty_device(port_for: int) -> Iterator[BenchDevice]:
    """A device whose HAProxy runs without any VIP (started by a probe), with a port free on
    the first ``port_for`` bench VIP addresses."""
    hx = _hxsupport()
    state_dir = Path(tempfile.mkdtemp(prefix="lbbd-", dir="/tmp"))
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    config = {"stateDir": str(state_dir), "haproxyBinary": binary, "reloadTimeoutSeconds": 60}
    handle = DeviceHandle("bench", driver="haproxy", config=config)
    bench = BenchDevice(HAProxyDriver(), handle, state_dir, _free_port(port_for))
    try:
        if not bench.driver.probe(handle).ready:
            raise RuntimeError("bench device not ready")
        yield bench
    finally:
        bench.driver.close()
        hx.stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@contextlib.contextmanager
def device(vips: int, backends: list[Any]) -> Iterator[BenchDevice]:
    """A device holding ``vips`` VIPs of ``backends``: the VIP files are written as the driver
    writes them and one probe starts HAProxy on all of them (one apply each would reload
    1,000 times)."""
    hx = _hxsupport()
    state_dir = Path(tempfile.mkdtemp(prefix="lbbd-", dir="/tmp"))
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    config = {"stateDir": str(state_dir), "haproxyBinary": binary, "reloadTimeoutSeconds": 60}
    handle = DeviceHandle("bench", driver="haproxy", config=config)
    bench = BenchDevice(HAProxyDriver(), handle, state_dir, _free_port(vips))
    try:
        (state_dir / "vips").mkdir(parents=True)
        for i in range(vips):
            lb = _lb(i, bench.port, backends)
            (state_dir / "vips" / f"bench__{lb.name}.json").write_text(dump_tree(lb))
        probe = bench.driver.probe(handle)
        if not probe.ready:
            raise RuntimeError(f"bench device not ready: {probe.message}")
        yield bench
    finally:
        bench.driver.close()
        hx.stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def _timed(call: Callable[[], None]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@dataclass(frozen=True)
class Remote:
    """A backend served by another process (see :func:`remote_backends`)."""

    name: str
    address: str
    port: int


_SERVE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from dataplane.hxsupport import Backends
for b in Backends().http(int(sys.argv[2])):
    print(b.name, b.address, b.port, flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def remote_backends(count: int) -> Iterator[list[Remote]]:
    """HTTP members in a child process: with 1,000 VIPs x 10 members HAProxy's health checks
    keep them busy, and in this process they would hold the GIL while applies are timed."""
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(TESTS), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        found = [proc.stdout.readline().split() for _ in range(count)]
        yield [Remote(name, address, int(port)) for name, address, port in found]
    finally:
        proc.kill()
        proc.wait()


def member_changes(
    sizes: tuple[int, ...], backends: list[Any], extra: Any
) -> dict[int, dict[str, list[float]]]:
    """Apply times (s) of member create, delete and weight change on VIPs of devices of
    ``sizes`` VIPs, taken in turns on all devices so that the machine's other load weighs
    on each alike (the ratio is the figure)."""
    times: dict[int, dict[str, list[float]]] = {
        size: {"create": [], "delete": [], "weight": []} for size in sizes
    }
    with contextlib.ExitStack() as stack:
        benches = {size: stack.enter_context(device(size, backends)) for size in sizes}
        reloads = {size: b.driver.reload_count(b.handle) for size, b in benches.items()}
        for k in range(REPEATS):
            for size, bench in benches.items():
                driver, handle, i = bench.driver, bench.handle, (k * 37) % size
                base = _lb(i, bench.port, backends)
                grown = _lb(i, bench.port, [*backends, extra])
                heavier = _lb(i, bench.port, backends, {0: 5})
                got = times[size]
                got["create"].append(_timed(lambda: driver.apply(handle, grown)))  # noqa: B023
                got["delete"].append(_timed(lambda: driver.apply(handle, base)))  # noqa: B023
                got["weight"].append(_timed(lambda: driver.apply(handle, heavier)))  # noqa: B023
                driver.apply(handle, base)
        for size, bench in benches.items():
            if bench.driver.reload_count(bench.handle) != reloads[size]:
                raise RuntimeError("a member change reloaded HAProxy")
    return times


def create_to_first_request(backends: list[Any], fresh: list[Any]) -> tuple[list[float], str]:
    """Member create -> first request it serves, on a VIP with one member (10-VIP device),
    through the fixed-rate client; ``REPEATS`` times, the new member's backend taken in turns
    from ``fresh``. Also the client's summary (errors, non-2xx)."""
    latencies = []
    with (
        device(SMALL, backends[:1]) as bench,
        FixedRate(_vip_address(0), bench.port, rate=RATE) as client,
    ):
        for k in range(REPEATS):
            backend = fresh[k % len(fresh)]
            started = time.monotonic()
            bench.driver.apply(bench.handle, _lb(0, bench.port, [backends[0], backend]))
            latencies.append(client.first_from(backend.name, started))
            bench.driver.apply(bench.handle, _lb(0, bench.port, backends[:1]))
            client.last_from(backend.name, time.monotonic(), quiet=0.05)
    return latencies, client.summary()


def sigkill(backends: list[Any]) -> tuple[list[float], list[float], str]:
    """(detection, traffic back) in seconds for ``KILLS`` SIGKILLs of the master under the
    fixed-rate client, and the client's summary. Traffic back: ``FixedRate.traffic_back``."""
    hx = _hxsupport()
    detections, backs = [], []
    with device(SMALL, backends[:2]) as bench:
        driver, handle = bench.driver, bench.handle
        noticed: list[float] = []

        def changed() -> None:
            noticed.append(time.monotonic())
            threading.Thread(target=driver.probe, args=(handle,)).start()

        stop = driver.watch(handle, changed)
        try:
            with FixedRate(_vip_address(0), bench.port, rate=RATE / 5) as client:
                for _ in range(KILLS):
                    time.sleep(0.5)
                    noticed.clear()
                    pid = hx.read_pid(bench.state_dir / "haproxy.pid")
                    killed = time.monotonic()
                    os.kill(pid, signal.SIGKILL)
                    backs.append(client.wait_back(killed))
                    hx.wait_for(lambda: bool(noticed), 10)
                    detections.append(noticed[0] - killed)
        finally:
            stop()
    return detections, backs, client.summary()


def blast_radius(backends: list[Any]) -> dict[str, int]:
    """Requests and reloads while hostile VIPs are refused beside a VIP under load."""
    with device(2, backends[:2]) as bench, socket.socket() as squatter:
        driver, handle = bench.driver, bench.handle
        squatter.bind((_vip_address(3), 0))
        squatter.listen()
        web = _lb(0, bench.port, backends[:2])
        held = squatter.getsockname()[1]
        cookie = _lb(4, bench.port, backends[:1])
        hostile = [
            _bare("unbindable", "10.99.0.1", bench.port),
            _bare("foreign-port", _vip_address(3), held),
            _bare("same-listener", web.address, bench.port),
            _bare("wildcard", "0.0.0.0", bench.port),
            dataclasses.replace(cookie, pools=(dataclasses.replace(cookie.pools[0],
                persistence=Persistence(PersistenceType.APP_COOKIE, "a'b")),)),
            _with_codes(_lb(5, bench.port, backends[:1]), "204-200"),
        ]  # fmt: skip
        reloads = driver.reload_count(handle)
        refusals = 0
        with FixedRate(web.address, web.listeners[0].port, rate=RATE) as client:
            for _ in range(ROUNDS):
                for lb in hostile:
                    try:
                        driver.apply(handle, lb)
                    except DriverError as exc:
                        refusals += not exc.retryable
        return {
            "sent": len(client.samples),
            "failed": client.errors + client.non_2xx,
            "refusals": refusals,
            "attempts": ROUNDS * len(hostile),
            "reloads": driver.reload_count(handle) - reloads,
        }


def _all_applied(outcome: Mapping[str, DriverError | None], count: int) -> None:
    failed = {key: error.user_message for key, error in outcome.items() if error is not None}
    if failed or len(outcome) != count:
        raise RuntimeError(f"apply_many: {len(outcome)} outcomes, failed: {failed}")


def batches(backends: list[Any], extra: Any) -> dict[str, float]:
    """(4): ``apply_many`` against ``apply`` per VIP (see the module docstring)."""
    hx = _hxsupport()
    got: dict[str, float] = {}
    with empty_device(PER_VIP) as bench:  # the per-VIP path, on the first PER_VIP VIPs
        driver, handle = bench.driver, bench.handle
        each = [_timed(lambda i=i: driver.apply(handle, _lb(i, bench.port, backends)))
                for i in range(PER_VIP)]  # fmt: skip
        got["per_vip_total"] = sum(each)
        got["per_vip_first"] = statistics.median(each[:10])
        got["per_vip_last"] = statistics.median(each[-10:])
        got["per_vip_reloads"] = driver.reload_count(handle)
    with empty_device(BIG + 3) as bench:
        driver, handle, port = bench.driver, bench.handle, bench.port
        lbs = [_lb(i, port, backends) for i in range(BIG)]
        before = driver.state(handle)
        started = time.perf_counter()
        outcome = driver.apply_many(handle, lbs)
        got["batch_load"] = time.perf_counter() - started
        _all_applied(outcome, BIG)
        after = driver.state(handle)
        got["batch_reloads"] = after.reloads - before.reloads + after.starts - before.starts
        for i in range(0, BIG, max(1, BIG // 20)):
            if hx.get(_vip_address(i), port, timeout=5)[0] != 200:
                raise RuntimeError(f"VIP {i} does not serve after the batch")
        started = time.perf_counter()
        got["verified"] = sum(driver.verify(handle, lb) == [] for lb in lbs)
        got["verify_all"] = time.perf_counter() - started
        # One new VIP on the 1,000-VIP device, the per-VIP way: what the 1,000th apply costs.
        got["apply_at_big"] = statistics.median(
            _timed(lambda i=i: driver.apply(handle, _lb(i, port, backends)))
            for i in range(BIG, BIG + 3)
        )
        picked = range(0, BIG, max(1, BIG // MEMBER_BATCH))[:MEMBER_BATCH]
        grown = [_lb(i, port, [*backends, extra]) for i in picked]
        base = [_lb(i, port, backends) for i in picked]
        reloads = driver.reload_count(handle)
        batch_times, single_times = [], []
        for _ in range(3):  # in turns, so that the machine's other load weighs on both alike
            time.sleep(1)  # the old workers of the reloads above have gone
            updates = driver.state(handle).runtime_updates
            batch_times.append(_timed(lambda: _all_applied(driver.apply_many(handle, grown),
                                                           len(grown))))  # fmt: skip
            updates = driver.state(handle).runtime_updates - updates
            got["member_batch_verified"] = sum(driver.verify(handle, lb) == [] for lb in grown)
            _all_applied(driver.apply_many(handle, base), len(base))
            single_times.append(sum(_timed(lambda lb=lb: driver.apply(handle, lb)) for lb in grown))
            _all_applied(driver.apply_many(handle, base), len(base))
        got["member_batch"] = statistics.median(batch_times)
        got["member_single"] = statistics.median(single_times)
        got["member_batch_updates"] = updates
        got["member_batch_reloads"] = driver.reload_count(handle) - reloads
    with empty_device(BIG) as bench:  # as the operator calls: a deadline per call
        driver, handle = bench.driver, bench.handle
        waiting = [_lb(i, bench.port, backends) for i in range(BIG)]
        calls, started, longest = 0, time.perf_counter(), 0.0
        while waiting and calls < 50:
            calls += 1
            with deadline_scope(time.monotonic() + DEADLINE):
                call_started = time.perf_counter()
                outcome = driver.apply_many(handle, waiting)
                longest = max(longest, time.perf_counter() - call_started)
            late = [e for e in outcome.values() if e is not None and e.reason != "Deferred"]
            if late:
                raise RuntimeError(f"paced batch: {late[0].reason}: {late[0].user_message}")
            waiting = [lb for lb in waiting if outcome[lb.key] is not None]
        got["paced_total"] = time.perf_counter() - started
        got["paced_calls"], got["paced_left"] = calls, len(waiting)
        got["paced_reloads"], got["paced_longest"] = driver.reload_count(handle), longest
    return got


def batch_rows(backends: list[Any], extra: Any) -> list[Row]:
    b = batches(backends, extra)
    # Each per-VIP apply reloads a configuration one VIP bigger than the last: from the first
    # applies' cost to the 1,000th's, linearly.
    estimate = BIG * (b["per_vip_first"] + b["apply_at_big"]) / 2
    size = f"{BIG:,} VIPs x {MEMBERS} members"
    return [
        Row(f"per-VIP apply into an empty device: first {PER_VIP} VIPs (total; reloads)",
            f"{b['per_vip_total']:.1f} s; {b['per_vip_reloads']:.0f}"),
        Row(f"per-VIP apply: one apply at 0 / {PER_VIP} / {BIG:,} VIPs (median)",
            f"{_ms(b['per_vip_first'])} / {_ms(b['per_vip_last'])} / {_ms(b['apply_at_big'])}"),
        Row(f"per-VIP apply of {size}: extrapolated total", f"{estimate:.0f} s"),
        Row(f"apply_many of {size} into an empty device: time", f"{b['batch_load']:.1f} s",
            "< 20 s", b["batch_load"] < 20),
        Row(f"apply_many of {BIG:,} VIPs: reloads (+ starts)", f"{b['batch_reloads']:.0f}", "1",
            b["batch_reloads"] == 1),
        Row(f"apply_many of {BIG:,} VIPs vs per-VIP (extrapolated): speed-up",
            f"{estimate / b['batch_load']:.0f}x", ">= 20x", estimate / b["batch_load"] >= 20),
        Row(f"apply_many of {BIG:,} VIPs: VIPs verified in sync after (verify of all: "
            f"{b['verify_all']:.1f} s)", f"{b['verified']:.0f}", str(BIG),
            b["verified"] == BIG),
        Row(f"one batch of {MEMBER_BATCH} member creates on {BIG:,} VIPs: time (median of 3)",
            _ms(b["member_batch"]), "< 1 s", b["member_batch"] < 1),
        Row(f"{MEMBER_BATCH} member creates, batches and single: reloads / runtime updates of a"
            " batch / verified",
            f"{b['member_batch_reloads']:.0f} / {b['member_batch_updates']:.0f} /"
            f" {b['member_batch_verified']:.0f}", f"0 / {MEMBER_BATCH} / {MEMBER_BATCH}",
            (b["member_batch_reloads"], b["member_batch_updates"], b["member_batch_verified"])
            == (0, MEMBER_BATCH, MEMBER_BATCH)),
        Row(f"the same {MEMBER_BATCH} member creates, one apply each: time (median of 3)",
            _ms(b["member_single"]), "> batch", b["member_single"] > b["member_batch"]),
        Row(f"{size} under a {DEADLINE:.0f} s deadline per call: calls / reloads / time",
            f"{b['paced_calls']:.0f} / {b['paced_reloads']:.0f} / {b['paced_total']:.1f} s",
            "all in", b["paced_left"] == 0),
        Row(f"{size} under a {DEADLINE:.0f} s deadline per call: longest call",
            f"{b['paced_longest']:.1f} s", f"< {DEADLINE:.0f} s", b["paced_longest"] < DEADLINE),
    ]  # fmt: skip


def _bare(name: str, address: str, port: int) -> LoadBalancer:
    """A VIP without a pool on ``address:port``."""
    return LoadBalancer("bench", name, address, (Listener(name, port),))


def _with_codes(lb: LoadBalancer, codes: str) -> LoadBalancer:
    (pool,) = lb.pools
    assert pool.monitor is not None
    monitor = dataclasses.replace(pool.monitor, expected_codes=codes)
    return dataclasses.replace(lb, pools=(dataclasses.replace(pool, monitor=monitor),))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]


def rows() -> list[Row]:
    hx = _hxsupport()
    pool = hx.Backends()
    try:
        backends = pool.http(MEMBERS + ROTATE)
        members, fresh = backends[:MEMBERS], backends[MEMBERS:]
        out: list[Row] = []
        with remote_backends(MEMBERS + 1) as remote:
            measured = member_changes((SMALL, BIG), remote[:MEMBERS], remote[MEMBERS])
        small, big = measured[SMALL], measured[BIG]
        for kind in ("create", "delete", "weight"):
            a, b = statistics.median(small[kind]), statistics.median(big[kind])
            out += [
                Row(f"member {kind}, apply on a {SMALL}-VIP device: p50 / p95 of"
                    f" {len(small[kind])}", f"{_ms(a)} / {_ms(_p95(small[kind]))}"),
                Row(f"member {kind}, apply on a {BIG}-VIP device: p50 / p95 of {len(big[kind])}",
                    f"{_ms(b)} / {_ms(_p95(big[kind]))}"),
                Row(f"member {kind}: {BIG} VIPs vs {SMALL} (p50 ratio), no reload",
                    f"{b / a:.2f}x", "<= 1.5x", b / a <= 1.5),
            ]  # fmt: skip
        first, client = create_to_first_request(members, fresh)
        out += [
            Row(f"member create -> first request served (driver share): p50 of {len(first)}",
                _ms(statistics.median(first)), "< 100 ms", statistics.median(first) < 0.1),
            Row(f"member create -> first request served (driver share): p95 of {len(first)}",
                _ms(_p95(first)), "< 150 ms", _p95(first) < 0.15),
            Row(f"member create -> first request: the client ({client})", "see title"),
        ]  # fmt: skip
        detected, back, client = sigkill(members)
        each = ", ".join(_ms(v) for v in back)
        out += [
            Row(f"SIGKILL of the master under load: detected, worst of {KILLS}",
                f"{_ms(max(detected))} (each: {', '.join(_ms(v) for v in detected)})", "< 1 s",
                max(detected) < 1),
            Row(f"SIGKILL of the master under load: traffic back, worst of {KILLS}",
                f"{_ms(max(back))} (each: {each})", "< 2 s", max(back) < 2),
            Row(f"SIGKILL of the master under load: the client ({client})", "see title"),
        ]  # fmt: skip
        with remote_backends(MEMBERS + 1) as remote:
            out += batch_rows(remote[:MEMBERS], remote[MEMBERS])
        blast = blast_radius(members)
        out += [
            Row(f"hostile VIPs refused ({blast['attempts']} applies): requests lost of"
                f" {blast['sent']} to another VIP", str(blast["failed"]), "0",
                blast["failed"] == 0),
            Row("hostile VIPs: non-retryable refusals / reloads caused",
                f"{blast['refusals']} / {blast['reloads']}", "all / 0",
                blast["refusals"] == blast["attempts"] and blast["reloads"] == 0),
        ]  # fmt: skip
        return out
    finally:
        for server in pool.started:
            server.shutdown()
            server.server_close()


def only_batches() -> list[Row]:
    with remote_backends(MEMBERS + 1) as remote:
        return batch_rows(remote[:MEMBERS], remote[MEMBERS])


if __name__ == "__main__":
    print_table(f"HAProxy driver ({os.cpu_count()} cores)",
                only_batches() if sys.argv[1:] == ["batch"] else rows())  # fmt: skip
