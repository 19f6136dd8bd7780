"""TLS in the API: terminated on the device (a VIP's ``spec.tls``), re-encrypted to the members
(a Pool's ``spec.tls``), and what the VIP reports of its certificates (``status.tls``).

Names follow the Gateway API (``certificateRefs``, ``caCertificateRefs``, ``AllowValidOnly``...)
so that a Gateway listener maps onto a VIP field by field. One difference by design: every
reference is a name only, resolved in the object's own namespace. A reference to another
namespace cannot be written at all (the Gateway API needs a ReferenceGrant for it; here a
tenant can never point a VIP at another tenant's Secret).

Key material never appears here: the agent reads the Secrets (``lbaas.tls``), the status says
which certificate is served (names, expiry, fingerprint), never what its key is.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from lbaas.api.meta import DNS_SUBDOMAIN_PATTERN, ObjectName, WireModel

TLS_SECRET_TYPE = "kubernetes.io/tls"
"""The type every Secret named in ``certificateRefs`` must have (keys ``tls.crt``, ``tls.key``)."""
CA_KEY = "ca.crt"
"""The key of a CA bundle, in a Secret or a ConfigMap."""

MAX_CERTIFICATE_REFS = 64
"""As the Gateway API's listener ``certificateRefs``."""
MAX_CA_REFS = 8
MAX_CIPHER_SUITES = 32
MAX_ALPN = 8
MAX_DNS_NAMES = 256
"""Per certificate in ``status.tls``: a certificate with more is reported with its first 256."""

CIPHER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
"""One cipher suite by name (OpenSSL's ``ECDHE-RSA-AES128-GCM-SHA256``, or IANA's
``TLS_AES_128_GCM_SHA256`` for TLS 1.3): no separators, no OpenSSL cipher-string operators
(``:``, ``!``, ``+``, ``@``), so a list is exactly the suites it names."""
ALPN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/+-]*$"
"""An ALPN protocol ID as IANA registers them (``h2``, ``http/1.1``, ``acme-tls/1``)."""
HEADER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]*$"
"""An HTTP header name (letters, digits, dashes)."""


class TLSVersion(StrEnum):
    TLS_1_2 = "TLSv1.2"
    TLS_1_3 = "TLSv1.3"


class CAKind(StrEnum):
    SECRET = "Secret"
    CONFIG_MAP = "ConfigMap"


class ClientValidationMode(StrEnum):
    ALLOW_VALID_ONLY = "AllowValidOnly"
    ALLOW_INSECURE_FALLBACK = "AllowInsecureFallback"


class CertificateRef(WireModel):
    """A Secret of type kubernetes.io/tls in the VIP's namespace (by name only)."""

    name: ObjectName = Field(description="Name of the Secret (same namespace).")


class CARef(WireModel):
    """CA certificates (PEM, key ca.crt) in a Secret or ConfigMap of the same namespace."""

    name: ObjectName = Field(description="Name of the Secret or ConfigMap (same namespace).")
    kind: CAKind = Field(description="Secret or ConfigMap; the bundle is its key ca.crt.")


CertificateRefs = Annotated[
    list[CertificateRef],
    Field(
        min_length=1,
        max_length=MAX_CERTIFICATE_REFS,
        description="Secrets of type kubernetes.io/tls (same namespace). The first is the"
        " default certificate; with several, the device picks by SNI from each certificate's"
        " DNS names (wildcards included).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    ),
]
CARefs = Annotated[
    list[CARef],
    Field(
        min_length=1,
        max_length=MAX_CA_REFS,
        description="CA bundles (key ca.crt of a Secret or ConfigMap, same namespace), all"
        " trusted.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["kind", "name"],
        },
    ),
]


class ClientValidation(WireModel):
    """Mutual TLS: the client must show a certificate that one of the CAs issued."""

    ca_certificate_refs: CARefs
    mode: ClientValidationMode = Field(
        default=ClientValidationMode.ALLOW_VALID_ONLY,
        description="AllowValidOnly: a client without a valid certificate fails the handshake."
        " AllowInsecureFallback: it is served too (the subject header is then not set).",
    )
    subject_header: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=HEADER_PATTERN,
        description="Pass the verified client certificate's subject to the members in this"
        " request header (a header of that name sent by the client is removed first).",
    )


class ListenerTLS(WireModel):
    """TLS terminated on the device (``protocol: TERMINATED_HTTPS``)."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.cipherSuites) || !has(self.minVersion)"
                    " || self.minVersion != 'TLSv1.3'"
                    " || self.cipherSuites.all(c, c.startsWith('TLS_'))",
                    "message": "with minVersion TLSv1.3 only TLS 1.3 cipher suites (TLS_...)"
                    " can be used",
                    "fieldPath": ".cipherSuites",
                }
            ]
        }
    }

    certificate_refs: CertificateRefs
    min_version: TLSVersion = Field(
        default=TLSVersion.TLS_1_2,
        description="Oldest TLS version accepted: TLSv1.2 (default) or TLSv1.3.",
    )
    cipher_suites: (
        list[Annotated[str, Field(min_length=1, max_length=64, pattern=CIPHER_PATTERN)]] | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=MAX_CIPHER_SUITES,
        description="Cipher suites offered, by name (OpenSSL names for TLS 1.2, TLS_... for"
        " TLS 1.3), checked against what the device supports; unset = the device's defaults.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    alpn: list[Annotated[str, Field(min_length=1, max_length=32, pattern=ALPN_PATTERN)]] | None = (
        Field(
            default=None,
            min_length=1,
            max_length=MAX_ALPN,
            description="ALPN protocols offered, in order of preference (h2, http/1.1).",
            json_schema_extra={"x-kubernetes-list-type": "set"},
        )
    )
    client_validation: ClientValidation | None = Field(
        default=None, description="Mutual TLS: client certificates checked against CAs."
    )

    @model_validator(mode="after")
    def _tls13_suites(self) -> ListenerTLS:
        if self.min_version == TLSVersion.TLS_1_3 and any(
            not c.startswith("TLS_") for c in self.cipher_suites or ()
        ):
            raise ValueError(
                "with minVersion TLSv1.3 only TLS 1.3 cipher suites (TLS_...) can be used"
            )
        return self


class BackendTLS(WireModel):
    """TLS from the device to the members (re-encryption)."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(has(self.enabled) && !self.enabled)"
                    " || (has(self.caCertificateRefs) && size(self.caCertificateRefs) > 0)"
                    " || (has(self.verify) && !self.verify)",
                    "message": "without caCertificateRefs the members' certificates cannot be"
                    " verified: say verify: false explicitly",
                    "fieldPath": ".verify",
                }
            ]
        }
    }

    enabled: bool = Field(default=True, description="false = plain connections to the members.")
    ca_certificate_refs: CARefs | None = None
    server_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="SNI sent to the members, and the name their certificate must carry when"
        " verified.",
    )
    verify: bool | None = Field(
        default=None,
        description="Verify the members' certificates against caCertificateRefs (the default"
        " when they are given). Without a CA, false must be said explicitly.",
    )

    @model_validator(mode="after")
    def _verify_needs_a_ca(self) -> BackendTLS:
        if self.enabled and not self.ca_certificate_refs and self.verify is not False:
            raise ValueError(
                "without caCertificateRefs the members' certificates cannot be verified:"
                " say verify: false explicitly"
            )
        return self


# ---- status ------------------------------------------------------------------------------------


class CertificateStatus(WireModel):
    """A certificate as its Secret holds it now (never its key)."""

    name: str = Field(max_length=253, description="The Secret's name.")
    dns_names: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list,
        max_length=MAX_DNS_NAMES,
        description="The certificate's subjectAltName DNS names (wildcards included).",
    )
    not_after: datetime | None = Field(default=None, description="When it expires.")
    fingerprint: str = Field(
        default="",
        max_length=128,
        description="SHA-256 of the certificate (DER), as openssl x509 -fingerprint -sha256.",
    )


class TLSStatus(WireModel):
    """What the agent found in the VIP's Secrets."""

    certificates: list[CertificateStatus] = Field(
        default_factory=list,
        max_length=MAX_CERTIFICATE_REFS,
        description="Per Secret of certificateRefs that could be read, in their order.",
    )
