"""The plain install bundle (manifests/install/) against a real API server.

The CRDs go through a server-side dry run (the ``kubeconfig`` fixture has installed the repo's
CRDs already); every other object of a kind the server serves is applied for real, the way the
chart README says (``kubectl apply --server-side``), checked, and removed again. The test bed
serves no Deployments, Services or RBAC objects: those are left out there, and applied on kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from helpers import ROOT, kubectl

pytestmark = pytest.mark.cluster

BUNDLE = ROOT / "manifests" / "install" / "lbaas-operator.yaml"
FIELD_MANAGER = "lbaas-install-bundle-test"

Doc = dict[str, Any]


def bundle() -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(BUNDLE.read_text()) if doc]


def served_kinds() -> set[tuple[str, str]]:
    """(apiVersion, kind) of everything the server serves, from ``kubectl api-resources``."""
    # Columns: NAME [SHORTNAMES] APIVERSION NAMESPACED KIND; SHORTNAMES may be empty.
    # Not checked: a cluster with an unavailable aggregated API still lists the rest.
    out = kubectl("api-resources", "--no-headers", check=False).stdout
    kinds = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            kinds.add((parts[-3], parts[-1]))
    return kinds


def manifest(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def exists(doc: Doc) -> bool:
    out = kubectl("get", "-f", "-", "--ignore-not-found", "-o", "name", stdin=manifest([doc]))
    return bool(out.stdout.strip())


def test_bundle_crds_pass_server_dry_run(kubeconfig: str) -> None:
    crds = [d for d in bundle() if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 5
    result = kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifest(crds))
    for crd in crds:
        name = crd["metadata"]["name"]
        assert f"customresourcedefinition.apiextensions.k8s.io/{name}" in result.stdout, (
            result.stdout
        )
    assert "(server dry run)" in result.stdout


@pytest.fixture
def applicable(kubeconfig: str) -> Iterator[tuple[list[Doc], list[Doc]]]:
    """(new, pre-existing) objects of served kinds; the new ones are deleted afterwards."""
    served = served_kinds()
    docs = [
        d
        for d in bundle()
        if d["kind"] != "CustomResourceDefinition" and (d["apiVersion"], d["kind"]) in served
    ]
    new = [d for d in docs if not exists(d)]
    old = [d for d in docs if d not in new]
    yield new, old
    if new:  # reverse order: the namespace goes last
        kubectl(
            "delete", "-f", "-", "--ignore-not-found", "--wait=false",
            stdin=manifest(list(reversed(new))), check=False,
        )  # fmt: skip


def test_bundle_applies_every_served_kind(applicable: tuple[list[Doc], list[Doc]]) -> None:
    new, old = applicable
    kinds = {d["kind"] for d in new + old}
    assert "Namespace" in kinds, "every API server serves namespaces"
    # Objects that were there before (a real installation) only get a dry run: never touched.
    if old:
        kubectl(
            "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--dry-run=server",
            "-f", "-", stdin=manifest(old),
        )  # fmt: skip
    if new:
        kubectl(
            "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-",
            stdin=manifest(new),
        )  # fmt: skip
        got = json.loads(kubectl("get", "-f", "-", "-o", "json", stdin=manifest(new)).stdout)
        items = got["items"] if got.get("kind") == "List" else [got]
        assert [(i["kind"], i["metadata"]["name"]) for i in items] == [
            (d["kind"], d["metadata"]["name"]) for d in new
        ]
        for item, doc in zip(items, new, strict=True):
            for key, value in doc["metadata"].get("labels", {}).items():
                assert item["metadata"]["labels"][key] == value, (doc["kind"], key)
            if "namespace" in doc["metadata"]:
                assert item["metadata"]["namespace"] == doc["metadata"]["namespace"]
