"""Where the tenant strings of L7 policies may appear in a frontend, read back as HAProxy reads
them (issue 20): ``l7_problems`` checks, for every rule policy of a listener, that each host
name, path, header or query name and value, pattern, header change and redirect part is exactly
one word, in its place, equal to what the tenant wrote once HAProxy unescaped it (and, for
log-format words, once ``%%`` is read as ``%``). A value that added a word, a line or a comment,
or came out changed, is a finding. Map policies are not in the fragment (their keys are
checked in ``test_haproxy_l7``: nothing but ``\\xHH`` escapes and classes).
"""

from __future__ import annotations

from lbaas.drivers.haproxy.l7 import is_map_policy
from lbaas.drivers.model import Listener, PathMatchType, ValueMatchType

Line = list[str]


def _acls(body: list[Line], name: str) -> list[Line]:
    return [line for line in body if line[:2] == ["acl", name]]


def _anchored(pattern: str) -> str:
    return f"^(?:{pattern})$"


def _value(kind: ValueMatchType, value: str) -> list[str]:
    if kind == ValueMatchType.REGEX:
        return ["-m", "reg", "--", _anchored(value)]
    return ["-m", "str", "--", value]


def _expected_acls(listener: Listener) -> dict[str, list[Line]]:
    """ACL name → its lines' words after the name, for every rule policy of ``listener``."""
    found: dict[str, list[Line]] = {}
    mark = 0
    for policy in listener.policies:
        if is_map_policy(policy):
            continue
        mark += 1
        match, p = policy.match, f"l7p{mark}"
        if match.hostnames:
            found[f"{p}_host"] = [
                ["var(txn.l7host)", "-m", "end", "--", h[1:]]
                if h.startswith("*.")
                else ["var(txn.l7host)", "-m", "str", "--", h]
                for h in match.hostnames
            ]
        if match.path is not None:
            value, kind = match.path.value, match.path.type
            if kind == PathMatchType.REGEX:
                found[f"{p}_path"] = [["path", "-m", "reg", "--", _anchored(value)]]
            elif kind == PathMatchType.EXACT:
                found[f"{p}_path"] = [["path", "-m", "str", "--", value]]
            elif value.rstrip("/"):
                prefix = value.rstrip("/")
                found[f"{p}_path"] = [
                    ["path", "-m", "str", "--", prefix],
                    ["path", "-m", "beg", "--", prefix + "/"],
                ]
            else:
                found[f"{p}_path"] = [["path", "-m", "beg", "--", "/"]]
        for i, h in enumerate(match.headers):
            found[f"{p}_h{i}"] = [[f"req.fhdr({h.name})", *_value(h.type, h.value)]]
        if match.method:
            found[f"{p}_m"] = [["method", match.method]]
        for i, q in enumerate(match.query_params):
            found[f"{p}_q{i}"] = [[f"urlp({q.name})", *_value(q.type, q.value)]]
    return found


def _changes(listener: Listener) -> list[tuple[str, str, str, str | None]]:
    """(rule keyword, verb, header name, value) of every header change of a rule policy."""
    out = []
    for policy in listener.policies:
        if is_map_policy(policy):
            continue
        for keyword, changes in (
            ("http-request", policy.request_headers),
            ("http-after-response", policy.response_headers),
        ):
            if changes is None:
                continue
            out += [(keyword, "set-header", h.name, h.value) for h in changes.set]
            out += [(keyword, "add-header", h.name, h.value) for h in changes.add]
            out += [(keyword, "del-header", name, None) for name in changes.remove]
    return out


def l7_problems(listener: Listener, body: list[Line]) -> list[str]:
    """Findings about ``listener``'s L7 lines in its frontend ``body`` (words per line)."""
    problems = []
    for name, wanted in _expected_acls(listener).items():
        got = [line[2:] for line in _acls(body, name)]
        if got != wanted:
            problems.append(f"acl {name}: {got} instead of {wanted}")
    wanted_acls = set(_expected_acls(listener))
    for line in body:
        if line[0] == "acl" and line[1] not in wanted_acls:
            problems.append(f"unexpected acl {line}")
    changes = [
        (line[0], line[1], line[2], line[3].replace("%%", "%") if line[1] != "del-header" else None)
        for line in body
        if line[0] in ("http-request", "http-after-response")
        and line[1] in ("set-header", "add-header", "del-header")
        and not line[2].startswith("X-Forwarded-")
    ]
    for keyword in ("http-request", "http-after-response"):  # each kind in policy order
        got = [c for c in changes if c[0] == keyword]
        wanted = [c for c in _changes(listener) if c[0] == keyword]
        if got != wanted:
            problems.append(f"{keyword} header changes {got} instead of {wanted}")
    for line in body:
        if line[0] in ("http-request", "http-after-response") and "if" in line:
            tail = line[line.index("if") + 1 :]
            if sum(w in ("{", "!{") for w in tail) != tail.count("}"):
                problems.append(f"unbalanced condition {line}")
    return problems
