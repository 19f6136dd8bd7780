"""The only way a value reaches the HAProxy configuration: a checked token.

The API models already constrain names, addresses, paths and cookie names, but a template is
the last line of defence: a value that carries a newline, a space, ``#`` or a quote could add
a line (a server, a ``stats socket``) to the configuration. Every ``{{ }}`` in the templates
goes through the ``tok`` filter, which checks the value against the safe character set of its
kind and returns a :class:`Token`; the environment's ``finalize`` refuses anything else, so a
template that forgets the filter fails loudly instead of emitting an unchecked value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any


class UnsafeValueError(ValueError):
    """A value that must not be written into the configuration."""

    def __init__(self, kind: str, value: object, why: str = "") -> None:
        super().__init__(
            f"{kind} value {value!r} cannot be written into the HAProxy configuration"
            + (f": {why}" if why else "")
        )
        self.kind = kind
        self.value = value


class Token(str):
    """A string that passed :func:`token`; the only kind of value the templates may emit."""

    __slots__ = ()


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,599}")
"""Proxy and server names: HAProxy allows alphanumerics and ``_.-:``; ``:`` is not needed."""
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,2047}")
"""An HTTP origin-form path (RFC 3986 pchar); ``'`` is escaped, see :func:`_path`."""
_FILE = re.compile(r"/[A-Za-z0-9_./+-]{0,4095}")
"""An absolute file-system path (sockets, state file)."""
_COOKIE = re.compile(r"[A-Za-z0-9!$%&*+.^_|~-]{1,64}")
"""Cookie names usable unquoted, also inside ``req.cook(...)``: the RFC 6265 token set minus
``'``, ``#`` and backtick, which HAProxy's parser would treat as quote, comment or worse."""
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
"""Keywords chosen by the driver itself (balance algorithm, mode, HTTP method)."""
_REGEX = re.compile(r"\^\(\?:[0-9\[\]|-]{1,1000}\)\$")
"""The expected-status regex built by :func:`lbaas.drivers.haproxy.render.status_regex`."""


def _match(kind: str, pattern: re.Pattern[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise UnsafeValueError(kind, value)
        return value

    return check


def _int(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsafeValueError("int", value, "not an integer")
    if not 0 <= value <= 100_000_000:
        raise UnsafeValueError("int", value, "out of range")
    return str(value)


def _port(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UnsafeValueError("port", value)
    return str(value)


def _ip(value: Any) -> str:
    """An IP literal, IPv6 in brackets (HAProxy's ``addr`` keyword insists on them)."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Fa-f:.]{2,45}", value):
        raise UnsafeValueError("address", value)
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError as exc:
        raise UnsafeValueError("address", value, "not an IP address") from exc
    return f"[{parsed.compressed}]" if parsed.version == 6 else parsed.compressed


def _path(value: Any) -> str:
    """A URL path; ``'`` would open a quoted string, so it is backslash-escaped (verified to
    reach the server unchanged)."""
    return _match("path", _PATH)(value).replace("'", "\\'")


_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}")
"""An RFC 7230 token (header names as a config word: ``set-header <name> ...``)."""
_ARG = re.compile(r"[A-Za-z0-9!#$%&*+.^_`|~-]{1,256}")
"""A header or query parameter name inside a fetch's parentheses (``req.fhdr(<name>)``):
the token set without ``'``, which HAProxy's argument parser reads as a quote."""
_TEXT = re.compile(r"[\x20-\x7e]{1,1024}")
"""A tenant's literal (header value, path, pattern): printable ASCII, escaped by
:func:`_word`."""
_HOST = re.compile(r"\.?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A lower-case DNS name, or a suffix ``.example.com`` (what ``*.example.com`` ends with)."""
_MAP = re.compile(r"maps/[A-Za-z0-9_.-]{1,240}\.map")
"""A map file, relative to the state dir (``default-path origin``)."""
_MAP_KEY = re.compile(r"\^[A-Za-z0-9/\\^$()|*+?.\[\]-]{1,4096}")
"""A regular expression the driver built for a map file: escapes (``\\xHH``), classes and
groups; no space, quote, ``#``, ``%`` or ``;``, nothing any layer (file, CLI) reads."""
_SPECIAL = {"\\": "\\\\", " ": "\\ ", "#": "\\#", "'": "\\'", '"': '\\"'}
"""What HAProxy's configuration parser reads in an unquoted word, and its escape (``$`` is
read only between double quotes, which this never writes)."""


def _word(value: str) -> str:
    """``value`` as one unquoted configuration word that reads back as exactly itself."""
    return "".join(_SPECIAL.get(c, c) for c in value)


def _escaped(
    kind: str, pattern: re.Pattern[str], *, log_format: bool = False
) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise UnsafeValueError(kind, value)
        return _word(value.replace("%", "%%") if log_format else value)

    return check


_KINDS: dict[str, Callable[[Any], str]] = {
    "name": _match("name", _NAME),
    "path": _path,
    "file": _match("file", _FILE),
    "cookie": _match("cookie", _COOKIE),
    "word": _match("word", _WORD),
    "regex": _match("regex", _REGEX),
    "int": _int,
    "port": _port,
    "ip": _ip,
    "header": _escaped("header", _HEADER),
    "arg": _escaped("argument", _ARG),
    "text": _escaped("text", _TEXT),
    "format": _escaped("log-format text", _TEXT, log_format=True),
    "host": _match("host", _HOST),
    "map": _match("map", _MAP),
    "mapkey": _match("map key", _MAP_KEY),
}
KINDS = frozenset(_KINDS)


def token(value: Any, kind: str) -> Token:
    """Check ``value`` as a token of ``kind``; raise :class:`UnsafeValueError` if it is not."""
    try:
        check = _KINDS[kind]
    except KeyError:
        raise UnsafeValueError(kind, value, "unknown token kind") from None
    return Token(check(value))


def finalize(value: Any) -> Any:
    """jinja2 ``finalize``: only checked tokens may be printed."""
    if isinstance(value, Token):
        return value
    raise UnsafeValueError("unfiltered", value, "template printed a value without `tok`")
