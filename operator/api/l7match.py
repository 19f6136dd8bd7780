"""The strings and matches of an L7Policy: what a request must look like.

Every string a tenant writes here ends up in a device's configuration, so each is bounded and
restricted to what it means on the wire: host names are DNS names (``*.`` wildcard first),
header names RFC 7230 tokens, header values printable ASCII (no CR/LF), paths origin-form,
regular expressions RE2 (``lbaas.api.regex``). The API server checks all of it (patterns,
bounds, CEL), the operator again when it reads the object.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from lbaas.api import regex
from lbaas.api.healthmonitor import HTTPMethod
from lbaas.api.meta import WireModel

MAX_ITEMS = 16
"""Entries of each list (host names, headers, query parameters, pools, header changes)."""
MAX_VALUE = 1024
"""Characters of a path, header value, query value or regular expression."""

HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A lower-case DNS name, optionally a ``*.`` wildcard (the Gateway API's Hostname)."""
TOKEN_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
"""An RFC 7230 token: header and query parameter names."""
PATH_PATTERN = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$"
"""An origin-form path without query (RFC 3986 pchar and '/'): no spaces, quotes, '#', '?'."""
VISIBLE_PATTERN = r"^[\x21-\x7E]*$"
"""Visible ASCII, no space: query values and path expressions."""
FRAMING_HEADERS = (
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
)
"""Headers that frame the message or the connection: no policy may change them (a changed
Content-Length or Transfer-Encoding is request smuggling)."""

HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=TOKEN_PATTERN)]
Hostname = Annotated[str, Field(min_length=1, max_length=253, pattern=HOSTNAME_PATTERN)]


def _not_framing(name: str) -> str:
    if name.lower() in FRAMING_HEADERS:
        raise ValueError(f"header {name} frames the message and may not be changed")
    return name


_FRAMING_CEL = {
    "rule": f"!(self.lowerAscii() in {list(FRAMING_HEADERS)})",
    "message": "may not be a header that frames the message (" + ", ".join(FRAMING_HEADERS) + ")",
}
ChangedHeaderName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=TOKEN_PATTERN,
        json_schema_extra={"x-kubernetes-validations": [_FRAMING_CEL]},
    ),
    AfterValidator(_not_framing),
]


def _regex_rule(field: str) -> Any:
    return {
        "rule": f"self.type != 'RegularExpression' || {regex.cel('self.' + field)}",
        "message": regex.CEL_MESSAGE,
        "fieldPath": f".{field}",
    }


# ---- match ----------------------------------------------------------------------------------


class PathMatchType(StrEnum):
    EXACT = "Exact"
    PATH_PREFIX = "PathPrefix"
    REGULAR_EXPRESSION = "RegularExpression"


class ValueMatchType(StrEnum):
    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


class PathMatch(WireModel):
    """The request's path (without query): exact, by prefix, or by an RE2 expression."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.type == 'RegularExpression'"
                    f' || self.value.matches(r"{PATH_PATTERN}")',
                    "message": "must be a path: '/' then URL path characters (RFC 3986),"
                    " no spaces, quotes, '#' or '?'",
                    "fieldPath": ".value",
                },
                _regex_rule("value"),
            ]
        }
    }

    type: PathMatchType = Field(
        default=PathMatchType.PATH_PREFIX,
        description="Exact, PathPrefix (element-wise: /api matches /api and /api/x, not /apix)"
        " or RegularExpression (RE2, the whole path must match).",
    )
    value: str = Field(
        default="/",
        min_length=1,
        max_length=MAX_VALUE,
        pattern=VISIBLE_PATTERN,
        description="The path, prefix or expression.",
    )

    @model_validator(mode="after")
    def _valid_value(self) -> PathMatch:
        if self.type == PathMatchType.REGULAR_EXPRESSION:
            regex.check(self.value)
        elif not _matches(PATH_PATTERN, self.value):
            raise ValueError(f"path {self.value!r} is not '/' then URL path characters")
        return self


class HeaderMatch(WireModel):
    """A request header (name compared case-insensitively) and its value."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [_regex_rule("value")]}}

    name: HeaderName = Field(description="Header name (an RFC 7230 token).")
    value: str = Field(
        min_length=1,
        max_length=MAX_VALUE,
        pattern=regex.PRINTABLE,
        description="The value (Exact) or an RE2 expression the whole value must match.",
    )
    type: ValueMatchType = Field(
        default=ValueMatchType.EXACT, description="Exact or RegularExpression."
    )

    @model_validator(mode="after")
    def _valid_regex(self) -> HeaderMatch:
        if self.type == ValueMatchType.REGULAR_EXPRESSION:
            regex.check(self.value)
        return self


class QueryParamMatch(WireModel):
    """A query parameter (name compared exactly) and its value."""

    model_config = {"json_schema_extra": {"x-kubernetes-validations": [_regex_rule("value")]}}

    name: HeaderName = Field(description="Parameter name (an RFC 7230 token).")
    value: str = Field(
        min_length=1,
        max_length=MAX_VALUE,
        pattern=VISIBLE_PATTERN,
        description="The value as sent (Exact), or an RE2 expression the whole value must match.",
    )
    type: ValueMatchType = Field(
        default=ValueMatchType.EXACT, description="Exact or RegularExpression."
    )

    @model_validator(mode="after")
    def _valid_regex(self) -> QueryParamMatch:
        if self.type == ValueMatchType.REGULAR_EXPRESSION:
            regex.check(self.value)
        return self


def unique(names: list[str], what: str, *, fold: bool) -> None:
    seen: set[str] = set()
    for name in names:
        key = name.lower() if fold else name
        if key in seen:
            raise ValueError(f"{what} {name} is listed twice")
        seen.add(key)


class Match(WireModel):
    """What a request must look like: every condition given must hold (none: every request)."""

    hostnames: list[Hostname] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Host names (the Host header, without port): exact, or *.example.com for"
        " any name under example.com (not example.com itself); any of them.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    path: PathMatch | None = Field(default=None, description="The path.")
    headers: list[HeaderMatch] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Request headers that must all match (one entry per name).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    method: HTTPMethod | None = Field(default=None, description="The request method.")
    query_params: list[QueryParamMatch] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Query parameters that must all match (one entry per name).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @model_validator(mode="after")
    def _no_duplicates(self) -> Match:
        unique(list(self.hostnames or ()), "host name", fold=False)
        unique([h.name for h in self.headers or ()], "header", fold=True)
        unique([q.name for q in self.query_params or ()], "query parameter", fold=False)
        return self


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None
