"""The HAProxy driver's L7 rendering (issue 20), without HAProxy: which policies are map
entries and which are rules, the map keys and what they match, weighted splits, the structure
digest that decides between a reload and runtime map changes, and the escaping of every tenant
string (HAProxy itself reads it back in ``test_haproxy_l7`` and the fuzz)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.l7 import BUCKETS, is_map_policy, map_keys, split_entries
from lbaas.drivers.haproxy.render import render_vip
from lbaas.drivers.haproxy.tokens import UnsafeValueError, token
from lbaas.drivers.model import (
    Action,
    ActionType,
    Header,
    HeaderChanges,
    L7Policy,
    Listener,
    LoadBalancer,
    Match,
    PathMatch,
    PathMatchType,
    Pool,
    Protocol,
    ValueMatch,
    WeightedPool,
)

PREFIX, EXACT, REGEX = PathMatchType.PREFIX, PathMatchType.EXACT, PathMatchType.REGEX


def forward(*pools: tuple[str, int]) -> Action:
    return Action(ActionType.FORWARD, pools=tuple(WeightedPool(*p) for p in pools))


def lb(*policies: L7Policy, protocol: Protocol = Protocol.HTTP, **listener: object) -> LoadBalancer:
    ordered = tuple(sorted(policies, key=lambda p: (p.priority, p.name)))
    return LoadBalancer(
        "ns",
        "web",
        "192.0.2.1",
        (Listener("web", 80, protocol, default_pool="a", policies=ordered, **listener),),  # type: ignore[arg-type]
        (Pool("a"), Pool("b"), Pool("c")),
    )


def by_host(name: str, priority: int, *hosts: str, pool: str = "b") -> L7Policy:
    return L7Policy(name, priority, Match(hostnames=hosts), forward((pool, 1)))


def matching(keys: list[str], text: str) -> bool:
    """Whether ``<host><path>`` matches one of the keys (Python's re reads \\xHH as PCRE2)."""
    return any(re.search(key, text) for key in keys)


# ---- map entries or rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "is_map"),
    [
        (by_host("h", 1, "a.example.com"), True),
        (
            L7Policy("p", 1, Match(path=PathMatch(PREFIX, "/api")), forward(("b", 1), ("c", 2))),
            True,
        ),
        (L7Policy("x", 1, Match(path=PathMatch(EXACT, "/x")), forward(("b", 1))), True),
        (L7Policy("r", 1, Match(path=PathMatch(REGEX, "/x.*")), forward(("b", 1))), False),
        (L7Policy("h", 1, Match(headers=(ValueMatch("X", "1"),)), forward(("b", 1))), False),
        (L7Policy("m", 1, Match(method="POST"), forward(("b", 1))), False),
        (L7Policy("q", 1, Match(query_params=(ValueMatch("q", "1"),)), forward(("b", 1))), False),
        (L7Policy("d", 1, Match(), Action(ActionType.REJECT)), False),
        (
            L7Policy(
                "c", 1, Match(), forward(("b", 1)), request_headers=HeaderChanges(remove=("X",))
            ),
            False,
        ),
    ],
)
def test_forward_by_host_and_path_is_a_map_entry(policy: L7Policy, is_map: bool) -> None:
    assert is_map_policy(policy) is is_map


@pytest.mark.parametrize(
    ("match", "yes", "no"),
    [
        (
            Match(hostnames=("a.example.com",)),
            ["a.example.com/", "a.example.com/x"],
            ["b.example.com/", "xa.example.com/", "a.example.com.evil/"],
        ),
        (
            Match(hostnames=("*.example.com",)),
            ["a.example.com/", "a.b.example.com/x"],
            ["example.com/", "aexample.com/"],
        ),
        (
            Match(path=PathMatch(PREFIX, "/api")),
            ["h/api", "h/api/", "h/api/v1", "/api"],
            ["h/apix", "h/ap", "h/x/api"],
        ),
        (Match(path=PathMatch(PREFIX, "/api/")), ["h/api", "h/api/v1"], ["h/apix"]),
        (Match(path=PathMatch(PREFIX, "/")), ["h/", "h/anything"], []),
        (Match(path=PathMatch(EXACT, "/a.b")), ["h/a.b"], ["h/aXb", "h/a.b/", "h/a.bc"]),
        (Match(path=PathMatch(EXACT, "/a'b$c(d)*+?[e]")), ["h/a'b$c(d)*+?[e]"], ["h/a'b$c(d)"]),
        (
            Match(hostnames=("a.com", "b.com"), path=PathMatch(PREFIX, "/x")),
            ["a.com/x", "b.com/x/y"],
            ["a.com/", "c.com/x"],
        ),
        (Match(), ["h/", "/anything"], []),
    ],
)
def test_map_keys_match_what_the_policy_says(match: Match, yes: list[str], no: list[str]) -> None:
    keys = map_keys(match)
    for text in yes:
        assert matching(keys, text), (keys, text)
    for text in no:
        assert not matching(keys, text), (keys, text)
    for key in keys:  # nothing the file or the CLI reads: no space, quote, #, %, ;
        assert not set(key) & set(" '\"#%;\t"), key


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([80, 20], [80, 20]),
        ([1, 1], [50, 50]),
        ([1, 2], [33, 67]),
        ([1, 1, 1], [34, 33, 33]),
        ([1_000_000, 1], [99, 1]),  # a weight above 0 gets at least one bucket
        ([3, 0, 1], [75, 25]),  # weight 0: none
    ],
)
def test_weighted_split_buckets(weights: list[int], expected: list[int]) -> None:
    pools = tuple(WeightedPool(name, w) for name, w in zip("bca", weights, strict=False))
    target, entries = split_entries(lb(), Action(ActionType.FORWARD, pools=pools))
    assert target.startswith("s") and len(entries) == BUCKETS
    assert sorted(k.split("/")[1] for k, _ in entries) == sorted(str(i) for i in range(BUCKETS))
    counts = Counter(backend for _, backend in entries)
    got = [counts[f"be_ns__web__{p.pool}"] for p in pools if p.weight]
    assert sorted(got) == sorted(expected)


def test_a_single_pool_forward_targets_its_backend() -> None:
    target, entries = split_entries(lb(), forward(("b", 5)))
    assert (target, entries) == ("be_ns__web__b", [])


# ---- structure: what needs a reload --------------------------------------------------------------


def test_forward_policies_by_host_and_path_change_maps_not_the_structure() -> None:
    base = render_vip(lb(by_host("h", 10, "a.com")))
    more = render_vip(lb(by_host("h", 10, "a.com"), by_host("k", 20, "b.com", pool="c")))
    split = render_vip(
        lb(L7Policy("s", 5, Match(path=PathMatch(PREFIX, "/s")), forward(("b", 1), ("c", 3))))
    )
    empty = render_vip(lb())
    assert base.structure == more.structure == split.structure == empty.structure
    assert base.maps != more.maps != split.maps
    names = [m.name for m in base.maps]
    assert names == ["maps/fe_ns__web__l0s0.map", "maps/fe_ns__web__l0split.map"]
    assert more.maps[0].entries == (
        ("^a\\x2ecom/", "be_ns__web__b"),
        ("^b\\x2ecom/", "be_ns__web__c"),
    )


def test_a_rule_policy_changes_the_structure() -> None:
    base = render_vip(lb(by_host("h", 10, "a.com")))
    ruled = render_vip(
        lb(
            by_host("h", 10, "a.com"),
            L7Policy("d", 5, Match(method="DELETE"), Action(ActionType.REJECT)),
        )
    )
    assert ruled.structure != base.structure
    assert [m.name for m in ruled.maps] == [
        "maps/fe_ns__web__l0s0.map",
        "maps/fe_ns__web__l0s1.map",
        "maps/fe_ns__web__l0split.map",
    ]
    assert ruled.maps[0].entries == () and ruled.maps[1].entries[0][0] == "^a\\x2ecom/"
    text = ruled.text
    assert text.index("map_reg(maps/fe_ns__web__l0s0.map)") < text.index("method DELETE")
    assert text.index("deny deny_status 403") < text.index("map_reg(maps/fe_ns__web__l0s1.map)")


def test_a_tcp_listener_has_no_l7_part() -> None:
    fragment = render_vip(lb(protocol=Protocol.TCP))
    assert (
        fragment.maps == () and "txn.l7" not in fragment.text and "forwardfor" not in fragment.text
    )


def test_forwarded_headers() -> None:
    text = render_vip(lb(forwarded_headers=True)).text
    assert "    option forwardfor\n" in text
    assert "http-request set-header X-Forwarded-Proto http\n" in text
    assert "http-request set-header X-Forwarded-Port 80\n" in text
    assert "forwardfor" not in render_vip(lb()).text


# ---- tenant strings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("plain", "plain"),
        ("a b", "a\\ b"),
        ("#x", "\\#x"),
        ("'q'", "\\'q\\'"),
        ('"d"', '\\"d\\"'),
        ("back\\slash", "back\\\\slash"),
        ("$HOME ${X}", "$HOME\\ ${X}"),
    ],
)
def test_text_tokens_are_one_escaped_word(value: str, word: str) -> None:
    assert token(value, "text") == word


def test_log_format_tokens_escape_percent() -> None:
    assert token("100% %[src]", "format") == "100%%\\ %%[src]"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "", "x" * 1025, "caf\u00e9", "\t"])
def test_text_tokens_refuse_what_cannot_be_written(value: str) -> None:
    with pytest.raises(UnsafeValueError):
        token(value, "text")


def test_a_header_name_haproxy_cannot_take_fails_only_its_policy() -> None:
    quoted = L7Policy("q", 1, Match(headers=(ValueMatch("X'Y", "1"),)), forward(("b", 1)))
    tree = lb(quoted, by_host("h", 2, "a.com"))
    why = HAProxyDriver().supports(tree, {})
    assert why is not None and "L7Policy q" in why and "X'Y" in why
    assert HAProxyDriver().supports(lb(by_host("h", 2, "a.com")), {}) is None
    # the same name in a header change (a configuration word, not a fetch argument) is fine
    change = L7Policy(
        "c", 1, Match(), forward(("b", 1)), request_headers=HeaderChanges(set=(Header("X'Y", "1"),))
    )
    assert HAProxyDriver().supports(lb(change), {}) is None
    assert "set-header X\\'Y 1 if" in render_vip(lb(change)).text


def test_every_rule_line_is_one_line() -> None:
    hostile = "a'b\"c#d e%f$g\\h"
    tree = lb(
        L7Policy(
            "every",
            1,
            Match(
                hostnames=("a.example.com", "*.b.example.com"),
                path=PathMatch(REGEX, "/[a-z]+ x"),
                headers=(ValueMatch("X-A", hostile), ValueMatch("X-B", "x y")),
                method="PUT",
                query_params=(ValueMatch("q", "a'b#"),),
            ),
            forward(("b", 2), ("c", 1)),
            request_headers=HeaderChanges(
                set=(Header("X-S", hostile),), add=(Header("X-A", hostile),), remove=("X-R",)
            ),
            response_headers=HeaderChanges(set=(Header("X-T", hostile),)),
        )
    )
    text = render_vip(tree).text
    rules = [line for line in text.splitlines() if "l7p1" in line or "p1 }" in line]
    # 2 host + path + 2 headers + method + query, the mark, 3 request changes, the target,
    # the response change
    assert len(rules) == 13, rules
    assert all("\n" not in line for line in rules)
    assert f"set-header X-S {token(hostile, 'format')} if" in text
    assert "acl l7p1_h0 req.fhdr(X-A) -m str -- a\\'b\\\"c\\#d\\ e%f$g\\\\h" in text
    assert "http-after-response set-header X-T" in text
