"""The L7Policy API and the VIP's L7 fields (issue 20): every string bounded and restricted as
the device needs it, regular expressions in one dialect, the same rules in the model (the
operator's check) and in the CRD (the API server's: patterns, bounds and CEL rules)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from lbaas.api import VIPSpec, regex
from lbaas.api.crdgen import render_all
from lbaas.api.l7policy import L7PolicySpec

FORWARD = {"type": "Forward", "pools": [{"poolRef": "a"}]}


def spec(**fields: Any) -> dict[str, Any]:
    return {"vipRef": "web", "action": FORWARD, **fields}


def refused(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError) as err:
        L7PolicySpec.model_validate(body)
    assert needle in str(err.value), str(err.value)


# ---- regular expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    ["^/api/v[0-9]+$", r"\pL+", "(?i)canary", "(?P<v>x)|y", r"\Q.\E", "[[:alpha:]]", "a{1000}", ""],
)
def test_re2_patterns_are_accepted(pattern: str) -> None:
    assert regex.problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("^/a(", "invalid regular expression (RE2 syntax): missing ): ^/a("),
        ("(?=x)", "invalid perl operator"),  # lookahead: PCRE2 only
        (r"(a)\1", r"invalid escape sequence: \1"),  # backreference: PCRE2 only
        ("x*+", "bad repetition operator"),  # possessive: PCRE2 only
        (r"\Z", "invalid escape sequence"),  # PCRE2's end-or-before-newline
        (r"a\C", r"uses \C"),  # one byte (RE2) vs one code unit (PCRE2)
        ("a{1001}", "invalid repetition size"),
        (r"\pL{1000}", "regular expression too complex"),
        ("x" * 1025, "regular expression of 1025 characters; at most 1024"),
        ("caf\u00e9", "printable ASCII"),
        ("a\nb", "printable ASCII"),
    ],
)
def test_regex_outside_the_common_dialect_is_refused(pattern: str, why: str) -> None:
    problem = regex.problem(pattern)
    assert problem is not None and why in problem


def test_escaped_backslash_c_is_a_literal() -> None:
    assert regex.problem(r"a\\C") is None  # a backslash, then C


# ---- the model refuses what the API server refuses ---------------------------------------------


def test_a_full_policy_is_accepted_and_defaults_filled() -> None:
    parsed = L7PolicySpec.model_validate(
        spec(
            match={
                "hostnames": ["shop.example.com", "*.example.com"],
                "path": {"type": "PathPrefix", "value": "/api"},
                "headers": [{"name": "X-Env", "value": "canary"}],
                "method": "GET",
                "queryParams": [{"name": "v", "value": "2"}],
            },
            requestHeaders={"set": [{"name": "X-A", "value": 'a "quoted" %[value] $x'}]},
        )
    )
    assert parsed.priority == 1000
    assert parsed.action.pools is not None and parsed.action.pools[0].weight == 1
    assert parsed.wire()["match"]["headers"] == [
        {"name": "X-Env", "value": "canary", "type": "Exact"}
    ]
    assert L7PolicySpec.model_validate(spec()).match.path is None


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"match": {"hostnames": ["a.*.com"]}}, "hostnames.0"),
        ({"match": {"hostnames": ["Shop.example.com"]}}, "hostnames.0"),
        ({"match": {"hostnames": ["a.com", "a.com"]}}, "host name a.com is listed twice"),
        ({"match": {"path": {"type": "Exact", "value": "/a b"}}}, "path.value"),
        ({"match": {"path": {"type": "PathPrefix", "value": "api"}}}, "is not '/' then URL path"),
        ({"match": {"path": {"type": "Exact", "value": "/a?b"}}}, "is not '/' then URL path"),
        ({"match": {"path": {"type": "Exact", "value": "/a#b"}}}, "is not '/' then URL path"),
        ({"match": {"path": {"type": "RegularExpression", "value": "a("}}}, "RE2 syntax"),
        ({"match": {"headers": [{"name": "X A", "value": "1"}]}}, "headers.0.name"),
        ({"match": {"headers": [{"name": "X", "value": "a\r\nX-Evil: 1"}]}}, "headers.0.value"),
        (
            {"match": {"headers": [{"name": "X", "value": "1"}, {"name": "x", "value": "2"}]}},
            "header x is listed twice",
        ),
        (
            {"match": {"headers": [{"name": "X", "value": "(", "type": "RegularExpression"}]}},
            "RE2 syntax",
        ),
        ({"match": {"queryParams": [{"name": "q", "value": "a b"}]}}, "queryParams.0.value"),
        ({"match": {"method": "BREW"}}, "method"),
        ({"priority": -1}, "priority"),
        ({"priority": 1_000_001}, "priority"),
        ({"vipRef": "Web VIP"}, "vipRef"),
        ({"action": {"type": "Forward"}}, "pools are set with type Forward, and only then"),
        ({"action": {"type": "Forward", "pools": []}}, "action.pools"),
        (
            {"action": {"type": "Forward", "pools": [{"poolRef": "a", "weight": 0}]}},
            "at least one pool needs a weight above 0",
        ),
        (
            {"action": {"type": "Forward", "pools": [{"poolRef": "a"}, {"poolRef": "a"}]}},
            "pool a is listed twice",
        ),
        ({"action": {"type": "Reject", "pools": [{"poolRef": "a"}]}}, "pools are set with"),
        ({"action": {"type": "Redirect"}}, "redirect is set with type Redirect, and only then"),
        ({"action": {"type": "Redirect", "redirect": {}}}, "a redirect needs a target"),
        (
            {"action": {"type": "Redirect", "redirect": {"scheme": "ftp"}}},
            "action.redirect.scheme",
        ),
        (
            {"action": {"type": "Redirect", "redirect": {"scheme": "https", "statusCode": 200}}},
            "statusCode",
        ),
        (
            {"action": {"type": "Redirect", "redirect": {"hostname": "*.example.com"}}},
            "redirect.hostname",
        ),
        (
            {"action": {"type": "Redirect", "redirect": {"path": {}}}},
            "set exactly one of replaceFullPath and replacePrefixMatch",
        ),
        (
            {
                "action": {
                    "type": "Redirect",
                    "redirect": {"path": {"replaceFullPath": "/a", "replacePrefixMatch": "/b"}},
                }
            },
            "set exactly one of replaceFullPath and replacePrefixMatch",
        ),
        (
            {"action": {"type": "Redirect", "redirect": {"path": {"replacePrefixMatch": "/b"}}}},
            "replacePrefixMatch needs a PathPrefix path match",
        ),
        ({"action": {"type": "Reject", "reject": {"statusCode": 200}}}, "statusCode"),
        (
            {"action": {"type": "Redirect", "redirect": {"scheme": "https"}, "reject": {}}},
            "reject is set only with type Reject",
        ),
        (
            {"requestHeaders": {"set": [{"name": "Content-Length", "value": "0"}]}},
            "header Content-Length frames the message",
        ),
        (
            {"responseHeaders": {"remove": ["transfer-encoding"]}},
            "header transfer-encoding frames the message",
        ),
        ({"requestHeaders": {"add": [{"name": "X", "value": "a\nb"}]}}, "add.0.value"),
        ({"requestHeaders": {"set": [{"name": "X", "value": "x" * 1025}]}}, "set.0.value"),
        (
            {"action": {"type": "Reject"}, "requestHeaders": {"remove": ["X"]}},
            "requestHeaders apply to forwarded requests only",
        ),
        ({"match": {"hostnames": [f"h{i}.example.com" for i in range(17)]}}, "hostnames"),
    ],
)
def test_hostile_or_incoherent_specs_are_refused(fields: dict[str, Any], needle: str) -> None:
    refused(spec(**fields), needle)


def test_vip_l7_fields() -> None:
    vip = VIPSpec.model_validate({"port": 80, "protocol": "HTTP", "defaultPoolRef": "p"})
    assert (vip.default_pool_ref, vip.forwarded_headers) == ("p", None)
    with pytest.raises(ValidationError, match="forwardedHeaders needs an HTTP VIP"):
        VIPSpec.model_validate({"port": 80, "forwardedHeaders": True})
    assert (
        VIPSpec.model_validate({"port": 80, "forwardedHeaders": False}).forwarded_headers is False
    )
    with pytest.raises(ValidationError, match="defaultPoolRef"):
        VIPSpec.model_validate({"port": 80, "defaultPoolRef": "Not A Name"})


# ---- the CRD carries the same rules --------------------------------------------------------------


def _crd(plural: str) -> dict[str, Any]:
    doc = yaml.safe_load(render_all()[f"lbaas.dev_{plural}.yaml"])
    return dict(doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def test_crd_checks_regexes_bounds_and_shapes() -> None:
    schema = _crd("l7policies")
    match = schema["properties"]["match"]["properties"]
    path_rules = [r["rule"] for r in match["path"]["x-kubernetes-validations"]]
    assert (
        "self.type != 'RegularExpression' || ''.matches(self.value) || !''.matches(self.value)"
        in path_rules
    )
    header = match["headers"]["items"]
    assert header["properties"]["value"]["maxLength"] == 1024
    assert header["properties"]["value"]["pattern"] == regex.PRINTABLE
    assert header["x-kubernetes-validations"][0]["message"] == regex.CEL_MESSAGE
    assert match["headers"]["maxItems"] == 16
    action_rules = [
        r["message"] for r in schema["properties"]["action"]["x-kubernetes-validations"]
    ]
    assert "pools are set with type Forward, and only then" in action_rules
    redirect = schema["properties"]["action"]["properties"]["redirect"]
    assert redirect["x-kubernetes-validations"][0]["message"].startswith(
        "a redirect needs a target"
    )
    changed = schema["properties"]["requestHeaders"]["properties"]["set"]["items"]["properties"][
        "name"
    ]
    assert "transfer-encoding" in changed["x-kubernetes-validations"][0]["rule"]
    vip = yaml.safe_load(render_all()["lbaas.dev_vips.yaml"])
    vip_schema = vip["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"defaultPoolRef", "forwardedHeaders"} <= set(vip_schema["properties"])
    assert "forwardedHeaders" in vip_schema["x-kubernetes-validations"][0]["rule"]
