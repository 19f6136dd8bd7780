"""The chart's RBAC, role by role and scope by scope: exactly the rules below, each with the code
that needs it (the same table is in the chart README).

The operator reads through informers only (list + watch), writes statuses and finalizers by
server-side apply (patch), posts Events (create), keeps Leases through LeaseStore and reads
Device credentials by name (get). kopf watches nothing (its CRD scan is disabled).
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass

import pytest
from chartkit import CHART, NAMESPACE, RELEASE, Doc, of_kind, one, render, require_helm, rule_key

from lbaas import leases

GENERATED = ("vips", "pools", "members", "healthmonitors")
"""The kinds the Services controller writes."""
TREE = (*GENERATED, "l7policies")
STATUSES = tuple(f"{kind}/status" for kind in TREE)
CONTROLLER = f"{RELEASE}-controller"
AGENT = f"{RELEASE}-agent"


@dataclass(frozen=True)
class Rule:
    group: str
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str
    names: tuple[str, ...] = ()

    def k8s(self) -> Doc:
        rule: Doc = {"apiGroups": [self.group], "resources": list(self.resources)}
        if self.names:
            rule["resourceNames"] = list(self.names)
        rule["verbs"] = list(self.verbs)
        return rule


# ---- the controller ------------------------------------------------------------------------------
CONTROLLER_CLUSTER = [
    Rule("lbaas.dev", ("devices",), ("list", "watch", "patch"),
         "informer; placement.inventory adds/removes the finalizer (server-side apply)"),
    Rule("lbaas.dev", ("devices/status",), ("patch",), "placement.inventory: Device counts"),
    Rule("", ("namespaces",), ("list", "watch"), "Namespaces informer: namespaceSelector"),
]  # fmt: skip
CONTROLLER_WATCHED = [
    Rule("lbaas.dev", GENERATED, ("list", "watch", "create", "patch", "delete"),
         "informers; Services controller's VIP trees; placement.binder's VIP finalizer"),
    Rule("lbaas.dev", ("l7policies",), ("list", "watch"),
         "informer (the Services controller writes no L7Policy)"),
    Rule("lbaas.dev", STATUSES, ("patch",), "placement.binder (VIP), trees.orphans (children)"),
    Rule("", ("services",), ("list", "watch", "patch"), "Services controller; its finalizer"),
    Rule("", ("services/status",), ("patch",), "Reporter.service_load_balancer"),
    Rule("discovery.k8s.io", ("endpointslices",), ("list", "watch"), "endpoints → Members"),
]  # fmt: skip
CONTROLLER_WATCHED_WITHOUT_SERVICES = [
    Rule("lbaas.dev", TREE, ("list", "watch"), "informers"),
    Rule("lbaas.dev", ("vips",), ("patch",), "placement.binder: the VIP finalizer"),
    CONTROLLER_WATCHED[2],
]
CONTROLLER_LEASES = [
    Rule("coordination.k8s.io", ("leases",), ("create",), "agents.election creates its Lease"),
    Rule("coordination.k8s.io", ("leases",), ("get", "update"), "and reads/renews only it",
         (leases.LEADER_LEASE,)),
    Rule("coordination.k8s.io", ("leases",), ("list", "watch"),
         "placement.ownerless: the Leases informer (Devices no agent drives)"),
]  # fmt: skip
# ---- the agents ----------------------------------------------------------------------------------
AGENT_CLUSTER = [
    Rule("lbaas.dev", ("devices",), ("list", "watch"), "informer: the Devices it may own"),
    Rule("lbaas.dev", ("devices/status",), ("patch",), "agents.worker: Device status"),
]
AGENT_WATCHED = [
    Rule("lbaas.dev", TREE, ("list", "watch"), "informers"),
    Rule("lbaas.dev", ("vips",), ("patch",), "trees.reconcile: the VIP finalizer"),
    Rule("lbaas.dev", STATUSES, ("patch",), "trees.reconcile: what the device did"),
]
AGENT_LEASES = [
    Rule("coordination.k8s.io", ("leases",), ("get", "list", "create", "update"),
         "agents.ownership, agents.presence: lbaas-agent-<id>, lbaas-device-*"),
]  # fmt: skip
SECRETS = Rule(
    "", ("secrets",), ("get",), "agents.worker: Kube.read_secret of credentialsSecretRef"
)
# ---- both ----------------------------------------------------------------------------------------
EVENTS = Rule("", ("events",), ("create",), "Reporter posts Events (Devices': release namespace)")


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


def expect(actual: list[Doc], expected: list[Rule]) -> None:
    assert sorted(map(rule_key, actual)) == sorted(rule_key(r.k8s()) for r in expected), (
        "RBAC drifted. Expected (with reasons):\n"
        + "\n".join(f"  {r.k8s()}  # {r.why}" for r in expected)
        + "\nGot:\n"
        + "\n".join(f"  {r}" for r in actual)
    )


def roles(docs: list[Doc], name: str) -> dict[str, list[Doc]]:
    """namespace → rules of the Role ``name``."""
    found = [d for d in of_kind(docs, "Role") if d["metadata"]["name"] == name]
    return {d["metadata"]["namespace"]: d["rules"] for d in found}


def subjects(docs: list[Doc]) -> dict[tuple[str, str, str], list[Doc]]:
    return {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d["subjects"]
        for d in of_kind(docs, "ClusterRoleBinding", "RoleBinding")
    }


def sa(name: str) -> list[Doc]:
    return [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]


def test_cluster_wide_rbac_per_role(helm: str) -> None:
    docs = render(helm)
    expect(
        one(docs, "ClusterRole", CONTROLLER)["rules"],
        [*CONTROLLER_CLUSTER, *CONTROLLER_WATCHED, EVENTS],
    )
    expect(one(docs, "ClusterRole", AGENT)["rules"], [*AGENT_CLUSTER, *AGENT_WATCHED, EVENTS])
    # Leases and Secrets: only in the release namespace.
    assert roles(docs, CONTROLLER).keys() == roles(docs, AGENT).keys() == {NAMESPACE}
    expect(roles(docs, CONTROLLER)[NAMESPACE], CONTROLLER_LEASES)
    expect(roles(docs, AGENT)[NAMESPACE], [*AGENT_LEASES, SECRETS])
    # Each role is bound to its own ServiceAccount, by a binding of the same name.
    assert subjects(docs) == {
        ("ClusterRoleBinding", "", CONTROLLER): sa(CONTROLLER),
        ("ClusterRoleBinding", "", AGENT): sa(AGENT),
        ("RoleBinding", NAMESPACE, CONTROLLER): sa(CONTROLLER),
        ("RoleBinding", NAMESPACE, AGENT): sa(AGENT),
    }
    for binding in of_kind(docs, "ClusterRoleBinding", "RoleBinding"):
        kind = binding["kind"].removesuffix("Binding")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": kind,
            "name": binding["metadata"]["name"],
        }
    accounts = sorted(d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount"))
    assert accounts == [AGENT, CONTROLLER]
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    for name in (CONTROLLER, AGENT):
        assert deployments[name]["spec"]["template"]["spec"]["serviceAccountName"] == name


def test_namespaced_rbac_uses_roles(helm: str) -> None:
    docs = render(
        helm,
        *("--set", "config.namespaces={team-a,team-b}"),
        *("--set", f"rbac.secretNamespaces={{{NAMESPACE},creds}}"),
    )
    # Devices and namespaces are cluster-scoped: the ClusterRoles keep only those.
    expect(one(docs, "ClusterRole", CONTROLLER)["rules"], CONTROLLER_CLUSTER)
    expect(one(docs, "ClusterRole", AGENT)["rules"], AGENT_CLUSTER)
    controller, agent = roles(docs, CONTROLLER), roles(docs, AGENT)
    assert set(controller) == {"team-a", "team-b", NAMESPACE}
    assert set(agent) == {"team-a", "team-b", NAMESPACE, "creds"}
    for ns in ("team-a", "team-b"):
        expect(controller[ns], [*CONTROLLER_WATCHED, EVENTS])
        expect(agent[ns], [*AGENT_WATCHED, EVENTS])
    # Events about cluster-scoped Devices go to the release namespace (Reporter.event_namespace).
    expect(controller[NAMESPACE], [*CONTROLLER_LEASES, EVENTS])
    expect(agent[NAMESPACE], [*AGENT_LEASES, EVENTS, SECRETS])
    expect(agent["creds"], [SECRETS])
    bindings = {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in of_kind(docs, "RoleBinding")
    }
    assert bindings == {(ns, CONTROLLER) for ns in controller} | {(ns, AGENT) for ns in agent}


def test_watching_the_release_namespace_merges_its_rules(helm: str) -> None:
    docs = render(helm, "--set", f"config.namespaces={{{NAMESPACE}}}")
    expect(roles(docs, CONTROLLER)[NAMESPACE], [*CONTROLLER_LEASES, *CONTROLLER_WATCHED, EVENTS])
    expect(roles(docs, AGENT)[NAMESPACE], [*AGENT_LEASES, *AGENT_WATCHED, EVENTS, SECRETS])


def test_services_disabled_drops_their_rules(helm: str) -> None:
    docs = render(helm, "--set", "config.services=false")
    expect(
        one(docs, "ClusterRole", CONTROLLER)["rules"],
        [*CONTROLLER_CLUSTER, *CONTROLLER_WATCHED_WITHOUT_SERVICES, EVENTS],
    )
    expect(one(docs, "ClusterRole", AGENT)["rules"], [*AGENT_CLUSTER, *AGENT_WATCHED, EVENTS])


def test_run_mode_binds_both_roles_to_one_account(helm: str) -> None:
    docs = render(helm, "--set", "mode=run")
    assert [d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")] == [RELEASE]
    assert set(map(str, subjects(docs).values())) == {str(sa(RELEASE))}
    assert len(subjects(docs)) == 4
    # The same two roles: the one process needs both.
    expect(
        one(docs, "ClusterRole", CONTROLLER)["rules"],
        [*CONTROLLER_CLUSTER, *CONTROLLER_WATCHED, EVENTS],
    )
    expect(roles(docs, AGENT)[NAMESPACE], [*AGENT_LEASES, SECRETS])
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == RELEASE


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "mode=run"],
        ["--set", "config.namespaces={a}", "--set", "rbac.secretNamespaces={b}"],
    ],
    ids=["cluster-wide", "run", "namespaced"],
)
def test_nothing_broader_than_needed(helm: str, values: list[str]) -> None:
    docs = render(helm, *values)
    for doc in of_kind(docs, "ClusterRole", "Role"):
        where = f"{doc['kind']} {doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}"
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], where
            assert "get" not in rule["verbs"] or set(rule["resources"]) <= {"leases", "secrets"}, (
                where,
                rule,
            )
            if "secrets" in rule["resources"] or "leases" in rule["resources"]:
                assert doc["kind"] == "Role", f"{where}: secrets and leases never cluster-wide"
            if "secrets" in rule["resources"]:
                assert doc["metadata"]["name"] == AGENT, "only agents read credentials"
                assert rule["verbs"] == ["get"]


def test_secret_namespaces_add_to_the_release_namespace(helm: str) -> None:
    docs = render(helm, "--set", "rbac.secretNamespaces={creds}")
    agent = roles(docs, AGENT)
    assert set(agent) == {NAMESPACE, "creds"}
    expect(agent["creds"], [SECRETS])
    assert set(roles(docs, CONTROLLER)) == {NAMESPACE}


def test_service_account_names_and_create_false(helm: str) -> None:
    docs = render(helm, "--set", "serviceAccount.name=ops")
    assert sorted(d["metadata"]["name"] for d in of_kind(docs, "ServiceAccount")) == [
        "ops-agent",
        "ops-controller",
    ]
    assert subjects(docs)[("RoleBinding", NAMESPACE, AGENT)] == sa("ops-agent")
    docs = render(helm, "--set", "serviceAccount.create=false", "--set", "mode=run")
    assert not of_kind(docs, "ServiceAccount")
    assert subjects(docs)[("ClusterRoleBinding", "", CONTROLLER)] == sa(RELEASE)


def test_rbac_create_false_renders_no_rbac(helm: str) -> None:
    docs = render(helm, "--set", "rbac.create=false")
    assert not of_kind(docs, "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def test_lease_rules_are_the_calls_of_lease_store() -> None:
    """LeaseStore's CoordinationV1Api calls, as verbs: what the agents' Lease rule grants."""
    verbs = {"read": "get", "list": "list", "create": "create", "replace": "update",
             "patch": "patch", "delete": "delete"}  # fmt: skip
    tree = ast.parse(inspect.getsource(leases.LeaseStore))
    calls = {
        node.attr.split("_")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.endswith("_namespaced_lease")
    }
    assert {verbs[c] for c in calls} == set(AGENT_LEASES[0].verbs)
    assert leases.LEADER_LEASE in CONTROLLER_LEASES[1].names


def test_readme_documents_every_rule() -> None:
    rows = [
        line
        for line in (CHART / "README.md").read_text().splitlines()
        if line.startswith("| ") and "`" in line
    ]
    every = [
        *CONTROLLER_CLUSTER, *CONTROLLER_WATCHED, *CONTROLLER_LEASES,
        *AGENT_CLUSTER, *AGENT_WATCHED, *AGENT_LEASES, SECRETS, EVENTS,
    ]  # fmt: skip
    for rule in every:
        resources = ", ".join(f"`{r}`" for r in rule.resources)
        verbs = ", ".join(rule.verbs)
        assert any(resources in row and f"| {verbs} |" in row for row in rows), (
            f"chart README: no row for {resources} {verbs}"
        )
