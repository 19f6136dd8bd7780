"""Status documents in the Kubernetes convention: phase, reason, message, conditions by type.

``desired_status`` is pure: given what an object's status is now and what the reconcile
found, it returns the status to write, keeping ``lastTransitionTime`` of conditions whose
status did not change, so writing the same outcome twice is a no-op (and is skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SCHEDULED = "Scheduled"
PROGRAMMED = "Programmed"
READY = "Ready"


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
    phase: str,
    reason: str,
    message: str,
    generation: int | None,
    conditions: list[Cond],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    previous = {c.get("type"): c for c in current.get("conditions") or []}
    stamp = now()
    merged = []
    for cond in conditions:
        word = _status_word(cond.ok)
        old = previous.pop(cond.type, None)
        same = old is not None and old.get("status") == word
        entry = {
            "type": cond.type,
            "status": word,
            "observedGeneration": generation,
            "lastTransitionTime": old["lastTransitionTime"] if same and old else stamp,
            "reason": cond.reason,
            "message": cond.message[:32768],
        }
        if generation is None:
            # The API server prunes a null (the field is not nullable): leave it out, or the
            # stored condition never equals this one and every write looks like a change.
            del entry["observedGeneration"]
        merged.append(entry)
    merged.extend(previous.values())  # conditions others own stay as they are
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "message": message[:32768],
        "conditions": merged,
    }
    if generation is not None:
        status["observedGeneration"] = generation
    elif "observedGeneration" in current:
        status["observedGeneration"] = current["observedGeneration"]
    status.update(extra or {})
    return status


def needs_write(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether ``desired`` says anything ``current`` does not (extra keys in current are kept)."""
    return any(current.get(key) != value for key, value in desired.items())
