"""`make bench`: the operator's speed and memory against the test bed, printed as tables.

Not a test: nothing here asserts a target. It measures, with the fake driver (applies are
instant, so the figures are the operator's own cost):
  (a) latency from creating VIP + Pool + 3 Members to all five Active, over 50 trees;
  (b) time for N VIPs x 10 members to converge from an operator cold start;
  (c) the operator's peak RSS;
and, when HAProxy is installed, the data-plane figures of bench/dataplane.py and the
multi-tenancy figures of bench/tenant.py (requests another tenant loses while the hostile
battery is applied and retried; goal 0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers: Api, OperatorProcess, ...
sys.path.insert(0, str(HERE))

from helpers import Api, FakeDevice, OperatorProcess, kubectl, tree  # noqa: E402
from lbaas_devtools.devcluster import Cluster, down, up  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}\n" + "-" * (width + 20))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phases(api: Api, ns: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for plural in ("vips", "pools", "members"):
        items = api.custom.list_namespaced_custom_object("lbaas.dev", "v1alpha1", ns, plural)
        for item in items["items"]:
            phase = (item.get("status") or {}).get("phase") or "None"
            counts[phase] = counts.get(phase, 0) + 1
    return counts


def new_namespace() -> str:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    return ns


def bench_latency(api: Api, work: Path, trees: int) -> list[float]:
    ns = new_namespace()
    FakeDevice(
        api,
        f"{ns}-dev",
        work,
        allowedNamespaces=[ns],
        addressPool=["10.50.0.0/16"],
        capacity={"maxVIPs": 10000},
    ).create()
    latencies = []
    for i in range(trees):
        objs = tree(ns, f"l{i}", members=3, monitor=False)
        started = time.monotonic()
        for obj in objs:
            api.create(obj)
        pending = {(o["kind"], o["metadata"]["name"]) for o in objs}
        while pending:
            for kind, name in list(pending):
                if api.status(kind, name, ns).get("phase") == "Active":
                    pending.discard((kind, name))
            if pending:
                time.sleep(0.01)
        latencies.append(time.monotonic() - started)
    return latencies


def bench_cold_start(
    api: Api,
    work: Path,
    vips: int,
    members: int,
    log: Path,
) -> tuple[float, float, float, int]:
    """Create everything with no operator running, then start one and time convergence."""
    ns = new_namespace()
    device = FakeDevice(
        api,
        f"{ns}-dev",
        work,
        allowedNamespaces=[ns],
        addressPool=["10.60.0.0/16"],
        capacity={"maxVIPs": 10000},
    )
    api.create(device.body)
    created = time.monotonic()
    for i in range(vips):
        for obj in tree(ns, f"c{i}", members=members, monitor=False):
            api.create(obj)
    create_s = time.monotonic() - created
    total = vips * (members + 2)
    operator = OperatorProcess(log, LBAAS_MEMBER_STATUS_INTERVAL="30", LBAAS_PROBE_INTERVAL="5")
    started = time.monotonic()
    operator.start()
    assert operator.proc is not None
    while True:
        counts = phases(api, ns)
        if counts.get("Active", 0) == total:
            break
        if time.monotonic() - started > 900:
            raise SystemExit(f"no convergence after 900 s: {counts}")
        time.sleep(0.5)
    converge_s = time.monotonic() - started
    rss = peak_rss_mb(operator.proc.pid)
    operator.stop()
    return create_s, converge_s, rss, device.state().get("applies", 0)


def run_benchmarks(args: argparse.Namespace, cluster: Cluster) -> None:
    os.environ["KUBECONFIG"] = cluster.kubeconfig
    kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        kubectl("wait", "--for=condition=Established", "-f", str(crd), "--timeout=60s")
    api = Api()
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-"))
    print(f"cluster: {cluster.source}; work dir {work}; machine: {os.cpu_count()} cores")

    operator = OperatorProcess(work / "latency-operator.log").start()
    try:
        latencies = bench_latency(api, work, args.trees)
    finally:
        assert operator.proc is not None
        latency_rss = peak_rss_mb(operator.proc.pid)
        operator.stop()
    table(
        f"(a) create VIP + Pool + 3 Members -> all Active, {args.trees} trees, fake driver",
        [
            ("p50", f"{statistics.median(latencies) * 1000:.0f} ms"),
            ("p95", f"{percentile(latencies, 95) * 1000:.0f} ms"),
            ("p99", f"{percentile(latencies, 99) * 1000:.0f} ms"),
            ("max", f"{max(latencies) * 1000:.0f} ms"),
            ("operator peak RSS", f"{latency_rss:.0f} MB"),
        ],
    )

    create_s, converge_s, rss, applies = bench_cold_start(
        api, work, args.vips, args.members, work / "cold-operator.log"
    )
    objects = args.vips * (args.members + 2)
    table(
        f"(b)+(c) {args.vips} VIPs x {args.members} members ({objects} objects),"
        f" operator cold start",
        [
            ("objects created (API, no operator)", f"{create_s:.1f} s"),
            ("cold start -> all Active", f"{converge_s:.1f} s"),
            ("applies by the driver", str(applies)),
            ("operator peak RSS", f"{rss:.0f} MB"),
        ],
    )

    if not args.no_dataplane:
        try:
            import dataplane  # bench/dataplane.py

            rows: list[tuple[str, Any]] = dataplane.bench_dataplane()
            table("HAProxy data plane", [(str(k), str(v)) for k, v in rows])
        except Exception as exc:  # report, don't hide: the table says why it is missing
            table("HAProxy data plane", [("not measured", f"{type(exc).__name__}: {exc}")])
        try:
            import tenant  # bench/tenant.py

            tenant.print_table(tenant.rows())
        except Exception as exc:
            table("Multi-tenancy", [("not measured", f"{type(exc).__name__}: {exc}")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--vips", type=int, default=200)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--no-dataplane", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        os.environ.setdefault("TESTBED_STATE", f"/tmp/lbaas-bench-{os.getuid()}")
    started_here = not os.environ.get("KUBECONFIG")
    cluster = up(ROOT)
    try:
        run_benchmarks(args, cluster)
    finally:
        if started_here and cluster.source == "testbed":
            down(ROOT)  # a benchmark leaves no API server behind
    return 0


if __name__ == "__main__":
    sys.exit(main())
