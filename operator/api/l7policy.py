"""L7Policy: one routing rule of an HTTP VIP (match a request, then forward, redirect or reject).

Shaped after the Gateway API's HTTPRoute rule (matches, backendRefs with weights,
RequestRedirect, header modifier filters), flattened to one match per object and ordered by an
explicit ``priority`` (Octavia's L7 policy position): lower first, ties by name; the first
policy that matches decides. Requests no policy takes go to the VIP's default pool. The
strings and matches, and how they are bounded: ``lbaas.api.l7match``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from lbaas.api import regex
from lbaas.api.l7match import (
    MAX_ITEMS,
    MAX_VALUE,
    PATH_PATTERN,
    ChangedHeaderName,
    Match,
    PathMatchType,
    unique,
)
from lbaas.api.meta import (
    AGE,
    DNS_SUBDOMAIN_PATTERN,
    MESSAGE,
    PHASE,
    REASON,
    KindInfo,
    ObjectName,
    ObjectStatus,
    Port,
    PrinterColumn,
    Resource,
    WireModel,
)

# ---- action ---------------------------------------------------------------------------------


class ActionType(StrEnum):
    FORWARD = "Forward"
    REDIRECT = "Redirect"
    REJECT = "Reject"


class WeightedPoolRef(WireModel):
    """A pool of the same VIP and its share of the requests."""

    pool_ref: ObjectName = Field(description="Name of a Pool of this policy's VIP.")
    weight: int = Field(
        default=1,
        ge=0,
        le=1_000_000,
        description="Share of the requests relative to the other pools' weights; 0 = none.",
    )


class RedirectPath(WireModel):
    """The path of the redirect's target: one of the two."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.replaceFullPath) != has(self.replacePrefixMatch)",
                    "message": "set exactly one of replaceFullPath and replacePrefixMatch",
                }
            ]
        }
    }

    replace_full_path: str | None = Field(
        default=None,
        max_length=MAX_VALUE,
        pattern=PATH_PATTERN,
        description="The whole path of the target.",
    )
    replace_prefix_match: str | None = Field(
        default=None,
        max_length=MAX_VALUE,
        pattern=PATH_PATTERN,
        description="Replaces the prefix the policy's PathPrefix match matched; the rest of"
        " the path is kept.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RedirectPath:
        if (self.replace_full_path is None) == (self.replace_prefix_match is None):
            raise ValueError("set exactly one of replaceFullPath and replacePrefixMatch")
        return self


RedirectCode = Literal[301, 302, 303, 307, 308]
RejectCode = Literal[400, 401, 403, 404, 405, 408, 410, 413, 429, 500, 501, 502, 503, 504]


class Redirect(WireModel):
    """Where to send the client instead: each part unset keeps the request's own."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.scheme) || has(self.hostname) || has(self.port)"
                    " || has(self.path)",
                    "message": "a redirect needs a target: set scheme, hostname, port or path",
                }
            ]
        }
    }

    scheme: Literal["http", "https"] | None = Field(default=None, description="http or https.")
    hostname: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="Host name of the target (no wildcard).",
    )
    port: Port | None = Field(
        default=None, description="Port of the target; unset = the scheme's (80, 443)."
    )
    path: RedirectPath | None = Field(default=None, description="Path of the target.")
    status_code: RedirectCode = Field(default=302, description="301, 302, 303, 307 or 308.")

    @model_validator(mode="after")
    def _has_target(self) -> Redirect:
        if not (self.scheme or self.hostname or self.port or self.path):
            raise ValueError("a redirect needs a target: set scheme, hostname, port or path")
        return self


class Reject(WireModel):
    """Answer the request from the device."""

    status_code: RejectCode = Field(default=403, description="The status code answered.")


class Action(WireModel):
    """What to do with a matching request."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "(self.type == 'Forward') == has(self.pools)",
                    "message": "pools are set with type Forward, and only then",
                },
                {
                    "rule": "(self.type == 'Redirect') == has(self.redirect)",
                    "message": "redirect is set with type Redirect, and only then",
                },
                {
                    "rule": "self.type == 'Reject' || !has(self.reject)",
                    "message": "reject is set only with type Reject",
                },
                {
                    "rule": "!has(self.pools) || self.pools.exists(p, p.weight > 0)",
                    "message": "at least one pool needs a weight above 0",
                    "fieldPath": ".pools",
                },
            ]
        }
    }

    type: ActionType = Field(
        description="Forward (to pools), Redirect (the client elsewhere) or Reject (answer with"
        " a status code)."
    )
    pools: list[WeightedPoolRef] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ITEMS,
        description="Forward: the pools and their weights (several: a weighted split).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["poolRef"],
        },
    )
    redirect: Redirect | None = Field(default=None, description="Redirect: the target.")
    reject: Reject | None = Field(default=None, description="Reject: the status (403 if unset).")

    @model_validator(mode="after")
    def _one_shape(self) -> Action:
        forward, redirect = self.type == ActionType.FORWARD, self.type == ActionType.REDIRECT
        if forward != (self.pools is not None):
            raise ValueError("pools are set with type Forward, and only then")
        if redirect != (self.redirect is not None):
            raise ValueError("redirect is set with type Redirect, and only then")
        if self.reject is not None and self.type != ActionType.REJECT:
            raise ValueError("reject is set only with type Reject")
        if self.pools is not None:
            unique([p.pool_ref for p in self.pools], "pool", fold=False)
            if not any(p.weight > 0 for p in self.pools):
                raise ValueError("at least one pool needs a weight above 0")
        return self


# ---- header changes ---------------------------------------------------------------------------


class HeaderValue(WireModel):
    name: ChangedHeaderName = Field(description="Header name (an RFC 7230 token).")
    value: str = Field(
        min_length=1,
        max_length=MAX_VALUE,
        pattern=regex.PRINTABLE,
        description="The value, taken literally (printable ASCII, no line breaks).",
    )


class HeaderChanges(WireModel):
    """Headers set (replaced), added (appended) and removed, in that order."""

    set: list[HeaderValue] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Replace the header (or add it when absent).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    add: list[HeaderValue] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Add the header (kept alongside one already there).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    remove: list[ChangedHeaderName] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Remove these headers.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _no_duplicates(self) -> HeaderChanges:
        unique([h.name for h in self.set or ()], "header", fold=True)
        unique([h.name for h in self.add or ()], "header", fold=True)
        unique(list(self.remove or ()), "header", fold=True)
        return self


# ---- the policy -------------------------------------------------------------------------------


class L7PolicySpec(WireModel):
    """Match requests of a VIP and forward, redirect or reject them."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.action.redirect) || !has(self.action.redirect.path)"
                    " || !has(self.action.redirect.path.replacePrefixMatch)"
                    " || (has(self.match) && has(self.match.path)"
                    " && self.match.path.type == 'PathPrefix')",
                    "message": "replacePrefixMatch needs a PathPrefix path match",
                    "fieldPath": ".action.redirect.path.replacePrefixMatch",
                },
                {
                    "rule": "!has(self.requestHeaders) || self.action.type == 'Forward'",
                    "message": "requestHeaders apply to forwarded requests only (type Forward)",
                    "fieldPath": ".requestHeaders",
                },
            ]
        }
    }

    vip_ref: ObjectName = Field(description="Name of the VIP (same namespace) this policy routes.")
    priority: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="Evaluation order: lower first, ties by name; the first policy that matches"
        " decides.",
    )
    match: Match = Field(
        default_factory=Match, description="What requests this policy takes (unset: all)."
    )
    action: Action = Field(description="What it does with them.")
    request_headers: HeaderChanges | None = Field(
        default=None, description="Header changes on the forwarded request (Forward only)."
    )
    response_headers: HeaderChanges | None = Field(
        default=None, description="Header changes on the response to the client."
    )

    @model_validator(mode="after")
    def _coherent(self) -> L7PolicySpec:
        redirect = self.action.redirect
        if redirect and redirect.path and redirect.path.replace_prefix_match is not None:
            path = self.match.path
            if path is None or path.type != PathMatchType.PATH_PREFIX:
                raise ValueError("replacePrefixMatch needs a PathPrefix path match")
        if self.request_headers is not None and self.action.type != ActionType.FORWARD:
            raise ValueError("requestHeaders apply to forwarded requests only (type Forward)")
        return self

    def pool_refs(self) -> list[str]:
        """The pools this policy forwards to (weight above 0), in order."""
        return [p.pool_ref for p in self.action.pools or () if p.weight > 0]


class L7PolicyStatus(ObjectStatus):
    """Provisioning phase of the policy."""


class L7Policy(Resource):
    spec: L7PolicySpec
    status: L7PolicyStatus = Field(default_factory=L7PolicyStatus)

    kind_info = KindInfo(
        kind="L7Policy",
        plural="l7policies",
        singular="l7policy",
        short_names=("l7p",),
        namespaced=True,
        spec=L7PolicySpec,
        status=L7PolicyStatus,
        columns=(
            PrinterColumn("VIP", ".spec.vipRef"),
            PrinterColumn("Priority", ".spec.priority", "integer"),
            PrinterColumn("Action", ".spec.action.type"),
            PHASE,
            AGE,
            REASON,
            MESSAGE,
        ),
        description="An L7 routing rule of an HTTP VIP: match requests, then forward them to"
        " pools, redirect or reject them.",
    )
