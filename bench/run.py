"""`make bench`: the operator's speed and memory against the test bed, as tables with goals.

Not a test: nothing here fails the build. Each table prints what was measured, the goal where
an issue set one, and pass/FAIL. Baselines are measured in the same run (a bare kopf operator
on the same objects): absolute times on a shared 2-core machine drift, ratios much less.

  1. create a VIP + Pool + 3 Members -> all Active (fake driver), latency over 50 trees
  2. fleet scale (bench/scale.py): SCALE VIPs x 10 members with a Pool and a HealthMonitor
     each (default SCALE=1000: 13,000 objects), cold start vs bare kopf, writes, warm restart
  3. scale-out (bench/scaleout.py): 1 agent vs 3 agents with a slow driver
  4. member change -> traffic through the operator, 10-VIP vs 1,000-VIP HAProxy device
  5. HAProxy driver level (bench/dataplane.py, bench/hxdriver.py)
  6. HAProxy liveness through the operator: SIGKILL under load (bench/hxoperator.py)
  7. Services of type LoadBalancer: EndpointSlice change -> traffic (bench/services.py)
  8. multi-tenancy (bench/tenant.py): requests another tenant's VIP loses while the hostile
     battery is applied and retried (goal 0)
  9. L7 policy change -> traffic through the operator (bench/l7.py): p95 < 150 ms, 0 errors,
     0 reloads
 10. HAProxy and Envoy side by side (bench/sidebyside.py), driver level: member add -> its
     first answer p50/p95, requests/s through one VIP, apply of 1,000 VIPs into an empty
     device, the data plane's memory at 1,000 VIPs
 11. TLS termination (bench/tls.py): handshakes/s and requests/s through a terminated VIP vs
      a hand-written HAProxy config (ratio >= 0.9); Secret renewed -> served (p95 < 2 s),
      under load: 0 failures, no reload

``SCALE=200 make bench`` runs a smaller fleet; ``BENCH=2,4 make bench`` only those parts.

Every part runs the operator with the product's defaults (bench/defaults.py) unless its title
says otherwise. ``make bench`` exits 1 when a goal is missed or a part could not measure
(``BENCH_STRICT=0``: only report). When the bench starts its own test bed, the API server
writes an audit log (tests/auditlog.py): API writes are counted at the server, by verb and
resource, Leases and Events included. Knobs for quick runs and for proving the verdict:
``BENCH_TREES`` (part 1's trees, 50) and ``BENCH_PLANT_DELAY`` (seconds every fake-driver call
of part 1 takes: a planted slow device; tests/integration/test_bench_verdict.py runs it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers: Api, OperatorProcess, ...
sys.path.insert(0, str(HERE))

import defaults  # noqa: E402
import scale  # noqa: E402
from cluster import bench_cluster, fresh  # noqa: E402
from table import NOT_MEASURED, Row, exit_code, missed, percentile, print_table  # noqa: E402

from helpers import Api, FakeDevice, kubectl, tree  # noqa: E402
from lbaas_devtools.devcluster import Cluster  # noqa: E402


def bench_latency(api: Api, work: Path, trees: int) -> list[Row]:
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    operator = defaults.operator(work / "create-operator.log", LBAAS_NAMESPACES=ns)
    operator.start()
    latencies = []
    try:
        device = FakeDevice(  # waits until the operator's agent has probed it Ready
            api,
            f"{ns}-dev",
            work,
            allowedNamespaces=[ns],
            addressPool=["10.50.0.0/16"],
            memberNetworks=["192.0.2.0/24"],
            capacity={"maxVIPs": 10000},
        ).create()
        if PLANTED_DELAY:
            device.control(delay=PLANTED_DELAY)
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
    finally:
        assert operator.proc is not None
        rss = scale.peak_rss_mb(operator.proc.pid)
        operator.stop()
    ms = {q: percentile(latencies, q) * 1000 for q in (50, 95, 99, 100)}
    return [
        Row("p50 / p95", f"{ms[50]:.0f} / {ms[95]:.0f} ms"),
        Row("p99 / max", f"{ms[99]:.0f} / {ms[100]:.0f} ms", "p99 < 1 s", ms[99] < 1000),
        Row("operator peak RSS", f"{rss:.0f} MB"),
    ]


RESET: Callable[[], None] | None = None
"""Set by ``run_benchmarks``: gives the next part a cluster of its own when it can."""
MISSED: list[str] = []
"""Every goal missed (and part not measured) so far: the run's verdict."""
TREES = int(os.environ.get("BENCH_TREES", "50"))
PLANTED_DELAY = float(os.environ.get("BENCH_PLANT_DELAY", "0"))


def part(number: int, title: str, fn: Callable[[], list[Row]]) -> None:
    """One table; a part that fails prints why instead of its rows (never hidden)."""
    wanted = os.environ.get("BENCH")
    if wanted and str(number) not in wanted.split(","):
        return
    started = time.monotonic()
    try:
        if RESET is not None:
            RESET()
        rows = fn()
    except Exception as exc:
        traceback.print_exc()
        rows = [Row(NOT_MEASURED, f"{type(exc).__name__}: {exc}")]
    MISSED.extend(missed(f"({number})", rows))
    print_table(f"({number}) {title}  [{time.monotonic() - started:.0f} s]", rows)


def run_benchmarks(cluster: Cluster, size: int, *, own_cluster: bool) -> None:
    """Every part on a fresh test bed when the bench started it (2 s each): what a part
    leaves behind (13,000 objects, Devices an agent would take over) must not load the next.
    On a cluster given by KUBECONFIG the parts share it; each uses namespaces of its own."""
    global RESET
    RESET = fresh if own_cluster else None
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-"))
    print(f"cluster: {cluster.source}; work dir {work}; machine: {os.cpu_count()} cores")

    planted = f", PLANTED: every driver call {PLANTED_DELAY:g} s" if PLANTED_DELAY else ""
    part(1, f"create VIP + Pool + 3 Members -> all Active, {TREES} trees, fake driver{planted};"
            f" {defaults.settings_note()}",
         lambda: bench_latency(Api(), work, TREES))  # fmt: skip
    part(2, f"fleet scale: {size} VIPs x 10 members, a Pool and a HealthMonitor each;"
            f" {defaults.settings_note()}",
         lambda: scale.run(work, size, 10, reset=RESET))  # fmt: skip

    def scaleout() -> list[Row]:
        import scaleout as module

        return module.run(work)

    def latency() -> list[Row]:
        import latency as module

        return module.run(work, cleanup=RESET is None)

    def dataplane() -> list[Row]:
        import dataplane as module

        return [
            Row(str(what), str(value))
            for what, value in module.bench_dataplane(with_operator=False)
        ]

    note = defaults.settings_note()
    part(3, f"scale-out: controller + 1 or 3 agents, slow driver; {note}", scaleout)
    part(4, f"member change -> traffic through the operator (HAProxy); {note}", latency)

    def liveness() -> list[Row]:
        import hxoperator as module

        return module.rows(work)

    def services() -> list[Row]:
        import services as module

        return module.bench_services()

    part(5, "HAProxy driver", dataplane)
    part(6, f"HAProxy liveness through the operator: SIGKILL under load; {note}", liveness)
    part(7, f"Services: EndpointSlice change -> traffic (HAProxy); {note}", services)

    def tenancy() -> list[Row]:
        import tenant  # bench/tenant.py

        return [Row(r.what, r.value, r.goal, r.ok) for r in tenant.rows()]

    import tenant as tenant_module

    part(8, "multi-tenancy: the hostile battery vs another tenant's VIP (HAProxy);"
            f" {defaults.settings_note(**tenant_module.TENANT_ENV)}", tenancy)  # fmt: skip

    def l7() -> list[Row]:
        import l7 as module  # bench/l7.py

        return module.bench_l7()

    part(9, f"L7 policy change -> traffic through the operator (HAProxy); {note}", l7)

    def side_by_side() -> list[Row]:
        import sidebyside  # bench/sidebyside.py

        return sidebyside.rows()

    part(10, "HAProxy and Envoy side by side, driver level (no operator)", side_by_side)

    def tls() -> list[Row]:
        import tls as module  # bench/tls.py

        return module.rows(work)

    part(11, f"TLS termination (HAProxy): throughput vs a minimal config, rotation; {note}", tls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=int(os.environ.get("SCALE", "1000")))
    args = parser.parse_args()
    started = time.monotonic()
    with bench_cluster("lbaas-bench") as (cluster, owned):
        run_benchmarks(cluster, args.scale, own_cluster=owned)
    strict = os.environ.get("BENCH_STRICT", "1") != "0"
    print(f"\nmake bench: {time.monotonic() - started:.0f} s")
    if MISSED:
        verdict = "FAILED" if strict else "goals missed (BENCH_STRICT=0: reported only)"
        print(f"make bench {verdict}:\n  " + "\n  ".join(MISSED))
    else:
        print("make bench: every goal met")
    return exit_code(MISSED, strict=strict)


if __name__ == "__main__":
    sys.exit(main())
