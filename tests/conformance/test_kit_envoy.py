"""The kit against the Envoy driver, with real traffic: every feature Envoy declares that the
kit has a test for passes, in the traffic layer where the kit has one; the ones it has no test
for yet are reported so (the driver's own tests prove them: tests/dataplane/test_envoy_*.py);
and the committed support matrix (docs/support-matrix.md) says what this run says.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance.kitsupport import KitRun, envoy_config, junit_counts, proven_by_tests, run_kit
from conformance.test_kit_haproxy import traffic_tested

from lbaas.drivers.capabilities import FEATURES

pytestmark = pytest.mark.envoy

BUDGET = 120.0
"""Seconds the whole kit may take against Envoy (about 30 on the 2-core CI machine)."""
MATRIX = Path(__file__).resolve().parents[2] / "docs" / "support-matrix.md"


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> KitRun:
    tmp = tmp_path_factory.mktemp("envoy")
    return run_kit(tmp, "envoy", envoy_config(tmp))


def test_envoy_passes_every_declared_feature_it_has_a_test_for(envoy: KitRun) -> None:
    driver = envoy.report["driver"]
    assert driver["contractVersion"] == 1 and not driver["throughShim"]
    declared = set(driver["declared"])
    tested = {f for f, tests in proven_by_tests().items() if tests}
    assert envoy.by_status("failed") == set(), envoy.stdout[-4000:]
    assert envoy.returncode == 0
    assert envoy.by_status("passed") == (declared & tested) | {"contract"}
    assert envoy.by_status("untested") == declared - tested
    assert envoy.by_status("skipped") == set(FEATURES) - declared
    # The application's cookie is hashed, not learned: not declared, so skipped.
    assert envoy.entry("persistence.app-cookie")["reason"] == "not declared"
    assert {"protocol.udp", "tls.terminate", "l7.regex", "ops.traffic-stats"} <= declared


def test_envoy_features_are_proven_in_traffic(envoy: KitRun) -> None:
    for name in set(envoy.report["driver"]["declared"]) & traffic_tested():
        assert "traffic" in envoy.entry(name)["layers"], envoy.entry(name)
    assert envoy.seconds < BUDGET, f"{envoy.seconds:.0f} s"
    counts = junit_counts(envoy.junit)
    assert counts["failures"] + counts["errors"] == 0 and counts["tests"] > 50


def test_the_committed_support_matrix_says_what_this_run_says(envoy: KitRun) -> None:
    """docs/support-matrix.md has HAProxy and Envoy side by side; Envoy's column is this run's
    verdicts (regenerate it with ``lbaas-conformance matrix`` when a feature changes)."""
    lines = MATRIX.read_text().splitlines()
    header = next(line for line in lines if line.startswith("| feature |"))
    columns = [c.strip() for c in header.split("|")[1:-1]]
    assert columns[2:4] == ["haproxy", "envoy"], columns
    shown = {
        line.split("|")[1].strip(" `"): line.split("|")[4].strip()
        for line in lines
        if line.startswith("| `")
    }
    expected = {"passed": "yes", "skipped": "-", "untested": "declared, no test yet"}
    for name, status in envoy.statuses().items():
        assert shown[name] == expected[status], (name, status, shown[name])
