"""The Helm chart's values against the operator's settings, its docs, CRDs and the install bundle.

Rendered by the real helm binary (tests/chartkit.py). RBAC: test_chart_rbac.py; workloads of
each mode: test_chart_modes.py.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import (
    CHART,
    INSTALL,
    MODES,
    NAMESPACE,
    Doc,
    container,
    env,
    of_kind,
    one,
    parse,
    render,
    require_helm,
    run,
    workloads,
)
from pydantic.alias_generators import to_camel

from helpers import CRDS, ROOT
from lbaas.config import ENV_PREFIX, OperatorSettings

# Settings the pod gives each container (downward API), not values: name → fieldPath.
FROM_POD = {"agent_id": "metadata.name", "lease_namespace": "metadata.namespace"}
# Settings whose empty value the chart leaves out (the operator's default is the same).
MAY_BE_EMPTY = {"namespaces", "agent_labels"}
AGENT_ONLY = {"agent_labels"}


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def lbaas_env(workload: Doc) -> dict[str, str]:
    return {k: v for k, v in env(workload).items() if k.startswith(ENV_PREFIX)}


def settings_in_pod(workload: Doc, pod: str = "pod-0", namespace: str = NAMESPACE) -> Any:
    """What the operator reads in this workload's pod (downward API filled in, $(NODE_NAME)
    expanded as the kubelet does)."""
    fields = {"metadata.name": pod, "metadata.namespace": namespace, "spec.nodeName": "node-1"}
    variables = {
        k: fields[v.removeprefix("field:")] if v.startswith("field:") else v
        for k, v in env(workload).items()
    }
    expanded = {
        k: v.replace("$(NODE_NAME)", variables.get("NODE_NAME", "")) for k, v in variables.items()
    }
    return OperatorSettings.from_env(
        {k: v for k, v in expanded.items() if k.startswith(ENV_PREFIX)}
    )


# ---- settings ↔ values ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_env_maps_one_to_one_to_operator_settings(helm: str, mode: str) -> None:
    everything = [
        *MODES[mode],
        *("--set", "config.namespaces={team-a}", "--set", "config.agentLabels.zone=a"),
    ]
    fields = {ENV_PREFIX + name.upper(): name for name in OperatorSettings.model_fields}
    for name, workload in workloads(render(helm, *everything)).items():
        variables = lbaas_env(workload)
        assert set(variables) <= set(fields), f"{name}: LBAAS_* that OperatorSettings lacks"
        is_agent = container(workload)["args"] != ["controller"]
        expected = {v for v, f in fields.items() if is_agent or f not in AGENT_ONLY}
        assert set(variables) == expected, f"{name}: settings the chart does not set"
        for setting, path in FROM_POD.items():
            assert variables[ENV_PREFIX + setting.upper()] == f"field:{path}", name

    for name, workload in workloads(render(helm, *MODES[mode])).items():
        variables = lbaas_env(workload)
        left_out = {fields[v] for v in set(fields) - set(variables)}
        on_node = "NODE_NAME" in env(workload)  # DaemonSet agents: lbaas.dev/node=<node>
        assert left_out == MAY_BE_EMPTY - ({"agent_labels"} if on_node else set()), name
        # The defaults, read back by the operator in a pod, are the operator's own defaults.
        assert settings_in_pod(workload) == OperatorSettings(
            agent_id="pod-0",
            lease_namespace=NAMESPACE,
            agent_labels={"lbaas.dev/node": "node-1"} if on_node else {},
        ), name


@pytest.mark.parametrize("mode", MODES)
def test_no_empty_env_values(helm: str, mode: str) -> None:
    """The API server drops ``value: ""``: a bundle rendering one never converges (GitOps)."""
    docs = render(helm, *MODES[mode], "--set", "config.logLevel=")
    for name, workload in workloads(docs).items():
        for var in container(workload)["env"]:
            assert var.get("value") != "", f"{name}: {var['name']} rendered empty"
            assert "value" in var or "valueFrom" in var, (name, var)
        assert "LBAAS_LOG_LEVEL" not in lbaas_env(workload), "an empty value is left out"


def test_config_values_reach_the_operator(helm: str) -> None:
    docs = render(
        helm,
        *("--set", "config.namespaces={team-a,team-b}"),
        "--set",
        "config.driverTimeout=2.5",  # --set passes decimals as strings: the schema accepts them
        "--set-json",
        'config.deleteAttempts=1000000,config.logFormat="json",config.agentLabels={"b":"2","a":"1"}',
    )
    agent = workloads(docs)["lbaas-operator-agent"]
    settings = settings_in_pod(agent)
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.driver_timeout == 2.5
    assert settings.delete_attempts == 1_000_000  # not 1e+06
    assert settings.log_format == "json"
    assert settings.agent_labels == {"a": "1", "b": "2"}
    assert lbaas_env(agent)["LBAAS_AGENT_LABELS"] == "a=1,b=2", "k=v,... in key order"


def test_values_defaults_equal_operator_defaults() -> None:
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    defaults = OperatorSettings(agent_id="x", lease_namespace="x").model_dump()
    assert config == {to_camel(k): v for k, v in defaults.items() if k not in FROM_POD}


def test_schema_mirrors_operator_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    model = OperatorSettings.model_json_schema()["properties"]
    assert set(config["properties"]) == {to_camel(name) for name in model if name not in FROM_POD}
    bounds = ("enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    for name, prop in model.items():
        if name in FROM_POD:
            continue
        chart = config["properties"][to_camel(name)]
        if prop["type"] == "number":  # also a decimal string: what `--set` makes of 0.5
            assert chart["type"] == ["number", "string"], name
        elif prop.get("enum") == ["auto", "true", "false"]:  # also what `--set x=true` makes
            assert chart["type"] == ["string", "boolean"], name
            assert chart.pop("enum") == [*prop["enum"], True, False], name
            chart = {**chart, "enum": prop["enum"]}
        else:
            assert chart["type"] == prop["type"], name
        if prop["type"] == "object":  # agentLabels: string → string
            assert chart["additionalProperties"]["type"] == prop["additionalProperties"]["type"]
        for key in bounds:
            assert chart.get(key) == prop.get(key), f"{name}: {key}"
        assert chart["description"].startswith(prop["description"]), name


@pytest.mark.parametrize(
    "bad",
    [
        "config.driverWorkers=0",
        "config.driverWorkers=257",
        "config.driverTimeout=0",
        "config.driverTimeout=soon",
        "config.logFormat=xml",
        "config.metricsPort=70000",
        "config.unknownSetting=1",
        "config.agentId=me",
        "config.leaseNamespace=elsewhere",
        "config.agentLabels.a=b\\,c",
        "config.namespaces={Not_A_Namespace}",
        "image.pullPolicy=Sometimes",
        "mode=both",
        "controller.replicas=0",
        "agents.daemonset.hostNetwork=yes",
        "agents.deployment.podDisruptionBudget.maxUnavailable=-1",
        "rbac.secretNamespaces={Not_A_Namespace}",
    ],
)
def test_schema_rejects_bad_values(helm: str, bad: str) -> None:
    result = run([helm, "template", "x", str(CHART), "--set", bad])
    assert result.returncode != 0, f"--set {bad} was accepted"
    assert "schema" in result.stderr, result.stderr


# ---- CRDs, bundle, docs ------------------------------------------------------------------------


def test_chart_crds_are_the_repo_crds() -> None:
    repo = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(chart) == sorted(repo), "chart crds/ differ from crds/: run `make manifests`"
    for name, data in repo.items():
        assert chart[name] == data, f"charts/lbaas-operator/crds/{name} drifted: make manifests"


def test_install_bundle_is_up_to_date(helm: str, tmp_path: Path) -> None:
    result = run(
        ["bash", str(ROOT / "hack" / "gen-install.sh"), str(tmp_path)],
        env={**os.environ, "HELM": helm},
    )
    assert result.returncode == 0, result.stderr
    for name in ("lbaas-operator.yaml", "kustomization.yaml"):
        fresh = (tmp_path / name).read_text()
        committed = INSTALL / name
        assert committed.is_file(), f"manifests/install/{name} missing: run `make manifests`"
        assert committed.read_text() == fresh, f"manifests/install/{name} drifted: make manifests"


def test_install_bundle_contents() -> None:
    docs = parse((INSTALL / "lbaas-operator.yaml").read_text())
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "lbaas-operator"}},
    }
    crds = of_kind(docs, "CustomResourceDefinition")
    repo = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    assert crds == repo
    # CRDs and the namespace come before anything that needs them.
    kinds = [d["kind"] for d in docs]
    assert kinds[: 1 + len(crds)] == ["Namespace"] + ["CustomResourceDefinition"] * len(crds)
    for doc in docs[1 + len(crds) :]:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    # The default mode: a controller and agents, each with its ServiceAccount and budget.
    assert sorted(workloads(docs)) == ["lbaas-operator-agent", "lbaas-operator-controller"]
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        names = sorted(d["metadata"]["name"] for d in of_kind(docs, kind))
        assert names == ["lbaas-operator-agent", "lbaas-operator-controller"], kind
    assert len(of_kind(docs, "PodDisruptionBudget")) == 2
    one(docs, "Service", "lbaas-operator-metrics")
    for workload in workloads(docs).values():  # what made `kubectl apply` never converge
        assert all(v.get("value") != "" for v in container(workload)["env"])
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["lbaas-operator.yaml"]


def test_chart_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == version("lbaas-operator")


# Structured defaults (security contexts, resources, probes) are one row each.
ONE_ROW = {"podSecurityContext", "securityContext", "resources", "livenessProbe", "readinessProbe"}


def _leaves(values: Doc, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ONE_ROW:
            keys += _leaves(value, path + ".")
        else:
            keys.append(path)
    return keys


def test_readme_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [key for key in _leaves(values) if f"| `{key}` |" not in readme]
    assert not missing, f"values missing from the chart README's table: {missing}"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) - {"global"} == set(values), "schema and values.yaml"
