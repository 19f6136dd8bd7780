"""TLS through the real operator and the test bed, with the fake driver (a device that stores
the trees it is given, keys as fingerprints: ``lbaas.drivers.documents``): certificates from
Secrets reach the driver's tree; a bad or missing Secret fails its VIP alone; a changed Secret
re-applies exactly the VIPs that name it; expiry is a condition, an Event once and a metric;
the agent lists Secrets of the served namespace only, by type.

Certificates are made in the tests (``tlskit``, ``cryptography``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from helpers import Api, FakeDevice, OperatorProcess, wait_for
from lbaas.drivers.documents import load_balancer
from lbaas.drivers.model import LoadBalancer
from tlskit import Issued, issue, tls_secret

pytestmark = pytest.mark.cluster
CA = issue("Integration CA", ca=True, days=365)


def put_secret(
    api: Api, namespace: str, name: str, cert: Issued, key: Issued | None = None
) -> None:
    from kubernetes.client.exceptions import ApiException

    body = tls_secret(name, cert.cert_pem, (key or cert).key_pem)
    try:
        api.core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        api.core.patch_namespaced_secret(name, namespace, {"data": body["data"]})


def tls_tree(api: Api, namespace: str, name: str, device: FakeDevice, *secrets: str) -> None:
    refs = [{"name": s} for s in secrets]
    api.create({"kind": "VIP", "metadata": {"name": name, "namespace": namespace},
                "spec": {"port": 443, "protocol": "TERMINATED_HTTPS", "deviceRef": device.name,
                         "tls": {"certificateRefs": refs}}})  # fmt: skip
    api.create({"kind": "Pool", "metadata": {"name": name, "namespace": namespace},
                "spec": {"vipRef": name, "protocol": "HTTP"}})  # fmt: skip


def stored(device: FakeDevice, key: str) -> LoadBalancer | None:
    """The tree the fake device stores for ``key``."""
    entry = next((e for e in device.listeners().values() if e["vip"] == key), None)
    return load_balancer(entry["tree"]) if entry is not None else None


def fingerprints(device: FakeDevice, key: str) -> list[str]:
    lb = stored(device, key)
    if lb is None or lb.listeners[0].tls is None:
        return []
    return [c.fingerprint for c in lb.listeners[0].tls.certificates]


def condition(api: Api, namespace: str, name: str, kind: str) -> dict[str, Any]:
    status = api.status("VIP", name, namespace)
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


def applied_keys(device: FakeDevice, since: int) -> list[str]:
    return [k for call in device.calls()[since:] if call["op"] == "apply" for k in call["vips"]]


def test_certificates_reach_the_driver_and_the_status(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    device = make_device()
    web = issue("web", names=("web.example.com", "www.example.com"), issuer=CA)
    wild = issue("wild", names=("*.api.example.com",), issuer=CA)
    put_secret(api, namespace, "web-tls", web)
    put_secret(api, namespace, "wild-tls", wild)
    tls_tree(api, namespace, "web", device, "web-tls", "wild-tls")
    api.wait_phase("VIP", "web", namespace, "Active", 30)
    key = f"{namespace}/web"
    assert fingerprints(device, key) == [web.fingerprint, wild.fingerprint]
    text = device.state_file.read_text()
    assert re.search(r'"private_key": \{"sensitive": "sha256:[0-9a-f]{32}"\}', text)
    assert "PRIVATE KEY" not in text and "PRIVATE KEY" not in device.call_log.read_text()
    status = api.status("VIP", "web", namespace)
    assert status["tls"]["certificates"] == [
        {"name": "web-tls", "dnsNames": ["web.example.com", "www.example.com"],
         "notAfter": web.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "fingerprint": web.fingerprint},
        {"name": "wild-tls", "dnsNames": ["*.api.example.com"],
         "notAfter": wild.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
         "fingerprint": wild.fingerprint},
    ]  # fmt: skip
    valid = condition(api, namespace, "web", "CertificatesValid")
    assert (valid["status"], valid["reason"]) == ("True", "Valid"), valid
    metrics = operator.metrics()
    for name, cert in (("web-tls", web), ("wild-tls", wild)):
        line = (f'lbaas_certificate_expiry_timestamp_seconds{{namespace="{namespace}",'
                f'secret="{name}",vip="web"}} ')  # fmt: skip
        value = next(x for x in metrics.splitlines() if x.startswith(line)).split()[-1]
        assert float(value) == cert.cert.not_valid_after_utc.timestamp()
    # A VIP that stops terminating TLS loses its certificate status and condition.
    api.patch_spec("VIP", "web", namespace, {"protocol": "HTTP", "tls": None})
    wait_for(lambda: "tls" not in api.status("VIP", "web", namespace), 20, "status.tls gone")
    assert not condition(api, namespace, "web", "CertificatesValid")
    assert fingerprints(device, key) == []
    wait_for(lambda: "web-tls" not in operator.metrics(), 10, "the expiry series dropped")


def test_a_bad_or_missing_secret_fails_its_vip_alone(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    device = make_device()
    good = issue("good", names=("good.example.com",), issuer=CA)
    other = issue("other", names=("other.example.com",), issuer=CA)
    put_secret(api, namespace, "good-tls", good)
    put_secret(api, namespace, "bad-tls", other, key=good)  # another certificate's key
    tls_tree(api, namespace, "good", device, "good-tls")
    api.wait_phase("VIP", "good", namespace, "Active", 30)
    time.sleep(1)  # the new device's takeover applies what is bound to it once more
    since = len(device.calls())
    tls_tree(api, namespace, "bad", device, "bad-tls")
    tls_tree(api, namespace, "missing", device, "nope-tls")
    bad = api.wait_phase("VIP", "bad", namespace, "Error", 30)["status"]
    missing = api.wait_phase("VIP", "missing", namespace, "Error", 30)["status"]
    assert bad["reason"] == "CertificateInvalid", bad
    assert bad["message"].startswith(
        "Secret bad-tls: tls.key does not match the certificate in tls.crt (CN=other"
    ), bad
    assert missing["message"] == (
        f"Secret nope-tls (certificateRefs) not found in namespace {namespace}: create it"
        " (type kubernetes.io/tls) or fix the name"
    ), missing
    assert api.wait_phase("Pool", "bad", namespace, "Error", 10)["status"]["reason"] == (
        "CertificateInvalid"
    )
    wait_for(lambda: api.events(namespace, "bad"), 10, "a Warning Event")
    assert {e.reason for e in api.events(namespace, "bad")} == {"CertificateInvalid"}
    time.sleep(1)
    sent = applied_keys(device, since)
    assert f"{namespace}/bad" not in sent and f"{namespace}/missing" not in sent, sent
    assert f"{namespace}/good" not in sent, "the other VIP was not touched"
    assert api.status("VIP", "good", namespace)["phase"] == "Active"
    # Fixed: the Secret's change alone brings it up; the missing one, once created.
    put_secret(api, namespace, "bad-tls", other)
    put_secret(api, namespace, "nope-tls", other)
    for name in ("bad", "missing"):
        api.wait_phase("VIP", name, namespace, "Active", 30)
        assert fingerprints(device, f"{namespace}/{name}") == [other.fingerprint]


def test_a_changed_secret_re_applies_exactly_the_vips_that_name_it(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    device = make_device()
    shared = issue("shared", names=("shared.example.com",), issuer=CA)
    alone = issue("alone", names=("alone.example.com",), issuer=CA)
    put_secret(api, namespace, "shared-tls", shared)
    put_secret(api, namespace, "alone-tls", alone)
    for name, secret in (("a", "shared-tls"), ("b", "shared-tls"), ("c", "alone-tls")):
        tls_tree(api, namespace, name, device, secret)
    for name in "abc":
        api.wait_phase("VIP", name, namespace, "Active", 30)
    time.sleep(1)  # let the first applies settle
    since = len(device.calls())
    renewed = issue("shared2", names=("shared.example.com",), issuer=CA)
    put_secret(api, namespace, "shared-tls", renewed)
    for name in "ab":
        wait_for(lambda n=name: fingerprints(device, f"{namespace}/{n}") == [renewed.fingerprint],
                 10, f"VIP {name} re-applied")  # fmt: skip
    time.sleep(1)
    sent = applied_keys(device, since)
    assert set(sent) == {f"{namespace}/a", f"{namespace}/b"}, sent
    assert fingerprints(device, f"{namespace}/c") == [alone.fingerprint]
    for name in "ab":
        status = api.status("VIP", name, namespace)
        assert status["tls"]["certificates"][0]["fingerprint"] == renewed.fingerprint


def test_expiring_soon_is_a_condition_and_one_event(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    device = make_device()
    soon = issue("soon", names=("soon.example.com",), issuer=CA, days=3)
    put_secret(api, namespace, "soon-tls", soon)
    tls_tree(api, namespace, "soon", device, "soon-tls")
    api.wait_phase("VIP", "soon", namespace, "Active", 30)
    wait_for(
        lambda: (
            condition(api, namespace, "soon", "CertificatesValid").get("reason")
            == "CertificateExpiringSoon"
        ),
        10,
        "CertificateExpiringSoon",
    )
    assert condition(api, namespace, "soon", "Ready")["status"] == "True"
    # Other changes of the tree, and time: still one Event.
    api.patch_spec("Pool", "soon", namespace, {"lbMethod": "LEAST_CONNECTIONS"})
    api.wait_phase("Pool", "soon", namespace, "Active", 30)
    time.sleep(2)
    events = [e for e in api.events(namespace, "soon") if e.reason == "CertificateExpiringSoon"]
    assert len(events) == 1, [(e.reason, e.message) for e in events]
    assert "within the 14-day warning threshold" in events[0].message


def test_the_agent_lists_only_tls_secrets_of_served_namespaces(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    """What the agent asks the API server for, from its own log of watches: a TLS-typed list
    of this namespace, never a cluster-wide list of Secrets."""
    device = make_device()
    cert = issue("w", names=("w.example.com",), issuer=CA)
    put_secret(api, namespace, "w-tls", cert)
    tls_tree(api, namespace, "w", device, "w-tls")
    api.wait_phase("VIP", "w", namespace, "Active", 30)
    log = operator.log_path.read_text()
    assert f"watching tls of namespace {namespace}" in log
    watched = set(re.findall(r"watching \S+ of namespace (\S+)", log))
    assert namespace in watched and None not in watched
    api.delete("VIP", "w", namespace)
    api.wait_gone("VIP", "w", namespace, 30)
    wait_for(
        lambda: f"stopped watching tls of namespace {namespace}" in operator.log_path.read_text(),
        10,
        "the watch stopped with the last VIP",
    )


def test_a_device_lacking_a_tls_feature_is_not_chosen(
    api: Api, namespace: str, make_device: Callable[..., FakeDevice], operator: OperatorProcess
) -> None:
    """The scheduler places a TLS VIP only where its driver has what the tree asks for (read
    from its specs: no Secret is needed to know it); a pinned VIP on such a device is
    Unsupported, naming the feature, and the device gets nothing."""
    without = ["tls.terminate"]
    plain = make_device(create=False)
    plain.body["spec"]["config"]["withoutFeatures"] = without
    plain.create()
    cert = issue("x", names=("x.example.com",), issuer=CA)
    put_secret(api, namespace, "x-tls", cert)
    refs = {"certificateRefs": [{"name": "x-tls"}]}
    api.create({"kind": "VIP", "metadata": {"name": "free", "namespace": namespace},
                "spec": {"port": 443, "protocol": "TERMINATED_HTTPS", "tls": refs}})  # fmt: skip
    status = api.wait_phase("VIP", "free", namespace, "Error", 30)["status"]
    assert status["reason"] == "NoEligibleDevice", status
    assert "tls.terminate" in status["message"], status
    tls_tree(api, namespace, "pinned", plain, "x-tls")
    status = api.wait_phase("VIP", "pinned", namespace, "Error", 30)["status"]
    assert status["reason"] in ("NoEligibleDevice", "Unsupported"), status
    assert "tls.terminate" in status["message"], status
    assert not plain.listeners(), "the device got nothing"
    # A device that has it takes the free VIP by itself.
    able = make_device()
    api.wait_phase("VIP", "free", namespace, "Active", 30)
    assert api.status("VIP", "free", namespace)["device"] == able.name
