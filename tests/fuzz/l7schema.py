"""Hypothesis strategies for L7Policies (issue 20): specs the CRD schema and the model accept,
rich in the characters that mean something to a device's configuration language.

The schema walk (``fuzz.schema``) produces most of a policy from ``crds/lbaas.dev_l7policies.yaml``
(host names, header and query names, values, paths, priorities, redirect targets, status
codes). What it cannot know is stated here: which strings are regular expressions (the CEL
rule depends on the match's ``type``) and which shapes of ``action`` hold together; those
paths get strategies of their own, and ``accepted(L7PolicySpec)`` filters the rest.
"""

from __future__ import annotations

from typing import Any

from fuzz.schema import specs
from hypothesis import strategies as st

from lbaas.api import regex
from lbaas.api.l7policy import L7PolicySpec

MARKERS = ["'", '"', "#", "%", "%[", "$", "${", "\\", " ", "`", ";", "{", "}", "|", "&", ",", "("]
"""What HAProxy's parser (and log-format strings) give a meaning to."""

_ATOMS = [
    "a", "Z", "0", "-", "_", "/", ".", "[0-9]+", "[a-z]*", "(x|y)", "\\.", "\\$", "%", "#",
    "'", '"', " ", "\\\\", "`", ";", "&", ",", "\\{", "\\}", "\\[", "\\]", "(?i)", "\\Q'#\\E",
    "[#'\"%]", "\\d{2,5}", "^", "$", ".*", "\\pL", "[[:alpha:]]", "~",
]  # fmt: skip


def regexes() -> st.SearchStrategy[str]:
    """Valid patterns of the dialect (``lbaas.api.regex``), full of markers."""
    built = st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=8).map("".join)
    return built.filter(lambda p: regex.problem(p) is None)


def _marked(base: st.SearchStrategy[str], allowed: str) -> st.SearchStrategy[str]:
    """``base`` and, as often, marker-rich strings that the field's pattern allows."""
    chars = [m for m in MARKERS if all(c in allowed for c in m)]
    marked = st.lists(st.sampled_from([*chars, "a", "b", "1"]), min_size=1, max_size=12).map(
        "".join
    )
    return st.one_of(base, marked)


_PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))
_VISIBLE = _PRINTABLE.replace(" ", "")


def path_matches() -> st.SearchStrategy[dict[str, Any]]:
    plain = st.sampled_from(["/", "/api", "/a'b", "/$x", "/%41", "/a;b", "/~!*()@:,+&="])
    return st.one_of(
        st.fixed_dictionaries({"type": st.sampled_from(["Exact", "PathPrefix"]), "value": plain}),
        st.fixed_dictionaries({"type": st.just("RegularExpression"), "value": regexes()}),
    )


def value_matches(allowed: str) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(["X-A", "x-b", "Cookie", "X-Weird!#$%&'*+.^_`|~-", "q"])
    exact = _marked(st.text(alphabet=allowed, min_size=1, max_size=20), allowed)
    return st.one_of(
        st.fixed_dictionaries({"name": names, "value": exact, "type": st.just("Exact")}),
        st.fixed_dictionaries(
            {"name": names, "value": regexes(), "type": st.just("RegularExpression")}
        ),
    )


def actions(pools: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    refs = st.lists(
        st.fixed_dictionaries(
            {
                "poolRef": st.sampled_from(pools),
                "weight": st.sampled_from([0, 1, 20, 80, 1_000_000]),
            }
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda p: p["poolRef"],
    ).filter(lambda ps: any(p["weight"] for p in ps))
    paths = st.one_of(
        st.fixed_dictionaries({"replaceFullPath": st.sampled_from(["/", "/new", "/a'$%"])}),
        st.fixed_dictionaries({"replacePrefixMatch": st.sampled_from(["/", "/v2", "/a'b"])}),
    )
    redirect = st.fixed_dictionaries(
        {},
        optional={
            "scheme": st.sampled_from(["http", "https"]),
            "hostname": st.sampled_from(["example.com", "a-b.example.org", "x"]),
            "port": st.sampled_from([1, 443, 8443, 65535]),
            "path": paths,
            "statusCode": st.sampled_from([301, 302, 303, 307, 308]),
        },
    )
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("Forward"), "pools": refs}),
        st.fixed_dictionaries({"type": st.just("Redirect"), "redirect": redirect}),
        st.fixed_dictionaries(
            {"type": st.just("Reject")},
            optional={
                "reject": st.fixed_dictionaries({"statusCode": st.sampled_from([403, 404, 503])})
            },
        ),
    )


def header_changes() -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(["X-A", "X-B", "Server", "x-weird!#$%&'*+.^_`|~-"])
    values = _marked(st.text(alphabet=_PRINTABLE, min_size=1, max_size=20), _PRINTABLE)
    entries = st.lists(
        st.fixed_dictionaries({"name": names, "value": values}),
        max_size=3,
        unique_by=lambda h: h["name"].lower(),
    )
    removed = st.lists(names, max_size=2, unique_by=str.lower)
    return st.fixed_dictionaries({}, optional={"set": entries, "add": entries, "remove": removed})


def policies(vip: str, pools: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """L7Policy specs for VIP ``vip`` forwarding to some of ``pools`` (names that may or may
    not exist: the tree decides)."""
    overrides = {
        ".vipRef": lambda: st.just(vip),
        ".priority": lambda: st.sampled_from([0, 1, 10, 10, 1000, 1_000_000]),
        ".match.path": path_matches,
        ".match.hostnames": lambda: st.lists(
            st.sampled_from(["a.example.com", "*.example.com", "x", "*.a-b.c"]),
            max_size=3,
            unique=True,
        ),
        ".match.headers": lambda: st.lists(
            value_matches(_PRINTABLE), max_size=3, unique_by=lambda h: h["name"].lower()
        ),
        ".match.queryParams": lambda: st.lists(
            value_matches(_VISIBLE), max_size=3, unique_by=lambda q: q["name"]
        ),
        ".action": lambda: actions(pools),
        ".requestHeaders": header_changes,
        ".responseHeaders": header_changes,
    }
    return specs("l7policies", L7PolicySpec, overrides)
