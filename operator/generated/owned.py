"""A generated object's body and ownership (pure: no API, no cache).

A generated object carries a controller ``ownerReference`` to its source (a Service, a
Gateway) and a label naming it, so that the source's objects are found by label (an index of
the views) and a hand-made object that merely carries the label is never taken for one (the
owner reference must name the source too). Label values are at most 63 characters: a longer
source name (a Gateway's may have 253) is labelled by a digest of it.

Specs are built through the API models, so they carry every default the API server would
fill in: comparing one with the cached object is then an exact test for "nothing to apply".
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from lbaas import API_VERSION
from lbaas.kinds import BY_KIND
from lbaas.views import meta_of, spec_of

MANAGED_BY = ("app.kubernetes.io/managed-by", "lbaas-operator")
MAX_LABEL = 63
MAX_NAME = 253


def label_value(name: str) -> str:
    """``name`` as a label value: itself when it fits, else a digest (stable, 63 chars)."""
    if len(name) <= MAX_LABEL:
        return name
    return "h-" + hashlib.sha256(name.encode()).hexdigest()[: MAX_LABEL - 2]


def bounded(name: str, limit: int = MAX_NAME) -> str:
    """An object name of at most ``limit`` characters: ``name`` itself, or its head and a
    digest of the whole (so that two long names never collide)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: limit - 17].rstrip('-.')}-{digest}"


@dataclass(frozen=True)
class Owner:
    """The source of generated objects: what their owner reference and label say."""

    api_version: str
    kind: str
    name: str
    uid: str
    label: str
    """The label key naming the source (its value: :func:`label_value` of the name)."""

    @classmethod
    def of(cls, obj: Mapping[str, Any], label: str) -> Owner:
        meta = meta_of(obj)
        return cls(
            str(obj.get("apiVersion")),
            str(obj.get("kind")),
            str(meta["name"]),
            str(meta.get("uid") or ""),
            label,
        )


def body(kind: str, name: str, namespace: str, owner: Owner, spec: BaseModel) -> dict[str, Any]:
    """A generated object of ``kind``, owned by ``owner``, with ``spec`` as the API stores it."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {owner.label: label_value(owner.name), MANAGED_BY[0]: MANAGED_BY[1]},
            "ownerReferences": [
                {
                    "apiVersion": owner.api_version,
                    "kind": owner.kind,
                    "name": owner.name,
                    "uid": owner.uid,
                    "controller": True,
                }
            ],
        },
        "spec": spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }


def generated_for(obj: Mapping[str, Any], *, kind: str, name: str, label: str) -> bool:
    """Whether ``obj`` was generated for the ``kind`` named ``name``: its label and a
    controller reference to an object of that kind and name (the uid may be an earlier one's)."""
    meta = meta_of(obj)
    if (meta.get("labels") or {}).get(label) != label_value(name):
        return False
    return any(
        r.get("kind") == kind and r.get("name") == name and r.get("controller")
        for r in meta.get("ownerReferences") or ()
    )


def unchanged(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when applying ``wanted`` would change nothing that it sets on ``existing``."""
    want, have = wanted["metadata"], meta_of(existing)
    labels = have.get("labels") or {}
    if any(labels.get(k) != v for k, v in want["labels"].items()):
        return False
    owner = want["ownerReferences"][0]
    refs = have.get("ownerReferences") or ()
    if not any(r.get("uid") == owner["uid"] and r.get("controller") for r in refs):
        return False
    model = BY_KIND[str(wanted["kind"])].spec
    try:
        current = model.model_validate(spec_of(existing))
    except ValidationError:
        return False
    return bool(current.model_dump(by_alias=True, exclude_none=True, mode="json") == wanted["spec"])
