"""Certificates and keys from Secrets, parsed and checked before any device sees them (pure).

A ``kubernetes.io/tls`` Secret holds ``tls.crt`` (the leaf, then its chain, PEM) and ``tls.key``
(PEM). What is checked, each with a message a person can act on: the PEM is well formed, the key
is not encrypted and matches the leaf, the chain is in order (each certificate issued by the
next), no certificate of it has expired or is not valid yet. What is extracted for the status
and for SNI: the leaf's DNS names (subjectAltName, wildcards included), its notAfter and its
SHA-256 fingerprint (as ``openssl x509 -fingerprint -sha256`` prints it).

The driver gets the material re-encoded (certificates as PEM, the key as unencrypted PKCS#8
PEM): whatever the Secret's own layout (comments, CRLF, a traditional RSA key), every driver
reads one format. The key is wrapped in :class:`~lbaas.drivers.model.Sensitive` at once; no
message here ever quotes a Secret's data.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from lbaas.drivers import model

CERT_KEY = "tls.crt"
KEY_KEY = "tls.key"
SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
"""Keys a TLS server certificate is made for (DSA, DH and X25519 keys are refused)."""


class CertificateProblem(ValueError):
    """What is wrong with a Secret's certificate material (the message names the Secret)."""


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER, upper-case hex with colons (``openssl x509 -fingerprint -sha256``)."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The subjectAltName DNS names, as written (``*.example.com`` included), in order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.DNSName))


def load_certificates(data: bytes, *, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; CertificateProblem when there is none or one is
    malformed."""
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateProblem(
            f"{what} is not a well-formed PEM certificate (expected -----BEGIN CERTIFICATE-----"
            " blocks of base64 DER)"
        ) from None
    if not found:
        raise CertificateProblem(f"{what} holds no PEM certificate")
    return found


def _key(data: bytes, *, what: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateProblem(
            f"{what} is encrypted (it needs a password): store the key unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateProblem(
            f"{what} is not a well-formed PEM private key (expected one PEM block of an RSA or"
            " ECDSA key)"
        ) from None


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_validity(chain: Sequence[x509.Certificate], *, what: str, now: datetime) -> None:
    """Every certificate of ``chain`` is valid at ``now``."""
    for index, cert in enumerate(chain):
        which = "the certificate" if index == 0 else f"chain certificate {index + 1}"
        which += f" ({_subject(cert)})"
        if cert.not_valid_after_utc <= now:
            raise CertificateProblem(
                f"{what}: {which} expired at {rfc3339(cert.not_valid_after_utc)}: renew it"
            )
        if cert.not_valid_before_utc > now:
            raise CertificateProblem(
                f"{what}: {which} is not valid before {rfc3339(cert.not_valid_before_utc)}"
            )


def check_order(chain: Sequence[x509.Certificate], *, what: str) -> None:
    """Each certificate is issued (and signed) by the next one: the leaf first."""
    for index in range(len(chain) - 1):
        cert, issuer = chain[index], chain[index + 1]
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateProblem(
                f"{what}: tls.crt is out of order: certificate {index + 2} ({_subject(issuer)})"
                f" did not issue certificate {index + 1} ({_subject(cert)}); put the leaf"
                " first, then each issuer"
            ) from None


def certificate(name: str, data: dict[str, bytes], *, now: datetime) -> model.Certificate:
    """The served certificate of Secret ``name`` (its ``data``, decoded), checked.

    Parsing is cached by content (a VIP is resolved at every resync, a Secret is often named
    by many VIPs, and loading an RSA key with its checks takes 25 ms here, 15 us cached); the
    validity dates are checked against ``now`` every time. The cache is in memory only and
    bounded (1,024 entries: a rotated key leaves it as new ones come).

    :raises CertificateProblem: with a message that names the Secret and what is wrong.
    """
    what = f"Secret {name}"
    for entry in (CERT_KEY, KEY_KEY):
        if not data.get(entry, b"").strip():
            raise CertificateProblem(f"{what} has no {entry} (a kubernetes.io/tls Secret needs both"
                                     f" {CERT_KEY} and {KEY_KEY})")  # fmt: skip
    found, chain = _parsed(name, data[CERT_KEY], data[KEY_KEY])
    check_validity(chain, what=what, now=now)
    return found


@functools.lru_cache(maxsize=1024)
def _parsed(
    name: str, crt: bytes, key_data: bytes
) -> tuple[model.Certificate, tuple[x509.Certificate, ...]]:
    """What does not depend on the time: parsed, matched, ordered, re-encoded (raises
    CertificateProblem, which is not cached)."""
    what = f"Secret {name}"
    chain = load_certificates(crt, what=f"{what}: {CERT_KEY}")
    key = _key(key_data, what=f"{what}: {KEY_KEY}")
    if not isinstance(key, SIGNING_KEYS):
        raise CertificateProblem(f"{what}: {KEY_KEY} is a {type(key).__name__}, which TLS"
                                 " servers do not use: use an RSA or ECDSA key")  # fmt: skip
    leaf = chain[0]
    if _spki(leaf.public_key()) != _spki(key.public_key()):
        raise CertificateProblem(
            f"{what}: {KEY_KEY} does not match the certificate in {CERT_KEY} ({_subject(leaf)},"
            f" SHA-256 {fingerprint(leaf)}): put the key of that certificate, or its certificate"
        )
    check_order(chain, what=what)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    found = model.Certificate(
        name=name,
        certificate=pem,
        private_key=model.Sensitive(key_pem),
        dns_names=dns_names(leaf),
        not_after=rfc3339(leaf.not_valid_after_utc),
        fingerprint=fingerprint(leaf),
    )
    return found, tuple(chain)


def ca_bundle(name: str, data: bytes, *, what: str) -> model.CABundle:
    """A CA bundle (``ca.crt``: one or more PEM certificates), re-encoded."""
    chain = load_certificates(data, what=what)
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    return model.CABundle(name=name, pem=pem, fingerprint=hashlib.sha256(pem.encode()).hexdigest())


def joined(bundles: Sequence[model.CABundle]) -> model.CABundle:
    """Several bundles as one (a listener or pool trusts them all)."""
    if len(bundles) == 1:
        return bundles[0]
    pem = "".join(b.pem for b in bundles)
    return model.CABundle(
        name=", ".join(b.name for b in bundles),
        pem=pem,
        fingerprint=hashlib.sha256(pem.encode()).hexdigest(),
    )
