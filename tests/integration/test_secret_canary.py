"""Secret hygiene proven with a canary (issue 10): a credential value that must appear in
nothing the operator writes or says.

Devices of the fake driver name credentials Secrets in the operator's namespace holding
canary values. The cases: a readable Secret (the driver receives the value: it records its
SHA-256), a driver that echoes the credential into its error's message and detail (apply and
probe), a driver that crashes with it in a plain exception, a missing Secret, a Secret
without the key the driver needs and one that is not UTF-8; and a Device of the HAProxy
driver given the same Secret, serving a VIP. Then every place in :data:`PLACES` is searched
for every value in every encoding of ``canary.ENCODINGS`` (as is, base64, URL-safe base64,
hex): the operator's log (at DEBUG), the statuses of every object of all five kinds, every
Event in every namespace, the metrics, and every file the drivers wrote (the fake driver's
state and call log, the HAProxy driver's whole state dir). Tenants see which Secret "cannot
be read" and nothing else; the redacted echoes show ``***`` where the value was.

To search for more (the TLS work: private keys), add the values to the list ``secrets``
of the test, a place to :data:`PLACES`, an encoding to ``canary.ENCODINGS``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from canary import files, leaks
from dataplane.hxsupport import free_port_in, haproxy_binary, net, stop_haproxy

from helpers import (
    GROUP,
    LEASE_NAMESPACE,
    PLURALS,
    VERSION,
    Api,
    FakeDevice,
    OperatorProcess,
    wait_for,
)
from helpers import tree as make_tree

pytestmark = pytest.mark.cluster
OPERATOR_ENV = {"LBAAS_LOG_LEVEL": "DEBUG"}


def secret(api: Api, name: str, data: dict[str, bytes]) -> dict[str, str]:
    encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
    api.core.create_namespaced_secret(
        LEASE_NAMESPACE, {"metadata": {"name": name}, "data": encoded}
    )
    return {"namespace": LEASE_NAMESPACE, "name": name}


@dataclass
class Scene:
    """Where the test's operator and drivers left their traces."""

    api: Api
    operator: OperatorProcess
    driver_dirs: list[Path]
    """Every directory a driver of this test writes in (state files, logs, configuration)."""


def _operator(scene: Scene) -> dict[str, str]:
    return {
        "operator log": scene.operator.log_path.read_text(),
        "metrics": scene.operator.metrics(),
    }


def _statuses(scene: Scene) -> dict[str, str]:
    found = {}
    for kind, plural in PLURALS.items():
        items = scene.api.custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        found[f"{kind} statuses"] = json.dumps([i.get("status") for i in items])
    return found


def _events(scene: Scene) -> dict[str, str]:
    events = scene.api.core.list_event_for_all_namespaces().items
    return {"Events": json.dumps([[e.reason, e.message, e.involved_object.name] for e in events])}


def _driver_files(scene: Scene) -> dict[str, bytes]:
    return files(*scene.driver_dirs)


PLACES: list[Callable[[Scene], dict[str, str] | dict[str, bytes]]] = [
    _operator, _statuses, _events, _driver_files,
]  # fmt: skip
"""Where a secret must never be, each a function of the scene → {what: its text}."""


def everything(scene: Scene) -> dict[str, bytes]:
    """What the tests can collect, by where it came from."""
    found: dict[str, bytes] = {}
    for place in PLACES:
        for where, text in place(scene).items():
            found[where] = text if isinstance(text, bytes) else text.encode()
    return found


@pytest.fixture
def tidy(api: Api, namespace: str) -> Iterator[None]:
    """Whatever happens: this test's trees, then its Devices, are deleted (a Device left
    behind would keep the next tests' agents busy reading Secrets that are gone)."""
    yield
    for kind in ("HealthMonitor", "Member", "Pool", "VIP"):
        found = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
        for item in found["items"]:
            api.delete(kind, item["metadata"]["name"], namespace)
    devices = api.custom.list_cluster_custom_object(GROUP, VERSION, "devices")["items"]
    for device in devices:
        if device["metadata"]["name"].startswith(f"{namespace}-"):
            api.delete("Device", device["metadata"]["name"])


@pytest.mark.usefixtures("tidy")
def test_the_canary_appears_nowhere(
    api: Api,
    namespace: str,
    operator: OperatorProcess,
    make_device: Callable[..., FakeDevice],
    tmp_path: Path,
) -> None:
    canary = f"canary-7f3a-{uuid.uuid4().hex}"
    other = f"canary-7f3a-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex[:6]
    good_ref = secret(api, f"good-{tag}", {"token": canary.encode()})
    wrong_ref = secret(api, f"wrong-{tag}", {"password": other.encode()})
    binary_ref = secret(api, f"binary-{tag}", {"token": other.encode() + b"\xff\xfe"})
    missing_ref = {"namespace": LEASE_NAMESPACE, "name": f"missing-{tag}"}
    config = {"credentialsKey": "token"}

    # Readable: the driver gets the value (its state file keeps only the SHA-256).
    good = with_config(make_device(create=False, credentialsSecretRef=good_ref), config)
    objs = make_tree(namespace, "web", members=2, monitor=False, deviceRef=good.name)
    for obj in objs:
        api.create(obj)
    api.wait_phase("VIP", "web", namespace, "Active", 30)
    assert good.state()["credentials"] == {"token": hashlib.sha256(canary.encode()).hexdigest()}
    assert canary not in Path(good.state_file).read_text()

    # A driver that echoes the credential: into an apply error, a probe error, a crash.
    good.control(fail={"apply": {"message": "login refused", "match": "/echo",
                                 "echoCredentials": True, "retryable": False}})  # fmt: skip
    api.create(make_tree(namespace, "echo", members=0, monitor=False, deviceRef=good.name)[0])
    echo = api.wait_phase("VIP", "echo", namespace, "Error", 20)["status"]
    assert echo["message"] == "login refused (logged in with token=***)", echo
    good.control(crash={"apply": True})
    api.patch_spec("VIP", "echo", namespace, {"port": 81})
    crashed = "RuntimeError: vendor SDK crashed during apply with session ***"
    wait_for(lambda: crashed in api.status("VIP", "echo", namespace).get("message", ""), 20,
             "the crash reported")  # fmt: skip
    good.control(fail={"probe": {"message": "session expired", "echoCredentials": True,
                                 "retryable": False}})  # fmt: skip
    device = api.wait_phase("Device", good.name, None, "Error", 20)["status"]
    assert device["message"] == "session expired (logged in with token=***)", device
    # The Event follows the status write (another request): wait for it.
    wait_for(
        lambda: any("***" in e.message for e in api.events(LEASE_NAMESPACE, good.name)),
        10,
        "the redacted Warning Event on the Device",
    )
    good.control()

    # Unreadable: missing, without the driver's key, not UTF-8. Tenants learn which Secret
    # (the operator names it; the driver, which sees only the data, names the Device's ref).
    lacking_key = "the Device's credentialsSecretRef cannot be used: its Secret has no key"
    for ref, phase, reason, by_driver in [
        (missing_ref, "NotReady", "CredentialsUnavailable", False),
        (wrong_ref, "Error", "CredentialsUnavailable", True),
        (binary_ref, "NotReady", "CredentialsUnavailable", False),
    ]:
        bad = make_device(create=False, credentialsSecretRef=ref)
        bad.body["spec"]["config"].update(config)
        api.create(bad.body)
        status = api.wait_phase("Device", bad.name, None, phase, 20)["status"]
        assert status["reason"] == reason, status
        assert status["message"].startswith(
            lacking_key
            if by_driver
            else f"credentials Secret {ref['namespace']}/{ref['name']} cannot be read"
        ), status

    api.wait_phase("Device", good.name, None, "Ready", 20)
    hx_dir = haproxy_device(api, namespace, good_ref)
    try:
        collected = everything(Scene(api, operator, [tmp_path, hx_dir]))
    finally:
        api.delete("VIP", "hx", namespace)
        with contextlib.suppress(AssertionError):
            api.wait_gone("VIP", "hx", namespace, 30)
        api.delete("Device", f"{namespace}-hx")
        with contextlib.suppress(AssertionError):
            api.wait_gone("Device", f"{namespace}-hx", None, 30)
        stop_haproxy(hx_dir)
        shutil.rmtree(hx_dir, ignore_errors=True)
    assert b"***" in collected["operator log"]  # the echoes were logged, redacted
    assert any("calls.jsonl" in where for where in collected), "the fake driver's call log"
    assert any("/conf.d/" in where for where in collected), "the HAProxy driver's files"
    secrets = [canary.encode(), other.encode()]
    assert leaks(secrets, collected) == []


def haproxy_device(api: Api, namespace: str, credentials: dict[str, str]) -> Path:
    """A Device of the HAProxy driver given the credentials Secret, serving a VIP of
    ``namespace`` (its VIP is deleted with the namespace's trees); its state dir."""
    state_dir = Path(tempfile.mkdtemp(prefix="lbcan-", dir="/tmp"))
    pool = f"{net(62, 0)}/28"
    config = {"managed": True, "stateDir": str(state_dir), "haproxyBinary": haproxy_binary()}
    api.create({"kind": "Device", "metadata": {"name": f"{namespace}-hx"}, "spec": {
        "driver": "haproxy", "config": config, "addressPool": [pool],
        "allowedNamespaces": [namespace], "credentialsSecretRef": credentials}})  # fmt: skip
    api.wait_phase("Device", f"{namespace}-hx", None, "Ready", 30)
    port = free_port_in(pool)
    for obj in make_tree(namespace, "hx", members=1, monitor=False, port=port,
                         deviceRef=f"{namespace}-hx"):  # fmt: skip
        api.create(obj)
    api.wait_phase("VIP", "hx", namespace, "Active", 30)
    return state_dir


def with_config(device: FakeDevice, config: dict[str, Any]) -> FakeDevice:
    device.body["spec"]["config"].update(config)
    return device.create()
