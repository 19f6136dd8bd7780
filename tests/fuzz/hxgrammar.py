"""HAProxy's configuration lines as HAProxy splits them, and where tenant values may appear.

``words`` follows ``parse_line`` of HAProxy 2.6 (src/tools.c) for what matters here: blanks
separate words, ``#`` outside quotes starts a comment, a backslash escapes the next character,
``'...'`` quotes verbatim and ``"..."`` quotes with escapes (and would expand ``${VAR}``).

``tenant_problems`` reads a load balancer's fragment back word by word, section by section
(a frontend per listener, a backend per pool), and checks that every value a tenant chose
(namespace, names, addresses, ports, cookie name, URL path, and the L7 policies' strings:
``hxl7``) is exactly one word in its expected place and, once HAProxy has unquoted it, equal to
what the tenant asked for: so a value can neither add a word, a line or a comment, nor be
changed on its way. Lines must start with a keyword the template writes; no quote but an
escaped one, no backslash but one escaping a character HAProxy's parser reads (space, ``#``,
a quote, a backslash), no control or non-ASCII character may appear anywhere in the text.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

from fuzz.hxl7 import l7_problems

from lbaas.drivers.haproxy.l7 import MapFile
from lbaas.drivers.haproxy.names import backend_name, frontend_name
from lbaas.drivers.haproxy.render import HEADER
from lbaas.drivers.haproxy.store import file_stem
from lbaas.drivers.model import Listener, LoadBalancer, Pool

KEYWORDS = frozenset(
    {
        *("frontend", "backend", "mode", "bind", "maxconn", "disabled", "default_backend"),
        *("balance", "hash-type", "stick-table", "stick", "cookie", "timeout", "option"),
        *("http-check", "server"),
        *("acl", "http-request", "http-after-response", "use_backend"),  # L7 (issue 20)
    }
)
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\U0010ffff]")
"""Control and non-ASCII characters."""
_ESCAPABLE = " #'\"\\"
"""What a backslash may escape: what HAProxy's parser reads (blank, comment, quotes, itself)."""


def _forbidden(text: str) -> list[str]:
    """Forbidden characters, a double quote that is not escaped (it would quote), a backslash
    that escapes nothing the parser reads."""
    found = [f"forbidden character {m[0]!r} at {m.start()}" for m in _FORBIDDEN.finditer(text)]
    i = 0
    while i < len(text):
        if text[i] == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPABLE:
                found.append(f"a backslash escaping {text[i + 1 : i + 2]!r} at {i}")
            i += 2
            continue
        if text[i] == '"':
            found.append(f"an unescaped double quote at {i}")
        i += 1
    return found


class Unparsable(ValueError):
    pass


def words(line: str) -> list[str]:
    """The words HAProxy makes of one line (comments dropped)."""
    out: list[str] = []
    word: list[str] | None = None
    quote = ""
    i = 0
    while i < len(line):
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                word.append(c)  # type: ignore[union-attr]
        elif c == "\\":
            if i + 1 >= len(line):
                raise Unparsable(f"trailing backslash: {line!r}")
            word = word if word is not None else []
            word.append(line[i + 1])
            i += 1
        elif quote == '"':
            if c == '"':
                quote = ""
            elif c == "$":
                raise Unparsable(f"variable expansion in double quotes: {line!r}")
            else:
                word.append(c)  # type: ignore[union-attr]
        elif c in " \t":
            if word is not None:
                out.append("".join(word))
                word = None
        elif c == "#":
            break
        elif c in "'\"":
            quote = c
            word = word if word is not None else []
        else:
            word = word if word is not None else []
            word.append(c)
        i += 1
    if quote:
        raise Unparsable(f"unmatched quote: {line!r}")
    if word is not None:
        out.append("".join(word))
    return out


def _ip_word(address: str) -> str:
    parsed = ipaddress.ip_address(address)
    return f"[{parsed.compressed}]" if parsed.version == 6 else parsed.compressed


def _sections(lines: list[list[str]]) -> list[tuple[list[str], list[list[str]]]]:
    """(header words, its lines' words) per ``frontend``/``backend`` section, in order."""
    found: list[tuple[list[str], list[list[str]]]] = []
    for line in lines:
        if line[0] in ("frontend", "backend"):
            found.append((line, []))
        elif found:
            found[-1][1].append(line)
    return found


def tenant_problems(lb: LoadBalancer, text: str) -> list[str]:
    """What is wrong with ``text`` (the fragment of ``lb``), as readable findings."""
    problems = _forbidden(text)
    lines = text.splitlines()
    if not lines or not lines[0].startswith(HEADER):
        return [*problems, "the fragment does not start with its header"]
    parsed = [words(line) for line in lines[1:]]
    parsed = [p for p in parsed if p]
    for line in parsed:
        if line[0] not in KEYWORDS:
            problems.append(f"unexpected line {line}")
    sections = _sections(parsed)
    wanted = [["frontend", frontend_name(lb, listener)] for listener in lb.listeners]
    wanted += [["backend", backend_name(lb, pool)] for pool in lb.pools]
    if [header for header, _ in sections] != wanted:
        return [*problems, f"sections {[h for h, _ in sections]} instead of {wanted}"]
    for listener, (_, body) in zip(lb.listeners, sections, strict=False):
        problems += _frontend_problems(lb, listener, body)
    for pool, (_, body) in zip(lb.pools, sections[len(lb.listeners) :], strict=True):
        problems += _backend_problems(lb, pool, body)
    return problems


def _frontend_problems(lb: LoadBalancer, listener: Listener, body: list[list[str]]) -> list[str]:
    by_kind: dict[str, list[list[str]]] = {}
    for line in body:
        by_kind.setdefault(line[0], []).append(line)
    expected = {
        "bind": [["bind", f"{_ip_word(lb.address)}:{listener.port}"]],
        "default_backend": [["default_backend", backend_name(lb, listener.default_pool)]]
        if listener.default_pool
        else None,
    }
    return [
        f"{listener.name}: {keyword} {by_kind.get(keyword)} instead of {wanted}"
        for keyword, wanted in expected.items()
        if by_kind.get(keyword) != wanted
    ] + l7_problems(listener, body)


def _backend_problems(lb: LoadBalancer, pool: Pool, body: list[list[str]]) -> list[str]:
    by_kind: dict[str, list[list[str]]] = {}
    for line in body:
        by_kind.setdefault(line[0], []).append(line)
    problems = _server_problems(pool, by_kind.get("server", []))
    problems += _persistence_problems(pool, by_kind)
    monitor = pool.monitor
    for line in by_kind.get("option", []):
        if line[1] == "httpchk":
            assert monitor is not None
            wanted = ["option", "httpchk", str(monitor.http_method), monitor.url_path]
            if line != wanted:
                problems.append(f"{pool.name}: httpchk {line} instead of {wanted}")
    return problems


def _server_problems(pool: Pool, servers: list[list[str]]) -> list[str]:
    problems = []
    expected = {m.name: m for m in pool.members} if pool.admin_state_up else {}
    if sorted(s[1] for s in servers) != sorted(expected):
        problems.append(f"servers {[s[1] for s in servers]} instead of {sorted(expected)}")
    checked = pool.monitor is not None and pool.monitor.admin_state_up
    for line in servers:
        member = expected.get(line[1])
        if member is None:
            continue
        if line[2] != f"{_ip_word(member.address)}:{member.port}":
            problems.append(f"server {line[1]}: address word {line[2]!r}")

        def after(keyword: str, words: list[str] = line) -> str | None:
            return words[words.index(keyword) + 1] if keyword in words else None

        if checked and member.monitor_address and after("addr") != _ip_word(member.monitor_address):
            problems.append(f"server {line[1]}: addr {after('addr')!r}")
        if checked and member.monitor_port and after("port") != str(member.monitor_port):
            problems.append(f"server {line[1]}: port {after('port')!r}")
        if not checked and ("addr" in line or "port" in line or "check" in line):
            problems.append(f"server {line[1]}: check options without a monitor")
        if "cookie" in line and line[line.index("cookie") + 1] != line[1]:
            problems.append(f"server {line[1]}: cookie {line[line.index('cookie') + 1]!r}")
    return problems


def _persistence_problems(pool: Pool, by_kind: dict[str, list[list[str]]]) -> list[str]:
    persistence = pool.persistence
    kind = str(persistence.type) if persistence else None
    name = persistence.cookie_name if persistence else None
    problems = []
    if kind == "HTTP_COOKIE":
        wanted = ["cookie", name or "SRVID", "insert", "indirect", "nocache"]
        if by_kind.get("cookie") != [wanted]:
            problems.append(f"cookie {by_kind.get('cookie')} instead of {wanted}")
    if kind == "APP_COOKIE":
        wanted_lines = [
            ["stick", "store-response", f"res.cook({name})"],
            ["stick", "match", f"req.cook({name})"],
        ]
        if by_kind.get("stick") != wanted_lines:
            problems.append(f"stick {by_kind.get('stick')} instead of {wanted_lines}")
    return problems


def haproxy_accepts(
    haproxy: tuple[str, Path], key: str, text: str, maps: tuple[MapFile, ...] = ()
) -> None:
    """``haproxy -c`` on the global file and this one fragment, under the file name the
    driver gives it (a name too long for the file system fails here too), with its L7 maps
    where the driver puts them."""
    binary, work = haproxy
    for old in [*(work / "conf.d").iterdir(), *(work / "maps").iterdir()]:
        old.unlink()
    (work / "conf.d" / f"{file_stem(key)}.cfg").write_text(text)
    for entries in maps:
        (work / entries.name).write_text(entries.text)
    result = subprocess.run(
        [binary, "-c", "-q", "-f", str(work / "haproxy.cfg"), "-f", str(work / "conf.d")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr + text
