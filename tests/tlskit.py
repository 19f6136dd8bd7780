"""Real certificates for the tests, made on the spot with ``cryptography``: CAs, leaves with
subjectAltNames, chains, expired and mismatched material, and Secrets that hold them."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its key."""

    cert: x509.Certificate
    key: Key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """Unencrypted; RSA keys in the traditional (PKCS#1) layout, as openssl writes them."""
        layout = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if isinstance(self.key, rsa.RSAPrivateKey)
            else serialization.PrivateFormat.PKCS8
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, layout, serialization.NoEncryption()
        )

    @property
    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex(":").upper()


def new_key(kind: str = "ec") -> Key:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    common_name: str,
    *,
    names: tuple[str, ...] = (),
    issuer: Issued | None = None,
    ca: bool = False,
    days: float = 30,
    not_before: datetime | None = None,
    key: str = "ec",
) -> Issued:
    """A certificate for ``names`` (subjectAltName DNS), signed by ``issuer`` (else itself),
    valid from ``not_before`` (default: an hour ago) for ``days``."""
    private = new_key(key)
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    signer = issuer.key if issuer else private
    return Issued(builder.sign(signer, hashes.SHA256()), private)


def chain_pem(*certs: Issued) -> bytes:
    return b"".join(c.cert_pem for c in certs)


def tls_data(cert_pem: bytes, key_pem: bytes) -> dict[str, str]:
    """A ``kubernetes.io/tls`` Secret's ``data`` (base64)."""
    return {
        "tls.crt": base64.b64encode(cert_pem).decode(),
        "tls.key": base64.b64encode(key_pem).decode(),
    }


def tls_secret(
    name: str, cert_pem: bytes, key_pem: bytes, *, kind: str = "kubernetes.io/tls"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": kind,
        "data": tls_data(cert_pem, key_pem),
    }


def ca_configmap(name: str, pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"ca.crt": pem.decode()},
    }


def leaked_forms(key_pem: bytes) -> list[str]:
    """Texts that would betray a private key: a line of its PEM body, the base64 of the whole
    PEM (as a Secret stores it), and the same for its PKCS#8 re-encoding (what drivers get)."""
    private = serialization.load_pem_private_key(key_pem, password=None)
    pkcs8 = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forms = []
    for pem in {key_pem, pkcs8}:
        body = [line for line in pem.decode().splitlines() if line and "-----" not in line]
        forms.append(body[1])  # a full 64-character line of the key
        forms.append(base64.b64encode(pem).decode()[120:184])
        forms.append("".join(body)[100:160])  # the DER in base64, as one line
    return forms
