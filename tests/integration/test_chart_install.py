"""The chart installed, upgraded (switching modes) and uninstalled with the real helm on a real
API server. The test bed stores Deployments, DaemonSets, ServiceAccounts, RBAC objects and
PodDisruptionBudgets (nothing runs them): the tests check what is stored against what the chart
renders for the same values, and that nothing is left behind.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest
from chartkit import CHART, MODES, Doc, of_kind, render, require_helm, run, subset

from helpers import kubectl

pytestmark = pytest.mark.cluster

NAMESPACED_KINDS = (
    "deployments,daemonsets,serviceaccounts,poddisruptionbudgets,roles,rolebindings,services,"
    "configmaps"
)
CLUSTER_KINDS = "clusterroles,clusterrolebindings"
Key = tuple[str, str, str]  # kind, namespace, name


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


@pytest.fixture
def release(kubeconfig: str) -> str:
    return f"lb{uuid.uuid4().hex[:6]}"


@pytest.fixture
def more_namespaces(kubeconfig: str) -> Iterator[list[str]]:
    """Two more namespaces (watched, Secrets) for namespaced mode; removed afterwards."""
    names = [f"t-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        kubectl("create", "namespace", name)
    yield names
    kubectl("delete", "namespace", *names, "--wait=false", check=False)


def helm_run(helm: str, *args: str) -> str:
    result = run([helm, *args], env={**os.environ})
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


def stored(release: str) -> dict[Key, Doc]:
    """Every object of the release in the cluster (the chart labels them all)."""
    selector = f"app.kubernetes.io/instance={release}"
    found: dict[Key, Doc] = {}
    for kinds, scope in ((NAMESPACED_KINDS, ["-A"]), (CLUSTER_KINDS, [])):
        out = kubectl("get", kinds, *scope, "-l", selector, "-o", "json").stdout
        for item in json.loads(out)["items"]:
            meta = item["metadata"]
            found[(item["kind"], meta.get("namespace", ""), meta["name"])] = item
    return found


def key(doc: Doc) -> Key:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def check_installed(helm: str, release: str, namespace: str, values: list[str]) -> dict[Key, Doc]:
    """The cluster holds exactly what the chart renders for ``values``, as rendered."""
    rendered = {
        key(d): d
        for d in render(helm, *values, release=release, namespace=namespace)
        if d["kind"] != "CustomResourceDefinition"
    }
    live = stored(release)
    assert sorted(live) == sorted(rendered), "objects left over or missing"
    for k, doc in rendered.items():
        problems = subset({key: v for key, v in doc.items() if key != "status"}, live[k])
        assert not problems, f"{k}: stored differs from rendered: {problems[:5]}"
    return live


def modes(namespace: str, others: list[str]) -> dict[str, list[str]]:
    watched, secrets = others
    namespaced = [
        "--set",
        f"config.namespaces={{{watched}}}",
        "--set",
        f"rbac.secretNamespaces={{{secrets}}}",
    ]
    return {**MODES, "namespaced": namespaced}


@pytest.mark.parametrize("mode", [*MODES, "namespaced"])
def test_install_and_uninstall(
    helm: str, namespace: str, more_namespaces: list[str], release: str, mode: str
) -> None:
    values = modes(namespace, more_namespaces)[mode]
    helm_run(helm, "install", release, str(CHART), "-n", namespace, *values)
    try:
        live = check_installed(helm, release, namespace, values)
        workloads = of_kind(list(live.values()), "Deployment", "DaemonSet")
        assert workloads and all(w["metadata"]["generation"] == 1 for w in workloads)
        if mode == "namespaced":
            watched, secrets = more_namespaces
            role_namespaces = {k[1] for k in live if k[0] == "Role"}
            assert role_namespaces == {namespace, watched, secrets}
        assert "STATUS: deployed" in helm_run(helm, "status", release, "-n", namespace)
    finally:
        helm_run(helm, "uninstall", release, "-n", namespace)
    assert stored(release) == {}, "uninstall left objects behind"


def test_upgrade_switches_modes(helm: str, namespace: str, release: str) -> None:
    """split → run → split with a DaemonSet → DaemonSet only → split: each upgrade leaves exactly
    the new mode's objects (old workloads, budgets and ServiceAccounts deleted, bindings moved)."""
    steps = ["split", "run", "split-daemonset", "daemonset-only", "split"]
    helm_run(helm, "install", release, str(CHART), "-n", namespace, *MODES[steps[0]])
    try:
        before = check_installed(helm, release, namespace, MODES[steps[0]])
        for step in steps[1:]:
            # --reset-values: without values, `helm upgrade` would reuse the previous ones.
            helm_run(
                helm, "upgrade", release, str(CHART), "-n", namespace, "--reset-values",
                *MODES[step],
            )  # fmt: skip
            after = check_installed(helm, release, namespace, MODES[step])
            names = {k[2] for k in after if k[0] in ("Deployment", "DaemonSet")}
            assert names, step
            accounts = {k[2] for k in after if k[0] == "ServiceAccount"}
            if step == "run":
                assert accounts == {f"{release}-lbaas-operator"}
                assert {k[0] for k in before} - {k[0] for k in after} == {"PodDisruptionBudget"}
            else:
                assert accounts == {
                    f"{release}-lbaas-operator-{r}" for r in ("controller", "agent")
                }
            before = after
        history = helm_run(helm, "history", release, "-n", namespace, "-o", "json")
        assert len(json.loads(history)) == len(steps)
    finally:
        helm_run(helm, "uninstall", release, "-n", namespace)
    assert stored(release) == {}
