"""A driver written against the deprecated contract 0 (``lbaas.drivers.base``), as in 0.1.

It receives the API's specs (``lb.spec``, ``lb.pool``, ``lb.members``...) and keeps each VIP in
a JSON file (``config.stateFile``): ``{"listeners": {"addr:port": tree}}``. The registry loads
it with a deprecation warning and wraps it in the compatibility shim
(``lbaas.drivers.legacy.LegacyDriver``); the conformance kit's contract layer proves the shim
serves it (``tests/conformance``). A trimmed copy of the test driver before its port.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from lbaas.api.member import MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import VIPSpec
from lbaas.drivers.base import (
    DeviceHandle,
    Drift,
    Driver,
    DriverError,
    LoadBalancer,
    MemberEntry,
    ProbeResult,
)

_LOCK = threading.Lock()


def _read(path: str) -> dict[str, Any]:
    try:
        return dict(json.loads(Path(path).read_text() or "{}"))
    except FileNotFoundError:
        return {}


def _write(path: str, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".legacy-")
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def tree_of(lb: LoadBalancer) -> dict[str, Any]:
    return {
        "vip": lb.key,
        "address": lb.address,
        "spec": lb.spec.wire(),
        "poolName": lb.pool_name,
        "pool": lb.pool.wire() if lb.pool else None,
        "members": {m.name: m.spec.wire() for m in lb.members},
    }


def lb_of(tree: Mapping[str, Any]) -> LoadBalancer:
    namespace, _, name = str(tree["vip"]).partition("/")
    return LoadBalancer(
        namespace=namespace,
        name=name,
        address=str(tree["address"]),
        spec=VIPSpec.model_validate(tree["spec"]),
        pool_name=tree.get("poolName"),
        pool=PoolSpec.model_validate(tree["pool"]) if tree.get("pool") else None,
        members=tuple(
            MemberEntry(n, MemberSpec.model_validate(s)) for n, s in tree["members"].items()
        ),
    )


class LegacyFileDriver(Driver):
    supported_protocols = frozenset({"TCP", "HTTP"})

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config.get("stateFile"), str) or not config["stateFile"]:
            raise DriverError(
                "config.stateFile is required", retryable=False, reason="InvalidConfig"
            )

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        error = self.apply_many(device, [lb])[lb.key]
        if error is not None:
            raise error

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        path = device.config["stateFile"]
        outcome: dict[str, DriverError | None] = {}
        with _LOCK:
            state = _read(path)
            listeners = state.setdefault("listeners", {})
            for lb in lbs:
                where = f"{lb.address}:{lb.spec.port}"
                owner = listeners.get(where)
                if owner and owner["vip"] != lb.key:
                    outcome[lb.key] = DriverError(
                        f"{where} is already used by {owner['vip']}",
                        retryable=False,
                        reason="AddressInUse",
                    )
                    continue
                for other in [k for k, v in listeners.items() if v["vip"] == lb.key]:
                    del listeners[other]
                listeners[where] = tree_of(lb)
                outcome[lb.key] = None
            _write(path, state)
        return outcome

    def delete(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        path = device.config["stateFile"]
        with _LOCK:
            state = _read(path)
            listeners = state.setdefault("listeners", {})
            for where in [k for k, v in listeners.items() if v["vip"] == lb.key]:
                del listeners[where]
            _write(path, state)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        return ProbeResult(True, "the file is the device")

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        found = (
            _read(device.config["stateFile"])
            .get("listeners", {})
            .get(f"{lb.address}:{lb.spec.port}")
        )
        if found is None or found["vip"] != lb.key:
            return [Drift("Missing", f"the device does not serve {lb.key}")]
        return [] if found == tree_of(lb) else [Drift("ConfigChanged", f"{lb.key} differs")]

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[LoadBalancer]:
        listeners = _read(device.config["stateFile"]).get("listeners", {})
        return [lb_of(tree) for tree in listeners.values() if tree["vip"] not in expected]
