"""TLS through the real operator onto an HAProxy device: certificates from Secrets, served as
the VIP's status says; a Secret renewed under load is served without a failed request or a
reload; a key that does not match its certificate fails that VIP alone (another VIP of the
device loses no request); a certificate expiring soon is a condition, an Event and a metric;
a Service's annotations terminate TLS on its ports.

Certificates are made in the tests (``tlskit``); each test has its own namespace, Device and
backends.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from dataplane.hxsupport import Backends, OperatorDevice, free_port_in, net, wait_applied
from dataplane.opsupport import deploy
from dataplane.tlssupport import SteadyClient, https_get, served_fingerprint
from svcsupport import Svc

from helpers import Api, OperatorProcess, wait_for
from lbaas.drivers.haproxy import runtime
from tlskit import Issued, issue, tls_secret

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]
CA = issue("Test CA", ca=True, days=365)


def put_secret(
    api: Api, namespace: str, name: str, cert: Issued, key: Issued | None = None
) -> None:
    """Create or replace the ``kubernetes.io/tls`` Secret ``name`` (``key``: another's key)."""
    from kubernetes.client.exceptions import ApiException

    body = tls_secret(name, cert.cert_pem, (key or cert).key_pem)
    try:
        api.core.create_namespaced_secret(namespace, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        api.core.patch_namespaced_secret(name, namespace, {"data": body["data"]})


def terminated(*secrets: str) -> dict[str, Any]:
    return {
        "protocol": "TERMINATED_HTTPS",
        "tls": {"certificateRefs": [{"name": s} for s in secrets]},
    }


def workers(device: OperatorDevice) -> set[int]:
    return set(runtime.show_proc(device.state_dir / "master.sock").current_workers)


def test_rotation_through_the_secret_under_load(
    api: Api,
    namespace: str,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    operator: OperatorProcess,
) -> None:
    device = make_hx_device(f"{net(10, 16)}/28")
    first = issue("web", names=("web.example.com",), issuer=CA)
    put_secret(api, namespace, "web-tls", first)
    site = deploy(api, namespace, device, "web", backends.http(2), pool={"protocol": "HTTP"},
                  **terminated("web-tls"))  # fmt: skip
    status = api.status("VIP", "web", namespace)
    assert status["tls"]["certificates"][0]["fingerprint"] == first.fingerprint
    assert served_fingerprint(*site.vip, "web.example.com") == first.fingerprint
    assert https_get(*site.vip, "web.example.com")[0] == 200
    before, reloads = workers(device), device.reloads()
    latencies = []
    with SteadyClient(*site.vip, "web.example.com").running() as client:
        time.sleep(0.5)
        for i in range(8):
            renewed = issue(f"web{i}", names=("web.example.com",), issuer=CA)
            changed = time.monotonic()
            put_secret(api, namespace, "web-tls", renewed)
            wait_for(lambda c=renewed: c.fingerprint in client.seen, 5, "the new certificate")
            latencies.append(client.seen[renewed.fingerprint] - changed)
        time.sleep(0.3)
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    print(f"\nSecret -> served: p50 {statistics.median(latencies):.3f}s p95 {p95:.3f}s;"
          f" {client.sent} requests, {len(client.failures)} failed")  # fmt: skip
    assert client.failures == [] and client.sent > 100
    assert p95 < 2.0, latencies
    assert workers(device) == before and device.reloads() == reloads, "no reload"
    wait_for(
        lambda: (
            api.status("VIP", "web", namespace)["tls"]["certificates"][0]["fingerprint"]
            == renewed.fingerprint
        ),
        10,
        "status.tls follows the Secret",
    )


def test_a_key_that_does_not_match_fails_its_vip_alone(
    api: Api,
    namespace: str,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    operator: OperatorProcess,
) -> None:
    device = make_hx_device(f"{net(10, 32)}/28")
    good = issue("good", names=("good.example.com",), issuer=CA)
    put_secret(api, namespace, "good-tls", good)
    other = deploy(api, namespace, device, "other", backends.http(1), pool={"protocol": "HTTP"},
                   **terminated("good-tls"))  # fmt: skip
    bad = issue("bad", names=("bad.example.com",), issuer=CA)
    put_secret(api, namespace, "bad-tls", bad, key=good)  # good's key with bad's certificate
    reloads = device.reloads()
    with SteadyClient(*other.vip, "good.example.com").running() as client:
        time.sleep(0.3)
        api.create({"kind": "VIP", "metadata": {"name": "bad", "namespace": namespace},
                    "spec": {"port": other.port + 1, **terminated("bad-tls")}})  # fmt: skip
        status = api.wait_phase("VIP", "bad", namespace, "Error", 30)["status"]
        time.sleep(0.5)
    assert status["reason"] == "CertificateInvalid", status
    assert status["message"].startswith(
        "Secret bad-tls: tls.key does not match the certificate in tls.crt (CN=bad"
    ), status
    assert status["tls"]["certificates"][0]["fingerprint"] == bad.fingerprint
    valid = next(c for c in status["conditions"] if c["type"] == "CertificatesValid")
    assert (valid["status"], valid["reason"]) == ("False", "CertificateInvalid")
    print(f"\nthe other VIP: {client.sent} requests, {len(client.failures)} failed")
    assert client.failures == [] and client.sent > 20
    assert device.reloads() == reloads, "nothing of the bad VIP reached the device"
    assert "bad" not in device.config()
    assert any(e.reason == "CertificateInvalid" for e in api.events(namespace, "bad"))
    # Fixed in the Secret: served by itself.
    put_secret(api, namespace, "bad-tls", bad)
    wait_applied(api, "VIP", "bad", namespace)
    address = api.status("VIP", "bad", namespace)["address"]
    assert served_fingerprint(address, other.port + 1, "bad.example.com") == bad.fingerprint


def test_expiry_is_a_condition_an_event_once_and_a_metric(
    api: Api,
    namespace: str,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    operator: OperatorProcess,
) -> None:
    device = make_hx_device(f"{net(10, 48)}/28")
    soon = issue("soon", names=("soon.example.com",), issuer=CA, days=5)
    put_secret(api, namespace, "soon-tls", soon)
    site = deploy(api, namespace, device, "soon", backends.http(1), pool={"protocol": "HTTP"},
                  **terminated("soon-tls"))  # fmt: skip
    status = api.status("VIP", "soon", namespace)
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True", "still served"
    valid = conditions["CertificatesValid"]
    assert (valid["status"], valid["reason"]) == ("False", "CertificateExpiringSoon")
    until = soon.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert until in valid["message"] and status["tls"]["certificates"][0]["notAfter"] == until
    wait_for(
        lambda: [e for e in api.events(namespace, "soon") if e.reason == "CertificateExpiringSoon"],
        10,
        "the Warning Event",
    )
    api.patch_spec("Member", next(iter(site.members)), namespace, {"weight": 2})
    wait_applied(api, "VIP", "soon", namespace)
    time.sleep(2)
    events = [e for e in api.events(namespace, "soon") if e.reason == "CertificateExpiringSoon"]
    assert len(events) == 1 and events[0].type == "Warning", events
    metric = re.search(
        rf'lbaas_certificate_expiry_timestamp_seconds\{{namespace="{namespace}",secret="soon-tls",'
        rf'vip="soon"\}} (\S+)',
        operator.metrics(),
    )
    assert metric and float(metric[1]) == soon.cert.not_valid_after_utc.timestamp()
    # Renewed for a year: the condition turns True, the metric follows.
    later = issue("later", names=("soon.example.com",), issuer=CA, days=365)
    put_secret(api, namespace, "soon-tls", later)
    wait_for(
        lambda: next(c for c in api.status("VIP", "soon", namespace)["conditions"]
                     if c["type"] == "CertificatesValid")["status"] == "True",
        10,
        "CertificatesValid True",
    )  # fmt: skip
    assert served_fingerprint(*site.vip, "soon.example.com") == later.fingerprint


def test_a_service_terminates_tls_on_its_annotated_port(
    api: Api,
    namespace: str,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    operator: OperatorProcess,
) -> None:
    device = make_hx_device(f"{net(10, 64)}/28")
    cert = issue("svc", names=("svc.example.com",), issuer=CA)
    put_secret(api, namespace, "svc-tls", cert)
    backend = backends.http(1)[0]
    port = free_port_in(device.address_pool)
    svc = Svc(api, namespace, "svc")
    annotations = {
        "lbaas.dev/tls-secret": "svc-tls",
        "lbaas.dev/tls-ports": "https",
        "lbaas.dev/device": device.name,
        "lbaas.dev/health-check-type": "none",
    }
    svc.create([{"name": "https", "port": port, "targetPort": backend.port}],
               annotations=annotations)  # fmt: skip
    try:
        svc.set_endpoints([(backend.address, True)], port=backend.port, port_name="https")
        vip = wait_applied(api, "VIP", f"svc-{port}", namespace)
        assert vip["spec"]["protocol"] == "TERMINATED_HTTPS"
        address = vip["status"]["address"]
        assert served_fingerprint(address, port, "svc.example.com") == cert.fingerprint
        # The VIP is Active before the endpoint's Member is applied (a Member of its own):
        # served once it is.
        wait_for(
            lambda: https_get(address, port, "svc.example.com") == (200, backend.name),
            10,
            "the endpoint served through the terminated port",
        )
        wait_for(lambda: svc.ingress_ip() == address, 10, "the Service's EXTERNAL-IP")
    finally:
        # Gone before the fixture deletes the Device: a Service left would have its VIP
        # made again, hold the Device (InUse) and its HAProxy be started again.
        svc.delete()
        wait_for(lambda: svc.get() is None, 30, "the Service gone (its trees removed)")
