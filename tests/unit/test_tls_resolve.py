"""A tree's TLS references resolved into driver material, its status and the condition (pure),
and the tree translated into the driver model with that material (or with shapes only)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec
from lbaas.drivers import model
from lbaas.drivers.capabilities import required_features
from lbaas.drivers.documents import to_document
from lbaas.tls.resolve import Ref, refs_of, resolve, shapes
from lbaas.tls.status import condition, tls_status
from lbaas.trees import translate
from lbaas.trees.tree import build_tree
from tlskit import Issued, ca_configmap, chain_pem, issue, tls_secret

NOW = datetime.now(UTC)
NS = "team"
CA = issue("Clients CA", ca=True, days=365)
WEB = issue("web", names=("web.example.com",), days=90)
API = issue("api", names=("*.api.example.com", "api.example.com"), days=10)


def vip_spec(**tls: Any) -> VIPSpec:
    body = {"certificateRefs": [{"name": "web"}, {"name": "api"}], **tls}
    return VIPSpec.model_validate({"port": 443, "protocol": "TERMINATED_HTTPS", "tls": body})


def objects(**extra: Mapping[str, Any]) -> dict[Ref, Mapping[str, Any]]:
    found: dict[Ref, Mapping[str, Any]] = {
        Ref("Secret", NS, "web", True): tls_secret("web", WEB.cert_pem, WEB.key_pem),
        Ref("Secret", NS, "api", True): tls_secret("api", API.cert_pem, API.key_pem),
        Ref("ConfigMap", NS, "clients"): ca_configmap("clients", CA.cert_pem),
        Ref("Secret", NS, "backend-ca"): {
            "type": "Opaque",
            "data": {"ca.crt": base64.b64encode(CA.cert_pem).decode()},
        },
    }
    for name, obj in extra.items():
        found[Ref("Secret", NS, name, True)] = obj
    return found


def lookup_in(found: Mapping[Ref, Mapping[str, Any]]) -> Any:
    return lambda ref: (
        found.get(Ref(ref.kind, ref.namespace, ref.name, ref.certificate))
        or (found.get(Ref(ref.kind, ref.namespace, ref.name, not ref.certificate)))
    )


def test_refs_name_every_secret_and_configmap_of_the_tree() -> None:
    vip = vip_spec(
        clientValidation={"caCertificateRefs": [{"name": "clients", "kind": "ConfigMap"}]}
    )
    pool = PoolSpec.model_validate(
        {"vipRef": "v", "tls": {"caCertificateRefs": [{"name": "backend-ca", "kind": "Secret"}]}}
    )
    unused = [{"name": "x", "kind": "Secret"}]
    off = PoolSpec.model_validate(
        {"vipRef": "v", "tls": {"enabled": False, "caCertificateRefs": unused}}
    )
    assert refs_of(NS, vip, [("p", pool), ("q", off)]) == {
        Ref("Secret", NS, "web", True),
        Ref("Secret", NS, "api", True),
        Ref("ConfigMap", NS, "clients"),
        Ref("Secret", NS, "backend-ca"),
    }
    assert refs_of(NS, VIPSpec(port=80), []) == set()


def test_resolved_material_for_the_listener_and_the_pool() -> None:
    vip = vip_spec(
        minVersion="TLSv1.3",
        cipherSuites=["TLS_AES_256_GCM_SHA384"],
        alpn=["h2", "http/1.1"],
        clientValidation={
            "caCertificateRefs": [{"name": "clients", "kind": "ConfigMap"}],
            "mode": "AllowInsecureFallback",
            "subjectHeader": "X-Client-Subject",
        },
    )
    pool = PoolSpec.model_validate(
        {
            "vipRef": "v",
            "tls": {
                "caCertificateRefs": [{"name": "backend-ca", "kind": "Secret"}],
                "serverName": "backend.internal",
            },
        }
    )
    found = resolve(NS, vip, [("p", pool)], lookup_in(objects()), now=NOW)
    assert found.problem is None and found.terminated
    listener = found.material.listener
    assert listener is not None
    assert [c.name for c in listener.certificates] == ["web", "api"]
    assert listener.certificates[1].dns_names == ("*.api.example.com", "api.example.com")
    assert listener.min_version == model.TLSVersion.TLS_1_3
    assert listener.cipher_suites == ("TLS_AES_256_GCM_SHA384",) and listener.alpn == (
        "h2",
        "http/1.1",
    )
    assert listener.client_validation is not None
    assert listener.client_validation.ca.pem == CA.cert_pem.decode()
    assert listener.client_validation.mode == model.ClientValidationMode.ALLOW_INSECURE_FALLBACK
    assert listener.client_validation.subject_header == "X-Client-Subject"
    backend = found.material.backends["p"]
    assert backend.verify and backend.server_name == "backend.internal"
    assert backend.ca is not None and backend.ca.name == "backend-ca"
    assert [s.fingerprint for s in found.seen] == [WEB.fingerprint, API.fingerprint]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"web": None}, "Secret web (certificateRefs) not found in namespace team"),
        (
            {"web": {**tls_secret("web", WEB.cert_pem, WEB.key_pem), "type": "Opaque"}},
            "Secret web is of type Opaque: certificateRefs need Secrets of type kubernetes.io/tls",
        ),
        (
            {"web": tls_secret("web", WEB.cert_pem, API.key_pem)},
            "Secret web: tls.key does not match the certificate in tls.crt",
        ),
        (
            {"web": {"type": "kubernetes.io/tls", "data": {"tls.crt": "%%%"}}},
            "Secret web: its data cannot be decoded",
        ),
    ],
)
def test_one_bad_secret_is_the_problem_and_the_others_are_still_reported(
    change: dict[str, Any], problem: str
) -> None:
    found_objects = objects()
    for name, obj in change.items():
        if obj is None:
            del found_objects[Ref("Secret", NS, name, True)]
        else:
            found_objects[Ref("Secret", NS, name, True)] = obj
    found = resolve(NS, vip_spec(), [], lookup_in(found_objects), now=NOW)
    assert found.problem is not None and found.problem.startswith(problem), found.problem
    assert found.reason == "CertificateInvalid"
    assert found.material.listener is None, "nothing for the driver"
    assert "api" in [s.name for s in found.seen]


def test_a_missing_ca_bundle_names_its_kind_and_key() -> None:
    vip = vip_spec(clientValidation={"caCertificateRefs": [{"name": "nope", "kind": "ConfigMap"}]})
    found = resolve(NS, vip, [], lookup_in(objects()), now=NOW)
    assert found.problem == (
        "ConfigMap nope (caCertificateRefs) not found in namespace team: create it with the CA"
        " certificates in key ca.crt, or fix the name"
    )
    no_key = objects()
    no_key[Ref("ConfigMap", NS, "clients")] = {"data": {"other": "x"}}
    vip = vip_spec(
        clientValidation={"caCertificateRefs": [{"name": "clients", "kind": "ConfigMap"}]}
    )
    found = resolve(NS, vip, [], lookup_in(no_key), now=NOW)
    assert found.problem == "ConfigMap clients has no key ca.crt (the CA certificates, PEM)"


def test_status_and_condition() -> None:
    found = resolve(NS, vip_spec(), [], lookup_in(objects()), now=NOW)
    status = tls_status(found)
    assert status["certificates"][0] == {
        "name": "web",
        "dnsNames": ["web.example.com"],
        "notAfter": WEB.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint": WEB.fingerprint,
    }
    assert "PRIVATE" not in str(status)
    # api expires in 10 days: within the default 14, outside 7.
    soon = condition(found, now=NOW, warning=timedelta(days=14))
    assert (soon.ok, soon.reason) == (False, "CertificateExpiringSoon")
    assert soon.message.startswith("the certificate of Secret api expires at ")
    assert "within the 14-day warning threshold" in soon.message
    later = condition(found, now=NOW + timedelta(hours=5), warning=timedelta(days=14))
    assert later.message == soon.message, "the message does not change as time passes"
    fine = condition(found, now=NOW, warning=timedelta(days=7))
    assert (fine.ok, fine.reason) == (True, "Valid")
    assert API.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ") in fine.message
    bad = objects(web=tls_secret("web", WEB.cert_pem, API.key_pem))
    broken = resolve(NS, vip_spec(), [], lookup_in(bad), now=NOW)
    invalid = condition(broken, now=NOW, warning=timedelta(days=14))
    assert (invalid.ok, invalid.reason) == (False, "CertificateInvalid")
    assert invalid.message == broken.problem


def tree(vip: VIPSpec, pool: PoolSpec | None = None) -> Any:
    snap = {
        "kind": "VIP",
        "metadata": {"name": "v", "namespace": NS, "generation": 1},
        "spec": vip.wire(),
    }
    pools = []
    if pool is not None:
        pools = [{"kind": "Pool", "metadata": {"name": "p", "namespace": NS}, "spec": pool.wire()}]
    return build_tree(snap, pools, {}, {})


def test_the_model_gets_the_material_and_documents_keep_no_key() -> None:
    pool = PoolSpec.model_validate({"vipRef": "v", "tls": {"verify": False}})
    t = tree(vip_spec(), pool)
    found = resolve(NS, t.vip_spec, [("p", pool)], lookup_in(objects()), now=NOW)
    lb = translate.load_balancer(t, "10.0.0.1", found.material)
    listener = lb.listeners[0]
    assert listener.protocol == model.Protocol.TERMINATED_HTTPS
    assert listener.tls is not None and listener.tls.certificates[0].private_key.reveal()
    assert lb.pools[0].tls == model.BackendTLS(verify=False)
    assert {"tls.terminate", "tls.sni", "tls.backend"} <= required_features(lb)
    document = str(to_document(lb))
    key_line = WEB.key_pem.decode().splitlines()[1]
    assert key_line not in document and "PRIVATE KEY" not in document
    assert listener.tls.certificates[0].private_key.fingerprint in document


def test_shapes_ask_the_same_features_without_any_secret() -> None:
    vip = vip_spec(
        minVersion="TLSv1.3",
        alpn=["h2"],
        clientValidation={"caCertificateRefs": [{"name": "c", "kind": "Secret"}]},
    )
    pool = PoolSpec.model_validate(
        {"vipRef": "v", "tls": {"caCertificateRefs": [{"name": "c", "kind": "Secret"}]}}
    )
    t = tree(vip, pool)
    shaped = translate.load_balancer(t, "10.0.0.1")
    assert required_features(shaped) == {
        "tls.terminate",
        "tls.sni",
        "tls.min-version",
        "tls.alpn",
        "tls.client-validation",
        "tls.backend",
        "method.round-robin",
        "http.forwarded-headers",  # on by default for HTTP and TERMINATED_HTTPS (issue 20)
    }
    full = objects()
    full[Ref("Secret", NS, "c")] = {"data": {"ca.crt": base64.b64encode(CA.cert_pem).decode()}}
    resolved = resolve(NS, vip, [("p", pool)], lookup_in(full), now=NOW)
    lb = translate.load_balancer(t, "10.0.0.1", resolved.material)
    assert required_features(lb) == required_features(shaped)
    assert shapes(vip, []).listener is not None
    probe = translate.probe(NS, "v", vip)
    assert "tls.client-validation" in required_features(probe)


def test_a_chain_is_served_leaf_first() -> None:
    root = issue("Root", ca=True)
    leaf: Issued = issue("web", names=("web.example.com",), issuer=root)
    found_objects = objects(web=tls_secret("web", chain_pem(leaf, root), leaf.key_pem))
    found = resolve(NS, vip_spec(), [], lookup_in(found_objects), now=NOW)
    assert found.material.listener is not None
    assert found.material.listener.certificates[0].certificate.count("BEGIN CERTIFICATE") == 2
