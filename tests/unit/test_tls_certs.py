"""Certificates from Secrets: what is accepted, what is refused with which message, and what is
extracted (DNS names, notAfter, the fingerprint openssl prints), with real certificates."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa

from helpers import need_tool
from lbaas.drivers import model
from lbaas.tls import certs
from lbaas.tls.certs import CertificateProblem
from tlskit import chain_pem, issue

NOW = datetime.now(UTC)


def data(cert_pem: bytes, key_pem: bytes) -> dict[str, bytes]:
    return {"tls.crt": cert_pem, "tls.key": key_pem}


def test_a_leaf_with_its_chain_is_served_as_given() -> None:
    root = issue("Root", ca=True, days=3650)
    inter = issue("Intermediate", ca=True, issuer=root, days=365)
    leaf = issue("web", names=("web.example.com", "*.api.example.com"), issuer=inter, key="rsa")
    found = certs.certificate("web-tls", data(chain_pem(leaf, inter), leaf.key_pem), now=NOW)
    assert found.name == "web-tls"
    assert found.dns_names == ("web.example.com", "*.api.example.com")
    assert found.fingerprint == leaf.fingerprint
    assert found.not_after == leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert found.certificate.count("BEGIN CERTIFICATE") == 2
    assert found.certificate.startswith(leaf.cert_pem.decode())
    # The key is re-encoded as PKCS#8 and hidden from every repr.
    assert found.private_key.reveal().startswith("-----BEGIN PRIVATE KEY-----")
    assert "PRIVATE" not in repr(found) and "PRIVATE" not in str(found.private_key)
    assert isinstance(found.private_key, model.Sensitive)


def test_the_fingerprint_is_the_one_openssl_prints() -> None:
    if not shutil.which("openssl"):
        need_tool("openssl not found")
    leaf = issue("web", names=("web.example.com",))
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
        input=leaf.cert_pem,
        capture_output=True,
        check=True,
    ).stdout.decode()
    found = certs.certificate("s", data(leaf.cert_pem, leaf.key_pem), now=NOW)
    assert out.strip().split("=", 1)[1] == found.fingerprint


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("mismatched key", "Secret s: tls.key does not match the certificate in tls.crt (CN=web"),
        ("expired", "Secret s: the certificate (CN=web) expired at"),
        ("not yet valid", "Secret s: the certificate (CN=web) is not valid before"),
        ("expired intermediate", "Secret s: chain certificate 2 (CN=Intermediate) expired at"),
        (
            "out of order",
            "Secret s: tls.crt is out of order: certificate 2 (CN=Intermediate)"
            " did not issue certificate 1 (CN=Root)",
        ),
        ("bad pem", "Secret s: tls.crt is not a well-formed PEM certificate"),
        ("no certificate", "Secret s: tls.crt is not a well-formed PEM certificate"),
        ("bad key", "Secret s: tls.key is not a well-formed PEM private key"),
        ("encrypted key", "Secret s: tls.key is encrypted (it needs a password)"),
        ("dsa key", "Secret s: tls.key is a"),
        ("no key", "Secret s has no tls.key"),
        ("empty certificate", "Secret s has no tls.crt"),
    ],
)
def test_refused_material_says_which_secret_and_what(case: str, message: str) -> None:
    root = issue("Root", ca=True, days=3650)
    inter = issue("Intermediate", ca=True, issuer=root)
    leaf = issue("web", names=("web.example.com",), issuer=inter)
    cert, key = chain_pem(leaf, inter), leaf.key_pem
    if case == "mismatched key":
        key = issue("other").key_pem
    elif case == "expired":
        old = issue("web", not_before=NOW - timedelta(days=10), days=5)
        cert, key = old.cert_pem, old.key_pem
    elif case == "not yet valid":
        new = issue("web", not_before=NOW + timedelta(days=1))
        cert, key = new.cert_pem, new.key_pem
    elif case == "expired intermediate":
        old_inter = issue(
            "Intermediate", ca=True, issuer=root, not_before=NOW - timedelta(9), days=1
        )
        leaf = issue("web", issuer=old_inter)
        cert, key = chain_pem(leaf, old_inter), leaf.key_pem
    elif case == "out of order":
        cert = chain_pem(root, inter)
        key = root.key_pem
    elif case == "bad pem":
        cert = b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"
    elif case == "no certificate":
        cert = b"just some text"
    elif case == "bad key":
        key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    elif case == "encrypted key":
        key = leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    elif case == "dsa key":
        key = dsa.generate_private_key(2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    elif case == "no key":
        key = b""
    elif case == "empty certificate":
        cert = b"  \n"
    with pytest.raises(CertificateProblem) as caught:
        certs.certificate("s", data(cert, key), now=NOW)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value)


def test_a_certificate_without_subject_alt_names_has_no_dns_names() -> None:
    leaf = issue("legacy-cn-only")
    assert certs.certificate("s", data(leaf.cert_pem, leaf.key_pem), now=NOW).dns_names == ()


def test_ca_bundles_are_re_encoded_and_joined() -> None:
    one, two = issue("CA 1", ca=True), issue("CA 2", ca=True)
    a = certs.ca_bundle("a", b"# comment\r\n" + one.cert_pem, what="ConfigMap a: ca.crt")
    assert a.pem == one.cert_pem.decode()
    b = certs.ca_bundle("b", chain_pem(one, two), what="Secret b: ca.crt")
    both = certs.joined([a, b])
    assert both.name == "a, b" and both.pem.count("BEGIN CERTIFICATE") == 3
    assert both.fingerprint != a.fingerprint and len(both.fingerprint) == 64
    assert certs.joined([a]) is a
    with pytest.raises(CertificateProblem, match=r"^ConfigMap c: ca\.crt is not a well-formed PEM"):
        certs.ca_bundle("c", b"", what="ConfigMap c: ca.crt")
