"""Least privilege checked on real processes: what a controller and an agent send to the API
server while they do their whole job, against what ``apicalls`` derives from the code and what
the chart grants (issue 10; the TLS Secrets and ConfigMaps of issue 19).

Two operator processes (``lbaas-operator controller`` and ``lbaas-operator agent``, watching one
namespace, as the chart's namespaced mode runs them) get a ``sitecustomize`` that records every
request of the kubernetes client (informers, ``Kube``, ``LeaseStore``) and of kopf's aiohttp
session before it is sent. The scenario makes them use what they have: a Device with a
credentials Secret, a VIP tree applied, a TLS VIP whose Secret comes after it and whose client
CA is a ConfigMap, a Gateway with a TCPRoute (the Gateway API's CRDs installed: its class,
finalizer, statuses and generated tree), a VIP refused by address policy, a driver refusal, an
orphan that times out, a Device whose probe fails (Events about a cluster-scoped object),
deletions (finalizers), then the agent killed (the controller reports the Device ``NoAgent``).

Then: every request is one the static derivation predicts for that role (so the derivation
misses nothing the code did), every request is granted by the chart rendered for this
setting, Events about the Device went to the operator's namespace, Secrets were read there
(credentials, by name) and in the served namespace (the TLS VIP's, listed by type, watched,
read by name) only; and the figures are printed (requests per role, static calls never
exercised).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import apicalls
import pytest
from grants import CLUSTER_SCOPED, Grant, covers, needed_grants, rendered_grants
from gwkit import backend, gateway, gateway_class, listener, parent, route
from gwsupport import Gw, install_crds

from helpers import (
    GROUP,
    LEASE_NAMESPACE,
    PLURALS,
    VERSION,
    Api,
    FakeDevice,
    OperatorProcess,
    tree,
    wait_for,
)
from lbaas.config import OperatorSettings

pytestmark = pytest.mark.cluster

RECORDER = '''
"""Test-only: record every Kubernetes API request of this process (tests/integration/
test_rbac_dynamic.py). Loaded as sitecustomize through PYTHONPATH."""
import json, os, threading, urllib.parse

_PATH = os.environ.get("LBAAS_API_RECORD")
if _PATH:
    _lock = threading.Lock()

    def _record(source, method, url):
        parts = urllib.parse.urlsplit(str(url))
        line = json.dumps({"source": source, "method": str(method).upper(),
                           "path": parts.path, "query": parts.query})
        with _lock, open(_PATH, "a") as handle:
            handle.write(line + "\\n")

    import kubernetes.client.rest as _rest

    _original = _rest.RESTClientObject.request

    def request(self, method, url, *args, **kwargs):
        _record("kubernetes", method, url)
        return _original(self, method, url, *args, **kwargs)

    _rest.RESTClientObject.request = request

    import aiohttp

    _original_aio = aiohttp.ClientSession._request

    async def _request(self, method, str_or_url, *args, **kwargs):
        _record("kopf", method, str_or_url)
        return await _original_aio(self, method, str_or_url, *args, **kwargs)

    aiohttp.ClientSession._request = _request
'''
DISCOVERY = re.compile(r"^/(api|apis|version|openapi)(/[^/]+)?(/v[^/]+)?/?$")
"""Discovery paths, open to every authenticated client (ClusterRole system:discovery)."""


def parse(record: dict[str, Any]) -> tuple[str, str, str, str | None, str | None] | None:
    """(group, resource[/sub], verb, namespace, name) of one request; None for discovery."""
    path = record["path"]
    parts = [p for p in path.split("/") if p]
    group, rest = "", []
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"] and len(parts) > 2:
        group, rest = parts[1], parts[3:]
    if not rest:
        assert DISCOVERY.match(path) and record["method"] == "GET", record
        return None
    ns = None
    if rest[0] == "namespaces" and len(rest) > 2:
        ns, rest = rest[1], rest[2:]
    plural, name, sub = rest[0], rest[1] if len(rest) > 1 else None, "/".join(rest[2:])
    method = record["method"]
    if method == "GET":
        watching = "watch=1" in record["query"] or "watch=true" in record["query"]
        verb = "get" if name else ("watch" if watching else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return group, f"{plural}/{sub}" if sub else plural, verb, ns, name


def observed(path: Path, role: str) -> list[Grant]:
    """The requests of one process as grants (named requests carry their name, so a grant
    restricted to names must name them)."""
    out = []
    for line in path.read_text().splitlines():
        parsed = parse(json.loads(line))
        if parsed is None:
            continue
        group, resource, verb, ns, name = parsed
        scope = None if resource.split("/")[0] in CLUSTER_SCOPED else ns
        out.append(Grant(role, group, resource, verb, scope, (name,) if name else ()))
    return out


def tls_vip(api: Api, namespace: str, device: FakeDevice) -> None:
    """A TERMINATED_HTTPS VIP whose Secret comes after it (listed, read by name, watched) and
    whose client CA is a ConfigMap (listed and watched)."""
    from tlskit import ca_configmap, issue, tls_secret

    ca = issue("rbac CA", ca=True)
    api.core.create_namespaced_config_map(namespace, ca_configmap("clients", ca.cert_pem))
    tls = {
        "certificateRefs": [{"name": "late-tls"}],
        "clientValidation": {"caCertificateRefs": [{"name": "clients", "kind": "ConfigMap"}]},
    }
    api.create({"kind": "VIP", "metadata": {"name": "tls", "namespace": namespace},
                "spec": {"port": 443, "protocol": "TERMINATED_HTTPS", "deviceRef": device.name,
                         "tls": tls}})  # fmt: skip
    api.wait_phase("VIP", "tls", namespace, "Error", 20, reason="CertificateInvalid")
    cert = issue("late", names=("late.example.com",), issuer=ca)
    api.core.create_namespaced_secret(namespace, tls_secret("late-tls", cert.cert_pem,
                                                            cert.key_pem))  # fmt: skip
    api.wait_phase("VIP", "tls", namespace, "Active", 20)


@pytest.fixture
def processes(kubeconfig: str, namespace: str, tmp_path: Path) -> Any:
    install_crds()  # before the processes: the Gateway API is decided at start
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(RECORDER)
    made: dict[str, tuple[OperatorProcess, Path]] = {}
    for role in ("controller", "agent"):
        record = tmp_path / f"{role}.jsonl"
        proc = OperatorProcess(
            tmp_path / f"{role}.log",
            PYTHONPATH=str(site),
            LBAAS_API_RECORD=str(record),
            LBAAS_NAMESPACES=namespace,
            LBAAS_AGENT_ID=f"rbac-{role}-{uuid.uuid4().hex[:4]}",
            LBAAS_PARENT_TIMEOUT="2",
        )
        made[role] = (proc.start(role), record)
    yield made
    for proc, _ in made.values():
        proc.stop()
    api = Api()  # best effort after a failure: the next operator finishes what is left
    for kind in ("HealthMonitor", "Member", "Pool", "VIP"):
        for item in api.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind]
        )["items"]:
            api.delete(kind, item["metadata"]["name"], namespace)
    api.delete("Device", f"{namespace}-rbac")


def test_what_the_processes_send_is_derived_and_granted(
    api: Api, namespace: str, tmp_path: Path, processes: dict[str, Any]
) -> None:
    from chartkit import render, require_helm

    helm = require_helm()
    secret = f"creds-{uuid.uuid4().hex[:6]}"
    api.core.create_namespaced_secret(
        LEASE_NAMESPACE,
        {"metadata": {"name": secret}, "data": {"token": base64.b64encode(b"t0k3n").decode()}},
    )
    ref = {"namespace": LEASE_NAMESPACE, "name": secret}
    device = FakeDevice(
        api, f"{namespace}-rbac", tmp_path, allowedNamespaces=[namespace],
        addressPool=["10.201.0.0/24"], credentialsSecretRef=ref,
    ).create()  # fmt: skip
    good = tree(namespace, "web", members=2)
    for obj in good:
        api.create(obj)
    api.wait_phase("VIP", "web", namespace, "Active", 30)
    gw, cls = Gw(api), f"rbac-{namespace}"
    gw.create(gateway_class(cls))
    gw.create(gateway("gw", namespace, listener("tcp", 9000, "TCP"), cls=cls))
    gw.create(route("TCPRoute", "r", namespace, [parent("gw")], [backend("missing", 80)]))
    gw.wait_condition("Gateway", namespace, "gw", "Programmed", "True")
    gw.wait_condition("TCPRoute", namespace, "r", "ResolvedRefs", "False", parent="gw")
    gw.wait_condition("GatewayClass", None, cls, "Accepted", "True")
    gw.delete("Gateway", namespace, "gw")
    wait_for(lambda: gw.get("Gateway", namespace, "gw") is None, 30, "the Gateway gone")
    gw.delete("GatewayClass", None, cls)
    outside = tree(namespace, "outside", members=0, monitor=False, address="192.0.2.77")
    api.create(outside[0])
    api.wait_phase("VIP", "outside", namespace, "Error", 20, reason="AddressNotAllowed")
    device.control(fail={"apply": {"message": "refused", "retryable": False, "match": "/bad"}})
    for obj in tree(namespace, "bad", members=1, monitor=False):
        api.create(obj)
    api.wait_phase("VIP", "bad", namespace, "Error", 20)
    tls_vip(api, namespace, device)
    orphan = tree(namespace, "ghost", members=1, monitor=False)[2]
    api.create(orphan)
    api.wait_phase("Member", "ghost-m0", namespace, "Error", 20, reason="ParentNotFound")
    device.control(fail={"probe": {"message": "broken device", "retryable": False}})
    api.wait_phase("Device", device.name, None, "Error", 20)
    device.control()
    api.wait_phase("Device", device.name, None, "Ready", 20)
    for kind, name in [("VIP", "bad"), ("VIP", "outside"), ("Member", "web-m1"), ("VIP", "tls")]:
        api.delete(kind, name, namespace)
    api.wait_gone("VIP", "bad", namespace)
    processes["agent"][0].kill9()
    wait_for(lambda: api.status("Device", device.name).get("reason") == "NoAgent", 30, "NoAgent")
    for obj in good:
        api.delete(obj["kind"], obj["metadata"]["name"], namespace)
    api.delete("Device", device.name)
    processes["controller"][0].stop()

    settings = OperatorSettings(namespaces=[namespace], lease_namespace=LEASE_NAMESPACE)
    static = needed_grants(apicalls.needed(settings), [namespace], [], LEASE_NAMESPACE)
    docs = render(helm, "--set", f"config.namespaces={{{namespace}}}", namespace=LEASE_NAMESPACE)
    granted = rendered_grants(docs)
    counts: Counter[str] = Counter()
    seen: set[Grant] = set()
    for role, (_, record) in processes.items():
        for call in observed(record, role):
            counts[role] += 1
            seen.add(call)
    unpredicted = sorted((c for c in seen if not any(covers(s, c) for s in static)), key=repr)
    assert not unpredicted, f"requests the static derivation does not know: {unpredicted}"
    ungranted = sorted((c for c in seen if not any(covers(g, c) for g in granted)), key=repr)
    assert not ungranted, f"requests the chart does not allow: {ungranted}"
    events = {c.namespace for c in seen if c.resource == "events"}
    assert events == {namespace, LEASE_NAMESPACE}, events  # Device Events: operator namespace
    secrets = {(c.role, c.namespace, c.verb) for c in seen if c.resource == "secrets"}
    assert secrets == {("agent", LEASE_NAMESPACE, "get")} | {
        ("agent", namespace, verb) for verb in ("get", "list", "watch")
    }, secrets  # credentials by name; the TLS VIP's Secrets in its namespace only
    configmaps = {(c.role, c.namespace, c.verb) for c in seen if c.resource == "configmaps"}
    assert configmaps == {("agent", namespace, verb) for verb in ("list", "watch")} | {
        ("controller", LEASE_NAMESPACE, verb) for verb in ("list", "watch")
    }, configmaps  # the TLS VIP's CA bundles; the GatewayClass parameters (operator namespace)
    device_events = [
        e for e in api.core.list_namespaced_event(LEASE_NAMESPACE).items
        if e.involved_object.name == device.name
    ]  # fmt: skip
    assert {e.reason for e in device_events} >= {"NoAgent"}, device_events
    unexercised = sorted((s for s in static if not any(covers(s, c) for c in seen)), key=repr)
    print(f"\nrequests: {dict(counts)}; distinct (role, resource, verb, namespace): {len(seen)}")
    print("derived from the code, not exercised by this scenario:")
    for grant in unexercised:
        print(f"  {grant}")
