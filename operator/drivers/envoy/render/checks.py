"""Every value a tree carries, checked before Envoy sees it (blast radius of one).

Envoy refuses a listener or cluster whose configuration it cannot build, and a refusal is
found only after the files changed (``update_rejected`` and the resource's ``error_state``).
So each value that reaches a resource is checked here first, by construction: a regular
expression is compiled by RE2 itself (the library Envoy uses, with Envoy's program-size limit),
header names are HTTP tokens, header values carry no line breaks (and ``%``, Envoy's formatter
sign, is escaped where Envoy would format), host names are DNS names. A tree that fails gets
its own non-retryable ``InvalidConfiguration`` error, naming the value and where it is.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import re2  # google-re2: the RE2 Envoy compiles route and header regexes with

from lbaas.drivers.errors import DriverError, Reason

MAX_REGEX = 1024
RE2_PROGRAM_SIZE = 1000
"""Envoy's ``re2.max_program_size.error_level``, raised from 100 in the bootstrap's runtime."""
MAX_HEADER_VALUE = 8192
REDIRECT_CODES = {301: "MOVED_PERMANENTLY", 302: "FOUND", 303: "SEE_OTHER",
                  307: "TEMPORARY_REDIRECT", 308: "PERMANENT_REDIRECT"}  # fmt: skip
CHECK_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"})
CIPHERS = frozenset({
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA",
})  # fmt: skip
"""BoringSSL's TLS 1.2 suites Envoy accepts (the OpenSSL names)."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$")
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,251}[A-Za-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CODES = re.compile(r"^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class InvalidValue(DriverError):
    """A value of the tree Envoy cannot take; the tree is refused, nothing else."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(
            f"{where}: {message}; this load balancer is not applied (the device's others are"
            " not affected)",
            retryable=False,
            reason=Reason.INVALID_CONFIGURATION,
        )


def name(where: str, value: str) -> None:
    """A Kubernetes object name: it becomes part of Envoy resource and file names."""
    if not _NAME.match(value):
        raise InvalidValue(where, f"{value!r} is not a valid object name")


def ip(where: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise InvalidValue(where, f"{value!r} is not an IP address") from None


def port(where: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise InvalidValue(where, f"port {value} is not in 1-65535")


def regex(where: str, value: str) -> None:
    """Compiled by RE2 as Envoy will, within Envoy's program size."""
    if len(value) > MAX_REGEX:
        raise InvalidValue(where, f"the regular expression is longer than {MAX_REGEX} characters")
    try:
        compiled = re2.compile(value, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidValue(where, f"{value!r} is not an RE2 regular expression: {detail}") from None
    if compiled.programsize > RE2_PROGRAM_SIZE:
        raise InvalidValue(
            where, f"the regular expression is too complex for Envoy (RE2 program size"
            f" {compiled.programsize} > {RE2_PROGRAM_SIZE})"
        )  # fmt: skip


def header_name(where: str, value: str, *, modified: bool = False) -> None:
    if not _TOKEN.match(value):
        raise InvalidValue(where, f"{value!r} is not a valid HTTP header name")
    if modified and value.lower() == "host":
        raise InvalidValue(where, "the Host header cannot be modified")


def header_value(where: str, value: str) -> None:
    if len(value) > MAX_HEADER_VALUE or _CONTROL.search(value.replace("\t", " ")):
        raise InvalidValue(where, "a header value holds a control character or is too long")


def formatted(value: str) -> str:
    """A literal header value for ``*_headers_to_add`` (``%`` starts an Envoy command)."""
    return value.replace("%", "%%")


def hostname(where: str, value: str, *, wildcard: bool = True) -> str:
    """The lower-cased name; exact or ``*.`` wildcard (when allowed)."""
    lowered = value.lower()
    if len(lowered) > 253 or not _HOSTNAME.match(lowered):
        raise InvalidValue(where, f"{value!r} is not a valid host name")
    if lowered.startswith("*.") and not wildcard:
        raise InvalidValue(where, f"{value!r}: no wildcard here")
    return lowered


def path(where: str, value: str) -> None:
    if not value.startswith("/") or len(value) > 1024 or any(c.isspace() for c in value):
        raise InvalidValue(where, f"{value!r} is not a path (starts with /, no spaces)")
    if _CONTROL.search(value) or "?" in value or "#" in value:
        raise InvalidValue(where, f"{value!r} holds a control character, '?' or '#'")


def method(where: str, value: str) -> None:
    if not re.fullmatch(r"[A-Z]{1,32}", value):
        raise InvalidValue(where, f"{value!r} is not an HTTP method")


def printable(where: str, value: str, limit: int = 256) -> None:
    if not value or len(value) > limit or _CONTROL.search(value):
        raise InvalidValue(where, f"{value!r} is empty, too long or holds control characters")


def expected_codes(where: str, value: str) -> list[tuple[int, int]]:
    """``"200"``, ``"200,202"``, ``"200-204"`` as Envoy's half-open ranges."""
    if not _CODES.match(value):
        raise InvalidValue(where, f"expected codes {value!r} are not like 200, 200,202 or 200-204")
    ranges = []
    for part in value.split(","):
        low, _, high = part.partition("-")
        start, end = int(low), int(high or low)
        if not 100 <= start <= end <= 599:
            raise InvalidValue(where, f"expected codes {part!r} are not HTTP status codes")
        ranges.append((start, end + 1))
    return ranges


def ciphers(where: str, values: Iterable[str]) -> None:
    for value in values:
        if value not in CIPHERS:
            raise InvalidValue(where, f"cipher suite {value!r} is not one Envoy offers")


def pem(where: str, value: str, kind: str = "CERTIFICATE") -> None:
    if f"-----BEGIN {kind}" not in value:
        raise InvalidValue(where, f"no PEM {kind.lower()} found")
