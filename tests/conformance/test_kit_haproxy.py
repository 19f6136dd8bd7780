"""The kit against the HAProxy driver, with real traffic, and against a driver that lies.

``haproxy`` is loaded by name as the operator loads it: while it implements contract 0 it
runs through the compatibility shim, which this run proves as well. ``reduced`` is HAProxy
behind a smaller declaration that includes one feature it implements wrongly (every weight
is 1): the kit must fail exactly that feature and skip the undeclared ones. The support
matrix is then made from both reports with the console script.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conformance.kitsupport import (
    SCRIPT,
    KitRun,
    haproxy_config,
    junit_counts,
    proven_by_tests,
    run_kit,
)
from lbaas_reduced_driver import DECLARED as REDUCED

from lbaas.drivers.capabilities import FEATURES

pytestmark = pytest.mark.haproxy

BUDGET = 120.0
"""Seconds the whole kit may take against HAProxy (see the report of the run)."""


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> KitRun:
    tmp = tmp_path_factory.mktemp("haproxy")
    return run_kit(tmp, "haproxy", haproxy_config(tmp, vip_block=85))


@pytest.fixture(scope="module")
def reduced(tmp_path_factory: pytest.TempPathFactory) -> KitRun:
    tmp = tmp_path_factory.mktemp("reduced")
    return run_kit(tmp, "reduced", haproxy_config(tmp, vip_block=87))


def traffic_tested() -> set[str]:
    """Features with a test in the traffic layer (real requests through the device)."""
    from lbaas_conformance.features import LAYER_OF, TRAFFIC

    found = proven_by_tests().items()
    return {f for f, tests in found if any(LAYER_OF.get(t) == TRAFFIC for t in tests)}


KNOWN_BUGS: dict[str, str] = {}
"""Failures the kit finds in the HAProxy driver, by feature, until they are fixed (a strict
expected failure each). None now: the three it found when the driver moved to contract 1 — a
member DOWN for good once its monitor was removed (monitor.tcp), an admin-down listener seen
as drift at every resync (listener.admin-state), a removed member's request cut (ops.drain) —
are fixed, each with a test of its own in tests/dataplane."""


def test_haproxy_passes_every_declared_feature_it_has_a_test_for(haproxy: KitRun) -> None:
    driver = haproxy.report["driver"]
    assert driver["throughShim"] == (driver["contractVersion"] == 0)
    if driver["throughShim"]:
        assert "deprecated driver contract 0" in haproxy.stderr
    declared = set(driver["declared"])
    tested = {f for f, tests in proven_by_tests().items() if tests}
    failed = haproxy.by_status("failed")
    assert failed <= set(KNOWN_BUGS), haproxy.stdout[-4000:]
    assert haproxy.returncode == (1 if failed else 0)
    assert haproxy.by_status("passed") | failed == (declared & tested) | {"contract"}
    assert haproxy.by_status("untested") == declared - tested
    assert haproxy.by_status("skipped") == set(FEATURES) - declared


def test_haproxy_features_are_proven_in_traffic(haproxy: KitRun) -> None:
    """Every declared feature that has a traffic test passed it (not only driver calls)."""
    for name in set(haproxy.report["driver"]["declared"]) & traffic_tested() - set(KNOWN_BUGS):
        entry = haproxy.entry(name)
        assert "traffic" in entry["layers"], entry
    weight = haproxy.entry("member.weight")["tests"]
    assert any(t["layer"] == "traffic" and t["outcome"] == "passed" for t in weight)


def test_the_kit_runs_well_within_its_budget(haproxy: KitRun) -> None:
    assert haproxy.seconds < BUDGET, f"{haproxy.seconds:.0f} s"
    counts = junit_counts(haproxy.junit)
    failed = haproxy.by_status("failed")
    assert counts["failures"] + counts["errors"] == len(failed) and counts["tests"] > 50


def test_a_driver_declaring_a_feature_it_breaks_fails_that_feature_only(reduced: KitRun) -> None:
    assert reduced.returncode == 1
    assert set(reduced.report["driver"]["declared"]) == REDUCED
    assert reduced.by_status("failed") == {"member.weight"}
    weight = reduced.entry("member.weight")
    (failed,) = [t for t in weight["tests"] if t["outcome"] == "failed"]
    assert failed["layer"] == "traffic" and "ratio 1.0" in failed["reason"], failed
    accepted = [t for t in weight["tests"] if t["layer"] == "contract"]
    assert accepted and all(t["outcome"] == "passed" for t in accepted), "it stores weights"
    assert reduced.by_status("passed") == (REDUCED - {"member.weight"}) | {"contract"}
    assert reduced.by_status("skipped") == set(FEATURES) - REDUCED
    for name in ("method.least-connections", "member.backup", "persistence.http-cookie"):
        assert reduced.entry(name)["reason"] == "not declared"
    counts = junit_counts(reduced.junit)
    assert counts["failures"] + counts["errors"] == 1


def test_ops_features_are_proven_on_a_real_device(reduced: KitRun) -> None:
    """Fencing, drift (the device config's disturb command), orphans, member health (a member
    stopped: ERROR, started: ONLINE) and no failed request while members change, on HAProxy."""
    names = ("ops.fencing", "ops.verify", "ops.orphans", "ops.member-status", "ops.hitless-members")
    for name in names:
        entry = reduced.entry(name)
        assert entry["status"] == "passed" and all(
            t["outcome"] == "passed" for t in entry["tests"] if t["layer"] != "declaration"
        ), entry
    assert "traffic" in reduced.entry("ops.member-status")["layers"]
    assert reduced.entry("ops.hitless-members")["layers"] == ["traffic"]
    assert "traffic" in reduced.entry("l7.multiple-pools")["layers"], "the default pool switch"


def test_the_support_matrix_from_both_reports(
    haproxy: KitRun, reduced: KitRun, tmp_path: Path
) -> None:
    paths = []
    for name, run in (("haproxy", haproxy), ("reduced", reduced)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(run.report))
        paths.append(str(path))
    done = subprocess.run(
        [str(SCRIPT), "matrix", *paths], capture_output=True, text=True, check=True
    )
    rows = {
        line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[3:-1]]
        for line in done.stdout.splitlines()
        if line.startswith("| `")
    }
    assert set(rows) == set(FEATURES) | {"contract"}
    assert rows["member.weight"] == ["yes", "**FAILED**"]
    assert rows["monitor.http"] == ["yes", "yes"]
    assert rows["method.least-connections"] == ["yes", "-"]
    assert rows["l7.host"] == ["yes", "-"]  # issue 20: HAProxy routes by host
    assert "| reduced | 1 |" in done.stdout
