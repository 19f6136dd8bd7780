"""The chart's deployment modes, rendered by the real helm: which workloads, how they run.

- split (default): controller Deployment (2 replicas, leader election) + agents Deployment,
  each with a PodDisruptionBudget; agents.daemonset adds (or replaces) one agent per node.
- run: one Deployment, one replica, `lbaas-operator run`.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
from chartkit import (
    CHART,
    MODES,
    RELEASE,
    Doc,
    container,
    env,
    of_kind,
    one,
    pod_spec,
    render,
    render_error,
    require_helm,
    run,
    workloads,
)

CONTROLLER, AGENT, NODE_AGENT = (f"{RELEASE}-{w}" for w in ("controller", "agent", "node-agent"))
ROLLING = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


@pytest.fixture(scope="module")
def helm() -> str:
    return require_helm()


LINTED = {
    **MODES,
    "namespaced": ["--set", "config.namespaces={team-a}", "--set", "rbac.secretNamespaces={c}"],
    "servicemonitor": ["--set", "metrics.serviceMonitor.enabled=true"],
    "monitoring": [
        *("--set", "metrics.podMonitor.enabled=true"),
        *("--set", "metrics.prometheusRule.enabled=true"),
        *("--set", "metrics.dashboards.annotations.grafana_folder=LBaaS"),
    ],
    "no-services": ["--set", "config.services=false"],
}


@pytest.mark.parametrize("mode", LINTED)
def test_helm_lint_strict(helm: str, mode: str) -> None:
    result = run([helm, "lint", "--strict", str(CHART), *LINTED[mode]])
    assert result.returncode == 0, result.stdout + result.stderr


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_split_mode_runs_a_controller_and_agents(helm: str) -> None:
    docs = render(helm)
    found = workloads(docs)
    assert sorted(found) == [AGENT, CONTROLLER]
    controller, agent = found[CONTROLLER], found[AGENT]
    assert controller["spec"]["replicas"] == 2, "one leads, one stands by"
    assert agent["spec"]["replicas"] == 2
    # Two pods at once are safe now (Leases): roll without a gap.
    assert controller["spec"]["strategy"] == agent["spec"]["strategy"] == ROLLING
    assert container(controller)["args"] == ["controller"]
    assert container(agent)["args"] == ["agent"]
    assert "LBAAS_AGENT_LABELS" not in env(controller)
    budgets = {d["metadata"]["name"]: d["spec"] for d in of_kind(docs, "PodDisruptionBudget")}
    assert sorted(budgets) == [AGENT, CONTROLLER]
    for name, budget in budgets.items():
        assert budget["maxUnavailable"] == 1
        assert budget["selector"] == found[name]["spec"]["selector"]


@pytest.mark.parametrize("mode", MODES)
def test_no_workload_selects_another_ones_pods(helm: str, mode: str) -> None:
    docs = render(helm, *MODES[mode])
    found = workloads(docs)
    for name, workload in found.items():
        selector = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert selects(selector, labels), f"{name} does not select its own pods"
        for other, theirs in found.items():
            if other != name:
                pods = theirs["spec"]["template"]["metadata"]["labels"]
                assert not selects(selector, pods), f"{name} selects the pods of {other}"
    # The metrics Service reaches every operator pod.
    service = one(docs, "Service", f"{RELEASE}-metrics")["spec"]["selector"]
    for workload in found.values():
        assert selects(service, workload["spec"]["template"]["metadata"]["labels"])


def test_daemonset_agents_on_the_host_network(helm: str) -> None:
    docs = render(
        helm,
        *MODES["split-daemonset"],
        *("--set", "config.agentLabels.zone=a", "--set", "agents.daemonset.labels.kind=haproxy"),
        *("--set", "agents.deployment.labels.kind=remote"),
    )
    found = workloads(docs)
    assert sorted(found) == [AGENT, CONTROLLER, NODE_AGENT]
    daemonset = one(docs, "DaemonSet", NODE_AGENT)
    assert daemonset["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1},
    }
    spec = pod_spec(daemonset)
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", "cluster DNS with host networking"
    assert container(daemonset)["args"] == ["agent"]
    variables = env(daemonset)
    # The node's name reaches the agent labels: a Device pins itself to one node's agent.
    names = [v["name"] for v in container(daemonset)["env"]]
    assert names.index("NODE_NAME") < names.index("LBAAS_AGENT_LABELS"), "$(NODE_NAME) expands"
    assert variables["NODE_NAME"] == "field:spec.nodeName"
    assert variables["LBAAS_AGENT_LABELS"] == "kind=haproxy,lbaas.dev/node=$(NODE_NAME),zone=a"
    assert env(found[AGENT])["LBAAS_AGENT_LABELS"] == "kind=remote,zone=a"
    assert "hostNetwork" not in pod_spec(found[AGENT])
    assert not [d for d in of_kind(docs, "PodDisruptionBudget") if "node" in str(d)]


def test_daemonset_only_and_without_node_label(helm: str) -> None:
    docs = render(helm, *MODES["daemonset-only"], "--set", "agents.daemonset.nodeLabel=")
    assert sorted(workloads(docs)) == [CONTROLLER, NODE_AGENT]
    assert [d["metadata"]["name"] for d in of_kind(docs, "PodDisruptionBudget")] == [CONTROLLER]
    daemonset = one(docs, "DaemonSet", NODE_AGENT)
    assert "hostNetwork" not in pod_spec(daemonset)
    assert not {"NODE_NAME", "LBAAS_AGENT_LABELS"} & set(env(daemonset))


def test_run_mode_is_one_process(helm: str) -> None:
    docs = render(helm, *MODES["run"], "--set", "config.agentLabels.site=lab")
    (deployment,) = of_kind(docs, "Deployment", "DaemonSet")
    assert deployment["metadata"]["name"] == RELEASE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == ROLLING
    assert container(deployment)["args"] == ["run"]
    assert env(deployment)["LBAAS_AGENT_LABELS"] == "site=lab"
    assert not of_kind(docs, "PodDisruptionBudget"), "a budget on one replica blocks drains"


@pytest.mark.parametrize("mode", MODES)
def test_every_pod_is_probed_and_locked_down(helm: str, mode: str) -> None:
    for name, workload in workloads(render(helm, *MODES[mode])).items():
        c, pod = container(workload), pod_spec(workload)
        assert c["image"] == f"lbaas-operator:{version('lbaas-operator')}"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"metrics": 8000, "health": 8090}, name
        for probe in ("livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, (name, probe)
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], name
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532, name
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        # The only writable place: an emptyDir at /tmp.
        assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
        # A graceful stop (driver calls end, Leases released) fits in the grace period.
        assert pod["terminationGracePeriodSeconds"] >= 5 + 15


def test_placement_is_per_workload(helm: str) -> None:
    docs = render(
        helm,
        *("--set", "agents.daemonset.enabled=true"),
        *("--set", "controller.nodeSelector.role=control"),
        *("--set", "agents.deployment.tolerations[0].key=remote"),
        *("--set", "agents.deployment.tolerations[0].operator=Exists"),
        *("--set", "agents.daemonset.nodeSelector.lb=haproxy"),
        *("--set", "agents.daemonset.resources.limits.memory=1Gi"),
        *("--set", "controller.replicas=3", "--set", "agents.deployment.replicas=5"),
    )  # fmt: skip
    found = workloads(docs)
    assert pod_spec(found[CONTROLLER])["nodeSelector"] == {"role": "control"}
    assert pod_spec(found[AGENT])["tolerations"] == [{"key": "remote", "operator": "Exists"}]
    assert pod_spec(found[NODE_AGENT])["nodeSelector"] == {"lb": "haproxy"}
    assert container(found[NODE_AGENT])["resources"]["limits"]["memory"] == "1Gi"
    assert container(found[AGENT])["resources"]["limits"]["memory"] == "512Mi"
    assert "nodeSelector" not in pod_spec(found[AGENT])
    assert "tolerations" not in pod_spec(found[CONTROLLER])
    assert (found[CONTROLLER]["spec"]["replicas"], found[AGENT]["spec"]["replicas"]) == (3, 5)
    run_mode = render(helm, "--set", "mode=run", "--set", "run.nodeSelector.small=yes")
    assert pod_spec(workloads(run_mode)[RELEASE])["nodeSelector"] == {"small": "yes"}


def test_health_port_zero_drops_probes(helm: str) -> None:
    for workload in workloads(render(helm, "--set", "config.healthPort=0")).values():
        c = container(workload)
        assert "livenessProbe" not in c and "readinessProbe" not in c
        assert [p["name"] for p in c["ports"]] == ["metrics"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "agents.deployment.enabled=false"], "mode split needs agents"),
        (["--set", "config.driverTimeout=8"], "must not exceed config.leaseDuration"),
        (["--set", "terminationGracePeriodSeconds=19"], "at least config.driverTimeout + 15"),
        (
            ["--set", "config.metricsPort=0", "--set", "metrics.serviceMonitor.enabled=true"],
            "serviceMonitor",
        ),
        (
            ["--set", "config.metricsPort=0", "--set", "metrics.podMonitor.enabled=true"],
            "podMonitor",
        ),
    ],
)
def test_refuses_what_cannot_work(helm: str, values: list[str], message: str) -> None:
    assert message in render_error(helm, *values)


def test_settings_the_operator_accepts_render(helm: str) -> None:
    docs = render(
        helm,
        *("--set", "config.driverTimeout=7", "--set", "config.leaseDuration=10"),
        *("--set", "terminationGracePeriodSeconds=22"),
    )
    assert env(workloads(docs)[AGENT])["LBAAS_DRIVER_TIMEOUT"] == "7"


def test_metrics_service_and_optional_service_monitor(helm: str) -> None:
    docs = render(helm)
    assert not of_kind(docs, "ServiceMonitor"), "off by default"
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}
    ]
    monitor = one(render(helm, "--set", "metrics.serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    labels: Doc = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not of_kind(render(helm, "--set", "config.metricsPort=0"), "Service")
