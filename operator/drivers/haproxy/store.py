"""What the driver keeps in a device's state dir, each file replaced atomically.

- ``vips/<namespace>__<name>.json``: each VIP's desired tree, the source of truth: a new
  operator process renders the whole configuration again from these files. The tree is the
  driver data model's document (``documents.to_document``) with a ``version``; files of the 0.1
  driver are still read (``upgrade``).
- ``conf.d/<namespace>__<name>.cfg``: what HAProxy loads for each VIP (rendered from the above).
- ``driver-state.json``: counters, the master pid and reload count seen at the driver's last
  reload (a different one means somebody else reloaded), the VIPs left out of the
  configuration and why, and ``pending_reload``: set *before* any file changes for a reload and
  cleared once the new worker serves, so that a process killed in between leaves a trace that
  the next driver instance acts on.
- ``owner.json``: the highest fence seen (``DeviceHandle.fence``, kept by
  ``lbaas.drivers.toolkit.fence``).

Every file is replaced atomically (``lbaas.drivers.toolkit.files``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lbaas.drivers.documents import from_document, to_document
from lbaas.drivers.haproxy.upgrade import is_v0, tree_from_v0
from lbaas.drivers.model import MODEL_VERSION, LoadBalancer
from lbaas.drivers.toolkit.files import atomic_write, read_text


def file_stem(key: str) -> str:
    """``namespace/name`` → ``namespace__name`` (a DNS label holds no ``_``: unambiguous)."""
    namespace, _, name = key.partition("/")
    return f"{namespace}__{name}"


def key_of(path: Path) -> str:
    namespace, _, name = path.stem.partition("__")
    return f"{namespace}/{name}"


TREE_VERSION = MODEL_VERSION
"""The ``version`` of a VIP file: the driver data model's (``lbaas.drivers.model``)."""


def dump_tree(lb: LoadBalancer) -> str:
    """A VIP file: ``{"version": 1, "tree": documents.to_document(lb)}`` (no key material: a
    ``Sensitive`` value is stored as its fingerprint)."""
    document = {"version": TREE_VERSION, "tree": to_document(lb)}
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def load_tree(text: str) -> LoadBalancer:
    """Parse and check a stored tree (a file edited by hand is checked like any document);
    a file of the 0.1 driver is read as the model (``upgrade``)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("a VIP file holds an object")
    if is_v0(data):
        return tree_from_v0(data)
    if data.get("version") != TREE_VERSION:
        raise ValueError(
            f"VIP file version {data.get('version')!r}: this driver reads version {TREE_VERSION}"
        )
    tree = from_document(LoadBalancer, data["tree"])
    assert isinstance(tree, LoadBalancer)
    return tree


class TreeCache:
    """Parsed VIP files keyed by path and (inode, mtime, size): a device with hundreds of VIPs
    is not re-parsed on every structural apply."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, int, int], LoadBalancer]] = {}

    def load_all(self, directory: Path) -> tuple[dict[str, LoadBalancer], dict[str, str]]:
        """(key → tree, key → why unreadable): one broken file blocks nothing but itself."""
        trees: dict[str, LoadBalancer] = {}
        broken: dict[str, str] = {}
        seen: set[Path] = set()
        if not directory.is_dir():
            return trees, broken
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
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                broken[key_of(path)] = f"unreadable VIP file {path.name}: {exc}"
                continue
            trees[cached[1].key] = cached[1]
            seen.add(path)
        for gone in set(self._entries) - seen:  # files removed since
            del self._entries[gone]
        return trees, broken

    def remember(self, path: Path, tree: LoadBalancer) -> None:
        """``tree`` was just written to ``path`` by this process: the next ``load_all`` need
        not parse it back (a batch of 1,000 VIPs is not re-read by the next plan)."""
        with contextlib.suppress(FileNotFoundError):
            stat = path.stat()
            self._entries[path] = ((stat.st_ino, stat.st_mtime_ns, stat.st_size), tree)


@dataclass
class DriverState:
    """``driver-state.json``: small, written on every change (never per VIP)."""

    reloads: int = 0
    starts: int = 0
    runtime_updates: int = 0
    pending_reload: bool = False
    master_pid: int = 0
    master_reloads: int = -1
    """The master and its reload count right after the driver's last reload or start."""
    parked: dict[str, str] = field(default_factory=dict)
    """VIP key → why it is left out of the configuration (reported by ``verify``)."""

    @classmethod
    def load(cls, path: Path) -> DriverState:
        text = read_text(path)
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return cls(pending_reload=True)

    def save(self, path: Path, durable: bool = True) -> None:
        """``durable=False`` for counters only; an intent (``pending_reload``) is synced."""
        text = json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"
        atomic_write(path, text, 0o600, durable)

    def matches(self, master_pid: int, reloads: int) -> bool:
        """The running master is the one the driver last reloaded, and nobody reloaded it."""
        return (self.master_pid, self.master_reloads) == (master_pid, reloads)
