"""Finding a secret value wherever it went, however it was encoded (issue 10, issue 22).

:data:`ENCODINGS` is the one list of the forms a value is searched in: as is, base64 and its
URL-safe variant (at each of the three alignments a value can take inside a longer encoded
blob: a Secret's ``data`` map or a JSON document encoded whole), and hex. :func:`files`
reads every regular file under some directories (a driver's state, call log, rendered
configuration), so that a place is a directory, not a list of names someone must keep
current. The tests that use it: ``tests/integration/test_secret_canary.py`` (credentials);
``tests/unit/test_canary.py`` shows each encoding is found at every offset.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path


def _aligned(encode: Callable[[bytes], bytes]) -> Callable[[bytes], list[bytes]]:
    """The parts of ``encode(prefix + value + suffix)`` that depend on ``value`` alone, for
    the three lengths of prefix modulo 3 (base64 encodes 3 bytes at a time)."""

    def forms(value: bytes) -> list[bytes]:
        found = []
        for offset in range(3):
            encoded = encode(b"\0" * offset + value)
            first = (offset * 4 + 2) // 3  # characters that carry some prefix bits
            whole = (offset + len(value)) // 3 * 4  # characters of complete groups only
            found.append(encoded[first:whole])
        return found

    return forms


ENCODINGS: dict[str, Callable[[bytes], list[bytes]]] = {
    "plain": lambda value: [value],
    "base64": _aligned(base64.b64encode),
    "base64url": _aligned(base64.urlsafe_b64encode),
    "hex": lambda value: [value.hex().encode(), value.hex().upper().encode()],
}
"""Encoding name → the byte strings to look for. Add an encoding here and every search has it."""


def leaks(secrets: Iterable[bytes], places: Mapping[str, bytes]) -> list[str]:
    """``"<encoding> of secret <i> in <place>"`` for every form of every secret found."""
    found = []
    for i, secret in enumerate(secrets):
        for encoding, forms in ENCODINGS.items():
            for form in forms(secret):
                for where, text in places.items():
                    if form and form in text:
                        found.append(f"{encoding} of secret {i} in {where}")
    return sorted(set(found))


def files(*directories: Path) -> dict[str, bytes]:
    """Every regular file under ``directories`` (recursively) → its bytes (sockets, FIFOs
    and files gone meanwhile are left out)."""
    found = {}
    for directory in directories:
        for path in sorted(directory.rglob("*")):
            try:
                if path.is_file():
                    found[f"file {path}"] = path.read_bytes()
            except OSError:
                continue
    return found
