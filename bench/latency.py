"""Member change -> traffic through the whole operator, on a small and a big device (issue 13).

Two HAProxy devices, one holding 10 VIPs and one holding 1,000 (with a member each), and on
each a measured VIP with a base member, under the operator's product defaults. The bench's
fixed-rate client (bench/fixedrate.py: ``RATE`` requests a second on fresh connections,
errors and non-2xx answers counted) runs through the measured VIP and notes which member
answered. Repeated ``ROUNDS`` times per device (``BENCH_SAMPLES``, default 100: no
percentile from fewer), the members' backends taken in turns from ``ROTATE`` servers:

- create a Member -> the first request it serves;
- set its weight to 0 -> the last request it serves (after that, none);
- delete it -> likewise (a member deleted must get no new requests).

Reported as p50/p95 per kind with the goals (p50 < 100 ms, p95 < 150 ms), the ratio
big/small of the create p50 ("cost follows the change, not the device": <= 1.5), and the
client's errors and non-2xx answers (goal 0: member changes never fail a request).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import defaults
from dataplane import hxsupport_module
from fixedrate import FixedRate
from scale import Row

from helpers import Api, OperatorProcess, kubectl, wait_for

hx = hxsupport_module()  # tests/dataplane/hxsupport.py (bench/dataplane.py shadows the package)
ROUNDS = int(os.environ.get("BENCH_SAMPLES", "100"))
ROTATE, RATE = 4, 500.0
DEFAULTS = defaults.product_env()  # the operator's own settings (the tests' are shorter)
NET = os.environ.get("LBAAS_BENCH_NET", "127.0")


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def device(api: Api, ns: str, name: str, pool: str, state_dir: Path) -> None:
    config = {"stateDir": str(state_dir), "haproxyBinary": hx.haproxy_binary()}
    spec = {
        "driver": "haproxy",
        "config": config,
        "addressPool": [pool],
        "allowedNamespaces": [ns],
        "memberNetworks": ["127.0.0.0/8"],
        "capacity": {"maxVIPs": 2000},
    }
    api.create({"kind": "Device", "metadata": {"name": name}, "spec": spec})
    api.wait_phase("Device", name, None, "Ready", 60)


def fill(api: Api, ns: str, dev: str, count: int, backend: Any) -> None:
    """``count`` VIPs with one member each on ``dev`` (the device's load)."""

    def one(i: int) -> None:
        name = f"{dev}-f{i}"
        vip = {"port": 8080, "protocol": "HTTP", "deviceRef": dev}
        api.create({"kind": "VIP", "metadata": {"name": name, "namespace": ns}, "spec": vip})
        pool = {"vipRef": name, "protocol": "HTTP"}
        api.create({"kind": "Pool", "metadata": {"name": name, "namespace": ns}, "spec": pool})
        member = {"poolRef": name, "address": backend.address, "port": backend.port}
        api.create(
            {"kind": "Member", "metadata": {"name": f"{name}-m", "namespace": ns}, "spec": member}
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    wait_for(
        lambda: all(
            (api.status("VIP", f"{dev}-f{i}", ns).get("phase") == "Active")
            for i in range(0, count, max(1, count // 20))
        ),
        300,
        f"{count} VIPs Active on {dev}",
    )


def measure(api: Api, ns: str, dev: str, backends: list[Any]) -> dict[str, list[float]]:
    base, *extra = backends
    vip = {"port": 8080, "protocol": "HTTP", "deviceRef": dev}
    probe = f"{dev}-probe"
    for kind, name, spec in (
        ("VIP", probe, vip),
        ("Pool", probe, {"vipRef": probe, "protocol": "HTTP"}),
        ("Member", f"{probe}-base", {"poolRef": probe, "address": base.address, "port": base.port}),
    ):
        api.create({"kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec})
    hx.wait_applied(api, "Member", f"{probe}-base", ns, 120)
    address = api.status("VIP", probe, ns)["address"]
    found: dict[str, list[float]] = {"create": [], "weight 0": [], "delete": []}
    with FixedRate(address, 8080, rate=RATE) as client:
        wait_for(lambda: len(client.samples) > 20, 10, "client running")
        for i in range(ROUNDS):
            backend = extra[i % len(extra)]
            name = f"{probe}-m{i}"
            spec = {"poolRef": probe, "address": backend.address, "port": backend.port}
            started = time.monotonic()
            api.create(
                {"kind": "Member", "metadata": {"name": name, "namespace": ns}, "spec": spec}
            )
            found["create"].append(client.first_from(backend.name, started))
            time.sleep(0.1)
            started = time.monotonic()
            api.patch_spec("Member", name, ns, {"weight": 0})
            found["weight 0"].append(client.last_from(backend.name, started))
            api.patch_spec("Member", name, ns, {"weight": 1})
            client.first_from(backend.name, time.monotonic())
            started = time.monotonic()
            api.delete("Member", name, ns)
            found["delete"].append(client.last_from(backend.name, started))
    found["client"] = [float(len(client.samples)), client.errors, client.non_2xx]
    return found


def run(work: Path, *, cleanup: bool = True) -> list[Row]:
    """The table; ``cleanup=False`` when the cluster is thrown away after (make bench on its
    own test bed): deleting 1,000 VIPs through the operator takes longer than measuring."""
    api = Api()
    ns = f"latency-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    backends = hx.Backends()
    dirs = [Path(tempfile.mkdtemp(prefix="lblat-", dir="/tmp")) for _ in range(2)]
    proc = OperatorProcess(work / "latency-operator.log", LBAAS_NAMESPACES=ns, **DEFAULTS).start()
    rows: list[Row] = []
    try:
        sizes = {
            "small": (f"{ns}-s", f"{NET}.94.0/24", 10),
            "big": (f"{ns}-b", f"{NET}.96.0/22", 1000),
        }
        results = {}
        filler = backends.http(1)[0]
        for label, (dev, pool, count) in sizes.items():
            device(api, ns, dev, pool, dirs[0 if label == "small" else 1])
            fill(api, ns, dev, count, filler)
            results[label] = measure(api, ns, dev, backends.http(ROTATE + 1))
        for label, found in results.items():
            sent, errors, non_2xx = (int(v) for v in found.pop("client"))
            for kind, values in found.items():
                ms50, ms95 = p(values, 50) * 1000, p(values, 95) * 1000
                rows.append(
                    Row(
                        f"{kind} -> traffic, device with {sizes[label][2]} VIPs: p50 / p95"
                        f" of {len(values)}",
                        f"{ms50:.0f} / {ms95:.0f} ms",
                        "< 100 / < 150 ms",
                        ms50 < 100 and ms95 < 150,
                    )
                )
            rows.append(
                Row(
                    f"client on the {sizes[label][2]}-VIP device, {sent} requests at"
                    f" {RATE:g}/s: errors / non-2xx",
                    f"{errors} / {non_2xx}",
                    "0 / 0",
                    errors == 0 and non_2xx == 0,
                )
            )
        ratio = statistics.median(results["big"]["create"]) / statistics.median(
            results["small"]["create"]
        )
        rows.append(
            Row(
                "create p50, 1,000-VIP device / 10-VIP device",
                f"{ratio:.2f}",
                "<= 1.5",
                ratio <= 1.5,
            )
        )
    finally:
        if cleanup:
            for vip in hx.names_in(api, "VIP", ns):
                api.delete("VIP", vip, ns)
            with contextlib.suppress(Exception):
                wait_for(lambda: not hx.names_in(api, "VIP", ns), 120, "VIPs gone")
        proc.stop()
        for state_dir in dirs:
            hx.stop_haproxy(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)
        for server in backends.started:
            server.shutdown()
            server.server_close()
    return rows
