"""``kubectl lbaas`` against the test bed: objects with hand-written statuses, Leases and Events
(no operator runs), the plugin run as kubectl runs it (a subprocess found on the PATH), its
output read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from helpers import GROUP, LEASE_NAMESPACE, VERSION, free_port, kubectl

BIN = Path(sys.executable).parent
NO_TRAFFIC = "the agents export no per-VIP traffic series for these VIPs"


def plugin(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kubectl lbaas ...``: kubectl finds kubectl-lbaas on the PATH."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["kubectl", "lbaas", *args], capture_output=True, text=True, env=env, check=False,
        timeout=60,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def apply(*docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def obj(kind: str, name: str, spec: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": meta, "spec": spec}


def set_status(kind: str, name: str, status: dict[str, Any], namespace: str | None = None) -> str:
    """Write ``status`` through the status subresource; the object's uid."""
    where = ["-n", namespace] if namespace else []
    kubectl("patch", kind.lower(), name, *where, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}))  # fmt: skip
    got = kubectl("get", kind.lower(), name, *where, "-o", "json").stdout
    return str(json.loads(got)["metadata"]["uid"])


def event(namespace: str, kind: str, name: str, uid: str, reason: str, message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    apply({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:10]}", "namespace": namespace},
        "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "name": name,
                           "namespace": namespace if kind != "Device" else "", "uid": uid},
        "reason": reason, "message": message, "type": "Warning", "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": "lbaas-operator"},
    })  # fmt: skip


def device_lease(device: str, holder: str, transitions: int) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": f"lbaas-device-{device}", "namespace": LEASE_NAMESPACE,
                     "labels": {"lbaas.dev/lease": "device",
                                "app.kubernetes.io/managed-by": "lbaas-operator"},
                     "annotations": {"lbaas.dev/device": device}},
        "spec": {"holderIdentity": holder, "leaseTransitions": transitions,
                 "leaseDurationSeconds": 10},
    }  # fmt: skip


@pytest.fixture
def tree(namespace: str) -> Iterator[dict[str, str]]:
    """VIP web (Active, DEGRADED) on a Ready device held by agent-a, a Pool, a monitor, two
    Members (one failing its checks), Events of the VIP and of a deleted namesake."""
    device = f"dev-{namespace}"
    apply(
        obj("Device", device, {"driver": "fake", "addressPool": ["10.77.0.0/24"]}),
        obj("VIP", "web", {"port": 80, "protocol": "HTTP"}, namespace),
        obj("Pool", "web", {"vipRef": "web"}, namespace),
        obj("HealthMonitor", "web", {"poolRef": "web", "type": "TCP"}, namespace),
        obj("Member", "web-1", {"poolRef": "web", "address": "10.1.0.1", "port": 8080}, namespace),
        obj("Member", "web-2", {"poolRef": "web", "address": "10.1.0.2", "port": 8080}, namespace),
        device_lease(device, "agent-a", 3),
    )
    dev_uid = set_status("Device", device, {"phase": "Ready", "reason": "Probed",
                         "agent": "agent-a", "vipCount": 1, "freeCapacity": 99})  # fmt: skip
    vip_uid = set_status("VIP", "web", {"phase": "Active", "reason": "Programmed",
                         "message": "served on lb", "device": device, "address": "10.77.0.1",
                         "operatingStatus": "DEGRADED"}, namespace)  # fmt: skip
    set_status("Pool", "web", {"phase": "Active", "operatingStatus": "DEGRADED"}, namespace)
    set_status("HealthMonitor", "web", {"phase": "Active"}, namespace)
    set_status("Member", "web-1", {"phase": "Active", "operatingStatus": "ONLINE"}, namespace)
    set_status("Member", "web-2", {"phase": "Active", "operatingStatus": "ERROR",
               "message": "health check failing"}, namespace)  # fmt: skip
    event(namespace, "VIP", "web", vip_uid, "Programmed", "web now served")
    event(namespace, "VIP", "web", "uid-of-a-deleted-vip", "OldNews", "an earlier VIP web")
    event(LEASE_NAMESPACE, "Device", device, dev_uid, "OwnerChanged", "taken by agent-a")
    yield {"device": device, "namespace": namespace}
    kubectl("delete", "device", device, "--wait=false", check=False)
    kubectl("delete", "lease", f"lbaas-device-{device}", "-n", LEASE_NAMESPACE, check=False)


def test_status_and_describe_show_the_whole_tree(tree: dict[str, str]) -> None:
    ns, device = tree["namespace"], tree["device"]
    out = plugin("status", "web", "-n", ns, "--operator-namespace", LEASE_NAMESPACE).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["OBJECT", "PHASE", "OPERATING", "REASON", "DETAIL"]
    assert lines[1].split() == ["VIP/web", "Active", "DEGRADED", "Programmed", "10.77.0.1:80",
                                "HTTP"]  # fmt: skip
    assert "Member/web-2" in out and "ERROR" in out and "HealthMonitor/web" in out
    assert f"Device/{device}" in out and "lease holder agent-a" in out
    assert "members serving: 1/2" in out
    assert "Events" not in out, "status is the short form"
    # Columns are aligned: each header starts where its cells start.
    start = lines[0].index("PHASE")
    assert all(line[start - 1] == " " for line in lines[1:6])

    described = plugin("describe", "web", "-n", ns, "--operator-namespace", LEASE_NAMESPACE).stdout
    assert "Member/web-2: health check failing" in described
    assert (
        f"Lease/lbaas-device-{device}: holder agent-a" in described and "transitions 3" in described
    )
    assert "Programmed" in described and "web now served" in described
    assert "OwnerChanged" in described, "the Device's Events, from the operator's namespace"
    assert "OldNews" not in described, "an Event of another object with the same name"


def test_json_and_yaml_carry_the_same_tree(tree: dict[str, str]) -> None:
    ns = tree["namespace"]
    args = ("describe", "web", "-n", ns, "--operator-namespace", LEASE_NAMESPACE)
    data = json.loads(plugin(*args, "-o", "json").stdout)
    assert data["vip"]["operatingStatus"] == "DEGRADED"
    assert data["device"]["lease"]["holder"] == "agent-a"
    (pool,) = data["pools"]
    assert [m["name"] for m in pool["members"]] == ["web-1", "web-2"]
    assert [e["reason"] for e in data["events"]] == ["Programmed", "OwnerChanged"]
    assert yaml.safe_load(plugin(*args, "-o", "yaml").stdout) == data


def test_why_follows_member_pool_vip_device(namespace: str) -> None:
    message = ("no eligible device among the 2 open to namespace " + namespace +
               ": 1 not schedulable, 1 NotReady")  # fmt: skip
    apply(
        obj("VIP", "shop", {"port": 443}, namespace),
        obj("Pool", "shop", {"vipRef": "shop"}, namespace),
        obj("Member", "shop-1", {"poolRef": "shop", "address": "10.2.0.1", "port": 80}, namespace),
        obj("Member", "lost", {"poolRef": "gone", "address": "10.2.0.2", "port": 80}, namespace),
    )
    cordoned, down = f"cordoned-{namespace}", f"down-{namespace}"
    apply(
        obj("Device", cordoned, {"driver": "fake", "schedulable": False}),
        obj("Device", down, {"driver": "fake", "allowedNamespaces": [namespace]}),
    )
    set_status("Device", down, {"phase": "NotReady", "reason": "ProbeFailed"})
    set_status("VIP", "shop", {"phase": "Error", "reason": "NoEligibleDevice",
               "message": message}, namespace)  # fmt: skip
    set_status("Pool", "shop", {"phase": "Pending", "reason": "Unscheduled"}, namespace)
    set_status("Member", "shop-1", {"phase": "Pending", "reason": "Unscheduled"}, namespace)
    out = plugin("why", "member/shop-1", "-n", namespace).stdout
    assert out.splitlines()[0] == "why: VIP shop is Error (NoEligibleDevice)"
    member, pool, vip = (out.index(x) for x in ("Member/shop-1", "  Pool/shop", "    VIP/shop"))
    assert member < pool < vip, out
    assert "- 1 not schedulable" in out and "- 1 NotReady" in out
    devices = out[out.index("DEVICE ") :].splitlines()
    assert devices[0].split() == ["DEVICE", "PHASE", "REASON", "SCHEDULABLE", "FREE", "NAMESPACES"]
    assert [cordoned, "-", "-", "False", "-", "(all)"] in [d.split() for d in devices]
    assert [down, "NotReady", "ProbeFailed", "True", "-", namespace] in [d.split() for d in devices]
    chain = json.loads(plugin("why", "member/shop-1", "-n", namespace, "-o", "json").stdout)
    assert [c["kind"] for c in chain["chain"]] == ["Member", "Pool", "VIP"]
    assert chain["chain"][2]["exclusions"] == ["1 not schedulable", "1 NotReady"]

    lost = plugin("why", "member/lost", "-n", namespace).stdout
    assert lost.splitlines()[0] == "why: Pool gone is missing"
    kubectl("delete", "device", cordoned, down, check=False)


def test_why_device_without_agent_names_the_agents(namespace: str) -> None:
    device = f"orphan-{namespace}"
    apply(
        obj("Device", device, {"driver": "fake", "agentSelector": {"matchLabels": {"zone": "b"}}})
    )
    set_status("Device", device, {"phase": "NotReady", "reason": "NoAgent", "agent": "",
               "message": "no agent owns this device"})  # fmt: skip
    presence = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": f"lbaas-agent-a-{namespace}", "namespace": LEASE_NAMESPACE,
                     "labels": {"lbaas.dev/lease": "agent"}},
        "spec": {"holderIdentity": f"a-{namespace}"},
    }  # fmt: skip
    apply(presence)
    try:
        out = plugin("why", f"device/{device}", "--operator-namespace", LEASE_NAMESPACE).stdout
        assert out.splitlines()[0] == "why: no agent drives the device"
        assert f"Device/{device}: NotReady NoAgent" in out
        assert f"Lease/lbaas-device-{device}" in out and f"a-{namespace}" in out
        assert "zone" in out, "the selector no agent matches"
    finally:
        kubectl("delete", "device", device, check=False)
        kubectl("delete", "lease", presence["metadata"]["name"], "-n", LEASE_NAMESPACE,
                check=False)  # fmt: skip


def test_why_active_tree_and_errors(tree: dict[str, str]) -> None:
    ns = tree["namespace"]
    out = plugin("why", "vip/web", "-n", ns, "--operator-namespace", LEASE_NAMESPACE).stdout
    assert out.splitlines()[0] == "why: nothing wrong: every object is Active and its device Ready"
    missing = plugin("status", "nope", "-n", ns, check=False)
    assert missing.returncode == 1 and "VIP nope not found" in missing.stderr
    bad = plugin("why", "web", "-n", ns, check=False)
    assert bad.returncode == 2 and "KIND/NAME" in bad.stderr


def test_context_and_kubeconfig_choose_the_namespace(tree: dict[str, str], tmp_path: Path) -> None:
    """No -n: the namespace of the chosen context, from the kubeconfig given."""
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    base = config["contexts"][0]
    config["contexts"].append({"name": "team", "context": {**base["context"],
                               "namespace": tree["namespace"]}})  # fmt: skip
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    out = plugin("status", "web", "--kubeconfig", str(path), "--context", "team").stdout
    assert "VIP/web" in out
    other = plugin("status", "web", "--kubeconfig", str(path), check=False)
    assert other.returncode == 1, "the current context's namespace has no VIP web"


# ---- top ----------------------------------------------------------------------------------------


class Traffic:
    """An agent-like /metrics: VIP web's requests grow by 50 and the stats time by 5 s per
    tick (0.3 s), in one consistent snapshot per scrape: 10 requests per second."""

    def __init__(self, namespace: str, *, with_traffic: bool) -> None:
        self.namespace, self.with_traffic = namespace, with_traffic
        self.started = time.monotonic()

    def collect(self) -> Iterator[Any]:
        tick = int((time.monotonic() - self.started) / 0.3)
        leader = GaugeMetricFamily("lbaas_leader", "leader")
        leader.add_metric([], 0)
        yield leader
        if not self.with_traffic:
            return
        labels = ["namespace", "vip", "listener"]
        requests = CounterMetricFamily("lbaas_vip_requests", "r", labels=labels)
        requests.add_metric([self.namespace, "web", "web"], 50 * tick)
        yield requests
        responses = CounterMetricFamily("lbaas_vip_responses", "r", labels=[*labels, "class"])
        responses.add_metric([self.namespace, "web", "web", "5xx"], 5 * tick)
        responses.add_metric([self.namespace, "web", "web", "2xx"], 45 * tick)
        yield responses
        sessions = GaugeMetricFamily("lbaas_vip_current_sessions", "s", labels=labels)
        sessions.add_metric([self.namespace, "web", "web"], 7)
        yield sessions
        stamp = GaugeMetricFamily("lbaas_traffic_stats_timestamp_seconds", "t", labels=["device"])
        stamp.add_metric(["d"], 1_000_000 + 5 * tick)
        yield stamp


@pytest.fixture
def exporter(namespace: str, request: pytest.FixtureRequest) -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(Traffic(namespace, with_traffic=request.param))
    port = free_port("127.0.0.1")
    server, _ = start_http_server(port, "127.0.0.1", registry)
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()


@pytest.mark.parametrize("exporter", [False], indirect=True)
def test_top_says_traffic_needs_the_data_plane_metrics(tree: dict[str, str], exporter: str) -> None:
    out = plugin(
        "top", "-n", tree["namespace"], "--metrics-url", exporter, "--interval", "1"
    ).stdout
    lines = out.splitlines()
    assert lines[0].split()[:7] == ["NAMESPACE", "VIP", "DEVICE", "PHASE", "OPERATING",
                                    "MEMBERS", "REQ/S"]  # fmt: skip
    assert lines[1].split() == [tree["namespace"], "web", tree["device"], "Active", "DEGRADED",
                                "1/2", "-", "-", "-", "-", "-", "-", "-"]  # fmt: skip
    assert NO_TRAFFIC in out and "docs/metrics.md" in out


@pytest.mark.parametrize("exporter", [True], indirect=True)
def test_top_rates_from_the_agents_series(tree: dict[str, str], exporter: str) -> None:
    args = ("top", "web", "-n", tree["namespace"], "--metrics-url", exporter, "--interval", "3")
    data = json.loads(plugin(*args, "-o", "json").stdout)
    (row,) = data["vips"]
    assert row["traffic"]["requests"] == pytest.approx(10.0)
    assert row["traffic"]["5xx"] == pytest.approx(1.0)
    assert row["traffic"]["sessions"] == 7
    assert data["problems"] == []
    text = plugin(*args).stdout
    assert text.splitlines()[1].split()[6:9] == ["10.0", "1.0", "-"]


def test_top_finds_the_operator_pods_behind_the_metrics_service(tree: dict[str, str]) -> None:
    """The pods come from the metrics Service's EndpointSlices and are read through the API
    server's pod proxy; the test bed runs no pods, so each read fails, and says so."""
    service = f"m-{tree['namespace']}"
    apply({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": service, "namespace": LEASE_NAMESPACE,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "metrics", "port": 8000, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.0.7"],
                       "targetRef": {"kind": "Pod", "name": "agent-pod-1",
                                     "namespace": LEASE_NAMESPACE}}],
    })  # fmt: skip
    try:
        out = plugin("top", "-n", tree["namespace"], "--operator-namespace", LEASE_NAMESPACE,
                     "--metrics-service", service, "--interval", "1").stdout  # fmt: skip
        assert "cannot read the metrics of agent-pod-1: 404" in out
        assert NO_TRAFFIC not in out, "nothing was read: no claim about the series"
    finally:
        kubectl("delete", "endpointslice", service, "-n", LEASE_NAMESPACE, check=False)
