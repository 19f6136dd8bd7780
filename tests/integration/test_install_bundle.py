"""The plain install bundle (manifests/install/) applied whole to a real API server, as GitOps
tools do, twice: the second time must change nothing.

Client-side (``kubectl apply -k``) and server-side (``kubectl apply --server-side -k``), each on
fresh objects: every object of the second apply keeps its resourceVersion, ``kubectl diff``
is empty, and what is stored is what the bundle says (no value dropped by the server, which is
what made the Deployment ``configured`` on every apply while ``LBAAS_NAMESPACES`` rendered as
``value: ""``). The CRDs are already installed by the ``kubeconfig`` fixture; they are applied
too (unchanged) and left in place. Objects of the bundle that exist before the test (a real
installation) make it fail rather than be touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import INSTALL, subset

from helpers import kubectl

CRDS = Path(__file__).resolve().parents[2] / "crds"

pytestmark = pytest.mark.cluster

BUNDLE = INSTALL / "lbaas-operator.yaml"
Doc = dict[str, Any]


def bundle() -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(BUNDLE.read_text()) if doc]


def manifest(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def ref(doc: Doc) -> str:
    """``kind/name`` as kubectl prints it (``deployment.apps/x``: the group, lower case)."""
    group = doc["apiVersion"].rpartition("/")[0]
    kind = doc["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{doc['metadata']['name']}"


def live() -> dict[str, Doc]:
    out = kubectl("get", "-k", str(INSTALL), "-o", "json").stdout
    got = json.loads(out)
    items = got["items"] if got.get("kind") == "List" else [got]
    return {
        f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}": i
        for i in items
    }


def path(obj: Doc) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def versions() -> dict[str, str]:
    return {k: v["metadata"]["resourceVersion"] for k, v in live().items()}


def applied(output: str) -> dict[str, str]:
    """``kind/name`` → what kubectl did (created, configured, unchanged, serverside-applied)."""
    result = {}
    for line in output.splitlines():
        name, _, verb = line.rpartition(" ")
        result[name] = verb
    return result


@pytest.fixture
def fresh(kubeconfig: str) -> Iterator[list[Doc]]:
    """The bundle's objects but the CRDs, none existing yet; deleted afterwards."""
    docs = [d for d in bundle() if d["kind"] != "CustomResourceDefinition"]
    there = kubectl("get", "-f", "-", "--ignore-not-found", "-o", "name", stdin=manifest(docs))
    if there.stdout.strip():
        pytest.fail(
            "objects of the install bundle exist already (a real installation?); this test "
            f"applies and deletes them: use the test bed or remove them:\n{there.stdout}"
        )
    yield docs
    kubectl(
        "delete", "-f", "-", "--ignore-not-found", "--wait=true", "--timeout=120s",
        stdin=manifest(list(reversed(docs))), check=False,
    )  # fmt: skip


def check_stored_as_written() -> None:
    stored = live()
    for doc in bundle():
        problems = subset(doc, stored[path(doc)])
        assert not problems, f"{path(doc)}: the server stored something else: {problems[:5]}"


def test_bundle_crds_pass_server_dry_run(kubeconfig: str) -> None:
    crds = [d for d in bundle() if d["kind"] == "CustomResourceDefinition"]
    generated = {yaml.safe_load(f.read_text())["metadata"]["name"] for f in CRDS.glob("*.yaml")}
    assert {c["metadata"]["name"] for c in crds} == generated and len(generated) >= 6
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest(crds))
    for crd in crds:
        name = crd["metadata"]["name"]
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in result.stdout, (
            result.stdout
        )
    assert "(server dry run)" in result.stdout


def test_client_side_apply_twice_changes_nothing(fresh: list[Doc]) -> None:
    first = applied(kubectl("apply", "-k", str(INSTALL)).stdout)
    assert {first[ref(d)] for d in fresh} == {"created"}, first
    check_stored_as_written()
    written = versions()
    second = applied(kubectl("apply", "-k", str(INSTALL)).stdout)
    assert versions() == written, "the second apply wrote objects"
    # kubectl prints `configured` for PodDisruptionBudgets every time (their selector's patch
    # strategy is `replace`: the patch is never empty) although nothing is written (above).
    for doc in bundle():
        expected = {"configured"} if doc["kind"] == "PodDisruptionBudget" else {"unchanged"}
        assert second[ref(doc)] in expected, (ref(doc), second[ref(doc)])
    diff = kubectl("diff", "-k", str(INSTALL), check=False)
    assert (diff.returncode, diff.stdout) == (0, ""), diff.stdout + diff.stderr


def test_server_side_apply_twice_changes_nothing(fresh: list[Doc]) -> None:
    first = applied(kubectl("apply", "--server-side", "-k", str(INSTALL)).stdout)
    assert set(first.values()) == {"serverside-applied"}
    assert {ref(d) for d in bundle()} <= set(first)
    check_stored_as_written()
    written = versions()
    kubectl("apply", "--server-side", "-k", str(INSTALL))
    assert versions() == written, "the second apply wrote objects"
    diff = kubectl("diff", "--server-side", "-k", str(INSTALL), check=False)
    assert (diff.returncode, diff.stdout) == (0, ""), diff.stdout + diff.stderr
