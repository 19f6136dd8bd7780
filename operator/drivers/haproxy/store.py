"""What the driver keeps in a device's state dir, written atomically.

``vips/<namespace>__<name>.json`` holds each VIP's desired tree, so the whole configuration can
be rendered again by a new operator process; ``driver-state.json`` holds what the running
HAProxy was last given (structure digest, runtime values) and the reload counter.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec
from lbaas.drivers.base import LoadBalancer, MemberEntry
from lbaas.drivers.haproxy.render import ServerRuntime


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    """Readers see the old file or the new one, never a torn one (tempfile + os.replace)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def restore(path: Path, text: str | None) -> None:
    """Put back what ``read_text`` returned before a failed change (None = no file)."""
    if text is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        atomic_write(path, text)


def vip_file(directory: Path, lb: LoadBalancer) -> Path:
    return directory / f"{lb.namespace}__{lb.name}.json"


def dump_tree(lb: LoadBalancer) -> str:
    tree = {
        "namespace": lb.namespace,
        "name": lb.name,
        "address": lb.address,
        "spec": lb.spec.wire(),
        "poolName": lb.pool_name,
        "pool": lb.pool.wire() if lb.pool else None,
        "members": [{"name": m.name, "spec": m.spec.wire()} for m in lb.members],
        "monitorName": lb.monitor_name,
        "monitor": lb.monitor.wire() if lb.monitor else None,
    }
    return json.dumps(tree, indent=1, sort_keys=True) + "\n"


def load_tree(text: str) -> LoadBalancer:
    """Parse and re-validate a stored tree (a file edited by hand is checked like the API)."""
    tree = json.loads(text)
    return LoadBalancer(
        namespace=str(tree["namespace"]),
        name=str(tree["name"]),
        address=str(tree["address"]),
        spec=VIPSpec.model_validate(tree["spec"]),
        pool_name=tree.get("poolName"),
        pool=PoolSpec.model_validate(tree["pool"]) if tree.get("pool") else None,
        members=tuple(
            MemberEntry(str(m["name"]), MemberSpec.model_validate(m["spec"]))
            for m in tree.get("members", ())
        ),
        monitor_name=tree.get("monitorName"),
        monitor=HealthMonitorSpec.model_validate(tree["monitor"]) if tree.get("monitor") else None,
    )


class TreeCache:
    """Parsed VIP files keyed by path and (inode, mtime, size): a device with hundreds of VIPs
    is not re-parsed on every apply."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, int, int], LoadBalancer]] = {}

    def load_all(self, directory: Path) -> dict[str, LoadBalancer]:
        trees: dict[str, LoadBalancer] = {}
        if not directory.is_dir():
            return trees
        for path in sorted(directory.glob("*.json")):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            cached = self._entries.get(path)
            if cached is None or cached[0] != stamp:
                cached = (stamp, load_tree(path.read_text()))
                self._entries[path] = cached
            trees[cached[1].key] = cached[1]
        return trees


@dataclass
class DriverState:
    """``driver-state.json``: what the running HAProxy holds, as far as this driver knows."""

    reloads: int = 0
    starts: int = 0
    runtime_updates: int = 0
    structure: str = ""
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_reload: bool = False

    @classmethod
    def load(cls, path: Path) -> DriverState:
        text = read_text(path)
        if not text:
            return cls(pending_reload=True)
        try:
            data = json.loads(text)
            return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return cls(pending_reload=True)

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=1, sort_keys=True) + "\n", 0o600)

    def runtime(self) -> dict[str, ServerRuntime]:
        return {
            k: ServerRuntime(int(v["weight"]), bool(v["enabled"])) for k, v in self.servers.items()
        }

    def set_runtime(self, servers: dict[str, ServerRuntime]) -> None:
        self.servers = {k: asdict(v) for k, v in servers.items()}
