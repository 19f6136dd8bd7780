"""The machinery shared by the generators of VIP trees (lbaas.generated): names, labels,
ownership, the shared address of a group of VIPs (pure)."""

from __future__ import annotations

from typing import Any

from lbaas.api.vip import VIPSpec
from lbaas.generated import owned, sharing


def test_label_values_and_names_stay_within_the_api_limits() -> None:
    assert owned.label_value("gw") == "gw"
    long = "g" * 200
    value = owned.label_value(long)
    assert len(value) == 63 and value.startswith("h-") and value == owned.label_value(long)
    assert owned.label_value(long + "x") != value
    assert owned.bounded("short") == "short"
    a, b = owned.bounded("n" * 300 + "a"), owned.bounded("n" * 300 + "b")
    assert len(a) == len(b) == 253 and a != b and a[:200] == "n" * 200


def vip(
    name: str,
    address: str | None = None,
    device: str | None = None,
    *,
    deleting: bool = False,
    spec: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"address": address, "device": device} if address else {}
    return {"kind": "VIP", "metadata": meta, "spec": spec or {"port": 1}, "status": status}


def test_the_group_follows_its_primary_and_keeps_the_address_while_it_is_replaced() -> None:
    assert sharing.placement_of([vip("a"), vip("b")], "a") is None
    here = sharing.Placement("10.0.0.1", "lb1")
    assert (
        sharing.placement_of([vip("b", "10.0.0.2", "lb2"), vip("a", "10.0.0.1", "lb1")], "a")
        == here
    )
    old = vip("old", "10.0.0.9", "lb9", deleting=True)
    assert sharing.placement_of([old, vip("b", "10.0.0.2", "lb2")], "a").address == "10.0.0.2"
    assert sharing.placement_of([old], "a").address == "10.0.0.9", "until it is gone"

    where = sharing.where
    assert where(primary=True, existing=None, address=None, device=None, placement=None) == (
        None,
        None,
    )
    assert where(primary=False, existing=None, address=None, device=None, placement=None) is None
    assert where(primary=False, existing=None, address=None, device=None, placement=here) == (
        "10.0.0.1",
        "lb1",
    )
    bound_primary = vip("a", "10.0.0.1", "lb1")
    assert where(
        primary=True, existing=bound_primary, address=None, device=None, placement=here
    ) == (None, None), "its spec never flips to an address"
    assert where(primary=False, existing=None, address="10.9.9.9", device="d", placement=here) == (
        "10.9.9.9",
        "d",
    )


def test_owned_bodies_are_recognised_and_compared_with_server_defaults() -> None:
    gw = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "ns", "uid": "u1"},
    }
    owner = owned.Owner.of(gw, "lbaas.dev/gateway")
    body = owned.body("VIP", "gw-80", "ns", owner, VIPSpec(port=80))
    assert body["metadata"]["ownerReferences"][0]["apiVersion"] == gw["apiVersion"]
    assert owned.generated_for(body, kind="Gateway", name="gw", label="lbaas.dev/gateway")
    assert not owned.generated_for(body, kind="Service", name="gw", label="lbaas.dev/gateway")
    stored = {**body, "spec": {"port": 80}}  # the API server's copy: defaults left out
    assert owned.unchanged(stored, body)
    assert not owned.unchanged({**stored, "spec": {"port": 81}}, body)
    other_owner = {
        **stored,
        "metadata": {
            **stored["metadata"],
            "ownerReferences": [{**stored["metadata"]["ownerReferences"][0], "uid": "u2"}],
        },
    }
    assert not owned.unchanged(other_owner, body), "an earlier Gateway of that name"
