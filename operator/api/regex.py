"""Regular expressions tenants may write (L7Policy matches): one dialect, bounded, checked twice.

The dialect is RE2's (the API server's CEL ``matches()``, Go's ``regexp``, Envoy's), and only
the part of it that PCRE2 (HAProxy) reads the same way: RE2 already refuses what PCRE2 has
and RE2 lacks (backreferences, lookaround, atomic groups, possessive and recursive patterns,
``\\Z``), so an expression RE2 accepts means the same thing to both, with one exception
refused here: ``\\C`` (one byte in RE2, one code unit in PCRE2; Go refuses it too). Patterns
are printable ASCII (no control characters, no multi-byte characters that the two engines
would treat as bytes or code points), at most :data:`MAX_LENGTH` characters, and compile to
at most :data:`MAX_PROGRAM` RE2 instructions (a short pattern such as ``\\pL{1000}`` can be
huge).

The API server checks validity in CEL (:data:`CEL_RULE`: CEL has no "is a regex" function,
but ``matches()`` fails evaluation on an invalid pattern, and ``x || !x`` keeps that error
where ``x || true`` would swallow it); the operator checks it again with RE2 itself
(:func:`problem`), for objects that reached it some other way.
"""

from __future__ import annotations

import re

import re2

MAX_LENGTH = 1024
"""Characters in one pattern (a path or header expression)."""
MAX_PROGRAM = 10_000
"""RE2 program size (instructions) of one compiled pattern."""

PRINTABLE = r"^[\x20-\x7E]*$"
"""Printable ASCII (spaces allowed: header values have them)."""

CEL_RULE = "''.matches({value}) || !''.matches({value})"
"""A CEL expression that fails evaluation exactly when ``{value}`` is not an RE2 pattern."""
CEL_MESSAGE = "must be a valid regular expression (RE2 syntax)"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # an invalid pattern is an answer here, not a log line
_BYTE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\C")


def cel(value: str) -> str:
    """The CEL validity rule for the string at ``value`` (``self.value``)."""
    return CEL_RULE.format(value=value)


def problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used (a phrase for a status message), or None when it may."""
    if len(pattern) > MAX_LENGTH:
        return f"regular expression of {len(pattern)} characters; at most {MAX_LENGTH} are allowed"
    if not re.fullmatch(PRINTABLE, pattern):
        return "a regular expression may only hold printable ASCII characters"
    if _BYTE_ESCAPE.search(pattern):
        return r"regular expression uses \C (any byte), which engines read differently; use ."
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        text = _text(exc)
        if "too large" in text:
            return f"regular expression too complex: {text} (lower its repeat counts)"
        return f"invalid regular expression (RE2 syntax): {text}"
    if compiled.programsize > MAX_PROGRAM:
        return (
            f"regular expression too complex: it compiles to {compiled.programsize} RE2"
            f" instructions, at most {MAX_PROGRAM} are allowed (lower its repeat counts)"
        )
    return None


def check(pattern: str) -> str:
    """``pattern`` if it may be used, else ValueError saying why (a pydantic validator)."""
    why = problem(pattern)
    if why is not None:
        raise ValueError(why)
    return pattern


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else str(exc)
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)
