"""What the driver keeps in a device's state dir besides Envoy's own files.

- ``trees/<namespace>__<name>.json``: each load balancer's tree (``documents.to_document``: keys
  only as fingerprints), the source of truth: a new driver instance renders every Envoy file
  again from these (and the SDS files, which hold the keys).
- ``driver-state.json``: counters and the trees left out of the device's files, and why.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lbaas.drivers.documents import from_document, to_document
from lbaas.drivers.envoy.render.names import key_of_stem, stem
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.files import atomic_write, read_text


def tree_file(directory: Path, key: str) -> Path:
    return directory / f"{stem(key)}.json"


def dump_tree(lb: LoadBalancer) -> str:
    return json.dumps(to_document(lb), indent=1, sort_keys=True) + "\n"


def load_tree(text: str) -> LoadBalancer:
    tree: LoadBalancer = from_document(LoadBalancer, json.loads(text))
    return tree


class TreeCache:
    """Stored trees keyed by path and (inode, mtime, size): a device with hundreds of trees is
    not parsed again on every apply."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, int, int], LoadBalancer]] = {}

    def load_all(self, directory: Path) -> tuple[dict[str, LoadBalancer], dict[str, str]]:
        """(key → tree, key → why unreadable): one broken file blocks nothing but itself."""
        trees: dict[str, LoadBalancer] = {}
        broken: dict[str, str] = {}
        seen: set[Path] = set()
        for path in sorted(directory.glob("*.json")):
            try:
                stat = path.stat()
                stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
                cached = self._entries.get(path)
                if cached is None or cached[0] != stamp:
                    cached = (stamp, load_tree(path.read_text()))
                    self._entries[path] = cached
            except FileNotFoundError:
                continue
            except (ValueError, KeyError, TypeError) as exc:
                broken[key_of_stem(path.stem)] = f"unreadable tree file {path.name}: {exc}"
                continue
            trees[cached[1].key] = cached[1]
            seen.add(path)
        for gone in set(self._entries) - seen:
            del self._entries[gone]
        return trees, broken

    def remember(self, path: Path, tree: LoadBalancer) -> None:
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            self._entries[path] = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), tree)


@dataclass
class DriverState:
    """``driver-state.json``: small, written when it changes."""

    starts: int = 0
    pushes: int = 0
    """LDS/CDS files written (a batch writes one of each, and a second CDS when clusters went
    away)."""
    rounds: int = 0
    """Calls that changed listeners or clusters (however many LDS/CDS files each wrote): the
    kin of an HAProxy reload; a member change (EDS) is none."""
    parked: dict[str, str] = field(default_factory=dict)
    """Tree key → why it is left out of the device's files (reported by ``verify``)."""

    @classmethod
    def load(cls, path: Path) -> DriverState:
        try:
            data = json.loads(read_text(path) or "{}")
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return cls()

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=1, sort_keys=True) + "\n", 0o600)
