"""Hypothesis strategies derived from the generated CRDs: specs the API server accepts.

The source is ``crds/*.yaml`` (generated from the pydantic models by ``make crds``), read as
the API server reads it: every ``enum``, bound, ``pattern``, ``maxItems`` and the CEL rules we
emit (``isIP``, ``isCIDR``, the addressPool range rule) become a strategy. Rules across fields
(``timeout <= delay``, ``cookieName`` with ``APP_COOKIE``) are not translated: the pydantic
models, which state the same rules, filter the candidates (``accepted``). The IP strategies
produce only forms Kubernetes' ``isIP`` accepts (measured on the test bed: no IPv4-mapped
IPv6, no zone ids, no leading zeros), so every example is a spec a tenant can really submit.

Values are biased to the edges that break things: bounds of every integer, names at their
length limits, special addresses (unspecified, loopback, link-local, metadata service,
multicast, broadcast), exploded and upper-case IPv6, CIDRs with host bits set, /0 and /32.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from lbaas.api.meta import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN

CRDS = Path(__file__).resolve().parents[2] / "crds"
MAX_ITEMS = 4
"""Lists are cut to this many entries (the schema allows 64 members of a pool...): enough to
exercise duplicates and ordering, cheap enough for hundreds of examples."""
MAX_TEXT = 40

Override = Callable[[], st.SearchStrategy[Any]]


@cache
def spec_schema(plural: str) -> dict[str, Any]:
    """``openAPIV3Schema.properties.spec`` of ``crds/lbaas.dev_<plural>.yaml``."""
    crd = yaml.safe_load((CRDS / f"lbaas.dev_{plural}.yaml").read_text())
    version = crd["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


# ---- addresses as Kubernetes' isIP / isCIDR accept them ---------------------------------------

SPECIAL_IPS = (
    "0.0.0.0", "127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1", "224.0.0.1",
    "239.255.255.250", "255.255.255.255", "10.0.0.1", "192.0.2.1", "100.64.0.1",
    "::", "::1", "fe80::1", "ff02::1", "2001:db8::1", "fd00::1", "::1.2.3.4", "64:ff9b::a00:1",
    "2001:0db8:0000:0000:0000:0000:0000:0001", "FE80::ABCD", "2001:DB8::A",
)  # fmt: skip


def k8s_accepts_ip(text: str) -> bool:
    """What Kubernetes' CEL ``isIP`` accepts (netip.ParseAddr minus IPv4-mapped and zones)."""
    if "%" in text:
        return False
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return False
    return getattr(parsed, "ipv4_mapped", None) is None


def _ip_forms(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> st.SearchStrategy[str]:
    if address.version == 4:
        return st.just(str(address))
    return st.sampled_from([address.compressed, address.exploded, address.compressed.upper()])


def ip_addresses() -> st.SearchStrategy[str]:
    generated = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).flatmap(_ip_forms)
    return st.one_of(st.sampled_from(SPECIAL_IPS), generated).filter(k8s_accepts_ip)


def cidrs() -> st.SearchStrategy[str]:
    """``addr/prefix`` with any prefix, host bits set or not (isCIDR accepts both)."""

    def with_prefix(address: str) -> st.SearchStrategy[str]:
        width = 32 if ipaddress.ip_address(address).version == 4 else 128
        prefix = st.one_of(st.sampled_from([0, width, width - 1, 8]), st.integers(0, width))
        masked = st.booleans()
        return st.tuples(prefix, masked).map(
            lambda pm: (
                str(ipaddress.ip_network(f"{address}/{pm[0]}", strict=False))
                if pm[1]
                else f"{address}/{pm[0]}"
            )
        )

    return ip_addresses().flatmap(with_prefix)


def pool_entries() -> st.SearchStrategy[str]:
    """A CIDR or ``start-end`` (the schema only checks both ends are IPs)."""
    return st.one_of(cidrs(), st.tuples(ip_addresses(), ip_addresses()).map("-".join))


# ---- names -----------------------------------------------------------------------------------

_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _label(length: int, char: str, hyphens: bool) -> str:
    text = char * length
    return text[0] + "-" * (length - 2) + text[-1] if hyphens and length > 2 else text


def dns_labels(max_len: int = 63) -> st.SearchStrategy[str]:
    """DNS labels of any length up to the limit (the limit itself often): the characters in
    them do not matter to the operator, their length and hyphens do (cheap to draw)."""
    length = st.one_of(st.sampled_from([1, max_len]), st.integers(1, max_len))
    return st.builds(_label, length, st.sampled_from(_LABEL_CHARS), st.booleans())


def dns_subdomains(max_len: int = 253) -> st.SearchStrategy[str]:
    """DNS subdomains: dotted labels, and names exactly at the length limit."""
    dotted = st.lists(dns_labels(63), min_size=1, max_size=3).map(".".join)
    at_limit = st.sampled_from(
        ["n" * max_len, ".".join(["a" * 63] * 4)[:max_len].rstrip("."), "a-" * 10 + "z"]
    )
    return st.one_of(dotted, at_limit).map(lambda s: s[:max_len].rstrip(".-")).filter(bool)


# ---- the schema walk ---------------------------------------------------------------------------


def _string(node: Mapping[str, Any]) -> st.SearchStrategy[str]:
    rules = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
    max_len = int(node.get("maxLength", 10_000))
    min_len = int(node.get("minLength", 0))
    if "isCIDR(self)" in rules:
        return cidrs()
    if any("isCIDR(self) ||" in r for r in rules):
        return pool_entries()
    if "isIP(self)" in rules:
        return ip_addresses()
    pattern = node.get("pattern")
    if pattern == DNS_SUBDOMAIN_PATTERN:
        return dns_subdomains(max_len)
    if pattern == DNS_LABEL_PATTERN:
        return dns_labels(max_len)
    if pattern:
        return st.from_regex(pattern, fullmatch=True).filter(lambda s: min_len <= len(s) <= max_len)
    return st.text(min_size=min_len, max_size=min(max_len, MAX_TEXT))


def _integer(node: Mapping[str, Any]) -> st.SearchStrategy[int]:
    low = node.get("minimum", -(2**63))
    high = node.get("maximum", 2**63 - 1)
    edges = sorted({low, high, *(v for v in (low + 1, high - 1, 0, 1, -1) if low <= v <= high)})
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def from_schema(
    node: Mapping[str, Any], path: str = "", overrides: Mapping[str, Override] | None = None
) -> st.SearchStrategy[Any]:
    """A strategy for values of the structural schema ``node`` (``path`` like ``.spec.port``:
    ``overrides`` replace the strategy of such paths)."""
    overrides = overrides or {}
    if path in overrides:
        return overrides[path]()
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    kind = node.get("type")
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return _integer(node)
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = from_schema(node["items"], f"{path}[]", overrides)
        high = min(int(node.get("maxItems", MAX_ITEMS)), MAX_ITEMS)
        return st.lists(items, min_size=int(node.get("minItems", 0)), max_size=high)
    if kind == "object":
        properties = node.get("properties")
        if properties:
            required = set(node.get("required", ()))
            fields = {
                name: from_schema(sub, f"{path}.{name}", overrides)
                for name, sub in properties.items()
            }
            return st.fixed_dictionaries(
                {k: v for k, v in fields.items() if k in required},
                optional={k: v for k, v in fields.items() if k not in required},
            )
        values = node.get("additionalProperties")
        if isinstance(values, dict):
            keys = st.text(_LABEL_CHARS + "./-_", min_size=1, max_size=20)
            return st.dictionaries(keys, from_schema(values, f"{path}{{}}", overrides), max_size=3)
        return st.just({})  # x-kubernetes-preserve-unknown-fields: a driver's free-form config
    raise ValueError(f"{path}: no strategy for schema node {dict(node)}")


def accepted(model: type[BaseModel]) -> Callable[[Any], bool]:
    """True for values ``model`` accepts: the cross-field rules the schema states in CEL.

    What this drops must be what the API server refuses too: a spec the server accepts and a
    model refuses is a mismatch, which ``test_fuzz_schema_agreement.py`` reports (and fails
    on) by sending the unfiltered specs to the real API server."""

    def check(value: Any) -> bool:
        try:
            model.model_validate(value)
        except ValidationError:
            return False
        return True

    return check


def specs(
    plural: str, model: type[BaseModel], overrides: Mapping[str, Override] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """Wire specs of ``plural`` that the CRD schema and the model accept."""
    return from_schema(spec_schema(plural), "", overrides).filter(accepted(model))


# ---- the run, and values that mean something to HAProxy's parser --------------------------

EXAMPLES = int(os.environ.get("LBAAS_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=os.environ.get("LBAAS_FUZZ_RANDOM") != "1",
    # Shrinking a failing tree of this size can take longer than the test: by default the
    # first failing example is reported as found (LBAAS_FUZZ_SHRINK=1 shrinks it).
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("LBAAS_FUZZ_SHRINK") == "1" else []),
)

# Marker-rich values: every character the schema lets through that means something to
# HAProxy's parser (quote, comment, variable, sample-fetch, argument separators).
MARKER_PATHS = st.sampled_from(
    ["/a'b", "/'", "/x'y'z'", "/$HOME", "/a?b=$(id)", "/a;b=c&d", "/%41%0a'", "/~!*()@:,+"]
)
MARKER_COOKIES = st.sampled_from(
    ["a'b", "a#b", "#", "x#y'z", "`x`", "$X", "%s", "!$%&*+.^_|~-", "A", "SESS"]
)
