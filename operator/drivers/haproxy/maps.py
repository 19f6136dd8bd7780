"""The L7 map files of a device (``l7``): on disk for the next start, in the running HAProxy
changed without a reload.

A map's running content is replaced atomically: ``prepare map`` opens a new version, ``add
map @<version> <map> <<`` fills it in one command (the payload, one entry per line), ``commit
map @<version>`` swaps it in; requests see the old map or the new one, never a half. A
listener's split map is committed twice around its segments (old and new split entries
together, then the new ones alone), so that a segment entry never names a split the split map
does not hold yet, or any more.

Keys and values are the driver's own (regular expressions of ``\\xHH`` escapes, backend
names, ``s<digest>/<bucket>``): nothing in them is read by the file's or the CLI's parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lbaas.drivers.haproxy.l7 import MapFile
from lbaas.drivers.haproxy.runtime import CLIError, command, expect_empty
from lbaas.drivers.toolkit.files import read_text

_VERSION = re.compile(r"New version created: (\d+)")
_ENTRY = re.compile(r"^0x[0-9a-f]+ (\S+) (\S+)$")


def files(root: Path, maps: Iterable[MapFile]) -> dict[Path, str]:
    """Path → text of ``maps`` (names relative to the state dir ``root``)."""
    return {root / m.name: m.text for m in maps}


def changed(root: Path, maps: Iterable[MapFile]) -> list[MapFile]:
    """The maps whose file on disk is not what ``maps`` say (what the running HAProxy loaded,
    or was last given)."""
    return [m for m in maps if read_text(root / m.name) != m.text]


def replace(socket: Path, entries: MapFile) -> None:
    """Make the running map ``entries.name`` hold exactly ``entries.entries``, atomically."""
    answer = command(socket, f"prepare map {entries.name}")
    found = _VERSION.search(answer)
    if found is None:
        raise CLIError(f"prepare map {entries.name}: {answer.strip()!r}")
    version = found[1]
    if entries.entries:
        lines = [f"{key} {value}" for key, value in entries.entries]
        added = command(socket, f"add map @{version} {entries.name}", payload=lines).strip()
        if added:
            raise CLIError(f"add map @{version} {entries.name}: {added!r}")
    expect_empty(socket, f"commit map @{version} {entries.name}")


def sync(socket: Path, root: Path, maps: tuple[MapFile, ...]) -> dict[Path, str]:
    """Send the running HAProxy the maps that differ from their files (split maps around the
    segments, see the module docstring); the files to write. Raises :class:`CLIError`."""
    stale = changed(root, maps)
    if not stale:
        return {}
    splits = [m for m in stale if m.name.endswith("split.map")]
    for split in splits:
        old = _entries(read_text(root / split.name))
        both = dict(old) | dict(split.entries)
        replace(socket, MapFile(split.name, tuple(both.items())))
    for segment in (m for m in stale if m not in splits):
        replace(socket, segment)
    for split in splits:
        replace(socket, split)
    return files(root, stale)


def running(socket: Path, name: str, timeout: float = 2.0) -> tuple[tuple[str, str], ...]:
    """The entries the running HAProxy holds in map ``name``, in order."""
    answer = command(socket, f"show map {name}", timeout)
    if "Unknown map identifier" in answer:
        raise CLIError(f"HAProxy has no map {name}")
    return tuple(
        (found[1], found[2]) for line in answer.splitlines() if (found := _ENTRY.match(line))
    )


def _entries(text: str | None) -> list[tuple[str, str]]:
    pairs = []
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key and value:
            pairs.append((key, value))
    return pairs
