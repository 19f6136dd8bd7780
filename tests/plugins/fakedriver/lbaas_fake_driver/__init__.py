"""A device that lives in a JSON file, whose failures a test controls (driver contract 1).

Installed through the real entry-point mechanism, exactly as a vendor's driver would be, and
written against ``lbaas.drivers.contract`` and ``lbaas.drivers.model`` alone (no ``lbaas.api``).
Device ``spec.config``:

- ``stateFile`` (required): the "device": JSON ``{"listeners": {"addr:port": {"vip": key,
  "listener": name, "tree": to_document(lb)}}, "applies": N, "batches": N, "deletes": N,
  "duplicates": [...], "fence": N, "credentials": {...}}``: each listener of a load balancer
  holds the whole tree it belongs to (``lbaas.drivers.documents``; private keys only as
  fingerprints). A listener found on the device under another address:port than the one being
  applied is recorded in ``duplicates``: that is the stale config an operator that
  re-allocates after a restart would leave behind.
- ``controlFile`` (optional): JSON the test rewrites at will:
  ``{"fail": {"apply"|"delete"|"probe"|"verify"|"memberStatus": {"message": str,
  "retryable": bool, "match": str}}, "delay": seconds, "applyDelayPerVip": seconds,
  "notReady": bool, "memberStatus": {name: status}}`` (``applyDelayPerVip``: a vendor API that
  takes one call per VIP; VIPs the call deadline leaves no time for are ``Deferred``).
  ``match`` is a substring of the load balancer's key ("ns/name"); absent = every call fails.
  ``memberStatus`` is the health the device reports for the members it names (the others are
  left out: the operator reports them from their spec).
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

Like a real device it remembers the highest fence (``DeviceHandle.fence``) it has seen
(``fence`` in the state file) and refuses calls from an older owner, and it honours the call
deadline: a ``delay`` longer than the time left ends the call at its deadline with a retryable
``DriverTimeout``.

Features: it stores whatever tree it is given, so it declares every feature a tree can ask for
(:data:`FEATURES`), and of the operational promises those it keeps: ``ops.batch`` (one state
write per ``apply_many``), ``ops.verify``, ``ops.orphans`` and ``ops.fencing``. Not
``ops.member-status`` (its health is scripted by the control file, not observed), nor anything
about a data plane, which it does not have: the conformance kit runs it with ``traffic: false``
(``tests/conformance``), and finds drift through :meth:`FakeDriver.conformance_disturb`.
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
from typing import Any, ClassVar

from lbaas.drivers.capabilities import FEATURES as VOCABULARY
from lbaas.drivers.capabilities import OPERATIONAL
from lbaas.drivers.contract import DeviceHandle, Drift, Driver, ProbeResult, Statuses
from lbaas.drivers.deadline import remaining
from lbaas.drivers.documents import to_document
from lbaas.drivers.errors import DriverError, DriverTimeout, Reason, StaleOwnerError, deferred
from lbaas.drivers.model import LoadBalancer, MemberStatus

FEATURES = frozenset(set(VOCABULARY) - OPERATIONAL) | {
    "ops.batch",
    "ops.verify",
    "ops.orphans",
    "ops.fencing",
}

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


def entries(lb: LoadBalancer) -> dict[str, dict[str, Any]]:
    """What the device stores for ``lb``: one entry per listener, by ``address:port``."""
    tree = to_document(lb)
    return {
        f"{lb.address}:{listener.port}": {"vip": lb.key, "listener": listener.name, "tree": tree}
        for listener in lb.listeners
    }


class FakeDriver(Driver):
    features: ClassVar[frozenset[str]] = FEATURES

    def validate_config(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config.get("stateFile"), str) or not config["stateFile"]:
            raise DriverError(
                "config.stateFile is required (a path the fake device writes)",
                retryable=False,
                reason=Reason.INVALID_CONFIG,
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
                raise DriverTimeout(f"the fake device's {op} was still running")

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
            raise DriverError(
                f"the Device's credentialsSecretRef cannot be used: its Secret has no key {key!r}",
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

    @staticmethod
    def _fenced(device: DeviceHandle, state: dict[str, Any]) -> None:
        seen = int(state.get("fence", 0))
        if device.fence and device.fence < seen:
            raise StaleOwnerError(
                f"device {device.name} has seen owner fence {seen}; this call has {device.fence}"
            )
        if device.fence > seen:
            state["fence"] = device.fence

    @staticmethod
    def _logged(device: DeviceHandle, op: str, keys: Sequence[str], start: float) -> None:
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
                        outcome[lb.key] = deferred("fake apply: no time left in this call")
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
        """Store ``lb``'s listeners, or refuse it whole when another key holds one of them."""
        listeners: dict[str, Any] = state.setdefault("listeners", {})
        wanted = entries(lb)
        for where in wanted:
            owner = listeners.get(where)
            if owner and owner["vip"] != lb.key:
                return DriverError(
                    f"{where} is already used by {owner['vip']} on this device",
                    retryable=False,
                    reason=Reason.ADDRESS_IN_USE,
                )
        names = {entry["listener"] for entry in wanted.values()}
        for other, existing in list(listeners.items()):
            if existing["vip"] == lb.key and other not in wanted:
                if existing.get("listener") in names:
                    state.setdefault("duplicates", []).append(
                        {"vip": lb.key, "stale": other, "new": sorted(wanted)}
                    )
                del listeners[other]
        listeners.update(wanted)
        return None

    def delete(self, device: DeviceHandle, key: str) -> None:
        start = time.monotonic()
        try:
            self._maybe_fail(device, "delete", [key])
            with _editing(device.config["stateFile"]) as state:
                self._fenced(device, state)
                listeners = state.setdefault("listeners", {})
                for name, existing in list(listeners.items()):
                    if existing["vip"] == key:
                        del listeners[name]
                state["deletes"] = state.get("deletes", 0) + 1
        finally:
            self._logged(device, "delete", [key], start)

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        self._maybe_fail(device, "verify", [lb.key])
        listeners = _read(device.config["stateFile"], copy=False).get("listeners", {})
        drift = []
        for where, entry in entries(lb).items():
            found = listeners.get(where)
            if found is None or found.get("vip") != lb.key:
                drift.append(Drift("Missing", f"the device does not serve {lb.key} on {where}"))
            elif found != entry:
                tree = found.get("tree") or {}
                changed = sorted(k for k, v in entry["tree"].items() if tree.get(k) != v)
                changed += sorted(set(tree) - set(entry["tree"]))
                parts = ", ".join(changed) or "its listener's name"
                drift.append(Drift("ConfigChanged", f"{lb.key} on {where} differs in {parts}"))
        wanted = entries(lb)
        for where, found in listeners.items():
            if found.get("vip") == lb.key and where not in wanted:
                drift.append(Drift("StaleListener", f"{lb.key} still listens on {where}"))
        return drift

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        listeners = _read(device.config["stateFile"], copy=False).get("listeners", {})
        return sorted({e["vip"] for e in listeners.values() if e["vip"] not in expected})

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

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        control = self._control(device)
        if control.get("fail", {}).get("memberStatus"):
            raise DriverError("fake member status unreadable")
        wanted = control.get("memberStatus", {})
        return {
            lb.key: {
                m.name: MemberStatus(wanted[m.name]) for _, m in lb.members() if m.name in wanted
            }
            for lb in lbs
        }

    # ---- the conformance kit's hook ------------------------------------------------------------

    def conformance_disturb(self, device: DeviceHandle, key: str) -> None:
        """Change the device behind the operator's back (what ``lbaas-conformance`` calls to
        prove ``verify`` finds drift): every member of ``key`` moves to port 1."""
        with _editing(device.config["stateFile"]) as state:
            for entry in state.get("listeners", {}).values():
                if entry["vip"] == key:
                    for pool in entry["tree"].get("pools", []):
                        for member in pool.get("members", []):
                            member["port"] = 1
