"""The Views' indices for Services: EndpointSlices and generated objects by Service."""

from __future__ import annotations

from typing import Any

from lbaas.kube.informer import Informer
from lbaas.kube.resources import ENDPOINT_SLICES, MEMBERS, SERVICES, VIPS
from lbaas.views import Views


def obj(kind: str, name: str, version: int, **labels: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "shop",
            "resourceVersion": str(version),
            "labels": labels,
        },
    }


def views() -> tuple[Views, dict[Any, Informer]]:
    informers = {
        r: Informer(kube=None, resource=r)  # type: ignore[arg-type]  # no I/O here
        for r in (SERVICES, ENDPOINT_SLICES, VIPS, MEMBERS)
    }
    return Views(informers), informers


def test_slices_and_generated_objects_are_found_by_service() -> None:
    made, informers = views()
    slices, vips, members = informers[ENDPOINT_SLICES], informers[VIPS], informers[MEMBERS]
    slices._apply(
        "ADDED", obj("EndpointSlice", "web-a", 1, **{"kubernetes.io/service-name": "web"})
    )
    slices._apply(
        "ADDED", obj("EndpointSlice", "api-a", 2, **{"kubernetes.io/service-name": "api"})
    )
    vips._apply("ADDED", obj("VIP", "web-80", 3, **{"lbaas.dev/service": "web"}))
    members._apply("ADDED", obj("Member", "web-80-m", 4, **{"lbaas.dev/service": "web"}))
    vips._apply("ADDED", obj("VIP", "handmade", 5))
    assert [s["metadata"]["name"] for s in made.endpoint_slices("shop", "web")] == ["web-a"]
    assert [o["metadata"]["name"] for o in made.generated("shop", "web")] == ["web-80-m", "web-80"]
    assert made.services_with_generated() == {("shop", "web")}

    # a relabelled slice moves; deleted objects leave the index (and the key with them)
    slices._apply(
        "MODIFIED", obj("EndpointSlice", "web-a", 6, **{"kubernetes.io/service-name": "api"})
    )
    assert made.endpoint_slices("shop", "web") == []
    assert len(made.endpoint_slices("shop", "api")) == 2
    vips._apply("DELETED", obj("VIP", "web-80", 7, **{"lbaas.dev/service": "web"}))
    members._apply("DELETED", obj("Member", "web-80-m", 8, **{"lbaas.dev/service": "web"}))
    assert made.generated("shop", "web") == []
    assert made.services_with_generated() == set()
