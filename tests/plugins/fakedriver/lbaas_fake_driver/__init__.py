"""A device that lives in a JSON file, whose failures a test controls.

Installed through the real entry-point mechanism, exactly as a vendor's driver would be.
Device ``spec.config``:

- ``stateFile`` (required): the "device": JSON ``{"listeners": {"addr:port": tree},
  "applies": N, "deletes": N, "duplicates": [...]}``. A VIP found on the device under
  another address:port than the one being applied is recorded in ``duplicates``: that is
  the stale config an operator that re-allocates after a restart would leave behind.
- ``controlFile`` (optional): JSON the test rewrites at will:
  ``{"fail": {"apply"|"delete"|"probe": {"message": str, "retryable": bool, "match": str}},
  "delay": seconds, "notReady": bool, "memberStatus": {name: status}}``.
- ``pick`` (optional): ``select_device`` chooses this device whenever it is eligible.
  ``match`` is a substring of the VIP key ("ns/name"); absent = every call fails.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lbaas.api.member import MemberOperatingStatus
from lbaas.drivers.base import DeviceHandle, Driver, DriverError, LoadBalancer, ProbeResult

_LOCK = threading.Lock()


def _read(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        return dict(json.loads(Path(path).read_text() or "{}"))
    except FileNotFoundError:
        return {}


def _write(path: str, data: dict[str, Any]) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fake-")
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


class FakeDriver(Driver):
    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config.get("stateFile"), str) or not config["stateFile"]:
            raise DriverError(
                "config.stateFile is required (a path the fake device writes)",
                retryable=False,
                reason="InvalidConfig",
            )

    def _control(self, device: DeviceHandle) -> dict[str, Any]:
        return _read(device.config.get("controlFile"))

    def _maybe_fail(self, device: DeviceHandle, op: str, key: str = "") -> None:
        control = self._control(device)
        delay = float(control.get("delay", 0))
        if delay:
            time.sleep(delay)
        failure = control.get("fail", {}).get(op)
        if failure and failure.get("match", "") in key:
            raise DriverError(
                failure.get("message", f"fake {op} failure"),
                retryable=bool(failure.get("retryable", True)),
                detail=f"fake driver: {op} {key}",
            )

    def select_device(
        self, lb: LoadBalancer, candidates: Sequence[DeviceHandle]
    ) -> DeviceHandle | None:
        """The vendor's own choice: a device whose config says ``pick: true``, if any."""
        return next((c for c in candidates if c.config.get("pick")), None)

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        self._maybe_fail(device, "apply", lb.key)
        listener = f"{lb.address}:{lb.spec.port}"
        tree = {
            "vip": lb.key,
            "address": lb.address,
            "spec": lb.spec.wire(),
            "pool": lb.pool.wire() if lb.pool else None,
            "members": {m.name: m.spec.wire() for m in lb.members},
            "monitor": lb.monitor.wire() if lb.monitor else None,
        }
        with _LOCK:
            state = _read(device.config["stateFile"])
            listeners: dict[str, Any] = state.setdefault("listeners", {})
            owner = listeners.get(listener)
            if owner and owner["vip"] != lb.key:
                raise DriverError(
                    f"{listener} is already used by {owner['vip']} on this device",
                    retryable=False,
                    reason="AddressInUse",
                )
            for other, existing in list(listeners.items()):
                if existing["vip"] == lb.key and other != listener:
                    state.setdefault("duplicates", []).append(
                        {"vip": lb.key, "stale": other, "new": listener}
                    )
                    del listeners[other]
            listeners[listener] = tree
            state["applies"] = state.get("applies", 0) + 1
            _write(device.config["stateFile"], state)

    def delete(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        self._maybe_fail(device, "delete", lb.key)
        with _LOCK:
            state = _read(device.config["stateFile"])
            listeners = state.setdefault("listeners", {})
            for name, existing in list(listeners.items()):
                if existing["vip"] == lb.key:
                    del listeners[name]
            state["deletes"] = state.get("deletes", 0) + 1
            _write(device.config["stateFile"], state)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        control = self._control(device)
        failure = control.get("fail", {}).get("probe")
        if failure:
            raise DriverError(failure.get("message", "probe failed"))
        if control.get("notReady"):
            return ProbeResult(False, "fake device reports not ready")
        return ProbeResult(True, "fake device ready")

    def member_status(
        self, device: DeviceHandle, lb: LoadBalancer
    ) -> Mapping[str, MemberOperatingStatus]:
        wanted = self._control(device).get("memberStatus", {})
        return {
            m.name: MemberOperatingStatus(wanted[m.name]) for m in lb.members if m.name in wanted
        }
