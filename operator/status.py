"""Status documents in the Kubernetes convention: phase, reason, message, conditions by type.

Pure functions. Each writer (the controller, an agent) sets only the fields and condition
types it decides; ``merge_conditions`` merges its conditions into the stored ones by type.
``desired_status`` returns just the writer's part, keeping ``lastTransitionTime`` of
conditions whose status did not change, and ``needs_write`` compares that part with what is
stored: writing the same outcome twice is a no-op, and is skipped.

The roll-ups below decide what ``operatingStatus`` says; they never turn "cannot tell" into
ONLINE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lbaas.api.member import MemberOperatingStatus as M
from lbaas.api.vip import OperatingStatus as V

SCHEDULED = "Scheduled"
PROGRAMMED = "Programmed"
READY = "Ready"
DEFAULT_POOL = "DefaultPool"
"""A VIP's: True when requests no L7Policy takes have a pool to go to."""
MAX_MESSAGE = 32768


@dataclass(frozen=True)
class Cond:
    type: str
    ok: bool | None  # None = Unknown
    reason: str
    message: str = ""


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status_word(ok: bool | None) -> str:
    return "Unknown" if ok is None else ("True" if ok else "False")


def desired_status(
    current: Mapping[str, Any],
    *,
    phase: str | None,
    reason: str | None,
    message: str | None,
    generation: int | None,
    conditions: list[Cond],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status fields one writer owns, as it should apply them now.

    ``phase`` None leaves phase, reason and message out (a writer that does not own them).
    ``generation`` None leaves ``observedGeneration`` out.
    """
    previous = {c.get("type"): c for c in current.get("conditions") or []}
    stamp = now()
    merged = []
    for cond in conditions:
        word = _status_word(cond.ok)
        old = previous.get(cond.type)
        same = old is not None and old.get("status") == word and old.get("lastTransitionTime")
        entry = {
            "type": cond.type,
            "status": word,
            "lastTransitionTime": old["lastTransitionTime"] if same and old else stamp,
            "reason": cond.reason,
            "message": cond.message[:MAX_MESSAGE],
        }
        if generation is not None:
            # The API server prunes a null (the field is not nullable): leave it out, or the
            # stored condition never equals this one and every write looks like a change.
            entry["observedGeneration"] = generation
        merged.append(entry)
    status: dict[str, Any] = {"conditions": merged}
    if phase is not None:
        status["phase"] = phase
        status["reason"] = reason or ""
        status["message"] = (message or "")[:MAX_MESSAGE]
    if generation is not None:
        status["observedGeneration"] = generation
    status.update(extra or {})
    return status


def needs_write(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether ``desired`` says anything ``current`` does not.

    Conditions are compared by type (others' conditions do not matter); other fields by value;
    a None in ``desired`` asks for the field's removal.
    """
    for key, value in desired.items():
        if key == "conditions":
            stored = {c.get("type"): c for c in current.get("conditions") or []}
            for cond in value:
                if stored.get(cond["type"]) != cond:
                    return True
        elif current.get(key) != value:
            return True
    return False


def merge_conditions(
    stored: list[Mapping[str, Any]], mine: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The stored conditions with ``mine`` replacing those of their types (order kept)."""
    by_type = {c["type"]: dict(c) for c in mine}
    merged = []
    for cond in stored:
        mine_too = by_type.pop(str(cond.get("type")), {})
        merged.append(mine_too or dict(cond))
    return merged + list(by_type.values())


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    """The condition of ``kind`` in a stored status (empty when absent)."""
    for cond in status.get("conditions") or ():
        if cond.get("type") == kind:
            return dict(cond)
    return {}


# ---- operating status ------------------------------------------------------------------------


def member_state(
    *,
    admin_up: bool,
    weight: int,
    monitored: bool,
    observed: str | None,
    device_can_tell: bool,
) -> str:
    """One member's operating status from its spec and what the device reported.

    Admin-down is OFFLINE whatever the device says. When the device cannot tell (NotReady,
    or its health read failed), a monitored member is UNKNOWN, never ONLINE on a guess.
    """
    if not admin_up:
        return M.OFFLINE
    if not device_can_tell:
        return M.UNKNOWN
    if observed is not None:
        return observed
    if weight == 0:
        return M.DRAINING
    return M.ONLINE if monitored else M.NO_MONITOR


def vip_operating_status(admin_up: bool, members: Mapping[str, str], device_ready: bool) -> str:
    """Roll member health up: all serving → ONLINE, some down → DEGRADED, none → ERROR.

    A VIP whose device cannot serve (NotReady) is OFFLINE; so is an admin-down VIP. When the
    device cannot tell the health of some members, the VIP is UNKNOWN (DEGRADED if others are
    known to be down): never ONLINE on a guess.
    """
    if not admin_up or not device_ready:
        return V.OFFLINE
    serving = [s for s in members.values() if s in (M.ONLINE, M.NO_MONITOR)]
    failed = [s for s in members.values() if s == M.ERROR]
    unknown = [s for s in members.values() if s == M.UNKNOWN]
    if unknown:
        return V.DEGRADED if failed else V.UNKNOWN
    if not serving:
        return V.ERROR
    if failed:
        return V.DEGRADED
    return V.ONLINE
