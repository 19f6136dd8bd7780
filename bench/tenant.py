"""Multi-tenancy figures (issue 10), each with its goal and pass/fail: the hostile input battery
(tests/data/hostile_specs.yaml, run by tests/dataplane/battery.py) applied ``ROUNDS`` times
against the real operator and an HAProxy Device shared by three tenants, while tenant A's
VIP serves a client that sends requests back to back (one connection each) and the attacked
tenant B's VIP serves 8 long-lived keep-alive connections.

Rows: requests lost by the uninvolved VIP and on the keep-alive connections (goal 0 each);
cases that ended as their table says (goal: all, every round; creates and updates of live
objects); device reloads in the create steps (goal: at most one per step, the refused
monitor's own tree, plus one per create the device serves legitimately); reloads in all;
time per round.

Part of ``make bench`` (bench/run.py, which provides KUBECONFIG); alone,
``.venv/bin/python bench/tenant.py`` brings up its own test bed when KUBECONFIG is unset.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
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
REFUSALS = ("rejected", "operator cases")
"""Steps where every change is refused but one (the refused monitor's own tree) and the creates
the device serves legitimately: at most one reload each, plus one per such create (as
tests/dataplane/test_hostile_battery.py judges them); the updates' reloads are judged per batch
by the battery itself."""


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
    backends = [hx.Backend(f"b{i}", hx.net(61, i + 101)) for i in range(4)]
    try:
        targets = [(b.address, b.port) for b in backends]
        plane = battery.plane("haproxy")
        with battery.staged(Api(), plane, operator.metrics_port, targets) as stage:
            outcome = battery.run(stage, ROUNDS)
    finally:
        operator.stop()
        for server in backends:
            server.shutdown()
            server.server_close()
    cases, problems, load, kept = outcome.cases, outcome.problems, outcome.load, outcome.keepalive
    rejected = sum(c.rejected for c in cases)
    updates = sum(c.update is not None for c in cases)
    for problem in sorted(set(problems))[:20]:  # what the FAIL row counts, said once each
        print(f"  case not as its table says: {problem}")
    for known in sorted(set(outcome.known)):
        print(f"  known problem, still there: {known}")
    if not problems:
        shutil.rmtree(work, ignore_errors=True)  # kept (operator log) when something failed
    refusals = sum(n for step, n in outcome.steps if step in REFUSALS)
    # As the battery's test judges them: the creates the device serves legitimately (a VIP
    # Active, a case declaring ``reloads``) may disrupt it once each, the refused ones not.
    legitimate = sum(int(c.expect.get("reloads", 0)) for c in cases if c.update is None)
    legitimate += sum(c.kind == "VIP" and c.expect.get("phase") == "Active" for c in cases)
    allowed = ROUNDS * (len(REFUSALS) + legitimate)
    return [
        Row(f"battery ({len(cases)} cases: {rejected} refused by the API server, {updates}"
            f" updates of live objects) x {ROUNDS}: requests lost by another tenant's VIP,"
            f" of {load.sent}", str(len(load.failures)), "0", not load.failures),
        Row(f"battery: requests lost on {kept.connections} keep-alive connections through"
            f" the attacked VIP, of {kept.requests} ({kept.closed} closed politely)",
            str(len(kept.failures)), "0", not kept.failures),
        Row("battery: cases that ended as their table says",
            f"{ROUNDS * len(cases) - len(problems)} / {ROUNDS * len(cases)}", "all",
            not problems),
        Row(f"battery: device reloads in the create steps ({legitimate} creates served"
            " legitimately per round, the refused ones none)",
            str(refusals), f"<= {allowed}", refusals <= allowed),
        Row("battery: device reloads in all (live trees made and cleared, quota fillers)",
            str(outcome.reloads)),
        Row("battery: time per round (apply, outcomes, updates, clear)",
            f"{outcome.seconds / ROUNDS:.1f} s"),
    ]  # fmt: skip


def main() -> int:
    with bench_cluster("lbaas-bench-tenant"):
        table = rows()
    title = f"Multi-tenancy: hostile specs vs an uninvolved tenant ({os.cpu_count()} cores)"
    print_table(title, table)
    return 0 if all(r.ok is not False for r in table) else 1


if __name__ == "__main__":
    sys.exit(main())
