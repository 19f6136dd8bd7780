"""A device that lives in a JSON file, whose failures a test controls.

Installed through the real entry-point mechanism, exactly as a vendor's driver would be.
Device ``spec.config``:

- ``stateFile`` (required): the "device": JSON ``{"listeners": {"addr:port": tree},
  "applies": N, "deletes": N, "duplicates": [...], "fence": N}``. A VIP found on the device
  under another address:port than the one being applied is recorded in ``duplicates``: that
  is the stale config an operator that re-allocates after a restart would leave behind.
- ``controlFile`` (optional): JSON the test rewrites at will:
  ``{"fail": {"apply"|"delete"|"probe"|"verify": {"message": str, "retryable": bool,
  "match": str}}, "delay": seconds, "applyDelayPerVip": seconds, "notReady": bool,
  "memberStatus": {name: status}}`` (``applyDelayPerVip``: a vendor API that takes one call
  per VIP; VIPs the call deadline leaves no time for fail retryably).
  ``match`` is a substring of the VIP key ("ns/name"); absent = every call fails.
- ``callLog`` (optional): a file to which every call appends one JSON line
  ``{"op", "device", "owner", "fence", "start", "end", "vips"}`` (``start``/``end`` are
  ``time.monotonic()``, the same clock for every process of the host): the proof that two
  agents' calls on one device never overlap.
- ``pick`` (optional): ``select_device`` chooses this device whenever it is eligible.
- ``credentialsKey`` (optional): the key its credentials (the Device's credentialsSecretRef)
  must have; without it every call fails ``CredentialsUnavailable``. The state file records
  the keys it received and the SHA-256 of each value (``credentials``), never a value.

Control for the secret-hygiene tests: a ``fail`` entry with ``"echoCredentials": true`` puts
every credential value into the error's message and detail (a careless vendor SDK), and
``"crash": {"apply"|"probe": true}`` raises a plain ``RuntimeError`` that does the same.

Like a real device it remembers the highest fence (``DeviceHandle.fence``) it has seen and
refuses calls from an older owner, and it honours the call deadline: a ``delay`` longer than
the time left ends the call at its deadline with a retryable ``DriverTimeout``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberOperatingStatus, MemberSpec
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
    StaleOwnerError,
    remaining,
)

_LOCK = threading.Lock()


_PARSED: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
"""path -> ((inode, mtime, size), parsed): a device of 1,000 VIPs is not re-parsed per call."""


def _read(path: str | None, *, copy: bool = True) -> dict[str, Any]:
    """The file's JSON, re-read only when the file changed (a copy unless ``copy=False``:
    the caller then only reads it)."""
    if not path:
        return {}
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    cached = _PARSED.get(path)
    if cached is None or cached[0] != stamp:
        cached = (stamp, dict(json.loads(Path(path).read_text() or "{}")))
        _PARSED[path] = cached
    return json.loads(json.dumps(cached[1])) if copy else cached[1]


def _write(path: str, data: dict[str, Any]) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".fake-")
    with os.fdopen(fd, "w") as handle:
        # dumps, not dump: json.dump encodes in pure Python, dumps in C (10x faster here).
        handle.write(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)
    st = os.stat(path)
    _PARSED[path] = ((st.st_ino, st.st_mtime_ns, st.st_size), data)


@contextlib.contextmanager
def _editing(path: str) -> Iterator[dict[str, Any]]:
    """The device's state to change in place, written back when the block ends.

    No copy: a cold start sends hundreds of batches to a device of 100 VIPs, and copying its
    state per batch was a sixth of the operator's CPU in the scale bench. If the block fails,
    the cached state (possibly half changed) is dropped and the file stays as it was.
    """
    with _LOCK:
        state = _read(path, copy=False)
        try:
            yield state
        except BaseException:
            _PARSED.pop(path, None)
            raise
        _write(path, state)


def tree_of(lb: LoadBalancer) -> dict[str, Any]:
    return {
        "vip": lb.key,
        "address": lb.address,
        "spec": lb.spec.wire(),
        "poolName": lb.pool_name,
        "pool": lb.pool.wire() if lb.pool else None,
        "members": {m.name: m.spec.wire() for m in lb.members},
        "monitorName": lb.monitor_name,
        "monitor": lb.monitor.wire() if lb.monitor else None,
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
            MemberEntry(n, MemberSpec.model_validate(s))
            for n, s in (tree.get("members") or {}).items()
        ),
        monitor_name=tree.get("monitorName"),
        monitor=HealthMonitorSpec.model_validate(tree["monitor"]) if tree.get("monitor") else None,
    )


class FakeDriver(Driver):
    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config.get("stateFile"), str) or not config["stateFile"]:
            raise DriverError(
                "config.stateFile is required (a path the fake device writes)",
                retryable=False,
                reason="InvalidConfig",
            )

    # ---- the device's "firmware": control, fencing, the call log -----------------------------

    def _control(self, device: DeviceHandle) -> dict[str, Any]:
        return _read(device.config.get("controlFile"))

    def _delay(self, device: DeviceHandle, op: str) -> None:
        delay = float(self._control(device).get("delay", 0))
        if delay:
            left = remaining(delay)
            time.sleep(left)
            if left < delay:
                raise DriverError(f"fake {op} cut at its deadline", reason="DriverTimeout")

    def _maybe_fail(self, device: DeviceHandle, op: str, keys: Sequence[str] = ()) -> None:
        self._delay(device, op)
        self._credentials(device, op)
        failure = self._control(device).get("fail", {}).get(op)
        if failure and (not keys or any(failure.get("match", "") in k for k in keys)):
            raise self._error(device, failure, f"fake {op} failure", f"{op} {' '.join(keys)}")

    @staticmethod
    def _error(
        device: DeviceHandle, failure: dict[str, Any], default: str, what: str
    ) -> DriverError:
        message = failure.get("message", default)
        detail = f"fake driver: {what}"
        if failure.get("echoCredentials"):
            echoed = ", ".join(f"{k}={v}" for k, v in sorted(device.credentials.items()))
            message += f" (logged in with {echoed})"
            detail += f"; credentials {echoed}"
        return DriverError(message, retryable=bool(failure.get("retryable", True)), detail=detail)

    def _credentials(self, device: DeviceHandle, op: str) -> None:
        """What a vendor driver does with credentials: needs its key, may crash on them."""
        if self._control(device).get("crash", {}).get(op):
            echoed = ", ".join(sorted(device.credentials.values()))
            raise RuntimeError(f"vendor SDK crashed during {op} with session {echoed}")
        key = device.config.get("credentialsKey")
        if key and key not in device.credentials:
            ref = device.spec.credentials_secret_ref
            where = f"{ref.namespace}/{ref.name}" if ref else "(none)"
            raise DriverError(
                f"credentials Secret {where} cannot be read: it has no key {key!r}",
                retryable=False,
                reason="CredentialsUnavailable",
            )

    @staticmethod
    def _received(device: DeviceHandle, state: dict[str, Any]) -> None:
        """Proof the credentials arrived, without writing them: keys and SHA-256s only."""
        if device.credentials:
            state["credentials"] = {
                k: hashlib.sha256(v.encode()).hexdigest() for k, v in device.credentials.items()
            }

    def _fenced(self, device: DeviceHandle, state: dict[str, Any]) -> None:
        seen = int(state.get("fence", 0))
        if device.fence and device.fence < seen:
            raise StaleOwnerError(
                f"device {device.name} has seen owner fence {seen}; this call has {device.fence}"
            )
        if device.fence > seen:
            state["fence"] = device.fence

    def _logged(self, device: DeviceHandle, op: str, keys: Sequence[str], start: float) -> None:
        path = device.config.get("callLog")
        if not path:
            return
        line = {
            "op": op,
            "device": device.name,
            "owner": device.owner,
            "fence": device.fence,
            "start": start,
            "end": time.monotonic(),
            "vips": list(keys),
        }
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")

    # ---- the contract ------------------------------------------------------------------------

    def select_device(
        self, lb: LoadBalancer, candidates: Sequence[DeviceHandle]
    ) -> DeviceHandle | None:
        """The vendor's own choice: a device whose config says ``pick: true``, if any."""
        return next((c for c in candidates if c.config.get("pick")), None)

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        error = self.apply_many(device, [lb])[lb.key]
        if error is not None:
            raise error

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        start = time.monotonic()
        keys = [lb.key for lb in lbs]
        try:
            self._delay(device, "apply")
            self._credentials(device, "apply")
            outcome: dict[str, DriverError | None] = {}
            control = self._control(device)
            failure = control.get("fail", {}).get("apply")
            per_vip = float(control.get("applyDelayPerVip", 0))
            if per_vip:  # a vendor API taking one call per VIP (other devices go on meanwhile)
                done = []
                for lb in lbs:
                    if remaining(per_vip) < per_vip:
                        outcome[lb.key] = DriverError(
                            "fake apply: no time left in this call", reason="Deferred"
                        )
                        continue
                    time.sleep(per_vip)
                    done.append(lb)
                lbs = done
            with _editing(device.config["stateFile"]) as state:
                self._fenced(device, state)
                self._received(device, state)
                for lb in lbs:
                    if failure and failure.get("match", "") in lb.key:
                        outcome[lb.key] = self._error(device, failure, "fake apply failure", lb.key)
                        continue
                    outcome[lb.key] = self._put(state, lb)
                state["applies"] = state.get("applies", 0) + 1
                state["batches"] = state.get("batches", 0) + 1
            return outcome
        finally:
            self._logged(device, "apply", keys, start)

    @staticmethod
    def _put(state: dict[str, Any], lb: LoadBalancer) -> DriverError | None:
        listener = f"{lb.address}:{lb.spec.port}"
        listeners: dict[str, Any] = state.setdefault("listeners", {})
        owner = listeners.get(listener)
        if owner and owner["vip"] != lb.key:
            return DriverError(
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
        listeners[listener] = tree_of(lb)
        return None

    def delete(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        start = time.monotonic()
        try:
            self._maybe_fail(device, "delete", [lb.key])
            with _editing(device.config["stateFile"]) as state:
                self._fenced(device, state)
                listeners = state.setdefault("listeners", {})
                for name, existing in list(listeners.items()):
                    if existing["vip"] == lb.key:
                        del listeners[name]
                state["deletes"] = state.get("deletes", 0) + 1
        finally:
            self._logged(device, "delete", [lb.key], start)

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        self._maybe_fail(device, "verify", [lb.key])
        listeners = _read(device.config["stateFile"], copy=False).get("listeners", {})
        found = listeners.get(f"{lb.address}:{lb.spec.port}")
        if found is None or found.get("vip") != lb.key:
            return [Drift("Missing", f"the device does not serve {lb.key}")]
        if found != tree_of(lb):
            changed = sorted(k for k, v in tree_of(lb).items() if found.get(k) != v)
            return [Drift("ConfigChanged", f"{lb.key} differs in {', '.join(changed)}")]
        return []

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[LoadBalancer]:
        listeners = _read(device.config["stateFile"]).get("listeners", {})
        return [lb_of(tree) for tree in listeners.values() if tree["vip"] not in expected]

    def probe(self, device: DeviceHandle) -> ProbeResult:
        start = time.monotonic()
        try:
            control = self._control(device)
            self._credentials(device, "probe")
            failure = control.get("fail", {}).get("probe")
            if failure:
                raise self._error(device, failure, "probe failed", "probe")
            if control.get("notReady"):
                return ProbeResult(False, "fake device reports not ready")
            return ProbeResult(True, "fake device ready")
        finally:
            self._logged(device, "probe", [], start)

    def member_status(
        self, device: DeviceHandle, lb: LoadBalancer
    ) -> Mapping[str, MemberOperatingStatus]:
        control = self._control(device)
        if control.get("fail", {}).get("memberStatus"):
            raise DriverError("fake member status unreadable")
        wanted = control.get("memberStatus", {})
        return {
            m.name: MemberOperatingStatus(wanted[m.name]) for m in lb.members if m.name in wanted
        }
