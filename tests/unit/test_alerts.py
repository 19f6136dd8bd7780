"""The chart's PrometheusRule, rendered by the real helm, checked and unit-tested by promtool.

tests/data/alerts_test.yaml holds promtool's unit tests: for every alert a case where it fires
(with its labels and annotations as rendered from the default values) and one where it must
not. They run on the rules rendered here, so a template or value change that breaks an alert
fails them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import CHART, of_kind, render, require_helm
from promkit import alerts, render_rules, require

from helpers import ROOT

TESTS = ROOT / "tests" / "data" / "alerts_test.yaml"


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def promtool_test(rules: dict[str, Any], work: Path) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of alerts_test.yaml against ``rules``."""
    (work / "rules.yaml").write_text(yaml.safe_dump(rules))
    shutil.copy(TESTS, work / "alerts_test.yaml")
    return subprocess.run(
        [require("promtool"), "test", "rules", "alerts_test.yaml"],
        cwd=work, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_promtool_checks_the_rendered_rules(helm: str, tmp_path: Path) -> None:
    rules = render_rules(helm)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [require("promtool"), "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts(rules))} rules found" in result.stdout


def test_promtool_unit_tests_pass(helm: str, tmp_path: Path) -> None:
    result = promtool_test(render_rules(helm), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_silent_case(helm: str) -> None:
    names = set(alerts(render_rules(helm)))
    fires, silent = set(), set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert names == fires, f"no firing case: {names - fires}; unknown: {fires - names}"
    assert names == silent, f"no silent case: {names - silent}"
    assert len(names) == 11


def test_values_reach_the_rules(helm: str, tmp_path: Path) -> None:
    """A threshold changed by a value changes what fires: the unit tests (written for the
    defaults) fail on exactly that alert."""
    rules = render_rules(helm, "--set", "metrics.prometheusRule.objectErrorMinutes=20")
    result = promtool_test(rules, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    failed = {line.split("alertname: ")[1].split(",")[0]
              for line in output.splitlines() if "alertname: " in line}  # fmt: skip
    assert failed == {"LbaasObjectInError"}, output


def test_disabled_alerts_and_extra_labels(helm: str) -> None:
    rules = render_rules(
        helm,
        *("--set", "metrics.prometheusRule.disabled={LbaasObjectStuckPending,LbaasLeasesLost}"),
        *("--set", "metrics.prometheusRule.alertLabels.team=netops"),
    )
    found = alerts(rules)
    assert len(found) == 9 and "LbaasObjectStuckPending" not in found
    assert all(r["labels"]["team"] == "netops" for r in found.values())
    assert {r["labels"]["severity"] for r in found.values()} == {"warning", "critical"}


def test_schema_names_every_alert_and_refuses_others(helm: str) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    rule = schema["properties"]["metrics"]["properties"]["prometheusRule"]
    assert set(rule["properties"]["disabled"]["items"]["enum"]) == set(alerts(render_rules(helm)))
    result = subprocess.run(
        [helm, "template", "x", str(CHART), "--set", "metrics.prometheusRule.disabled={Nope}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "schema" in result.stderr


def test_off_by_default_and_monitors_keep_their_labels(helm: str) -> None:
    """PrometheusRule, ServiceMonitor and PodMonitor need prometheus-operator's CRDs: off by
    default. Both monitors keep the series' own namespace label (the VIP's)."""
    assert not of_kind(render(helm), "PrometheusRule", "ServiceMonitor", "PodMonitor")
    docs = render(
        helm,
        *(
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.podMonitor.enabled=true",
        ),
        *("--set", "metrics.podMonitor.labels.release=prom"),
    )
    (service,) = of_kind(docs, "ServiceMonitor")
    (pod,) = of_kind(docs, "PodMonitor")
    assert service["spec"]["endpoints"][0]["honorLabels"] is True
    endpoint = pod["spec"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    assert pod["metadata"]["labels"]["release"] == "prom"
    pods = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    for workload in pods.values():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert pod["spec"]["selector"]["matchLabels"].items() <= labels.items()
