"""Least privilege, proven from the code (issue 10): the API calls ``apicalls`` derives from
the package, against the chart's rendered RBAC, role by role: nothing missing, nothing extra.

Each derived call becomes grants it needs in concrete namespaces (cluster-scoped; the release
namespace, where Leases and Events about Devices live; the watched namespaces, ``*`` when
cluster-wide; the release namespace plus ``rbac.secretNamespaces`` for Secrets), and each
rendered rule becomes the grants it gives (a ClusterRole's namespaced rule: ``*``). A needed
grant the chart lacks is *missing* (the operator would get 403s); a rendered grant no call
needs is *extra*, and so is a grant broader than needed (all names where the code only ever
names one Lease, every namespace where one suffices).
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import apicalls
import pytest
from apicalls import Call
from chartkit import NAMESPACE, Doc, container, env, of_kind, render, require_helm
from grants import Grant, covers, needed_grants, rendered_grants

from lbaas import runtime
from lbaas.config import OperatorSettings
from lbaas.kube import resources
from lbaas.kube.client import Kube

WATCHED = ["team-a", "team-b"]
SECRET_NAMESPACES = ["creds"]


def services_in_code() -> bool:
    kube = object.__new__(Kube)
    settings = OperatorSettings(lease_namespace=NAMESPACE)
    return resources.SERVICES in runtime.informers_for(kube, settings, "controller")  # type: ignore[arg-type]


def differences(
    calls: set[Call], docs: list[Doc], watched: list[str], secrets: list[str]
) -> tuple[list[Grant], list[Grant]]:
    """(missing, extra) grants."""
    wanted = needed_grants(calls, watched, secrets, NAMESPACE)
    granted = rendered_grants(docs)
    missing = [w for w in wanted if not any(covers(g, w) for g in granted)]
    extra = [
        g
        for g in granted
        if not any(
            g.key() == w.key() and g.namespace == w.namespace and bool(g.names) == bool(w.names)
            for w in wanted
        )
    ]
    return sorted(missing, key=repr), sorted(extra, key=repr)


def compare(calls: set[Call], docs: list[Doc], watched: list[str], secrets: list[str]) -> None:
    missing, extra = differences(calls, docs, watched, secrets)

    def why(grant: Grant) -> str:
        sites = sorted(
            {c.site for c in calls if (c.role, c.group, c.resource, c.verb) == grant.key()}
        )
        return f"  {grant}  <- {', '.join(sites[:3]) or 'no code'}"

    assert not missing and not extra, (
        "the chart's RBAC and the code's API calls differ.\nMissing (the code makes these"
        " calls, the chart does not allow them):\n"
        + "\n".join(map(why, missing))
        + "\nExtra (allowed, never made, or broader than made):\n"
        + "\n".join(map(why, extra))
    )


SCOPES = {
    "cluster-wide": ([], []),
    "namespaced": (
        ["--set", "config.namespaces={team-a,team-b}", "--set", "rbac.secretNamespaces={creds}"],
        WATCHED,
    ),
}


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


@pytest.mark.parametrize("mode", ["split", "run"])
@pytest.mark.parametrize("scope", list(SCOPES))
@pytest.mark.parametrize("services", [False, True], ids=["services-off", "services-on"])
@pytest.mark.parametrize("gateway", ["false", "auto"], ids=["gateway-off", "gateway-auto"])
def test_chart_rbac_is_exactly_what_the_code_calls(
    helm: str, mode: str, scope: str, services: bool, gateway: str
) -> None:
    values, watched = SCOPES[scope]
    secrets = SECRET_NAMESPACES if watched else []
    docs = render(
        helm,
        *values,
        *("--set", f"mode={mode}", "--set", f"config.services={str(services).lower()}"),
        *("--set", f"config.gatewayApi={gateway}"),
    )
    settings = OperatorSettings(
        namespaces=watched[:1], lease_namespace=NAMESPACE, services=services, gateway_api=gateway
    )
    compare(apicalls.needed(settings), docs, watched, secrets)


def test_gateway_api_true_needs_what_auto_needs(helm: str) -> None:
    """``true`` only makes missing CRDs fatal: the same calls, the same rules as ``auto``."""
    on = OperatorSettings(lease_namespace=NAMESPACE, gateway_api="true")
    assert apicalls.needed(on) == apicalls.needed(on.model_copy(update={"gateway_api": "auto"}))
    compare(apicalls.needed(on), render(helm, "--set", "config.gatewayApi=true"), [], [])
    gateway = {c for c in apicalls.needed(on) if c.group == "gateway.networking.k8s.io"}
    assert {(c.resource, c.verb) for c in gateway} >= {
        ("gatewayclasses", "watch"), ("gateways", "patch"), ("gateways/status", "patch"),
        ("tcproutes/status", "patch"), ("referencegrants", "list"),
    }  # fmt: skip


def test_a_mutated_chart_or_code_is_caught(helm: str) -> None:
    """The comparison can fail: a rule taken away is missing, one added is extra."""
    docs = render(helm, "--set", "config.services=false")
    calls = apicalls.needed(OperatorSettings(lease_namespace=NAMESPACE))
    agent = next(
        d for d in docs if d.get("kind") == "ClusterRole" and "agent" in d["metadata"]["name"]
    )
    agent["rules"] = [r for r in agent["rules"] if r["resources"] != ["devices/status"]]
    with pytest.raises(AssertionError, match=r"Missing[\s\S]*devices/status"):
        compare(calls, docs, [], [])
    agent["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["delete"]})
    with pytest.raises(AssertionError, match=r"Extra[\s\S]*secrets"):
        compare(calls, docs, [], [])
    fewer = {c for c in calls if not (c.role == "controller" and c.resource == "leases")}
    with pytest.raises(AssertionError, match=r"Extra[\s\S]*leases"):
        compare(fewer, render(helm, "--set", "config.services=false"), [], [])


def test_secrets_only_where_served_and_by_agents(helm: str) -> None:
    """Cluster-wide, the operator serves every namespace: its agents' ClusterRole reads Secrets
    (TLS trees name them anywhere); credentials by name in the release namespace. Namespaced:
    Roles only, in the served namespaces. The controller never reads a Secret."""
    holders = [
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"], tuple(rule["verbs"]))
        for d in of_kind(render(helm), "ClusterRole", "Role")
        for rule in d["rules"]
        if "secrets" in rule["resources"]
    ]
    agent = "lbaas-operator-agent"
    assert sorted(holders) == [
        ("ClusterRole", None, agent, ("get", "list", "watch")),
        ("Role", NAMESPACE, agent, ("get",)),
    ]
    docs = render(helm, "--set", "config.namespaces={team-a}")
    holders = [
        (d["kind"], d["metadata"].get("namespace"), tuple(rule["verbs"]))
        for d in of_kind(docs, "ClusterRole", "Role")
        for rule in d["rules"]
        if "secrets" in rule["resources"]
    ]
    listing = ("get", "list", "watch")
    assert sorted(holders) == [("Role", NAMESPACE, ("get",)), ("Role", "team-a", listing)]


def test_device_events_go_to_the_namespace_the_chart_allows(helm: str) -> None:
    """Reporter posts Events about cluster-scoped objects in ``event_namespace``, which the
    process sets to ``LBAAS_LEASE_NAMESPACE``, which the chart sets to the pod's namespace:
    the release namespace, where its Role (namespaced mode) or ClusterRole allows Events."""
    source = textwrap.dedent(inspect.getsource(runtime.Process.build))
    reporter_call = next(
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call) and ast.unparse(n.func) == "Reporter"
    )
    keywords = {k.arg: ast.unparse(k.value) for k in reporter_call.keywords}
    assert keywords["event_namespace"] == "settings.lease_namespace"
    for values in ([], ["--set", "config.namespaces={team-a}"], ["--set", "mode=run"]):
        docs = render(helm, *values)
        for workload in of_kind(docs, "Deployment", "DaemonSet"):
            assert env(workload)["LBAAS_LEASE_NAMESPACE"] == "field:metadata.namespace"
            assert container(workload)
        calls = apicalls.needed(OperatorSettings(lease_namespace=NAMESPACE))
        device_events = {c for c in calls if c.resource == "events" and c.where == "release"}
        assert {c.role for c in device_events} == {"controller", "agent"}
