"""Multi-tenancy figures (issue 10), each with its goal and pass/fail: the hostile input battery
(tests/data/hostile_specs.yaml, run by tests/dataplane/battery.py) applied ``ROUNDS`` times
against the real operator and an HAProxy Device shared by two tenants, while the other
tenant's VIP serves a client that sends requests back to back (one connection each).

Rows: requests lost by that uninvolved VIP (goal 0); cases that ended as their table says
(goal: all, every round); device reloads (goal: only the legitimate changes of a round, at
most 3: the quota filler in and out, one to spare); time per round.

Part of ``make bench`` (bench/run.py, which provides KUBECONFIG); alone,
``.venv/bin/python bench/tenant.py`` brings up its own test bed when KUBECONFIG is unset.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ROOT / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # helpers: Api, OperatorProcess, kubectl

import defaults  # noqa: E402
from cluster import bench_cluster  # noqa: E402
from table import Row, print_table  # noqa: E402

from helpers import Api  # noqa: E402

ROUNDS = int(os.environ.get("LBAAS_BENCH_BATTERY_ROUNDS", "5"))
TENANT_ENV = {"LBAAS_PARENT_TIMEOUT": "3"}
"""What differs from the product defaults (run.py names it in the part's title)."""
LEGITIMATE_RELOADS = 3


def _battery() -> ModuleType:
    name = "lbaas_bench_battery"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "dataplane" / "battery.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def rows() -> list[Row]:
    haproxy = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not haproxy:
        return [Row("hostile battery", "not measured: haproxy binary not found")]
    battery = _battery()
    hx = battery.hxsupport()
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-tenant-"))
    # Product defaults but the parent timeout: the battery's orphans must turn Error quickly.
    operator = defaults.operator(work / "operator.log", **TENANT_ENV).start()
    backends = [hx.Backend(f"b{i}", f"127.0.61.{i + 101}") for i in range(3)]
    try:
        targets = [(b.address, b.port) for b in backends]
        plane = battery.plane("haproxy")
        with battery.staged(Api(), plane, operator.metrics_port, targets) as stage:
            cases = battery.load_cases(stage.values)
            run = battery.Battery(stage, cases)
            problems: list[str] = []
            reloads = stage.reloads()
            started = time.monotonic()
            with hx.Load(*stage.web, max_requests=10_000_000, max_seconds=3600) as load:
                for _ in range(ROUNDS):
                    problems += run.round()
                    run.clear()
            took = time.monotonic() - started
            reloaded = stage.reloads() - reloads
    finally:
        operator.stop()
        for server in backends:
            server.shutdown()
            server.server_close()
    rejected = sum(c.rejected for c in cases)
    for problem in sorted(set(problems))[:20]:  # what the FAIL row counts, said once each
        print(f"  case not as its table says: {problem}")
    if not problems:
        shutil.rmtree(work, ignore_errors=True)  # kept (operator log) when something failed
    return [
        Row(f"battery ({len(cases)} cases, {rejected} refused by the API server) x {ROUNDS}:"
            f" requests lost by another tenant's VIP, of {load.sent}",
            str(len(load.failures)), "0", not load.failures),
        Row("battery: cases that ended as their table says",
            f"{ROUNDS * len(cases) - len(problems)} / {ROUNDS * len(cases)}", "all",
            not problems),
        Row("battery: device reloads (legitimate changes only)",
            str(reloaded), f"<= {ROUNDS * LEGITIMATE_RELOADS}",
            reloaded <= ROUNDS * LEGITIMATE_RELOADS),
        Row("battery: time per round (apply, outcomes, clear)", f"{took / ROUNDS:.1f} s"),
    ]  # fmt: skip


def main() -> int:
    with bench_cluster("lbaas-bench-tenant"):
        table = rows()
    title = f"Multi-tenancy: hostile specs vs an uninvolved tenant ({os.cpu_count()} cores)"
    print_table(title, table)
    return 0 if all(r.ok is not False for r in table) else 1


if __name__ == "__main__":
    sys.exit(main())
