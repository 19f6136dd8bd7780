"""Data-plane figures of the HAProxy driver (part of `make bench`; also runs on its own).

(a) Through the operator (product defaults, bench/defaults.py), against the test bed: a Device
    of driver haproxy and a VIP with one member; then, ``MEMBERS_TO_ADD`` times (100,
    ``BENCH_SAMPLES``), a Member is created through the API and the time until the first
    request it serves through the bench's fixed-rate client (bench/fixedrate.py) is taken;
    the member is deleted again before the next one (backends taken in turns from four).
    Reported as p50/p95/max, with the client's errors and non-2xx answers.
(b) Driver level: HAProxyDriver.apply called directly on a device loaded with 100 VIPs x 10
    members (HTTP health checks on): the time of one full apply of a structural change
    (render, ``haproxy -c``, hitless reload), the worst of 5 and each (too few for a
    percentile), and for contrast a runtime-only change (member weight: ``set server``, no
    reload), p50 of ``MEMBERS_TO_ADD``. The load itself is timed as one ``apply_many`` of
    all into an empty device (one reload).
(c) Driver level, with goals and pass/fail (bench/hxdriver.py): member create/delete/weight on
    10 vs 1,000 VIPs, member create -> first request, SIGKILL detection and traffic back, and
    requests lost / reloads while hostile VIPs are refused.
(d) Through the operator, with goals and pass/fail (bench/hxoperator.py): SIGKILL of the
    HAProxy master under a steady client, the operator's watch and probe restarting it:
    detection, traffic back, requests failed.

``bench_dataplane()`` expects KUBECONFIG to name an API server with our CRDs (bench/run.py
sets that up) and no other operator running against it. Run alone
(``.venv/bin/python bench/dataplane.py``) it brings up its own test bed when KUBECONFIG is
unset, and stops it again afterwards.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # the tests' helpers: Api, OperatorProcess, kubectl
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import defaults  # noqa: E402  (bench/defaults.py)
import hxdriver  # noqa: E402  (bench/hxdriver.py)
import hxoperator  # noqa: E402  (bench/hxoperator.py)
from cluster import bench_cluster  # noqa: E402
from fixedrate import FixedRate  # noqa: E402

from helpers import Api, kubectl, wait_for  # noqa: E402
from lbaas.drivers.contract import DeviceHandle  # noqa: E402
from lbaas.drivers.haproxy import HAProxyDriver  # noqa: E402
from lbaas.drivers.model import LoadBalancer  # noqa: E402

MEMBERS_TO_ADD = int(os.environ.get("BENCH_SAMPLES", "100"))
ROTATE = 4
VIPS, MEMBERS_PER_VIP, REPEATS = 100, 10, 5
POOL_A = "127.0.12.0/28"  # (a): the Device's addressPool
VIP_NET_B = f"{hxdriver.NET}.13."  # (b): VIP i listens on <LBAAS_BENCH_NET>.13.<i+1>


# tests/dataplane/hxsupport.py (backends, clients), loaded by path: when bench/run.py imports
# this file as ``dataplane``, the tests' ``dataplane`` package is not importable.
hxsupport_module = hxdriver._hxsupport


def _haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not found:
        raise RuntimeError("haproxy binary not found")
    return found


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


# -- (a) Member create -> first request served, through the operator ---------------------------


def member_to_first_request(work: Path, count: int = MEMBERS_TO_ADD) -> tuple[list[float], str]:
    hx = hxsupport_module()
    binary = _haproxy()
    api = Api()
    ns = f"bench-dp-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    state_dir = Path(tempfile.mkdtemp(prefix="lbbn-", dir="/tmp"))
    device = f"{ns}-hx"
    backends = hx.Backends()
    config = {"managed": True, "stateDir": str(state_dir), "haproxyBinary": binary}
    # Scoped to its namespace: the cluster may still hold thousands of objects of the other
    # benchmarks, which this operator would otherwise resume first.
    operator = defaults.operator(work / "dataplane-operator.log", LBAAS_NAMESPACES=ns).start()
    try:
        api.create(
            {
                "kind": "Device",
                "metadata": {"name": device},
                "spec": {
                    "driver": "haproxy",
                    "config": config,
                    "addressPool": [POOL_A],
                    "allowedNamespaces": [ns],
                    "memberNetworks": ["127.0.0.0/8"],  # loopback backends: allowed explicitly
                },
            }
        )
        api.wait_phase("Device", device, None, "Ready", 30)
        base, *new = backends.http(ROTATE + 1)
        port = hx.free_port_in(POOL_A)
        objs = [
            ("VIP", "web", {"port": port, "protocol": "HTTP"}),
            ("Pool", "web", {"vipRef": "web", "protocol": "HTTP"}),
            ("Member", "web-base", {"poolRef": "web", "address": base.address, "port": base.port}),
        ]
        for kind, name, spec in objs:
            api.create({"kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec})
        for kind, name, _ in objs:
            hx.wait_applied(api, kind, name, ns)
        address = api.status("VIP", "web", ns)["address"]

        latencies = []
        with FixedRate(address, port, rate=500) as client:
            for i in range(count):
                backend = new[i % len(new)]
                name = f"web-m{i}"
                spec = {"poolRef": "web", "address": backend.address, "port": backend.port}
                started = time.monotonic()
                api.create(
                    {"kind": "Member", "metadata": {"name": name, "namespace": ns}, "spec": spec}
                )
                latencies.append(client.first_from(backend.name, started, timeout=60))
                api.delete("Member", name, ns)  # back to one member: the next one gets half
                api.wait_gone("Member", name, ns)
                client.last_from(backend.name, time.monotonic())
        return latencies, client.summary()
    finally:
        for kind, name in (("Member", "web-base"), ("Pool", "web"), ("VIP", "web")):
            api.delete(kind, name, ns)
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


# -- (b) one full apply on a device with 100 VIPs x 10 members, driver level --------------------


def _lb(i: int, port: int, backends: list[Any], weight: int = 1, **listener: Any) -> LoadBalancer:
    name = f"v{i:03d}"
    address = f"{VIP_NET_B}{i + 1}"
    return hxdriver.tree(
        name, address, port, backends, weight=weight, member_prefix=f"{name}-m", delay=5,
        **listener,
    )  # fmt: skip


def full_apply_100x10() -> dict[str, float]:
    hx = hxsupport_module()
    binary = _haproxy()
    state_dir = Path(tempfile.mkdtemp(prefix="lbbn-", dir="/tmp"))
    config = {"stateDir": str(state_dir), "haproxyBinary": binary}
    handle = DeviceHandle("bench", driver="haproxy", config=config)
    driver = HAProxyDriver()
    backends = hx.Backends()
    try:
        members = backends.http(MEMBERS_PER_VIP)  # every VIP's 10 members: 10 real servers
        port = hx.free_port_in(f"{VIP_NET_B}0/25")
        lbs = [_lb(i, port, members) for i in range(VIPS)]
        # Loaded in one batch: the per-VIP load is measured by bench/hxdriver.py (part 5 too).
        outcome = driver.apply_many(handle, lbs)
        assert all(error is None for error in outcome.values()), outcome
        assert hx.get(lbs[-1].address, port)[0] == 200

        full, runtime = [], []
        for k in range(REPEATS):
            reloads = driver.reload_count(handle)
            changed = _lb(k * 7, port, members, connection_limit=1000 + k)  # frontend maxconn
            started = time.monotonic()
            driver.apply(handle, changed)
            full.append(time.monotonic() - started)
            assert driver.reload_count(handle) == reloads + 1
        reloads = driver.reload_count(handle)
        for k in range(MEMBERS_TO_ADD):
            i = (k % REPEATS) * 7
            weighted = _lb(i, port, members, weight=2 + k % 200, connection_limit=1000 + k % 5)
            started = time.monotonic()
            driver.apply(handle, weighted)
            runtime.append(time.monotonic() - started)
        assert driver.reload_count(handle) == reloads, "a weight change reloaded HAProxy"
        config_lines = len(hx.device_config(state_dir).splitlines())
        hx.stop_haproxy(state_dir)
        batch_s = _load_in_one_batch(hx, binary, lbs)
        return {
            "batch_s": batch_s,
            "full": full,
            "runtime": statistics.median(runtime),
            "runtime_95": _percentile(runtime, 95),
            "runtime_n": len(runtime),
            "config_lines": config_lines,
        }
    finally:
        hx.stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        for server in backends.started:
            server.shutdown()
            server.server_close()


def _load_in_one_batch(hx: ModuleType, binary: str, lbs: list[LoadBalancer]) -> float:
    """The same VIPs into a second, empty device (HAProxy running) with one ``apply_many``
    (the first device is stopped: its listeners would be another process's here)."""
    state_dir = Path(tempfile.mkdtemp(prefix="lbbn-", dir="/tmp"))
    config = {"stateDir": str(state_dir), "haproxyBinary": binary}
    handle = DeviceHandle("bench-batch", driver="haproxy", config=config)
    driver = HAProxyDriver()
    try:
        assert driver.probe(handle).ready
        started = time.monotonic()
        outcome = driver.apply_many(handle, lbs)
        took = time.monotonic() - started
        assert all(error is None for error in outcome.values()), outcome
        assert driver.reload_count(handle) == 1
        return took
    finally:
        hx.stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


# -- entry points --------------------------------------------------------------------------------


def bench_dataplane(
    kubeconfig: str | None = None, with_operator: bool = True
) -> list[tuple[str, float | str]]:
    """Both measurements as (what, value) rows; (a) needs KUBECONFIG (or ``kubeconfig``).
    ``make bench`` leaves (a) out: bench/latency.py measures it with goals."""
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    rows: list[tuple[str, float | str]] = []
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-dp-"))
    if not with_operator:
        pass
    elif os.environ.get("KUBECONFIG"):
        latencies, client = member_to_first_request(work)
        what = f"Member create -> first request served (operator, {len(latencies)} members)"
        rows += [
            (f"{what}: p50", _ms(statistics.median(latencies))),
            (f"{what}: p95", _ms(_percentile(latencies, 95))),
            (f"{what}: max", _ms(max(latencies))),
            (f"{what}: the client", client),
        ]
        rows += [(f"operator: {row.what}", _with_goal(row)) for row in hxoperator.rows(work)]
    else:
        rows.append(("Member create -> first request served", "skipped: KUBECONFIG unset"))
        rows.append(("SIGKILL of HAProxy through the operator", "skipped: KUBECONFIG unset"))
    b = full_apply_100x10()
    shutil.rmtree(work, ignore_errors=True)  # kept (operator log) only when something failed
    size = f"{VIPS} VIPs x {MEMBERS_PER_VIP} members"
    rows += [
        (f"driver: load {size}, one apply_many (one reload)", f"{b['batch_s']:.1f} s"),
        (
            f"driver: one full apply on {size} (validate + reload), worst of {REPEATS}",
            f"{_ms(max(b['full']))} (each: {', '.join(_ms(v) for v in b['full'])})",
        ),
        (
            f"driver: runtime-only apply (weights, no reload), p50 / p95 of {b['runtime_n']}",
            f"{_ms(b['runtime'])} / {_ms(b['runtime_95'])}",
        ),
        ("driver: configuration size (haproxy.cfg + conf.d)", f"{b['config_lines']:.0f} lines"),
    ]
    rows += [(f"driver: {row.what}", _with_goal(row)) for row in hxdriver.rows()]
    return rows


def _with_goal(row: Any) -> str:
    """A bench/hxdriver.py row's value with its goal and verdict, for the two-column table."""
    return f"{row.value}  (goal {row.goal}: {row.verdict})" if row.goal else row.value


def run(kubeconfig: str) -> list[tuple[str, str]]:
    return [(what, str(value)) for what, value in bench_dataplane(kubeconfig)]


def main() -> int:
    with bench_cluster("lbaas-bench-dp"):
        rows = bench_dataplane()
    width = max(len(what) for what, _ in rows)
    print(f"\nHAProxy data plane ({os.cpu_count()} cores)\n" + "-" * (width + 12))
    for what, value in rows:
        print(f"{what:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
