"""The CRDs against a real API server: installation, discovery, validation, subresources."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT, kubectl

pytestmark = pytest.mark.cluster

DATA = Path(__file__).resolve().parent.parent / "data"
VALID: dict[str, dict[str, Any]] = yaml.safe_load((DATA / "valid_objects.yaml").read_text())
INVALID: list[dict[str, Any]] = yaml.safe_load((DATA / "invalid_objects.yaml").read_text())
KIND_NAMES = ["devices", "vips", "pools", "members", "healthmonitors", "l7policies"]


def test_all_crds_established(kubeconfig: str) -> None:
    out = kubectl("get", "crd", "-o", "json").stdout
    crds = {c["metadata"]["name"]: c for c in json.loads(out)["items"]}
    for plural in KIND_NAMES:
        conditions = {
            c["type"]: c["status"] for c in crds[f"{plural}.lbaas.dev"]["status"]["conditions"]
        }
        assert conditions["Established"] == "True", plural
        assert conditions["NamesAccepted"] == "True", plural


def test_category_and_short_names(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(VALID["vip"]))
    listed = kubectl("get", "lbaas", "-n", namespace, "-o", "name").stdout.split()
    assert "vip.lbaas.dev/v" in listed
    for short, kind in [
        ("vip", "vip"),
        ("lbpool", "pools"),
        ("lbmember", "members"),
        ("hm", "healthmonitors"),
        ("l7p", "l7policies"),
        ("lbdev", "devices"),
    ]:
        result = kubectl("get", short, "-n", namespace, check=False)
        assert result.returncode == 0, (short, kind, result.stderr)


def test_explain_vip_spec(kubeconfig: str) -> None:
    out = kubectl("explain", "vip.spec").stdout
    for field in (
        "address",
        "port",
        "protocol",
        "connectionLimit",
        "sessionPersistence",
        "deviceSelector",
        "deviceRef",
        "adminStateUp",
        "defaultPoolRef",
        "forwardedHeaders",
    ):
        assert field in out
    assert "allocated from the device's addressPool" in out


def test_examples_are_accepted(namespace: str) -> None:
    for path in sorted((ROOT / "manifests/examples").rglob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        for doc in docs:
            if doc["metadata"].get("namespace"):
                doc["metadata"]["namespace"] = namespace
            if doc["kind"] == "Device":
                doc["metadata"]["name"] = f"{namespace}-{doc['metadata']['name']}"
        result = kubectl(
            "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump_all(docs), check=False
        )
        assert result.returncode == 0, (path.name, result.stderr)
        assert result.stdout.count("created (server dry run)") == len(docs)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_object_is_accepted(namespace: str, name: str) -> None:
    obj = copy.deepcopy(VALID[name])
    if obj["kind"] != "Device":
        obj["metadata"]["namespace"] = namespace
    result = kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(obj), check=False)
    assert result.returncode == 0, (name, result.stderr)


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_invalid_object_is_rejected(namespace: str, case: dict[str, Any]) -> None:
    obj = copy.deepcopy(VALID[case["base"]])
    for key, value in case["spec"].items():
        if value is None:
            obj["spec"].pop(key, None)
        else:
            obj["spec"][key] = value
    if obj["kind"] != "Device":
        obj["metadata"]["namespace"] = namespace
    result = kubectl("create", "-f", "-", stdin=json.dumps(obj), check=False)
    assert result.returncode != 0, f"accepted: {case['name']}"
    assert case["expect"] in result.stderr, result.stderr


def _get(kind: str, name: str, namespace: str) -> dict[str, Any]:
    return dict(json.loads(kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout))


def _patch_vip(
    namespace: str, patch: str, *, status: bool = False, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Merge-patch VIP ``v`` with kubectl, on the main resource or its status subresource."""
    subresource = ["--subresource=status"] if status else []
    args = ["patch", "vip", "v", "-n", namespace, *subresource, "--type=merge", "-p", patch]
    return kubectl(*args, check=check)


def test_status_only_through_subresource(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(VALID["vip"]))
    # A status in a main-resource patch is ignored...
    _patch_vip(namespace, '{"status": {"phase": "Active"}}')
    assert "phase" not in _get("vip", "v", namespace).get("status", {})
    # ...and goes through the status subresource, with its schema enforced.
    _patch_vip(namespace, '{"status": {"phase": "Active", "unknown": {"x": 1}}}', status=True)
    body = _get("vip", "v", namespace)
    assert body["status"]["phase"] == "Active"
    assert "unknown" not in body["status"], "fields outside the schema are pruned"
    bad = _patch_vip(namespace, '{"status": {"phase": "Bogus"}}', status=True, check=False)
    assert bad.returncode != 0 and 'Unsupported value: "Bogus"' in bad.stderr


def test_generation_rises_on_spec_changes_only(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(VALID["vip"]))
    assert _get("vip", "v", namespace)["metadata"]["generation"] == 1
    _patch_vip(namespace, '{"status": {"phase": "Pending"}}', status=True)
    kubectl("label", "vip", "v", "-n", namespace, "team=a")
    assert _get("vip", "v", namespace)["metadata"]["generation"] == 1
    _patch_vip(namespace, '{"spec": {"port": 81}}')
    assert _get("vip", "v", namespace)["metadata"]["generation"] == 2


def test_defaults_applied_by_server(namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(VALID["monitor"]))
    spec = _get("healthmonitor", "hm", namespace)["spec"]
    assert spec["maxRetries"] == 3 and spec["httpMethod"] == "GET" and spec["urlPath"] == "/"
    assert spec["expectedCodes"] == "200"
