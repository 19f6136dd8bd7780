"""Fuzzing L7 policies (issue 20): VIPs with several pools and policies the CRD schema accepts,
full of quotes, ``#``, ``%``, ``$``, backslashes and spaces, through the operator's pure
pipeline.

For every generated tree: building it never raises and every policy either goes to the device
or says why not (one of the reasons the docs list); what goes is in evaluation order, names only
pools of the VIP in use, and reaches the driver model with every tenant string exactly as
written (nothing trimmed, unescaped or rewritten on the way); the reports of every outcome are
statuses the status schema accepts; cutting the tree to a device that lacks features leaves
out policies only, each marked ``Unsupported``. Through the HAProxy driver: the fragment passes
``haproxy -c`` with its map files, and every tenant string of every rule is one word that
HAProxy's tokenizer reads back as itself (``fuzz.hxl7``).

Size: ``LBAAS_FUZZ_EXAMPLES`` examples (300 fixed ones in CI, ``make fuzz`` more).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.hxgrammar import haproxy_accepts, tenant_problems
from fuzz.l7schema import policies
from fuzz.schema import FUZZ
from hypothesis import event, given
from hypothesis import strategies as st

from lbaas.api import VIPStatus
from lbaas.api.healthmonitor import HealthMonitorStatus
from lbaas.api.l7policy import L7PolicySpec, L7PolicyStatus
from lbaas.api.member import MemberStatus
from lbaas.api.pool import PoolStatus
from lbaas.drivers import model
from lbaas.drivers.capabilities import FEATURES, missing, required_features, why_unsupported
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.l7 import is_map_policy
from lbaas.drivers.haproxy.render import render_vip
from lbaas.trees import l7, report, translate
from lbaas.trees.tree import Tree, build_tree

STATUS_MODELS = {
    "VIP": VIPStatus,
    "Pool": PoolStatus,
    "Member": MemberStatus,
    "HealthMonitor": HealthMonitorStatus,
    "L7Policy": L7PolicyStatus,
}
REASONS = {
    "InvalidSpec",
    "PoolNotFound",
    "PoolNotInVIP",
    "ProtocolMismatch",
    "RedirectLoop",
    "Conflict",
}
NS = "fuzz"
HX = HAProxyDriver()
POOLS = ["a", "b", "c"]
ELSEWHERE = "theirs"  # a Pool of another VIP


@dataclass
class Generated:
    vip: dict[str, Any]
    pools: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    lacking: set[str]


def _snap(kind: str, name: str, spec: dict[str, Any], n: int) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{kind}-{name}",
        "generation": 1,
        "creationTimestamp": f"2026-01-01T00:00:{n % 60:02d}Z",
    }
    return {"apiVersion": "lbaas.dev/v1alpha1", "kind": kind, "metadata": meta, "spec": spec}


@st.composite
def generated(draw: st.DrawFn) -> Generated:
    protocol = draw(st.sampled_from(["HTTP", "HTTP", "HTTP", "TCP"]))
    existing = draw(st.lists(st.sampled_from(POOLS), max_size=3, unique=True))
    vip_spec: dict[str, Any] = {"port": draw(st.sampled_from([80, 8080])), "protocol": protocol}
    if draw(st.booleans()):
        vip_spec["defaultPoolRef"] = draw(st.sampled_from([*POOLS, ELSEWHERE]))
    if protocol == "HTTP" and draw(st.booleans()):
        vip_spec["forwardedHeaders"] = draw(st.booleans())
    pools = [
        _snap("Pool", p, {"vipRef": "web", "protocol": "HTTP"}, i) for i, p in enumerate(existing)
    ]
    specs = draw(st.lists(policies("web", [*POOLS, ELSEWHERE]), max_size=4))
    named = [
        _snap("L7Policy", f"p{i}", spec, draw(st.integers(0, 3))) for i, spec in enumerate(specs)
    ]
    l7_features = sorted(f for f in FEATURES if f.startswith(("l7.", "http.")))
    lacking = set(draw(st.lists(st.sampled_from(l7_features), max_size=3)))
    return Generated(_snap("VIP", "web", vip_spec, 0), pools, named, lacking)


def _owner(name: str) -> str | None:
    return "other" if name == ELSEWHERE else ("web" if name in POOLS else None)


def _check_statuses(pairs: list[tuple[Any, dict[str, Any]]]) -> None:
    for obj, desired in pairs:
        STATUS_MODELS[obj.kind].model_validate(desired)


def _strings_survive(spec: L7PolicySpec, policy: model.L7Policy) -> None:
    """Every tenant string reaches the model exactly as written."""
    match = spec.match
    assert policy.match.hostnames == tuple(dict.fromkeys(match.hostnames or ()))
    if match.path is not None:
        assert policy.match.path == model.PathMatch(
            model.PathMatchType(str(match.path.type)), match.path.value
        )
    assert [(h.name, h.value) for h in policy.match.headers] == [
        (h.name, h.value) for h in match.headers or ()
    ]
    assert [(q.name, q.value) for q in policy.match.query_params] == [
        (q.name, q.value) for q in match.query_params or ()
    ]
    for mine, theirs in (
        (policy.request_headers, spec.request_headers),
        (policy.response_headers, spec.response_headers),
    ):
        if theirs is None:
            assert mine is None
            continue
        assert mine is not None
        assert [(h.name, h.value) for h in mine.set] == [
            (h.name, h.value) for h in theirs.set or ()
        ]
        assert [(h.name, h.value) for h in mine.add] == [
            (h.name, h.value) for h in theirs.add or ()
        ]
        assert list(mine.remove) == list(theirs.remove or ())
    redirect = spec.action.redirect
    if redirect is not None:
        assert policy.action.redirect is not None
        got = policy.action.redirect
        assert (got.scheme, got.hostname, got.port, got.status_code) == (
            redirect.scheme, redirect.hostname, redirect.port, redirect.status_code
        )  # fmt: skip


def _build(g: Generated) -> Tree:
    tree = build_tree(g.vip, g.pools, {}, {}, None, _owner)
    return l7.attach(tree, g.policies, _owner)


@given(g=generated())
@FUZZ
def test_l7_pipeline_never_crashes_and_keeps_every_string(g: Generated) -> None:
    tree = _build(g)
    assert tree.vip_spec is not None
    used = {node.name for node in tree.policies}
    for obj in tree.objects:
        if obj.kind != "L7Policy":
            continue
        assert (obj.name in used) != bool(obj.problem), obj.name
        if obj.problem:
            assert obj.problem_reason in REASONS, (obj.problem_reason, obj.problem)
            event(f"policy refused: {obj.problem_reason}")
    in_use = {node.name for node in tree.pools}
    order = [(node.spec.priority, node.name) for node in tree.policies]
    assert order == sorted(order)
    lb = translate.load_balancer(tree, "192.0.2.1")
    (listener,) = lb.listeners
    assert [p.name for p in listener.policies] == [node.name for node in tree.policies]
    assert listener.default_pool is None or listener.default_pool in in_use
    for node, policy in zip(tree.policies, listener.policies, strict=True):
        assert {wp.pool for wp in policy.action.pools} <= in_use
        _strings_survive(node.spec, policy)
        event(f"policy used: {policy.action.type}")
    assert required_features(lb) <= set(FEATURES)

    _check_statuses(report.failed(tree, "Error", "DriverError", "refused"))
    _check_statuses(report.pending(tree, "dev"))
    _check_statuses(report.unscheduled(tree, "NoEligibleDevice", "no device"))
    for ready in (True, False):
        _check_statuses(report.active(tree, lb, "dev", health=None, device_ready=ready))

    supported = set(FEATURES) - g.lacking
    fitted = l7.fit(tree, lb, lambda t: ", ".join(missing(t, supported)) or None, device="dev")
    kept = {p.name for p in fitted.listeners[0].policies}
    assert kept <= used
    for obj in tree.objects:
        if obj.kind == "L7Policy" and obj.name in used - kept:
            assert obj.problem_reason == "Unsupported"
            event("policy refused: Unsupported")
    assert fitted.pools == lb.pools and fitted.listeners[0].default_pool == listener.default_pool
    _check_statuses(report.active(tree, fitted, "dev", health={}, device_ready=True))


@given(g=generated())
@FUZZ
def test_l7_rendered_config_passes_haproxy_and_escapes_every_tenant_value(
    g: Generated, haproxy: tuple[str, Path]
) -> None:
    """What the core hands the HAProxy driver (its features, its own refusals per policy)
    renders, passes ``haproxy -c`` with its maps, and every tenant string of every rule comes
    back from HAProxy's tokenizer as itself (``hxl7``)."""
    tree = _build(g)
    lb = translate.load_balancer(tree, "192.0.2.1")
    fitted = l7.fit(tree, lb, lambda t: why_unsupported(HX, {}, t), device="hx")
    if why_unsupported(HX, {}, fitted) is not None:
        event("haproxy: refused as a whole")
        return
    fragment = render_vip(fitted)
    rules = [p for p in fitted.listeners[0].policies if not is_map_policy(p)]
    event(f"haproxy: rendered with {len(rules)} rule policies")
    problems = tenant_problems(fitted, fragment.text)
    assert not problems, "\n".join(problems) + "\n" + fragment.text
    haproxy_accepts(haproxy, fitted.key, fragment.text, fragment.maps)
