"""The driver data model, version 1: what a driver is given to serve, and nothing else.

The core builds these values from the CRDs (``lbaas.trees.translate``) and hands them to drivers;
drivers never see the API's models, so a change of ``lbaas.dev/v1alpha1`` reaches no driver
unless the core maps it here, and a driver is written and tested without the API package.
Every class is a frozen dataclass of plain values (strings, numbers, enums, tuples): equal
trees compare and hash equal, and a tree is safe to share between threads.

The shape, as a load balancer is drawn (Octavia's, and the Gateway API's)::

    LoadBalancer  key = namespace/name, one address
    ├── Listener  port + protocol (+ TLS, L7 policies, default pool)   one or more
    │   └── L7Policy  match → Forward to pools | Redirect | Reject    ordered by priority
    └── Pool      method, persistence, backend TLS, health monitor    any number
        └── Member  address:port, weight, backup, admin state

A listener's ``default_pool`` and its policies name pools of the same load balancer; the core
guarantees every name resolves (a policy naming a missing pool never reaches a driver).

Certificate material is resolved by the core: a driver gets the PEM, never a Secret's name.
Private keys are :class:`Sensitive`: never in a ``repr``, ``str``, f-string or stored document
(``lbaas.drivers.documents``), so no log line, Event, status or state file carries one by
accident; ``Sensitive.reveal()`` is the one way to the bytes. ``lbaas.drivers.capabilities``
says what each part of this model asks of a device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MODEL_VERSION = 1
"""Bumped on any change a driver written for the previous version could misread."""


# ---- enumerations ---------------------------------------------------------------------------


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    """TLS passed through to the members (the device sees no request)."""
    TERMINATED_HTTPS = "TERMINATED_HTTPS"
    """TLS terminated on the device (``Listener.tls``); HTTP to the members, or TLS again
    with ``Pool.tls``."""


class Method(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_CONNECTIONS = "LEAST_CONNECTIONS"
    SOURCE_IP = "SOURCE_IP"


class PersistenceType(StrEnum):
    SOURCE_IP = "SOURCE_IP"
    HTTP_COOKIE = "HTTP_COOKIE"
    APP_COOKIE = "APP_COOKIE"


class MonitorType(StrEnum):
    PING = "PING"
    TCP = "TCP"
    HTTP = "HTTP"
    HTTPS = "HTTPS"


class MemberStatus(StrEnum):
    """A member's health as its device sees it (what ``member_statuses`` answers).

    UNKNOWN means the device cannot tell now: never reported ONLINE on a guess.
    """

    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    ERROR = "ERROR"
    NO_MONITOR = "NO_MONITOR"
    DRAINING = "DRAINING"
    UNKNOWN = "UNKNOWN"


class TLSVersion(StrEnum):
    TLS_1_2 = "TLSv1.2"
    TLS_1_3 = "TLSv1.3"


class ClientValidationMode(StrEnum):
    ALLOW_VALID_ONLY = "AllowValidOnly"
    """A client without a certificate the CA bundle verifies is refused in the handshake."""
    ALLOW_INSECURE_FALLBACK = "AllowInsecureFallback"
    """Clients without a valid certificate are served too (the header says they are not)."""


class PathMatchType(StrEnum):
    EXACT = "Exact"
    PREFIX = "PathPrefix"
    """Element-wise, as the Gateway API's: ``/api`` matches ``/api`` and ``/api/x``, not
    ``/apix``."""
    REGEX = "RegularExpression"


class ValueMatchType(StrEnum):
    EXACT = "Exact"
    REGEX = "RegularExpression"


class ActionType(StrEnum):
    FORWARD = "Forward"
    REDIRECT = "Redirect"
    REJECT = "Reject"


# ---- secrets --------------------------------------------------------------------------------


class Sensitive:
    """A secret value (a private key): equal by value, shown as ``<redacted>`` everywhere.

    ``reveal()`` returns it; nothing else does (``repr``, ``str``, ``format``, pickling to a
    document). ``fingerprint`` identifies it without disclosing it (a SHA-256 prefix), for
    comparisons in stored state.
    """

    __slots__ = ("_fingerprint", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        self._fingerprint = "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:32]

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive) and other.fingerprint == self._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint)

    def __reduce__(self) -> Any:
        raise TypeError("Sensitive values are not pickled")


# ---- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """One backend: ``name`` is unique in its load balancer (it is the Member object's name)."""

    name: str
    address: str
    port: int
    weight: int = 1
    """Relative share of new connections, 0-256; 0 = none (draining)."""
    backup: bool = False
    """Serves only when no non-backup member of its pool is up."""
    admin_state_up: bool = True
    monitor_address: str | None = None
    monitor_port: int | None = None


@dataclass(frozen=True, slots=True)
class HealthMonitor:
    name: str
    type: MonitorType
    delay: int = 5
    timeout: int = 3
    max_retries: int = 3
    """Successes in a row that bring a member up."""
    max_retries_down: int = 3
    """Failures in a row that take a member down."""
    http_method: str = "GET"
    url_path: str = "/"
    expected_codes: str = "200"
    """``"200"``, ``"200,202"`` or ``"200-204"``."""
    admin_state_up: bool = True
    """False: nothing is checked (members report NO_MONITOR)."""


@dataclass(frozen=True, slots=True)
class Persistence:
    type: PersistenceType
    cookie_name: str | None = None
    """The application's cookie (APP_COOKIE), or the inserted one's name (HTTP_COOKIE)."""


@dataclass(frozen=True, slots=True)
class CABundle:
    """Certificate authorities (PEM, public) and where they came from (for messages)."""

    name: str
    pem: str
    fingerprint: str
    """SHA-256 of the PEM text, to compare stored state without the PEM."""


@dataclass(frozen=True, slots=True)
class BackendTLS:
    """TLS from the device to the members (re-encryption)."""

    server_name: str | None = None
    """SNI sent to the members (and the name verified), when set."""
    verify: bool = True
    """Verify the members' certificates against ``ca``; False only when said explicitly."""
    ca: CABundle | None = None


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    protocol: Protocol = Protocol.TCP
    """What the members speak: TCP, UDP, HTTP (HTTPS with ``tls``)."""
    method: Method = Method.ROUND_ROBIN
    admin_state_up: bool = True
    """False: no member gets traffic (members report OFFLINE)."""
    members: tuple[Member, ...] = ()
    monitor: HealthMonitor | None = None
    persistence: Persistence | None = None
    tls: BackendTLS | None = None


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate and its key, as the listener serves it (from a ``kubernetes.io/tls``
    Secret; the core has parsed and checked it: the key matches, the PEM is well formed)."""

    name: str
    """The Secret's name (unique in the listener)."""
    certificate: str
    """PEM: the leaf first, then its chain."""
    private_key: Sensitive = field(repr=False)
    dns_names: tuple[str, ...] = ()
    """The leaf's subjectAltName DNS names (wildcards included), for SNI."""
    not_after: str = ""
    """RFC 3339 UTC."""
    fingerprint: str = ""
    """SHA-256 of the leaf (DER), hex with colons, as ``openssl x509 -fingerprint -sha256``."""


@dataclass(frozen=True, slots=True)
class ClientValidation:
    """Mutual TLS: which client certificates the listener accepts."""

    ca: CABundle
    mode: ClientValidationMode = ClientValidationMode.ALLOW_VALID_ONLY
    subject_header: str | None = None
    """Pass the verified client's subject to the members in this request header."""


@dataclass(frozen=True, slots=True)
class ListenerTLS:
    """TLS terminated on the device (``Protocol.TERMINATED_HTTPS``)."""

    certificates: tuple[Certificate, ...]
    """The first is the default; with several, the device picks by SNI from ``dns_names``."""
    min_version: TLSVersion = TLSVersion.TLS_1_2
    cipher_suites: tuple[str, ...] = ()
    """OpenSSL names (TLS 1.2), ``TLS_...`` names (TLS 1.3); empty = the device's defaults."""
    alpn: tuple[str, ...] = ()
    client_validation: ClientValidation | None = None


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType
    value: str


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """A header (case-insensitive name) or query parameter (exact name) to match."""

    name: str
    value: str
    type: ValueMatchType = ValueMatchType.EXACT


@dataclass(frozen=True, slots=True)
class Match:
    """What a request must look like for a policy to apply: every given condition holds."""

    hostnames: tuple[str, ...] = ()
    """Exact names or ``*.`` wildcards; any of them."""
    path: PathMatch | None = None
    headers: tuple[ValueMatch, ...] = ()
    method: str | None = None
    query_params: tuple[ValueMatch, ...] = ()


@dataclass(frozen=True, slots=True)
class WeightedPool:
    pool: str
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Redirect:
    """Each field unset keeps the request's own (scheme, host, port, path)."""

    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None
    """Replaces the part the policy's ``PathPrefix`` matched (needs one)."""
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class Action:
    type: ActionType
    pools: tuple[WeightedPool, ...] = ()
    """Forward: the pools and their shares of requests."""
    redirect: Redirect | None = None
    status_code: int = 403
    """Reject: the status code answered."""


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HeaderChanges:
    set: tuple[Header, ...] = ()
    add: tuple[Header, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class L7Policy:
    """One routing rule of an HTTP listener. Policies are given in evaluation order
    (priority, then name); the first that matches decides."""

    name: str
    priority: int
    match: Match
    action: Action
    request_headers: HeaderChanges | None = None
    response_headers: HeaderChanges | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    """Unique in the load balancer (the core names a VIP's one listener after the VIP)."""
    port: int
    protocol: Protocol = Protocol.TCP
    connection_limit: int | None = None
    """Concurrent connections at most; None = unlimited."""
    admin_state_up: bool = True
    """False: the port stops listening."""
    default_pool: str | None = None
    """Requests (connections) no policy takes; None: HTTP answers 503, TCP is closed."""
    policies: tuple[L7Policy, ...] = ()
    tls: ListenerTLS | None = None
    forwarded_headers: bool = False
    """Add X-Forwarded-For, -Proto and -Port to requests (HTTP and TERMINATED_HTTPS)."""


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """The desired state of one load balancer (one VIP of the API): ``key`` is
    ``namespace/name``, unique in the cluster; ``address`` is where every listener listens
    (the VIP's, or the one allocated from the device's addressPool)."""

    namespace: str
    name: str
    address: str
    listeners: tuple[Listener, ...] = ()
    pools: tuple[Pool, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def pool(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)

    def members(self) -> Iterator[tuple[Pool, Member]]:
        """Every member with its pool."""
        for pool in self.pools:
            for member in pool.members:
                yield pool, member
