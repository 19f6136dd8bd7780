"""The kit against drivers whose device is a file (no data plane): the fake test driver, a
contract-0 driver through the shim, and the example skeleton written from the docs.

Each runs ``lbaas-conformance`` as a vendor's CI would and reads its report: what passed, what
was skipped and why, what has no test yet, and what ``--strict`` makes of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conformance.kitsupport import KitRun, file_config, junit_counts, proven_by_tests, run_kit

from lbaas.drivers.capabilities import FEATURES, OPERATIONAL
from lbaas.drivers.legacy import V0_FEATURES
from lbaas_fake_driver import FEATURES as FAKE_FEATURES

NO_DATA_PLANE = "driver declares no data plane (device config: traffic: false)"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> KitRun:
    tmp = tmp_path_factory.mktemp("fake")
    return run_kit(tmp, "fake", file_config(tmp, config={"stateFile": str(tmp / "fake.json")}))


def test_fake_driver_passes_every_feature_it_can_prove(fake: KitRun) -> None:
    assert fake.returncode == 0, fake.stdout[-3000:]
    assert fake.report["result"] == "passed"
    driver = fake.report["driver"]
    assert (driver["name"], driver["contractVersion"], driver["throughShim"]) == ("fake", 1, False)
    assert set(driver["declared"]) == FAKE_FEATURES
    tested = {f for f, tests in proven_by_tests().items() if tests}
    assert fake.by_status("passed") == (FAKE_FEATURES & tested) | {"contract"}
    assert fake.by_status("untested") == FAKE_FEATURES - tested
    assert {"tls.terminate", "tls.sni", "protocol.udp"} <= fake.by_status("untested")
    assert fake.by_status("skipped") == set(FEATURES) - FAKE_FEATURES
    assert not fake.by_status("failed")
    assert fake.entry("ops.member-status")["reason"] == "not declared"
    assert fake.entry("tls.terminate")["reason"] == "no test yet"


def test_fake_driver_traffic_tests_are_skipped_for_want_of_a_data_plane(fake: KitRun) -> None:
    weight = fake.entry("member.weight")
    assert weight["layers"] == ["contract"], "proven by driver calls only"
    traffic = [t for t in weight["tests"] if t["layer"] == "traffic"]
    assert traffic and all(
        (t["outcome"], t["reason"]) == ("skipped", NO_DATA_PLANE) for t in traffic
    )
    verify = fake.entry("ops.verify")
    (drift,) = [t for t in verify["tests"] if "drift" in t["test"]]
    assert drift["outcome"] == "passed", "the fake's conformance_disturb hook makes drift"


def test_report_and_junit_agree(fake: KitRun) -> None:
    counts = junit_counts(fake.junit)
    tests = [t for p in fake.report["profiles"] for f in p["features"] for t in f["tests"]]
    (cleanup,) = [t for t in fake.entry("contract")["tests"] if t["test"].startswith("after")]
    assert cleanup["outcome"] == "passed", "the run deletes what it applied, after its tests"
    assert counts["tests"] == len(tests) - 1, "every test but the cleanup is a JUnit test case"
    assert counts["failures"] == counts["errors"] == 0
    assert counts["skipped"] == sum(t["outcome"] == "skipped" for t in tests)
    kit = fake.report["kit"]
    assert (kit["contractVersion"], kit["modelVersion"]) == (1, 1)


def test_strict_fails_on_declared_features_without_a_test_and_missing_core(
    tmp_path: Path,
) -> None:
    config = file_config(tmp_path, config={"stateFile": str(tmp_path / "fake.json")})
    run = run_kit(tmp_path, "fake", config, "--strict", "--profile", "L4,UDP", "--profile", "OPS")
    assert run.returncode == 1
    assert [p["profile"] for p in run.report["profiles"]] == ["CONTRACT", "L4", "UDP", "OPS"]
    failed = run.by_status("failed")
    # protocol.udp and ops.batch are declared without a test; ops.member-status is core in
    # OPS and not declared. Nothing else: L4 is proven whole.
    assert failed == {"protocol.udp", "ops.batch", "ops.member-status"}
    assert "no test of the kit proves it yet (--strict)" in run.entry("protocol.udp")["reason"]
    assert "not declared (--strict)" in run.entry("ops.member-status")["reason"]
    assert "--strict" in run.stdout and "ops.member-status" in run.stdout


def test_a_device_refusing_one_load_balancer_fails_the_contract(tmp_path: Path) -> None:
    """The fake device refuses every apply of the run's second load balancer: the tests
    that use it fail (the contract, orphans), those with one load balancer still pass."""
    control = tmp_path / "control.json"
    refusal = {"match": "conformance/lb-2", "retryable": False, "message": "refused here"}
    control.write_text(json.dumps({"fail": {"apply": refusal}}))
    config = {"stateFile": str(tmp_path / "fake.json"), "controlFile": str(control)}
    run = run_kit(tmp_path, "fake", file_config(tmp_path, config=config), "--profile", "L4,OPS")
    assert run.returncode == 1
    assert run.by_status("failed") == {"contract", "ops.orphans"}
    assert "refused here" in run.entry("ops.orphans")["reason"]
    assert {"member.weight", "ops.fencing", "ops.verify"} <= run.by_status("passed")


def test_a_contract_0_driver_passes_through_the_shim(tmp_path: Path) -> None:
    config = file_config(tmp_path, config={"stateFile": str(tmp_path / "legacy.json")})
    run = run_kit(tmp_path, "legacy", config)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "deprecated driver contract 0" in run.stderr and "0.3.0" in run.stderr
    driver = run.report["driver"]
    assert (driver["contractVersion"], driver["throughShim"]) == (0, True)
    declared = V0_FEATURES | {"protocol.tcp", "protocol.http"}
    assert set(driver["declared"]) == declared
    assert run.entry("contract")["status"] == "passed"
    assert run.by_status("passed") == declared | {"contract"}
    assert not run.by_status("failed") and not run.by_status("untested")
    assert not declared & OPERATIONAL, "the shim promises nothing of how a driver works"


def test_the_skeleton_written_from_the_docs_passes(tmp_path: Path) -> None:
    """With the example's own device config, as its README says to run it."""
    example = Path(__file__).resolve().parents[2] / "examples" / "driver-skeleton"
    run = run_kit(tmp_path, "skeleton", example / "device.yaml")
    assert run.returncode == 0, run.stdout[-3000:]
    declared = set(run.report["driver"]["declared"])
    assert {"ops.verify", "ops.fencing", "ops.orphans", "member.weight"} <= declared
    assert run.by_status("passed") == declared | {"contract"}
    (drift,) = [t for t in run.entry("ops.verify")["tests"] if "drift" in t["test"]]
    assert drift["outcome"] == "passed"


def test_an_unknown_driver_is_a_usage_error(tmp_path: Path) -> None:
    run = run_kit(tmp_path, "no-such-driver", file_config(tmp_path))
    assert run.returncode == 4
    assert "no driver named 'no-such-driver' is installed" in run.stderr
    assert not run.report


def test_a_config_the_driver_refuses_is_a_usage_error(tmp_path: Path) -> None:
    run = run_kit(tmp_path, "fake", file_config(tmp_path, config={}))
    assert run.returncode == 4
    assert "config.stateFile is required" in run.stderr
    assert not run.report
