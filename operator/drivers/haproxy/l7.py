"""L7 routing of an HTTP listener: map files for host and path, rules for everything else.

HAProxy evaluates ``http-request`` rules in order, so a listener's policies become rules in
evaluation order, each guarded by "no earlier policy took the request". Two kinds:

- **Map policies**: Forward, matching at most host names (exact, ``*.``) and a path (Exact,
  PathPrefix), without header changes. They are not rules of their own but entries of a map
  file: each run of consecutive map policies is one *segment*, one rule
  ``set-var(txn.l7t) var(txn.l7key),map_reg(<segment map>)``. The key is ``<host><path>``
  (the Host header without port, lower-cased, then the path); each entry a regular expression
  the driver builds from the policy's names and path (every literal character escaped as
  ``\\xHH``), with the target as value. ``map_reg`` returns the first entry that matches, in
  file order: the entries are in evaluation order, so priority holds within a segment, and
  the segments and rules between them keep it across. A listener always has one segment more
  than rule policies (one before, between and after them, empty or not), so adding, changing
  or removing a map policy changes map files only: the running HAProxy takes them with
  ``prepare map``/``add map @<version>``/``commit map`` (atomic), no reload.
- **Rule policies**: everything else (headers, method, query, regular expressions, Redirect,
  Reject, header changes). Named ACLs (one per condition; several lines of a name are ORed)
  and a rule that sets ``txn.l7p`` to the policy's mark; its action (``set-var(txn.l7t)``,
  ``redirect``, ``deny``) and header changes are conditioned on that mark. A rule policy
  added, changed or removed reloads: a new kind of rule.

A Forward's target is a backend name, or for a weighted split ``s<digest>``: the split map
(``map_str``, one per listener) sends ``s<digest>/<bucket>`` to a backend for each of 100
buckets, apportioned by weight (every pool of weight above 0 gets at least one), and each
request draws its bucket with ``rand(100)``: 1 % resolution, and a split's weights are changed
at run time like any map entry. ``use_backend %[var(txn.l7t)]`` then sends the request; none
taken: ``default_backend``. Response header changes are ``http-after-response`` rules (they
apply to redirects and rejections too).

Forwarded headers: ``option forwardfor`` (X-Forwarded-For, appended to what the client sent),
X-Forwarded-Proto and X-Forwarded-Port set by the device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from lbaas.drivers.haproxy.names import backend_name
from lbaas.drivers.haproxy.tokens import Token, UnsafeValueError, token
from lbaas.drivers.model import (
    Action,
    ActionType,
    L7Policy,
    Listener,
    LoadBalancer,
    Match,
    PathMatchType,
    Protocol,
    ValueMatchType,
)

BUCKETS = 100
"""Buckets of a weighted split (its resolution: 1 %)."""
_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/")
_SCHEME_PORTS = {"http": 80, "https": 443}
_FREE = "if !{ var(txn.l7t) -m found } !{ var(txn.l7p) -m found }"
"""No earlier policy took the request."""


@dataclass(frozen=True)
class MapFile:
    """One map of a listener: its name (relative to the state dir) and entries in order."""

    name: str
    entries: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        return "".join(f"{key} {value}\n" for key, value in self.entries)


@dataclass(frozen=True)
class Routing:
    """A listener's L7 part: rule lines (tokens) in order, and its map files."""

    request: tuple[Token, ...]
    """``option``, ``acl`` and ``http-request`` lines, in order, before ``use_backend``."""
    response: tuple[Token, ...]
    """``http-after-response`` lines."""
    maps: tuple[MapFile, ...]


def is_map_policy(policy: L7Policy) -> bool:
    """Whether ``policy`` is a map entry (see the module docstring), not a rule."""
    match = policy.match
    return (
        policy.action.type == ActionType.FORWARD
        and not (match.headers or match.method or match.query_params)
        and (match.path is None or match.path.type != PathMatchType.REGEX)
        and policy.request_headers is None
        and policy.response_headers is None
    )


def map_name(lb: LoadBalancer, index: int, part: str) -> str:
    """``maps/fe_<ns>__<name>__l<index><part>.map``: HAProxy's messages about it name the load
    balancer as its proxies' names do (``names.keys_in``)."""
    return f"maps/fe_{lb.namespace}__{lb.name}__l{index}{part}.map"


def _literal(text: str) -> str:
    """``text`` as a regular expression that matches exactly it (PCRE2 and RE2 alike)."""
    return "".join(c if c in _LITERAL else f"\\x{ord(c):02x}" for c in text)


def map_keys(match: Match) -> list[str]:
    """The map keys (regular expressions over ``<host><path>``) of a map policy's match."""
    hosts = []
    for name in match.hostnames or ("",):
        if not name:
            hosts.append("[^/]*")
        elif name.startswith("*."):
            hosts.append("[^/]+" + _literal(name[1:]))
        else:
            hosts.append(_literal(name))
    path = match.path
    if path is None:
        tail = "/"
    elif path.type == PathMatchType.EXACT:
        tail = _literal(path.value) + "$"
    else:
        prefix = path.value.rstrip("/")
        tail = _literal(prefix) + "(/|$)" if prefix else "/"
    return [str(token(f"^{host}{tail}", "mapkey")) for host in hosts]


def split_entries(lb: LoadBalancer, action: Action) -> tuple[str, list[tuple[str, str]]]:
    """A Forward's target, and for a weighted split its entries of the split map."""
    pools = [wp for wp in action.pools if wp.weight > 0]
    if len(pools) == 1:
        return str(token(backend_name(lb, pools[0].pool), "name")), []
    total = sum(wp.weight for wp in pools)
    shares = [max(1, BUCKETS * wp.weight // total) for wp in pools]
    while sum(shares) > BUCKETS:  # the minimum of one bucket each took some: give back
        shares[shares.index(max(shares))] -= 1
    order = sorted(range(len(pools)), key=lambda i: -(BUCKETS * pools[i].weight % total))
    for i in order[: BUCKETS - sum(shares)]:  # the largest remainders get the rest
        shares[i] += 1
    digest = hashlib.sha256(
        repr([(wp.pool, s) for wp, s in zip(pools, shares, strict=True)]).encode()
    )
    target = f"s{digest.hexdigest()[:16]}"
    entries, bucket = [], 0
    for wp, share in zip(pools, shares, strict=True):
        backend = str(token(backend_name(lb, wp.pool), "name"))
        for _ in range(share):
            entries.append((f"{target}/{bucket}", backend))
            bucket += 1
    return target, entries


def routing(lb: LoadBalancer, listener: Listener, index: int) -> Routing | None:
    """The L7 part of ``listener`` (the ``index``-th of ``lb``); None for a TCP listener."""
    if listener.protocol not in (Protocol.HTTP, Protocol.TERMINATED_HTTPS):
        return None
    request: list[Token] = list(_forwarded(listener))
    request += [
        Token("http-request set-var(txn.l7host) req.hdr(host),field(1,:),lower"),
        Token("http-request set-var(txn.l7path) path"),
        Token("http-request set-var(txn.l7key) var(txn.l7host),concat(,txn.l7path,)"),
    ]
    response: list[Token] = []
    maps: list[MapFile] = []
    splits: dict[str, str] = {}
    segment: list[tuple[str, str]] = []
    mark = 0
    for policy in (*listener.policies, None):
        if policy is not None and is_map_policy(policy):
            target, entries = split_entries(lb, policy.action)
            splits.update(entries)
            segment += [(key, target) for key in map_keys(policy.match)]
            continue
        name = map_name(lb, index, f"s{len(maps)}")
        maps.append(MapFile(str(token(name, "map")), tuple(segment)))
        lookup = f"var(txn.l7key),map_reg({token(name, 'map')})"
        request.append(Token(f"http-request set-var(txn.l7t) {lookup} {_FREE}"))
        segment = []
        if policy is not None:
            mark += 1
            request += _rule(lb, listener, policy, f"p{mark}", splits)
            response += _changes("http-after-response", policy.response_headers, f"p{mark}")
    split = map_name(lb, index, "split")
    maps.append(MapFile(str(token(split, "map")), tuple(splits.items())))
    request += [
        Token("http-request set-var(txn.l7r) rand(100) if { var(txn.l7t) -m beg s }"),
        Token(
            "http-request set-var(txn.l7t) var(txn.l7t),concat(/,txn.l7r,),"
            f"map_str({token(split, 'map')}) if {{ var(txn.l7t) -m beg s }}"
        ),
    ]
    return Routing(tuple(request), tuple(response), tuple(maps))


def _forwarded(listener: Listener) -> Iterator[Token]:
    if not listener.forwarded_headers:
        return
    proto = "https" if listener.protocol == Protocol.TERMINATED_HTTPS else "http"
    yield Token("option forwardfor")
    yield Token(f"http-request set-header X-Forwarded-Proto {proto}")
    yield Token(f"http-request set-header X-Forwarded-Port {token(listener.port, 'port')}")


def _acls(policy: L7Policy, mark: str) -> Iterator[tuple[str, list[Token]]]:
    """(ACL name, its lines) for each condition of ``policy``'s match (lines of one name OR)."""
    match = policy.match
    if match.hostnames:
        lines = []
        for name in match.hostnames:
            if name.startswith("*."):
                lines.append(f"var(txn.l7host) -m end -- {token(name[1:], 'host')}")
            else:
                lines.append(f"var(txn.l7host) -m str -- {token(name, 'host')}")
        yield f"l7{mark}_host", [Token(line) for line in lines]
    if match.path is not None:
        value, kind = match.path.value, match.path.type
        if kind == PathMatchType.REGEX:
            lines = [f"path -m reg -- {token(_anchored(value), 'text')}"]
        elif kind == PathMatchType.EXACT:
            lines = [f"path -m str -- {token(value, 'text')}"]
        elif value.rstrip("/"):
            prefix = value.rstrip("/")
            lines = [
                f"path -m str -- {token(prefix, 'text')}",
                f"path -m beg -- {token(prefix + '/', 'text')}",
            ]
        else:
            lines = ["path -m beg -- /"]
        yield f"l7{mark}_path", [Token(line) for line in lines]
    for i, header in enumerate(match.headers):
        fetch = f"req.fhdr({token(header.name, 'arg')})"
        yield f"l7{mark}_h{i}", [_value_acl(fetch, header.value, header.type)]
    if match.method:
        yield f"l7{mark}_m", [Token(f"method {token(match.method, 'word')}")]
    for i, query in enumerate(match.query_params):
        fetch = f"urlp({token(query.name, 'arg')})"
        yield f"l7{mark}_q{i}", [_value_acl(fetch, query.value, query.type)]


def _value_acl(fetch: str, value: str, kind: ValueMatchType) -> Token:
    if kind == ValueMatchType.REGEX:
        return Token(f"{fetch} -m reg -- {token(_anchored(value), 'text')}")
    return Token(f"{fetch} -m str -- {token(value, 'text')}")


def _anchored(pattern: str) -> str:
    """The whole value must match (RE2's and the Gateway API's full match)."""
    return f"^(?:{pattern})$"


def _rule(lb: LoadBalancer, listener: Listener, policy: L7Policy, mark: str,
          splits: dict[str, str]) -> list[Token]:  # fmt: skip
    lines: list[Token] = []
    names = []
    for name, acl_lines in _acls(policy, mark):
        lines += [Token(f"acl {name} {line}") for line in acl_lines]
        names.append(name)
    lines.append(
        Token(f"http-request set-var(txn.l7p) str({mark}) {_FREE} {' '.join(names)}".rstrip())
    )
    mine = f"if {{ var(txn.l7p) -m str {mark} }}"
    action = policy.action
    if action.type == ActionType.FORWARD:
        target, entries = split_entries(lb, action)
        splits.update(entries)
        lines += _changes("http-request", policy.request_headers, mark)
        lines.append(Token(f"http-request set-var(txn.l7t) str({target}) {mine}"))
    elif action.type == ActionType.REJECT:
        code = token(action.status_code, "int")
        lines.append(Token(f"http-request deny deny_status {code} {mine}"))
    else:
        lines += _redirect(listener, policy, mine)
    return lines


def _changes(kind: str, changes: object, mark: str) -> list[Token]:
    """``set-header``/``add-header``/``del-header`` rules of ``changes`` (a HeaderChanges)."""
    if changes is None:
        return []
    mine = f"if {{ var(txn.l7p) -m str {mark} }}"
    lines = []
    for verb, headers in (
        ("set", getattr(changes, "set", ())),
        ("add", getattr(changes, "add", ())),
    ):
        for header in headers:
            name, value = token(header.name, "header"), token(header.value, "format")
            lines.append(f"{kind} {verb}-header {name} {value} {mine}")
    for name in getattr(changes, "remove", ()):
        lines.append(f"{kind} del-header {token(name, 'header')} {mine}")
    return [Token(line) for line in lines]


def _redirect(listener: Listener, policy: L7Policy, mine: str) -> list[Token]:
    """Two rules (with and without a query string) whose Location is built from the
    redirect's parts and the request's (see the API's redirect fields)."""
    redirect = policy.action.redirect
    if redirect is None:
        raise UnsafeValueError("redirect", policy.name, "a Redirect action without a target")
    own = "https" if listener.protocol == Protocol.TERMINATED_HTTPS else "http"
    scheme = redirect.scheme or own
    if redirect.port is not None:
        port = redirect.port
    else:
        port = _SCHEME_PORTS[scheme] if redirect.scheme else listener.port
    host = token(redirect.hostname, "host") if redirect.hostname else "%[var(txn.l7host)]"
    where = f"{token(scheme, 'word')}://{host}"
    if port != _SCHEME_PORTS.get(scheme):
        where += f":{token(port, 'port')}"
    where += _redirect_path(policy)
    code = token(redirect.status_code, "int")
    redirect_to = "http-request redirect location"
    return [
        Token(f"{redirect_to} {where}?%[query] code {code} {mine} {{ query -m found }}"),
        Token(f"{redirect_to} {where} code {code} {mine}"),
    ]


def _redirect_path(policy: L7Policy) -> str:
    redirect = policy.action.redirect
    assert redirect is not None
    if redirect.replace_full_path is not None:
        return str(token(redirect.replace_full_path, "format"))
    path = policy.match.path
    if redirect.replace_prefix_match is None or path is None:
        return "%[path]"
    matched = len(path.value.rstrip("/"))
    replacement = redirect.replace_prefix_match.rstrip("/")
    if not replacement:  # "/": the rest of the path, or "/" when nothing is left
        return f"/%[path,bytes({token(matched + 1, 'int')})]"
    return f"{token(replacement, 'format')}%[path,bytes({token(matched, 'int')})]"


def policy_problem(lb: LoadBalancer, listener: Listener, policy: L7Policy) -> str | None:
    """Why this driver cannot write ``policy`` (a name HAProxy cannot take), or None."""
    try:
        if is_map_policy(policy):
            map_keys(policy.match)
            split_entries(lb, policy.action)
        else:
            _rule(lb, listener, policy, "p0", {})
            _changes("http-after-response", policy.response_headers, "p0")
    except UnsafeValueError as exc:
        return f"L7Policy {policy.name}: {exc}"
    return None
