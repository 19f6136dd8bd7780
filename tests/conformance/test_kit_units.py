"""The kit's pure parts: the device-config file, the feature registry, the verdict per
feature, the support matrix and the command line (no driver, no subprocess)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from lbaas_conformance import cli, matrix
from lbaas_conformance.config import ConfigError, parse, render
from lbaas_conformance.features import ALL_PROFILES, feature, mark
from lbaas_conformance.plugin import profiles_of
from lbaas_conformance.report import Outcome, Run, build, statuses

from lbaas.drivers.capabilities import FEATURES, PROFILES

BASE = {"addresses": ["127.0.40.1", "127.0.40.2"], "backends": ["127.0.41.1"]}


# ---- the device-config file -------------------------------------------------------------


def test_config_substitutes_workdir_and_config_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENDOR_TOKEN", "s3cret")
    found = parse(
        {
            **BASE,
            "config": {"stateDir": "{workdir}/hx", "nested": ["{workdir}"]},
            "credentials": {"token": "${VENDOR_TOKEN}"},
            "disturb": "rm {config[stateDir]}/conf.d/{namespace}__{name}.cfg; echo ${HOME}",
            "timing": {"health": 5},
        },
        workdir=Path("/w"),
    )
    assert found.config == {"stateDir": "/w/hx", "nested": ["/w"]}
    assert found.disturb == "rm /w/hx/conf.d/{namespace}__{name}.cfg; echo ${HOME}"
    assert found.credentials == {"token": "s3cret"}
    assert "s3cret" not in repr(found)
    assert (found.timing.health, found.timing.settle) == (5.0, 10.0)
    assert (found.traffic, found.vip_ports) == (True, (20000, 20999))


def test_render_leaves_unknown_braces_and_refuses_missing_keys() -> None:
    assert render("{a} {b} ${c}", {"a": 1}) == "1 {b} ${c}"
    with pytest.raises(ConfigError, match="has no 'x'"):
        render("{config[x]}", {"config": {}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**BASE, "colour": "red"}, "unknown keys: colour"),
        ({"addresses": ["127.0.40.1"], "backends": ["127.0.41.1"]}, "at least 2"),
        ({**BASE, "addresses": ["127.0.40.1", "vip.example"]}, "'vip.example' is not an IP"),
        ({"addresses": BASE["addresses"]}, "backends: expected a list"),
        ({**BASE, "vipPorts": [30000, 20000]}, "two ports in order"),
        ({**BASE, "traffic": "no"}, "traffic: expected true or false"),
        ({**BASE, "timing": {"soon": 1}}, "timing:"),
        ([], "must hold a mapping"),
    ],
)
def test_config_errors_say_where(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(data, workdir=Path("/w"))


def test_a_device_without_traffic_needs_no_backends() -> None:
    found = parse({"addresses": BASE["addresses"], "traffic": False}, workdir=Path("/w"))
    assert found.backends == () and not found.traffic


# ---- features and profiles ---------------------------------------------------------------


def test_feature_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not a feature"):
        feature("member.colour")
    with pytest.raises(ValueError, match="unknown layer"):
        mark("member.weight", "vibes")
    assert mark("contract").args == ("contract", "contract")


def test_profiles_default_to_all_and_always_hold_the_contract() -> None:
    assert profiles_of([]) == ALL_PROFILES
    assert profiles_of(["ops,l4"]) == ("CONTRACT", "L4", "OPS")
    with pytest.raises(pytest.UsageError, match="unknown profile GRPC"):
        profiles_of(["grpc"])


# ---- the verdict per feature --------------------------------------------------------------


def run(declared: set[str], strict: bool = False) -> Run:
    return Run(
        driver="vendor",
        driver_contract=1,
        declared=frozenset(declared),
        traffic=True,
        strict=strict,
        profiles=ALL_PROFILES,
        kit_version="0.1.0",
        contract_version=1,
        model_version=1,
        seconds=12.34,
    )


def outcome(feature: str, layer: str, result: str, reason: str = "") -> Outcome:
    return Outcome(f"t::{feature}-{layer}-{result}", feature, layer, result, 0.5, reason)


def test_each_status_of_a_feature() -> None:
    declared = {"protocol.tcp", "member.weight", "member.backup", "l7.host", "ops.drain"}
    report = build(
        run(declared),
        [
            outcome("contract", "contract", "passed"),
            outcome("protocol.tcp", "contract", "passed"),
            outcome("protocol.tcp", "traffic", "passed"),
            outcome("member.weight", "contract", "passed"),
            outcome("member.weight", "traffic", "failed", "ratio 1.0"),
            outcome("member.backup", "traffic", "skipped", "needs a monitor"),
            outcome("ops.drain", "contract", "passed"),
            outcome("method.source-ip", "traffic", "skipped", "not declared by the driver"),
            outcome("l7.host", "declaration", "skipped", "no test yet"),
        ],
    )
    found = statuses(report)
    assert found["contract"] == found["protocol.tcp"] == found["ops.drain"] == "passed"
    assert found["member.weight"] == "failed"
    assert found["member.backup"] == "skipped"
    assert found["l7.host"] == "untested"
    assert found["method.source-ip"] == found["tls.sni"] == "skipped"
    entries = {f["feature"]: f for p in report["profiles"] for f in p["features"]}
    assert entries["member.weight"]["reason"] == "ratio 1.0"
    assert entries["member.backup"]["reason"] == "needs a monitor"
    assert entries["l7.host"]["reason"] == "no test yet"
    assert entries["tls.sni"]["reason"] == "not declared"
    assert entries["protocol.tcp"]["layers"] == ["contract", "traffic"]
    assert entries["ops.drain"]["layers"] == ["contract"]
    assert report["result"] == "failed"
    assert report["summary"] == {
        "passed": 3,
        "failed": 1,
        "skipped": len(FEATURES) + 1 - 5,  # the contract counts too
        "untested": 1,
    }
    assert [p["profile"] for p in report["profiles"]] == ["CONTRACT", *PROFILES]


def test_a_declared_feature_whose_tests_were_deselected_is_not_untested() -> None:
    base = run({"member.weight", "l7.host"})
    report = build(dataclasses.replace(base, tested=frozenset({"member.weight"})), [])
    entries = {f["feature"]: f for p in report["profiles"] for f in p["features"]}
    assert (entries["member.weight"]["status"], entries["member.weight"]["reason"]) == (
        "skipped",
        "its tests were not run (deselected)",
    )
    assert entries["l7.host"]["status"] == "untested"


def test_a_failed_declaration_check_fails_its_feature() -> None:
    report = build(
        run({"protocol.tcp"}, strict=True),
        [outcome("ops.fencing", "declaration", "failed", "core feature not declared (--strict)")],
    )
    assert statuses(report)["ops.fencing"] == "failed"
    assert report["result"] == "failed"


# ---- the matrix and the command line -----------------------------------------------------


def test_matrix_cells() -> None:
    outcomes = [
        outcome("protocol.tcp", "contract", "passed"),
        outcome("member.weight", "traffic", "failed", "x"),
        outcome("ops.fencing", "declaration", "failed", "core feature not declared"),
    ]
    report = build(run({"protocol.tcp", "member.weight", "l7.host"}), outcomes)
    report["driver"]["throughShim"] = True
    quiet = build(dataclasses.replace(run({"protocol.tcp"}), traffic=False), outcomes[:1])
    quiet["driver"]["name"] = "quiet"
    text = matrix.render([report, quiet])
    assert "| vendor (shim) | 1 | 0.1.0 | failed | yes |" in text
    assert "| quiet | 1 | 0.1.0 | passed | no (driver calls only) |" in text
    assert "| `protocol.tcp` | core | yes | yes¹ |" in text
    assert "| `member.weight` | core | **FAILED** | - |" in text
    assert "| `l7.host` | core | declared, no test yet | - |" in text
    assert "| `ops.fencing` | core | - (core: missing) | - |" in text
    assert "| `tls.sni` | core | - | - |" in text
    with pytest.raises(ValueError):
        matrix.render([])


def test_cli_passes_the_kit_its_own_configuration(tmp_path: Path) -> None:
    line = "--driver v --device-config d.yaml --profile L4 --strict --report r.yaml"
    args = cli.run_parser().parse_args([*line.split(), "--junit", "j.xml", "-k", "weight"])
    found = cli.pytest_args(args)
    assert found[found.index("-c") + 1].endswith("suite/pytest.ini")
    assert found[found.index("--lbaas-driver") + 1] == "v"
    assert "--lbaas-strict" in found and found[found.index("-k") + 1] == "weight"
    assert any(a.startswith("--junitxml=") and a.endswith("j.xml") for a in found)
    assert cli.main(["matrix"]) == 2
    assert cli.main(["matrix", str(tmp_path / "missing.yaml")]) == 2
