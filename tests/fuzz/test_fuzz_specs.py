"""Fuzzing from the models (issue 10): trees of specs the CRD schema accepts, through the
operator's pure pipeline and the HAProxy driver's renderer.

For every generated tree (a VIP, 0-2 Pools, their Members and HealthMonitors, 1-3 Devices,
all from ``fuzz.schema``):

- tree building (``trees.reconcile.build`` with the device's member policy), the status
  reports of every outcome (``trees.report``) and the scheduler never raise; every status they
  produce is one the status schema accepts; the scheduler's choice obeys the tenant rules;
- the HAProxy fragment rendered from the tree either is refused cleanly (the driver's
  ``supports`` says why, or a value fails its token check) or passes ``haproxy -c`` loaded
  exactly as a device loads it (``haproxy.cfg`` + ``conf.d/<ns>__<name>.cfg``);
- no tenant value reaches the configuration unescaped (``fuzz.hxgrammar``): the strategies
  put quotes, ``#``, backticks, ``$``, ``%``, ``;`` and the like into paths and cookie names,
  and every value must come back from HAProxy's tokenizer as exactly itself.

Size: ``LBAAS_FUZZ_EXAMPLES`` examples per property: 300 fixed ones in CI (under a minute on two
cores), 5,000 new random ones in ``make fuzz`` (11 min 30 s for the three properties on a
busy two-core machine, see the Makefile).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.hxgrammar import haproxy_accepts, tenant_problems
from fuzz.schema import (
    FUZZ,
    MARKER_COOKIES,
    MARKER_PATHS,
    dns_labels,
    dns_subdomains,
    ip_addresses,
    specs,
)
from hypothesis import event, given
from hypothesis import strategies as st

from lbaas.api.device import DevicePhase, DeviceSpec, VIPAddressPolicy
from lbaas.api.healthmonitor import HealthMonitorSpec, HealthMonitorStatus
from lbaas.api.member import MemberSpec, MemberStatus
from lbaas.api.pool import PoolSpec, PoolStatus
from lbaas.api.vip import VIPSpec, VIPStatus
from lbaas.device_index import transport
from lbaas.drivers.errors import UnsupportedError
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.render import render_vip
from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import LoadBalancer
from lbaas.placement.addresses import allocate, pool_contains
from lbaas.placement.policy import special_class, vip_address_problem
from lbaas.placement.scheduler import (
    ADDRESS_IN_USE,
    ADDRESS_NOT_ALLOWED,
    NO_ELIGIBLE_DEVICE,
    QUOTA_EXCEEDED,
    Candidate,
    schedule,
)
from lbaas.trees import report, translate
from lbaas.trees.reconcile import build

STATUS_MODELS = {
    "VIP": VIPStatus,
    "Pool": PoolStatus,
    "Member": MemberStatus,
    "HealthMonitor": HealthMonitorStatus,
}
DRIVER = HAProxyDriver()

# ---- trees ----------------------------------------------------------------------------------


@dataclass
class Generated:
    namespace: str
    vip: dict[str, Any]
    pools: list[dict[str, Any]]
    members: dict[str, list[dict[str, Any]]]  # pool name → its members
    monitors: dict[str, list[dict[str, Any]]]
    devices: list[tuple[str, DeviceSpec, str | None, int, int]]  # name, spec, phase, vips, ns


def _snap(kind: str, namespace: str, name: str, spec: Any, n: int, deleting: bool) -> dict:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{kind}-{n}",
        "generation": 1 + n % 3,
        "creationTimestamp": f"2026-01-01T00:00:{n % 60:02d}Z",
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return {"apiVersion": "lbaas.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


# Built once: a strategy made inside a draw is validated again on every example.
SHORT = st.builds(lambda n, c: c * n, st.integers(1, 12), st.sampled_from("abcxyz019"))
VIP_SPECS = specs(
    "vips",
    VIPSpec,
    {
        ".protocol": lambda: st.sampled_from(["HTTP", "TCP", "HTTPS", *["TERMINATED_HTTPS"] * 2]),
        # Mostly names the driver takes (one over 251 characters names no file).
        ".tls.certificateRefs[].name": lambda: st.one_of(SHORT, SHORT, dns_subdomains()),
    },
).map(lambda spec: spec if spec.get("protocol") == "TERMINATED_HTTPS" or "tls" not in spec
      else {k: v for k, v in spec.items() if k != "tls"})  # fmt: skip
POOL_SPECS = specs("pools", PoolSpec)
MEMBER_SPECS = specs("members", MemberSpec)
# Biased to what gets rendered (an HTTP check, enabled), without leaving the schema's values.
MONITOR_SPECS = specs(
    "healthmonitors",
    HealthMonitorSpec,
    {
        ".type": lambda: st.sampled_from(["HTTP", "HTTP", "HTTPS", "TCP", "PING"]),
        ".adminStateUp": lambda: st.sampled_from([True, True, True, False]),
    },
)
DEVICE_SPECS = specs("devices", DeviceSpec, {".config": lambda: st.just({})}).map(
    DeviceSpec.model_validate
)
NAMES = dns_subdomains()
VIP_NAMES = st.one_of(SHORT, SHORT, SHORT, NAMES)
"""Mostly names the driver takes (a VIP key over 228 characters is refused before anything
is rendered), sometimes the long ones it refuses."""


def _with(spec: dict[str, Any], model: type, **changes: Any) -> dict[str, Any]:
    """``spec`` with ``changes`` when the model still accepts it (references, markers)."""
    changed = {**spec, **changes}
    if "sessionPersistence" in changes and spec.get("sessionPersistence") is None:
        return spec
    try:
        model.model_validate(changed)
    except ValueError:
        return spec
    return changed


def _unique(draw: st.DrawFn) -> Any:
    """Names for the tree's objects, drawn when needed, never one twice."""
    seen: set[str] = set()
    while True:
        name = draw(NAMES)
        if name in seen:
            name = f"{len(seen)}x{name}"[:253].rstrip(".-")
        seen.add(name)
        yield name


@st.composite
def generated(draw: st.DrawFn) -> Generated:
    namespace = draw(st.one_of(SHORT, dns_labels()))
    vip_name = draw(VIP_NAMES)
    vip_spec = draw(VIP_SPECS)
    if draw(st.integers(0, 3)):
        vip_spec = {k: v for k, v in vip_spec.items() if k not in ("deviceRef", "deviceSelector")}
    persistence = vip_spec.get("sessionPersistence")
    if persistence is not None and draw(st.integers(0, 3)):
        kind = draw(st.sampled_from(["APP_COOKIE", "HTTP_COOKIE", "APP_COOKIE", "SOURCE_IP"]))
        cookie = {"type": kind, "cookieName": draw(MARKER_COOKIES)}
        vip_spec = _with(vip_spec, VIPSpec, sessionPersistence=cookie)
        terminated = vip_spec.get("protocol") == "TERMINATED_HTTPS"  # HTTP already
        if kind != "SOURCE_IP" and not terminated and draw(st.integers(0, 3)):
            vip_spec = {**vip_spec, "protocol": "HTTP"}  # cookies need HTTP: mostly render
    vip = _snap("VIP", namespace, vip_name, vip_spec, 0, False)
    names = _unique(draw)
    pools, members, monitors, n = [], {}, {}, 1
    for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
        pool = next(names)
        ref = vip_name if draw(st.integers(0, 9)) else draw(NAMES)
        spec = {**draw(POOL_SPECS), "vipRef": ref}
        deleting = draw(st.integers(0, 9)) == 0
        pools.append(_snap("Pool", namespace, pool, spec, n, deleting))
        members[pool] = []
        for _ in range(draw(st.integers(0, 4))):
            n += 1
            spec = {**draw(MEMBER_SPECS), "poolRef": pool}
            deleting = draw(st.integers(0, 9)) == 0
            members[pool].append(_snap("Member", namespace, next(names), spec, n, deleting))
        monitors[pool] = []
        for _ in range(draw(st.sampled_from([1, 1, 0, 2]))):
            n += 1
            spec = {**draw(MONITOR_SPECS), "poolRef": pool}
            if draw(st.integers(0, 3)):
                spec = _with(spec, HealthMonitorSpec, urlPath=draw(MARKER_PATHS))
            monitors[pool].append(_snap("HealthMonitor", namespace, f"hm{n}", spec, n, False))
    devices = []
    for i in range(draw(st.integers(1, 2))):
        spec = draw(DEVICE_SPECS)
        top, quota = spec.capacity.max_vips, spec.capacity.max_vips_per_namespace
        phase = draw(st.sampled_from([DevicePhase.READY, DevicePhase.READY, "NotReady", None]))
        vips = draw(st.one_of(st.sampled_from([0, max(top - 1, 0), top]), st.integers(0, top + 1)))
        if draw(st.integers(0, 3)):  # mostly a device that may take the VIP: rules get a say
            pool = spec.address_pool or ["10.9.0.0/24"]
            update = {"allowed_namespaces": None, "namespace_selector": None, "address_pool": pool}
            spec = spec.model_copy(update={**update, "schedulable": True})
            phase = DevicePhase.READY
            vips = draw(st.sampled_from([0, max(top - 1, 0), max(top - 1, 0), top]))
        edges = [0, 1] + ([max(quota - 1, 0), quota] if quota is not None else [])
        mine = draw(st.one_of(st.sampled_from(edges), st.integers(0, 5)))
        devices.append((f"dev{i}", spec, phase, vips, mine))
    return Generated(namespace, vip, pools, members, monitors, devices)


class StubViews:
    """What ``trees.reconcile.build`` reads of the informer views: children by parent."""

    def __init__(self, g: Generated) -> None:
        self.g = g

    def children(self, kind: str, namespace: str, parent: str) -> list[Mapping[str, Any]]:
        if kind == "Pool":
            return [p for p in self.g.pools if p["spec"]["vipRef"] == parent]
        if kind == "L7Policy":
            return []  # fuzz/test_fuzz_l7.py
        found = self.g.members if kind == "Member" else self.g.monitors
        return list(found.get(parent, []))

    def pool(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return next((p for p in self.g.pools if p["metadata"]["name"] == name), None)


# ---- the properties ----------------------------------------------------------------------------


def _check_statuses(pairs: list[tuple[Any, dict[str, Any]]]) -> None:
    for obj, desired in pairs:
        STATUS_MODELS[obj.kind].model_validate(desired)


def _candidates(g: Generated, listeners: Mapping[tuple[str, int, str], str]) -> list[Candidate]:
    return [
        Candidate(name, spec, {}, phase, vips, frozenset(), namespace_vips=ns, listeners=listeners)
        for name, spec, phase, vips, ns in g.devices
    ]


def _driver_check(lb: LoadBalancer) -> Any:
    return lambda _c: DRIVER.supports(lb, {})


@given(g=generated(), other=ip_addresses())
@FUZZ
def test_pure_pipeline_never_crashes_and_obeys_the_tenant_rules(g: Generated, other: str) -> None:
    key = (g.namespace, g.vip["metadata"]["name"])
    name, device_spec = g.devices[0][0], g.devices[0][1]
    tree = build(StubViews(g), key, g.vip, device_spec, name)  # type: ignore[arg-type]
    assert tree.vip_spec is not None  # the model accepted it: so must build
    networks = [ipaddress.ip_network(n, strict=False) for n in device_spec.member_networks or ()]
    # What reaches the device: listed, or ordinary and unlisted.
    for member, spec in (m for pool in tree.pools for m in pool.members):
        for address in filter(None, (spec.address, spec.monitor_address)):
            parsed = ipaddress.ip_address(address)
            listed = any(parsed.version == n.version and parsed in n for n in networks)
            assert listed or (not networks and special_class(parsed) is None), (member, address)
    refused = [o for o in tree.objects if o.problem_reason == "MemberAddressNotAllowed"]
    assert all(o.kind == "Member" and o.problem for o in refused)
    _check_statuses(report.failed(tree, "Error", "DriverError", "refused"))
    _check_statuses(report.pending(tree, name))
    _check_statuses(report.unscheduled(tree, NO_ELIGIBLE_DEVICE, "no device"))
    address = tree.vip_spec.address or other
    lb = translate.load_balancer(tree, address)
    for ready in (True, False):
        health = {m.name: "ERROR" for _, m in list(lb.members())[:1]} if ready else None
        _check_statuses(report.active(tree, lb, name, health=health, device_ready=ready))

    held = (other, tree.vip_spec.port, transport(tree.vip_spec.protocol))
    listeners = {held: "elsewhere/taken"}
    candidates = _candidates(g, listeners)
    decision = schedule(tree.vip_spec, g.namespace, {}, candidates, _driver_check(lb))
    assert isinstance(decision.explain(), str) and decision.explain()
    chosen = decision.chosen
    event(f"scheduler: {decision.reason if chosen is None else 'chosen'}")
    if chosen is None:
        assert decision.reason in (
            NO_ELIGIBLE_DEVICE, ADDRESS_NOT_ALLOWED, ADDRESS_IN_USE, QUOTA_EXCEEDED
        )  # fmt: skip
        return
    assert chosen.phase == DevicePhase.READY and chosen.spec.schedulable
    assert chosen.vip_count < chosen.spec.capacity.max_vips
    quota = chosen.spec.capacity.max_vips_per_namespace
    assert quota is None or chosen.namespace_vips < quota
    if tree.vip_spec.address:
        assert vip_address_problem(chosen.spec, tree.vip_spec.address, chosen.name) is None
        parsed = ipaddress.ip_address(tree.vip_spec.address)
        assert not (parsed.is_unspecified or parsed.is_multicast)
        if chosen.spec.vip_address_policy == VIPAddressPolicy.POOL_ONLY:
            assert pool_contains(chosen.spec.address_pool, tree.vip_spec.address)
        assert (parsed, tree.vip_spec.port, transport(tree.vip_spec.protocol)) != (
            ipaddress.ip_address(held[0]),
            held[1],
            held[2],
        ), "the scheduler chose a device whose listener is held by another VIP"
    else:
        allocated = allocate(chosen.spec.address_pool, chosen.used_addresses)
        assert allocated is not None
        parsed = ipaddress.ip_address(allocated)
        assert not (parsed.is_unspecified or parsed.is_multicast), allocated


@given(g=generated(), fallback=ip_addresses())
@FUZZ
def test_rendered_config_passes_haproxy_and_escapes_every_tenant_value(
    g: Generated, fallback: str, haproxy: tuple[str, Path]
) -> None:
    key = (g.namespace, g.vip["metadata"]["name"])
    # Every member reaches the renderer (the device policy has its own property above): the
    # driver must be safe whatever a device lets through.
    device_spec = g.devices[0][1].model_copy(update={"member_networks": ["0.0.0.0/0", "::/0"]})
    tree = build(StubViews(g), key, g.vip, device_spec, g.devices[0][0])  # type: ignore[arg-type]
    assert tree.vip_spec is not None
    lb = translate.load_balancer(tree, tree.vip_spec.address or fallback)
    unsupported = DRIVER.supports(lb, {})
    try:
        fragment = render_vip(lb, str(haproxy[1] / "certs"))
    except UnsupportedError as exc:
        event("refused: unsupported")
        assert unsupported, f"render refused what supports() allows: {exc}"
        return
    except UnsafeValueError as exc:
        # The one value the schema's pattern admits that HAProxy cannot take: a reversed
        # expectedCodes range ("204-200"). Anything else is a tenant value we failed to expect.
        event("refused: unsafe value")
        assert exc.kind == "expectedCodes", exc
        return
    event("rendered")
    if "option httpchk" in fragment.text:
        event(
            "rendered: an HTTP check"
            + (" with a quote in its path" if "'" in fragment.text else "")
        )
    if sum(1 for _ in lb.members()) > 1:
        event("rendered: several members")
    if len(lb.pools) > 1:
        event("rendered: several pools")
    if any(p.persistence and p.persistence.cookie_name for p in lb.pools):
        event("rendered: a cookie name")
    if any(listener.tls is not None for listener in lb.listeners):
        event("rendered: TLS terminated")
    if any(p.tls is not None for p in lb.pools):
        event("rendered: TLS to the members")
    assert unsupported is None, f"supports() refused what render accepted: {unsupported}"
    problems = tenant_problems(lb, fragment.text, str(haproxy[1] / "certs"))
    assert not problems, "\n".join(problems) + "\n" + fragment.text
    haproxy_accepts(haproxy, lb, fragment.text, fragment.maps)
