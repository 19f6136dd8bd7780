"""A minimal lbaas-operator driver (contract 1): the device is a directory of JSON files.

Device ``spec.config``: ``directory`` (required, absolute): where the "device" keeps one file
per load balancer (``<namespace>__<name>.json``, the tree as ``to_document`` writes it) and
``owner.json`` (the highest fence seen). A real driver talks to its device's API where this
one reads and writes files; the shape stays the same.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

from lbaas.drivers.contract import DeviceHandle, Drift, Driver, ProbeResult
from lbaas.drivers.documents import to_document
from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.fence import DeviceDir
from lbaas.drivers.toolkit.files import atomic_write, read_text


def _file(key: str) -> str:
    namespace, _, name = key.partition("/")
    return f"{namespace}__{name}.json"


def _listens(doc: Mapping[str, Any]) -> set[tuple[str, int]]:
    return {(doc["address"], listener["port"]) for listener in doc.get("listeners", [])}


class SkeletonDriver(Driver):
    """Stores each tree; refuses an address:port another tree holds."""

    features: ClassVar[frozenset[str]] = frozenset(
        {
            "protocol.tcp",
            "protocol.http",
            "method.round-robin",
            "method.least-connections",
            "member.weight",
            "member.admin-state",
            "pool.admin-state",
            "listener.admin-state",
            "monitor.tcp",
            "monitor.http",
            "ops.verify",
            "ops.orphans",
            "ops.fencing",
        }
    )

    def __init__(self) -> None:
        self._dirs = DeviceDir()

    def validate_config(self, config: Mapping[str, Any]) -> None:
        directory = config.get("directory")
        if not isinstance(directory, str) or not os.path.isabs(directory):
            raise DriverError(
                "config.directory must be an absolute path",
                retryable=False,
                reason=Reason.INVALID_CONFIG,
            )

    def _root(self, device: DeviceHandle) -> Path:
        self.validate_config(device.config)
        root = Path(device.config["directory"])
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _stored(self, root: Path) -> dict[str, dict[str, Any]]:
        """Every tree on the device, by key."""
        found = {}
        for path in root.glob("*__*.json"):
            doc = json.loads(read_text(path) or "{}")
            found[f"{doc['namespace']}/{doc['name']}"] = doc
        return found

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        root = self._root(device)
        with self._dirs.session(root, device):
            doc = to_document(lb)
            for key, other in self._stored(root).items():
                if key != lb.key and (clash := _listens(doc) & _listens(other)):
                    address, port = sorted(clash)[0]
                    raise DriverError(
                        f"{address}:{port} is already used by {key} on this device",
                        retryable=False,
                        reason=Reason.ADDRESS_IN_USE,
                    )
            atomic_write(root / _file(lb.key), json.dumps(doc, sort_keys=True))

    def delete(self, device: DeviceHandle, key: str) -> None:
        root = self._root(device)
        with self._dirs.session(root, device):
            (root / _file(key)).unlink(missing_ok=True)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        root = self._root(device)
        if not os.access(root, os.W_OK):
            return ProbeResult(False, f"{root} is not writable")
        return ProbeResult(True, f"{root} holds {len(self._stored(root))} load balancers")

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        root = self._root(device)
        text = read_text(root / _file(lb.key))
        if text is None:
            return [Drift("Missing", f"the device holds nothing for {lb.key}")]
        if json.loads(text) != to_document(lb):
            return [Drift("ConfigChanged", f"the device holds another {lb.key}")]
        return []

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        return sorted(set(self._stored(self._root(device))) - set(expected))

    def conformance_disturb(self, device: DeviceHandle, key: str) -> None:
        """The conformance kit's drift hook: change the device behind the driver's back."""
        path = self._root(device) / _file(key)
        doc = json.loads(read_text(path) or "{}")
        doc["pools"] = []
        atomic_write(path, json.dumps(doc))
