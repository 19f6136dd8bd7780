"""Generate the CustomResourceDefinitions from the pydantic models (our controller-gen).

pydantic's JSON schema is close to, but not, a Kubernetes structural schema: it uses ``$ref``,
``anyOf`` with ``null`` for optional fields, ``title`` everywhere and ``additionalProperties:
true`` for free-form maps. ``structural()`` rewrites those; everything else (enums, bounds,
patterns, defaults, CEL rules) passes through as the models state it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from lbaas import GROUP, VERSION
from lbaas.api import KINDS
from lbaas.api.meta import KindInfo

CATEGORY = "lbaas"
_DROP_KEYS = {"title", "examples"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve(merged, defs)
        return {k: _resolve(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def structural(node: Any) -> Any:
    """Rewrite a resolved pydantic schema node into a Kubernetes structural schema node."""
    if isinstance(node, list):
        return [structural(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for choice in ("anyOf", "oneOf"):
        options = node.get(choice)
        if options is not None:
            non_null = [o for o in options if o.get("type") != "null"]
            if len(non_null) != 1:
                raise ValueError(f"cannot express {choice} with {len(non_null)} non-null branches")
            del node[choice]
            outer = {k: v for k, v in node.items() if k != "default" or v is not None}
            node = {**non_null[0], **outer}
            merged_rules = non_null[0].get("x-kubernetes-validations", []) + outer.get(
                "x-kubernetes-validations", []
            )
            if merged_rules:
                node["x-kubernetes-validations"] = merged_rules
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP_KEYS or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value)
        elif key == "additionalProperties" and value is True:
            out["x-kubernetes-preserve-unknown-fields"] = True
        else:
            out[key] = value
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if (
        out.get("type") == "object"
        and "additionalProperties" in out
        and not isinstance(out["additionalProperties"], dict)
    ):
        out.pop("additionalProperties")
    return out


def model_schema(model: type[Any]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(_resolve(raw, raw.get("$defs", {})))


def crd(info: KindInfo) -> dict[str, Any]:
    status = model_schema(info.status)
    spec = model_schema(info.spec)
    schema = {
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            **({"priority": c.priority} if c.priority else {}),
            **({"description": c.description} if c.description else {}),
        }
        for c in info.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text of every CRD, in a stable order."""
    header = "# Generated from the pydantic models in operator/api by `make crds`. Do not edit.\n"
    return {
        f"{GROUP}_{info.plural}.yaml": header
        + yaml.safe_dump(crd(info), sort_keys=False, width=100)
        for info in KINDS
    }


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
