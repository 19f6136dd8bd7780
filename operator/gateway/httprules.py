"""An HTTPRoute rule as the parts of an L7Policy, and what of it cannot be served (pure).

A rule's filters become the policy's action and header changes: ``RequestRedirect`` a
Redirect, ``RequestHeaderModifier``/``ResponseHeaderModifier`` the request's/response's header
changes; its backendRefs a Forward (a Reject 500 when none is usable, as the Gateway API
prescribes). What this controller cannot serve is named per rule by :func:`rule_problems`:
other filters (``URLRewrite``, ``RequestMirror``, ``CORS``, ``ExtensionRef``), filters on a
backendRef, ``timeouts``, and values the L7Policy API refuses (checked by building the policy:
a header value longer than 1024 characters...). Such rules are left out ("Dropped Rule"); a
route that would make more than :data:`MAX_POLICIES` policies is refused whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lbaas.api.l7policy import L7PolicySpec
from lbaas.views import spec_of

SUPPORTED_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect")
NO_BACKEND = 500
MAX_POLICIES = 256
"""L7Policies one route may make per listener (each match of each rule, per host name): a
route within the API's bounds could ask for thousands, and each is an object to write."""


def rules(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(spec_of(route).get("rules") or ())


def matches(rule: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(rule.get("matches") or ()) or [{"path": {"type": "PathPrefix", "value": "/"}}]


def _headers(changes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not changes:
        return None
    out = {k: changes[k] for k in ("set", "add", "remove") if changes.get(k)}
    return out or None


def _redirect(filter_: Mapping[str, Any]) -> dict[str, Any]:
    raw = filter_.get("requestRedirect") or {}
    out: dict[str, Any] = {k: raw[k] for k in ("scheme", "hostname", "port") if raw.get(k)}
    out["statusCode"] = raw.get("statusCode", 302)
    path = raw.get("path") or {}
    if path.get("type") == "ReplaceFullPath":
        out["path"] = {"replaceFullPath": path.get("replaceFullPath") or "/"}
    elif path.get("type") == "ReplacePrefixMatch":
        out["path"] = {"replacePrefixMatch": path.get("replacePrefixMatch") or "/"}
    return out


def policy_shape(rule: Mapping[str, Any], pools: list[dict[str, Any]]) -> dict[str, Any]:
    """The policy spec of a rule without its VIP, match and priority: action and headers."""
    filters = {f.get("type"): f for f in rule.get("filters") or ()}
    spec: dict[str, Any] = {}
    if "RequestRedirect" in filters:
        spec["action"] = {"type": "Redirect", "redirect": _redirect(filters["RequestRedirect"])}
    elif any(p["weight"] > 0 for p in pools):
        spec["action"] = {"type": "Forward", "pools": pools}
        modifier = filters.get("RequestHeaderModifier") or {}
        request = _headers(modifier.get("requestHeaderModifier"))
        if request:
            spec["requestHeaders"] = request
    else:
        spec["action"] = {"type": "Reject", "reject": {"statusCode": NO_BACKEND}}
    modifier = filters.get("ResponseHeaderModifier") or {}
    response = _headers(modifier.get("responseHeaderModifier"))
    if response:
        spec["responseHeaders"] = response
    return spec


def policy_match(match: Mapping[str, Any], host: str | None) -> dict[str, Any]:
    out = {k: match[k] for k in ("path", "headers", "method", "queryParams") if match.get(k)}
    if host:
        out["hostnames"] = [host]
    return out


def _why(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"


def rule_problems(route: Mapping[str, Any]) -> dict[int, str]:
    """Rule index → why this controller cannot serve it (see the module docstring)."""
    out: dict[int, str] = {}
    hosts = max(1, len(spec_of(route).get("hostnames") or ()))
    policies = hosts * sum(len(matches(rule)) for rule in rules(route))
    if policies > MAX_POLICIES:
        why = (
            f"{policies} L7Policies (matches times host names) for one route: at most"
            f" {MAX_POLICIES} (split it into several routes)"
        )
        return dict.fromkeys(range(len(rules(route))), why)
    for i, rule in enumerate(rules(route)):
        unsupported = sorted(
            {str(f.get("type")) for f in rule.get("filters") or ()} - set(SUPPORTED_FILTERS)
        )
        if unsupported:
            out[i] = f"filter {', '.join(unsupported)} is not supported"
        elif any(b.get("filters") for b in rule.get("backendRefs") or ()):
            out[i] = "filters on a backendRef are not supported"
        elif rule.get("timeouts"):
            out[i] = "timeouts are not supported"
        else:
            parts = policy_shape(rule, [{"poolRef": "p", "weight": 1}])
            for m in matches(rule):
                try:
                    L7PolicySpec.model_validate(
                        {"vipRef": "v", "match": policy_match(m, None), **parts}
                    )
                except ValidationError as exc:
                    out[i] = _why(exc)
                    break
    return out
