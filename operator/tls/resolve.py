"""A tree's TLS references resolved into driver material (pure: the objects come from a lookup).

``refs_of`` says which Secrets and ConfigMaps a tree names (the agent watches exactly those);
``resolve`` reads them through a lookup, checks every certificate (``lbaas.tls.certs``) and
returns the :class:`Resolution`: the material for the driver (``lbaas.drivers.model``
``ListenerTLS`` and each pool's ``BackendTLS``), what the status says of each certificate, and
the first problem, if any. With a problem nothing of the tree goes to the device (the VIP is
``Error`` ``CertificateInvalid``); the other trees of the device are not concerned.

``shapes`` answers the scheduler's question (what does the tree ask of a device?) without any
Secret: certificates known by name only. Such a listener is never sent to a driver.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from lbaas.api.pool import PoolSpec
from lbaas.api.tls import CA_KEY, TLS_SECRET_TYPE, BackendTLS, CARef, ListenerTLS
from lbaas.api.vip import VIPSpec
from lbaas.drivers import model
from lbaas.tls import certs
from lbaas.tls.certs import CertificateProblem


@dataclass(frozen=True, order=True)
class Ref:
    """An object a tree names: ``kind`` Secret or ConfigMap, in ``namespace``."""

    kind: str
    namespace: str
    name: str
    certificate: bool = False
    """A certificateRef (a Secret that must be of type kubernetes.io/tls); else a CA bundle."""


CERTIFICATE_INVALID = "CertificateInvalid"
"""A certificate or CA bundle cannot be served (the message says which Secret and why)."""
SECRETS_UNREADABLE = "SecretsUnreadable"
"""The agent cannot read the Secrets or ConfigMaps (RBAC, the API server): retried."""

Lookup = Callable[[Ref], Mapping[str, Any] | None]
"""The object a reference names as the API holds it (None: it does not exist)."""


@dataclass(frozen=True)
class Material:
    """What the driver gets: the listener's TLS and each pool's (by pool name)."""

    listener: model.ListenerTLS | None = None
    backends: Mapping[str, model.BackendTLS] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """A certificate as its Secret holds it, for the status (parsed, not necessarily valid)."""

    name: str
    dns_names: tuple[str, ...]
    not_after: datetime
    fingerprint: str


@dataclass(frozen=True)
class Resolution:
    material: Material = Material()
    seen: tuple[Seen, ...] = ()
    problem: str | None = None
    reason: str = CERTIFICATE_INVALID
    """Why ``problem``: CertificateInvalid, or SecretsUnreadable (retried soon)."""
    terminated: bool = False
    """The VIP terminates TLS (its status reports certificates)."""


def _pools_tls(pools: Sequence[tuple[str, PoolSpec]]) -> list[tuple[str, BackendTLS]]:
    return [(name, spec.tls) for name, spec in pools if spec.tls is not None and spec.tls.enabled]


def refs_of(namespace: str, vip: VIPSpec | None, pools: Sequence[tuple[str, PoolSpec]]) -> set[Ref]:
    """Every Secret and ConfigMap the tree names (same namespace: the API allows no other)."""
    found: set[Ref] = set()
    tls = vip.tls if vip is not None else None
    if tls is not None:
        found |= {Ref("Secret", namespace, r.name, True) for r in tls.certificate_refs}
        if tls.client_validation is not None:
            found |= {_ca(namespace, r) for r in tls.client_validation.ca_certificate_refs}
    for _, backend in _pools_tls(pools):
        found |= {_ca(namespace, r) for r in backend.ca_certificate_refs or ()}
    return found


def _ca(namespace: str, ref: CARef) -> Ref:
    return Ref(str(ref.kind), namespace, ref.name)


# ---- reading objects -------------------------------------------------------------------------


def secret_data(obj: Mapping[str, Any], *, what: str) -> dict[str, bytes]:
    try:
        return {k: base64.b64decode(v, validate=True) for k, v in (obj.get("data") or {}).items()}
    except (binascii.Error, ValueError):
        raise CertificateProblem(f"{what}: its data cannot be decoded") from None


def _certificate_secret(ref: Ref, lookup: Lookup) -> dict[str, bytes]:
    obj = lookup(ref)
    what = f"Secret {ref.name}"
    if obj is None:
        raise CertificateProblem(
            f"{what} (certificateRefs) not found in namespace {ref.namespace}: create it (type"
            f" {TLS_SECRET_TYPE}) or fix the name"
        )
    kind = obj.get("type") or "Opaque"
    if kind != TLS_SECRET_TYPE:
        raise CertificateProblem(f"{what} is of type {kind}: certificateRefs need Secrets of"
                                 f" type {TLS_SECRET_TYPE}")  # fmt: skip
    return secret_data(obj, what=what)


def _ca_bundle(ref: Ref, lookup: Lookup) -> model.CABundle:
    obj = lookup(ref)
    what = f"{ref.kind} {ref.name}"
    if obj is None:
        raise CertificateProblem(
            f"{what} (caCertificateRefs) not found in namespace {ref.namespace}: create it"
            f" with the CA certificates in key {CA_KEY}, or fix the name"
        )
    if ref.kind == "Secret":
        raw = secret_data(obj, what=what).get(CA_KEY)
    else:
        text = (obj.get("data") or {}).get(CA_KEY)
        raw = text.encode() if isinstance(text, str) else None
    if not raw or not raw.strip():
        raise CertificateProblem(f"{what} has no key {CA_KEY} (the CA certificates, PEM)")
    return certs.ca_bundle(ref.name, raw, what=f"{what}: {CA_KEY}")


def _seen(name: str, data: Mapping[str, bytes]) -> Seen | None:
    """The leaf of ``tls.crt`` for the status, when it parses at all."""
    try:
        leaf = x509.load_pem_x509_certificates(data.get(certs.CERT_KEY, b""))[0]
    except (ValueError, IndexError):
        return None
    return Seen(name, certs.dns_names(leaf), leaf.not_valid_after_utc, certs.fingerprint(leaf))


# ---- resolving -------------------------------------------------------------------------------


def _listener(
    namespace: str, tls: ListenerTLS, lookup: Lookup, now: datetime, seen: list[Seen]
) -> model.ListenerTLS:
    """The listener's material; every certificate is read (for the status) before the first
    problem is raised."""
    served: list[model.Certificate] = []
    problem: CertificateProblem | None = None
    for ref in tls.certificate_refs:
        try:
            data = _certificate_secret(Ref("Secret", namespace, ref.name, True), lookup)
            if (found := _seen(ref.name, data)) is not None:
                seen.append(found)
            served.append(certs.certificate(ref.name, data, now=now))
        except CertificateProblem as exc:
            problem = problem or exc
    if problem is not None:
        raise problem
    validation = None
    if tls.client_validation is not None:
        cv = tls.client_validation
        validation = model.ClientValidation(
            ca=certs.joined(
                [_ca_bundle(_ca(namespace, r), lookup) for r in cv.ca_certificate_refs]
            ),
            mode=model.ClientValidationMode(str(cv.mode)),
            subject_header=cv.subject_header,
        )
    return _listener_tls(tls, tuple(served), validation)


def _listener_tls(
    tls: ListenerTLS,
    served: tuple[model.Certificate, ...],
    validation: model.ClientValidation | None,
) -> model.ListenerTLS:
    return model.ListenerTLS(
        certificates=served,
        min_version=model.TLSVersion(str(tls.min_version)),
        cipher_suites=tuple(tls.cipher_suites or ()),
        alpn=tuple(tls.alpn or ()),
        client_validation=validation,
    )


def _backend(namespace: str, tls: BackendTLS, lookup: Lookup | None) -> model.BackendTLS:
    """A pool's TLS; without ``lookup`` (shapes) its CA bundle is known by name only."""
    ca = None
    refs = tls.ca_certificate_refs or []
    if refs and lookup is not None:
        ca = certs.joined([_ca_bundle(_ca(namespace, r), lookup) for r in refs])
    elif refs:
        ca = model.CABundle(name=", ".join(r.name for r in refs), pem="", fingerprint="")
    return model.BackendTLS(
        server_name=tls.server_name,
        verify=tls.verify if tls.verify is not None else bool(tls.ca_certificate_refs),
        ca=ca,
    )


def resolve(
    namespace: str,
    vip: VIPSpec,
    pools: Sequence[tuple[str, PoolSpec]],
    lookup: Lookup,
    *,
    now: datetime,
) -> Resolution:
    """The tree's TLS material, read through ``lookup`` and checked at ``now``."""
    seen: list[Seen] = []
    terminated = vip.tls is not None
    try:
        listener = _listener(namespace, vip.tls, lookup, now, seen) if vip.tls else None
        backends = {name: _backend(namespace, tls, lookup) for name, tls in _pools_tls(pools)}
    except CertificateProblem as exc:
        return Resolution(seen=tuple(seen), problem=str(exc), terminated=terminated)
    return Resolution(Material(listener, backends), tuple(seen), terminated=terminated)


def shapes(vip: VIPSpec | None, pools: Sequence[tuple[str, PoolSpec]]) -> Material:
    """The tree's TLS as far as its specs tell (certificates by name, no PEM, no CA): what it
    asks of a device. Never given to a driver."""
    listener = None
    if vip is not None and vip.tls is not None:
        placeholders = tuple(
            model.Certificate(name=r.name, certificate="", private_key=model.Sensitive(""))
            for r in vip.tls.certificate_refs
        )
        validation = None
        if vip.tls.client_validation is not None:
            cv = vip.tls.client_validation
            names = ", ".join(r.name for r in cv.ca_certificate_refs)
            validation = model.ClientValidation(
                ca=model.CABundle(name=names, pem="", fingerprint=""),
                mode=model.ClientValidationMode(str(cv.mode)),
                subject_header=cv.subject_header,
            )
        listener = _listener_tls(vip.tls, placeholders, validation)
    backends = {name: _backend("", tls, None) for name, tls in _pools_tls(pools)}
    return Material(listener, backends)
