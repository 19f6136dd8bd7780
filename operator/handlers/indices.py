"""kopf in-memory indices: how the operator finds a tree's objects without list calls."""

from __future__ import annotations

from typing import Any

import kopf

from lbaas import GROUP, VERSION
from lbaas.tree import snapshot


def vip_index(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): snapshot(body)}


def pool_index(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): snapshot(body)}


def pools_by_vip(body: kopf.Body, namespace: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("vipRef")): snapshot(body)}


def members_by_pool(body: kopf.Body, namespace: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("poolRef")): snapshot(body)}


def monitors_by_pool(body: kopf.Body, namespace: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    return {(namespace, spec.get("poolRef")): snapshot(body)}


def device_index(body: kopf.Body, name: str, **_: Any) -> dict[Any, Any]:
    return {name: snapshot(body)}


def namespace_labels(name: str, labels: kopf.Labels, **_: Any) -> dict[Any, Any]:
    return {name: dict(labels)}


def register(registry: kopf.OperatorRegistry) -> None:
    for plural, fns in (
        ("vips", [vip_index]),
        ("pools", [pool_index, pools_by_vip]),
        ("members", [members_by_pool]),
        ("healthmonitors", [monitors_by_pool]),
        ("devices", [device_index]),
    ):
        for fn in fns:
            kopf.index(GROUP, VERSION, plural, registry=registry)(fn)
    kopf.index("v1", "namespaces", registry=registry)(namespace_labels)
