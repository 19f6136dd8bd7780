"""The audit-log counter (tests/auditlog.py) on a test bed of its own that writes one: every
write counted at the server by verb, resource and user agent, refused ones too, reads never."""

from __future__ import annotations

import threading
import time
from typing import Any

import kubernetes
import pytest
from auditlog import OPERATOR_AGENT, AuditLog, audited_testbed, by_kind, summary
from kubernetes.client.exceptions import ApiException

from helpers import ROOT, kubectl, need_tool
from lbaas_devtools import devcluster


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Any:
    script = devcluster.testbed_script(ROOT)
    if script is None:
        need_tool("the test bed (../shared/testbed/testbed) is missing")
    assert script is not None
    work = tmp_path_factory.mktemp("audited")
    with audited_testbed(script, work / "state", work / "audit") as found:
        yield found


def client(kubeconfig: str, agent: str) -> kubernetes.client.ApiClient:
    api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
    api.user_agent = agent
    return api


def lease(name: str, holder: str) -> dict[str, Any]:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name}, "spec": {"holderIdentity": holder}}  # fmt: skip


def test_writes_are_counted_by_verb_resource_and_agent(audited: tuple[str, AuditLog]) -> None:
    kubeconfig, log = audited
    mark = log.mark()
    api = client(kubeconfig, f"{OPERATOR_AGENT}0.1.0")
    core = kubernetes.client.CoreV1Api(api)
    leases = kubernetes.client.CoordinationV1Api(api)
    core.create_namespace({"metadata": {"name": "audited"}})
    held = leases.create_namespaced_lease("audited", lease("l1", "me"))
    for _ in range(2):  # renewals
        held = leases.replace_namespaced_lease("l1", "audited", held)
    stale = leases.read_namespaced_lease("l1", "audited")
    stale.metadata.resource_version = "1"
    with pytest.raises(ApiException) as conflict:
        leases.replace_namespaced_lease("l1", "audited", stale)
    assert conflict.value.status == 409
    core.create_namespaced_event("audited", {
        "metadata": {"name": "e1"}, "involvedObject": {"kind": "Lease", "name": "l1"},
        "reason": "Test", "message": "m", "type": "Normal"})  # fmt: skip
    spec = {"type": "LoadBalancer", "ports": [{"port": 80}]}
    core.create_namespaced_service("audited", {"metadata": {"name": "s1"}, "spec": spec})
    core.patch_namespaced_service_status(
        "s1", "audited", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}
    )
    for _ in range(5):  # reads are never logged
        core.list_namespaced_service("audited")
        leases.read_namespaced_lease("l1", "audited")
    core.delete_namespaced_event("e1", "audited")
    # Another client's writes: counted for it, not for the operator.
    kubectl("--kubeconfig", kubeconfig, "create", "configmap", "c1", "-n", "audited")
    time.sleep(0.5)  # the log is written as the answers go out; give the file a moment
    ours = log.writes(mark)
    assert by_kind(ours) == {
        ("create", "namespaces"): 1,
        ("create", "leases"): 1,
        ("update", "leases"): 3,
        ("create", "events"): 1,
        ("delete", "events"): 1,
        ("create", "services"): 1,
        ("patch", "services/status"): 1,
    }, summary(ours)
    assert [w.code for w in ours if not w.ok] == [409]
    assert "(1 refused)" in summary(ours)
    everyone = log.writes(mark, agent=None)
    assert by_kind(everyone) - by_kind(ours) == {("create", "configmaps"): 1}


def test_idle_ignores_lease_renewals(audited: tuple[str, AuditLog]) -> None:
    """The window ends once the operator writes nothing but Lease renewals."""
    kubeconfig, log = audited
    api = client(kubeconfig, f"{OPERATOR_AGENT}0.1.0")
    core = kubernetes.client.CoreV1Api(api)
    leases = kubernetes.client.CoordinationV1Api(api)
    held = leases.create_namespaced_lease("audited", lease("renewed", "me"))
    mark = log.mark()
    stop = threading.Event()

    def renew() -> None:
        current = held
        while not stop.wait(0.2):
            current = leases.replace_namespaced_lease("renewed", "audited", current)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        for i in range(4):  # writes for about 1.2 s
            core.create_namespaced_config_map("audited", {"metadata": {"name": f"busy-{i}"}})
            time.sleep(0.3)
        last_busy = time.time()
        started = time.monotonic()
        end = log.wait_idle(mark, quiet=1.5, timeout=20)
        waited = time.monotonic() - started
    finally:
        stop.set()
        renewer.join(5)
    assert end <= last_busy + 0.1, "the window ends at the last non-Lease write"
    assert 1.0 <= waited < 5, f"waited {waited:.1f}s although renewals went on"
    kinds = by_kind(log.writes(mark))
    assert kinds[("create", "configmaps")] == 4 and kinds[("update", "leases")] >= 5
