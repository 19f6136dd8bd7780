"""Services of type LoadBalancer: EndpointSlice change -> traffic, through HAProxy (part of
`make bench`; also runs on its own).

A Service (port ``http``, a named targetPort) is served by the operator on a Device of driver
haproxy; each backend is a "pod" with an EndpointSlice of its own. ``PODS`` times, a pod's
slice appears and the time until the first request it answers is taken (a client sends
requests back to back), then its slice is deleted and the time until its last request is
taken (after it, 30 requests in a row went elsewhere). Reported as p50/p95/max against the
issue's goal: members follow the endpoints within a second.

``bench_services()`` expects KUBECONFIG to name an API server with our CRDs and no other
operator running against it (bench/run.py sets that up).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
for folder in (TESTS, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import dataplane  # noqa: E402  # bench/dataplane.py: HAProxy and the tests' hxsupport
import defaults  # noqa: E402
from cluster import bench_cluster  # noqa: E402
from svcsupport import Pods, Svc, until_not_served_by, until_served_by  # noqa: E402
from table import Row, percentile, print_table  # noqa: E402

from helpers import Api, kubectl, wait_for  # noqa: E402

PODS = 20
GOAL = 1.0  # seconds (issue 14: "Members follow within a second")
POOL = "127.0.50.240/28"  # VIPs: this project's Service range, the tests use the lower blocks
BACKEND_NET = "127.0.51."


def endpoint_to_traffic(work: Path, pods: int = PODS) -> tuple[list[float], list[float]]:
    """(seconds until an added pod served, seconds until a removed pod stopped) per pod."""
    hx = dataplane.hxsupport_module()
    binary = dataplane._haproxy()
    api = Api()
    ns = f"bench-svc-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    state_dir = Path(tempfile.mkdtemp(prefix="lbsv-", dir="/tmp"))
    device = f"{ns}-hx"
    servers = [hx.Backend(f"pod{i}", f"{BACKEND_NET}{200 + i}") for i in range(pods + 1)]
    operator = defaults.operator(work / "services-operator.log", LBAAS_NAMESPACES=ns).start()
    svc = Svc(api, ns, "shop")
    try:
        api.create(
            {
                "kind": "Device",
                "metadata": {"name": device},
                "spec": {
                    "driver": "haproxy",
                    "config": {
                        "managed": True,
                        "stateDir": str(state_dir),
                        "haproxyBinary": binary,
                    },
                    "addressPool": [POOL],
                    "allowedNamespaces": [ns],
                    "memberNetworks": ["127.0.0.0/8"],
                },
            }
        )
        api.wait_phase("Device", device, None, "Ready", 30)
        port = hx.free_port_in(POOL)
        svc.create([{"name": "http", "port": port, "targetPort": "http"}])
        slices = Pods(svc)
        base, *others = servers
        slices.up(base)
        address = wait_for(svc.ingress_ip, 30, "an EXTERNAL-IP")

        def send() -> None:
            hx.get(address, port, timeout=2)

        until_served_by(base, send, timeout=30)
        added, removed = [], []
        for pod in others:
            slices.up(pod)
            added.append(until_served_by(pod, send))
            slices.down(pod)
            removed.append(until_not_served_by(pod, send))
        return added, removed
    finally:
        with contextlib.suppress(Exception):
            svc.delete()
            wait_for(lambda: svc.get() is None, 30, "the Service gone")
            api.delete("Device", device)
            wait_for(lambda: api.get("Device", device) is None, 30, "device gone")
        operator.stop()
        hx.stop_haproxy(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        for server in servers:
            server.shutdown()
            server.server_close()


def bench_services() -> list[Row]:
    """p50/p95 (with goals) and max of both directions."""
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-svc-"))
    added, removed = endpoint_to_traffic(work)
    rows: list[Row] = []
    for what, values in (
        ("pod added -> serves", added),
        ("pod removed -> stops", removed),
        ("both", added + removed),
    ):
        for label, value in (
            ("p50", statistics.median(values)),
            ("p95", percentile(values, 95)),
            ("max", max(values)),
        ):
            goal = f"< {GOAL * 1000:.0f} ms" if label != "max" else ""
            ok = None if label == "max" else value < GOAL
            rows.append(Row(f"{what} ({len(values)}): {label}", f"{value * 1000:.0f} ms", goal, ok))
    shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> int:
    started = time.monotonic()
    with bench_cluster("lbaas-bench-svc"):
        rows = bench_services()
    print_table("Services: EndpointSlice change -> traffic follows (HAProxy, operator)", rows)
    print(f"({time.monotonic() - started:.0f} s, {os.cpu_count()} cores)")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
