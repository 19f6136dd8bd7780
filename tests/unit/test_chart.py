"""The Helm chart and the install bundle, rendered by the real helm binary.

helm comes from ``$HELM``, else the cache ``make helm`` fills; without it the tests that need it
skip ("helm binary not found (make helm)"), or fail under ``LBAAS_STRICT=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic.alias_generators import to_camel

from helpers import CRDS, ROOT, need_tool
from lbaas.config import ENV_PREFIX, OperatorSettings

CHART = ROOT / "charts" / "lbaas-operator"
INSTALL = ROOT / "manifests" / "install"
RELEASE = "lbaas-operator"
NAMESPACE = "lbaas-system"

Doc = dict[str, Any]


# ---- the RBAC the operator needs, and why ----------------------------------------------------


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def k8s(self) -> Doc:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


WATCHED_KINDS = ("vips", "pools", "members", "healthmonitors")

# Cluster-scoped: in the ClusterRole whatever config.namespaces says.
CLUSTER_RULES = [
    Rule(
        ("lbaas.dev",),
        ("devices",),
        ("get", "list", "watch", "patch"),
        "Device handlers watch Devices; kopf patches its finalizer and progress annotations.",
    ),
    Rule(
        ("lbaas.dev",),
        ("devices/status",),
        ("get", "patch"),
        "Device status is written through the status subresource.",
    ),
    Rule(
        ("",),
        ("namespaces",),
        ("get", "list", "watch"),
        "Namespace labels feed Device.spec.namespaceSelector; kopf scans namespaces.",
    ),
    Rule(
        ("apiextensions.k8s.io",),
        ("customresourcedefinitions",),
        ("get", "list", "watch"),
        "kopf scans CRDs to resolve the lbaas.dev resources.",
    ),
]
# In the ClusterRole when cluster-wide, else in a Role per watched namespace.
WATCHED_RULES = [
    Rule(
        ("lbaas.dev",),
        WATCHED_KINDS,
        ("get", "list", "watch", "patch"),
        "Handlers watch them; kopf patches its finalizer and progress annotations.",
    ),
    Rule(
        ("lbaas.dev",),
        tuple(f"{kind}/status" for kind in WATCHED_KINDS),
        ("get", "patch"),
        "Their status is written through the status subresource.",
    ),
]
EVENTS_RULE = Rule(
    ("",), ("events",), ("create",), "kopf posts Normal/Warning events on handled objects."
)
SECRETS_RULE = Rule(
    ("",), ("secrets",), ("get",), "A Device's credentialsSecretRef names a Secret to read."
)
DEFAULT_CLUSTER_ROLE = [*CLUSTER_RULES, *WATCHED_RULES, EVENTS_RULE, SECRETS_RULE]


def _normalized(rules: list[Doc]) -> list[str]:
    """Rules as sorted JSON lines: order-insensitive, duplicates kept."""
    return sorted(json.dumps(rule, sort_keys=True) for rule in rules)


def _expect_rules(actual: list[Doc], expected: list[Rule]) -> None:
    assert _normalized(actual) == _normalized([r.k8s() for r in expected]), (
        "RBAC drifted. Expected (with reasons):\n"
        + "\n".join(f"  {r.k8s()}  # {r.why}" for r in expected)
    )


# ---- helm --------------------------------------------------------------------------------------


def _find_helm() -> str | None:
    cache = Path(os.environ.get("LBAAS_CACHE") or Path.home() / ".cache" / "lbaas-operator")
    for candidate in (os.environ.get("HELM"), str(cache / "helm" / "helm")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def helm() -> str:
    path = _find_helm()
    if path is None:
        need_tool("helm binary not found (make helm)")
    assert path is not None
    return path


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def render(helm: str, *args: str) -> list[Doc]:
    result = _run(
        [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args],
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[Doc], kind: str, namespace: str | None = None) -> Doc:
    found = [
        d
        for d in docs
        if d["kind"] == kind and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects in {namespace or 'the output'}"
    return found[0]


def container(docs: list[Doc]) -> Doc:
    (only,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def lbaas_env(docs: list[Doc]) -> dict[str, str]:
    env = container(docs)["env"]
    return {e["name"]: e["value"] for e in env if e["name"].startswith(ENV_PREFIX)}


# ---- lint and RBAC -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "config.namespaces={team-a,team-b}", "--set", "rbac.secretNamespaces={creds}"],
        ["--set", "metrics.serviceMonitor.enabled=true"],
    ],
    ids=["defaults", "namespaced", "servicemonitor"],
)
def test_helm_lint_strict(helm: str, values: list[str]) -> None:
    result = _run([helm, "lint", "--strict", str(CHART), *values])
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_role_is_least_privilege(helm: str) -> None:
    docs = render(helm)
    _expect_rules(one(docs, "ClusterRole")["rules"], DEFAULT_CLUSTER_ROLE)
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(docs, "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
    ]
    assert one(docs, "ServiceAccount")["metadata"]["name"] == RELEASE


def test_no_rule_is_broader_than_needed(helm: str) -> None:
    for values in ([], ["--set", "config.namespaces={a}", "--set", "rbac.secretNamespaces={b}"]):
        docs = render(helm, *values)
        for doc in docs:
            for rule in doc.get("rules", []) if doc["kind"] in ("ClusterRole", "Role") else []:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
                assert not {"create", "update", "delete", "deletecollection"} & set(
                    rule["verbs"]
                ) or rule["resources"] == ["events"], rule
                assert "leases" not in rule["resources"], "no kopf peering, no leases"


def test_namespaced_rbac_uses_roles(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "config.namespaces={team-a,team-b}",
        "--set",
        f"rbac.secretNamespaces={{{NAMESPACE},creds}}",
    )
    # Devices are cluster-scoped: the ClusterRole stays, with the cluster-scoped rules only.
    _expect_rules(one(docs, "ClusterRole")["rules"], CLUSTER_RULES)
    roles = {d["metadata"]["namespace"]: d["rules"] for d in docs if d["kind"] == "Role"}
    assert set(roles) == {"team-a", "team-b", NAMESPACE, "creds"}
    for ns in ("team-a", "team-b"):
        _expect_rules(roles[ns], [*WATCHED_RULES, EVENTS_RULE])
    # kopf posts the events of cluster-scoped Devices in its own namespace.
    _expect_rules(roles[NAMESPACE], [EVENTS_RULE, SECRETS_RULE])
    _expect_rules(roles["creds"], [SECRETS_RULE])
    bindings = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "RoleBinding"}
    assert set(bindings) == set(roles)
    for binding in bindings.values():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}
        ]


def test_namespaced_without_secret_namespaces_keeps_secrets_cluster_wide(helm: str) -> None:
    docs = render(helm, "--set", "config.namespaces={team-a}")
    _expect_rules(one(docs, "ClusterRole")["rules"], [*CLUSTER_RULES, SECRETS_RULE])
    roles = {d["metadata"]["namespace"]: d["rules"] for d in docs if d["kind"] == "Role"}
    assert set(roles) == {"team-a", NAMESPACE}
    _expect_rules(roles[NAMESPACE], [EVENTS_RULE])


def test_rbac_create_false_renders_no_rbac(helm: str) -> None:
    docs = render(helm, "--set", "rbac.create=false")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# ---- Deployment: settings, probes, security ----------------------------------------------------


def test_env_maps_one_to_one_to_operator_settings(helm: str) -> None:
    env = lbaas_env(render(helm))
    fields = {ENV_PREFIX + name.upper() for name in OperatorSettings.model_fields}
    assert set(env) - fields == set(), "LBAAS_* variables that OperatorSettings does not read"
    assert fields - set(env) == set(), "OperatorSettings fields the chart does not set"
    # The defaults, read back by the operator, are the operator's own defaults.
    assert OperatorSettings.from_env(env) == OperatorSettings()


def test_config_values_reach_the_operator(helm: str) -> None:
    docs = render(
        helm,
        "--set",
        "config.namespaces={team-a,team-b}",
        "--set",
        "config.driverTimeout=2.5",  # --set passes decimals as strings: the schema accepts them
        "--set-json",
        'config.deleteAttempts=1000000,config.logFormat="json"',
    )
    settings = OperatorSettings.from_env(lbaas_env(docs))
    assert settings.namespaces == ["team-a", "team-b"]
    assert settings.driver_timeout == 2.5
    assert settings.delete_attempts == 1_000_000  # not 1e+06
    assert settings.log_format == "json"


def test_values_defaults_equal_operator_defaults() -> None:
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    defaults = OperatorSettings().model_dump()
    assert config == {to_camel(name): value for name, value in defaults.items()}


def test_schema_mirrors_operator_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    model = OperatorSettings.model_json_schema()["properties"]
    assert set(config["properties"]) == {to_camel(name) for name in model}
    bounds = ("enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
    for name, prop in model.items():
        chart = config["properties"][to_camel(name)]
        if prop["type"] == "number":  # also a decimal string: what `--set` makes of 0.5
            assert chart["type"] == ["number", "string"], name
        else:
            assert chart["type"] == prop["type"], name
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
        "config.namespaces={Not_A_Namespace}",
        "image.pullPolicy=Sometimes",
    ],
)
def test_schema_rejects_bad_values(helm: str, bad: str) -> None:
    result = _run([helm, "template", RELEASE, str(CHART), "--set", bad])
    assert result.returncode != 0, f"--set {bad} was accepted"
    assert "schema" in result.stderr, result.stderr


def test_deployment_runs_the_operator(helm: str) -> None:
    docs = render(helm)
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1, "unpeered kopf: exactly one replica"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "never two pods at once"
    c = container(docs)
    assert c["image"] == f"lbaas-operator:{version('lbaas-operator')}"
    assert c["args"] == ["run"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8000, "health": 8090}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_health_port_zero_drops_probes(helm: str) -> None:
    c = container(render(helm, "--set", "config.healthPort=0"))
    assert "livenessProbe" not in c and "readinessProbe" not in c
    assert [p["name"] for p in c["ports"]] == ["metrics"]


def test_security_context(helm: str) -> None:
    docs = render(helm)
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    sc = container(docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable place: an emptyDir at /tmp.
    assert container(docs)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]


def test_metrics_service_and_optional_service_monitor(helm: str) -> None:
    docs = render(helm)
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"], "off by default"
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}
    ]
    selector = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector

    monitor = one(render(helm, "--set", "metrics.serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )

    off = render(helm, "--set", "config.metricsPort=0")
    assert not [d for d in off if d["kind"] == "Service"]
    failed = _run(
        [
            *(helm, "template", RELEASE, str(CHART)),
            *("--set", "config.metricsPort=0", "--set", "metrics.serviceMonitor.enabled=true"),
        ]
    )
    assert failed.returncode != 0 and "serviceMonitor" in failed.stderr


# ---- CRDs, bundle, docs ------------------------------------------------------------------------


def test_chart_crds_are_the_repo_crds() -> None:
    repo = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sorted(chart) == sorted(repo), "chart crds/ differ from crds/: run `make manifests`"
    for name, data in repo.items():
        assert chart[name] == data, f"charts/lbaas-operator/crds/{name} drifted: make manifests"


def test_install_bundle_is_up_to_date(helm: str, tmp_path: Path) -> None:
    result = _run(
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
    docs = [d for d in yaml.safe_load_all((INSTALL / "lbaas-operator.yaml").read_text()) if d]
    assert docs[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "lbaas-operator"}},
    }
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    repo = [yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml"))]
    assert crds == repo
    # CRDs and the namespace come before anything that needs them.
    kinds = [d["kind"] for d in docs]
    assert kinds[: 1 + len(crds)] == ["Namespace"] + ["CustomResourceDefinition"] * len(crds)
    for doc in docs[1 + len(crds) :]:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"} <= set(
        kinds
    )
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["lbaas-operator.yaml"]


def test_chart_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == version("lbaas-operator")


def _leaves(values: Doc, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        # Structured defaults (security contexts, resources, probes) are one row each.
        if (
            isinstance(value, dict)
            and value
            and key
            not in (
                "podSecurityContext",
                "securityContext",
                "resources",
                "livenessProbe",
                "readinessProbe",
            )
        ):
            keys += _leaves(value, path + ".")
        else:
            keys.append(path)
    return keys


def test_readme_documents_every_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [key for key in _leaves(values) if f"| `{key}` |" not in readme]
    assert not missing, f"values missing from the chart README's table: {missing}"
