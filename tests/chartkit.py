"""The Helm chart as the tests see it: the real helm binary, rendered objects, their parts.

helm comes from ``$HELM``, else the cache ``make helm`` fills; without it the tests that need it
skip ("helm binary not found (make helm)"), or fail under ``LBAAS_STRICT=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from helpers import ROOT, need_tool

CHART = ROOT / "charts" / "lbaas-operator"
INSTALL = ROOT / "manifests" / "install"
RELEASE = "lbaas-operator"
NAMESPACE = "lbaas-system"
WORKLOAD_KINDS = ("Deployment", "DaemonSet")
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

Doc = dict[str, Any]

# Values of each mode the tests install and render (helm --set arguments).
MODES: dict[str, list[str]] = {
    "split": [],
    "split-daemonset": [
        *("--set", "agents.daemonset.enabled=true"),
        *("--set", "agents.daemonset.hostNetwork=true"),
    ],
    "daemonset-only": [
        *("--set", "agents.deployment.enabled=false"),
        *("--set", "agents.daemonset.enabled=true"),
    ],
    "run": ["--set", "mode=run"],
}


def find_helm() -> str | None:
    cache = Path(os.environ.get("LBAAS_CACHE") or Path.home() / ".cache" / "lbaas-operator")
    for candidate in (os.environ.get("HELM"), str(cache / "helm" / "helm")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_helm() -> str:
    """The helm binary, else a skip (a failure under LBAAS_STRICT=1)."""
    path = find_helm()
    if path is None:
        need_tool("helm binary not found (make helm)")
    assert path is not None
    return path


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)


def parse(text: str) -> list[Doc]:
    import yaml

    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(helm: str, *args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[Doc]:
    result = run([helm, "template", release, str(CHART), "--namespace", namespace, *args])
    assert result.returncode == 0, result.stderr
    return parse(result.stdout)


def render_error(helm: str, *args: str) -> str:
    """The error of a render that must fail."""
    result = run([helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args])
    assert result.returncode != 0, f"rendered although it must fail: {args}"
    return result.stderr


def of_kind(docs: list[Doc], *kinds: str) -> list[Doc]:
    return [d for d in docs if d["kind"] in kinds]


def one(docs: list[Doc], kind: str, name: str | None = None, namespace: str | None = None) -> Doc:
    found = [
        d
        for d in of_kind(docs, kind)
        if (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {namespace or 'the output'}"
    return found[0]


def workloads(docs: list[Doc]) -> dict[str, Doc]:
    """Deployments and DaemonSets by name."""
    return {d["metadata"]["name"]: d for d in of_kind(docs, *WORKLOAD_KINDS)}


def pod_spec(workload: Doc) -> Doc:
    return dict(workload["spec"]["template"]["spec"])


def container(workload: Doc) -> Doc:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def env(workload: Doc) -> dict[str, Any]:
    """name → value, or the fieldPath of a downward-API variable as ``field:<path>``."""
    out: dict[str, Any] = {}
    for var in container(workload)["env"]:
        if "value" in var:
            out[var["name"]] = var["value"]
        else:
            out[var["name"]] = "field:" + var["valueFrom"]["fieldRef"]["fieldPath"]
    return out


def rule_key(rule: Doc) -> str:
    return json.dumps(rule, sort_keys=True)


def subset(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` (a stored object, with server defaults) lacks what ``expected`` says."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is no mapping"]
        problems = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += subset(value, actual[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: {actual!r} != {expected!r}"]
        return [p for i, e in enumerate(expected) for p in subset(e, actual[i], f"{path}[{i}]")]
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]
