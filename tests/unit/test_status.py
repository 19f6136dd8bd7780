"""Status documents: conditions keep their transition time unless their status flips."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from lbaas.status import Cond, desired_status, needs_write, now

OLD = "2020-01-01T00:00:00Z"


def status(current: dict[str, Any], *conds: Cond, generation: int | None = 3, **kw: Any) -> Any:
    args: dict[str, Any] = {"phase": "Active", "reason": "Programmed", "message": "ok"}
    args.update(kw)
    return desired_status(current, generation=generation, conditions=list(conds), **args)


def by_type(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in st["conditions"]}


def recent(stamp: str) -> bool:
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - parsed).total_seconds()) < 5


def test_now_is_rfc3339_utc() -> None:
    assert recent(now())


def test_first_write() -> None:
    st = status({}, Cond("Ready", True, "Programmed", "on device d1"), Cond("Scheduled", None, "X"))
    assert st["phase"] == "Active"
    assert st["reason"] == "Programmed"
    assert st["message"] == "ok"
    assert st["observedGeneration"] == 3
    ready, scheduled = st["conditions"]
    assert ready["type"] == "Ready"
    assert ready["status"] == "True"
    assert ready["reason"] == "Programmed"
    assert ready["message"] == "on device d1"
    assert ready["observedGeneration"] == 3
    assert recent(ready["lastTransitionTime"])
    assert scheduled["status"] == "Unknown"


def test_unchanged_status_keeps_transition_time() -> None:
    current = {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "lastTransitionTime": OLD,
                "reason": "Pending",
                "message": "",
                "observedGeneration": 2,
            }
        ]
    }
    st = status(current, Cond("Ready", False, "DriverError", "device said no"))
    ready = by_type(st)["Ready"]
    assert ready["lastTransitionTime"] == OLD
    # The rest of the condition is the new one.
    assert ready["reason"] == "DriverError"
    assert ready["message"] == "device said no"
    assert ready["observedGeneration"] == 3


def test_flipped_status_gets_a_new_transition_time() -> None:
    current = {
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": OLD, "reason": "A"},
            {"type": "Programmed", "status": "Unknown", "lastTransitionTime": OLD, "reason": "B"},
        ]
    }
    st = status(current, Cond("Ready", True, "Programmed"), Cond("Programmed", False, "Failed"))
    for cond in st["conditions"]:
        assert cond["lastTransitionTime"] != OLD
        assert recent(cond["lastTransitionTime"])
    assert by_type(st)["Ready"]["status"] == "True"
    assert by_type(st)["Programmed"]["status"] == "False"


def test_conditions_of_other_writers_are_left_to_them() -> None:
    """Server-side apply: a writer sends only its own condition types; others' stay stored."""
    theirs = {
        "type": "Scheduled",
        "status": "True",
        "lastTransitionTime": OLD,
        "reason": "Scheduled",
        "message": "by the controller",
    }
    current = {
        "conditions": [
            theirs,
            {"type": "Ready", "status": "True", "lastTransitionTime": OLD, "reason": "R"},
        ]
    }
    st = status(current, Cond("Ready", True, "Programmed"))
    assert [c["type"] for c in st["conditions"]] == ["Ready"]
    assert by_type(st)["Ready"]["lastTransitionTime"] == OLD
    stored = json.loads(json.dumps({**current, **st, "conditions": [theirs, *st["conditions"]]}))
    assert not needs_write(stored, status(stored, Cond("Ready", True, "Programmed")))


def test_a_writer_without_phase_leaves_phase_out() -> None:
    st = desired_status(
        {}, phase=None, reason=None, message=None, generation=None,
        conditions=[Cond("Scheduled", True, "Scheduled")], extra={"device": "d1"},
    )  # fmt: skip
    assert set(st) == {"conditions", "device"}


def test_desired_status_does_not_modify_current() -> None:
    current = {
        "phase": "Pending",
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": OLD, "reason": "R"}
        ],
    }
    before = copy.deepcopy(current)
    status(current, Cond("Ready", True, "Programmed"))
    assert current == before


def test_writing_the_same_outcome_twice_is_a_no_op() -> None:
    conds = [Cond("Scheduled", True, "Scheduled", "device d1"), Cond("Ready", False, "Err", "x")]
    first = status({"phase": "Pending"}, *conds, extra={"device": "d1", "address": "192.0.2.1"})
    assert needs_write({"phase": "Pending"}, first)
    # What the API server gives back (plain JSON), some time later.
    stored = json.loads(json.dumps(first))
    for cond in stored["conditions"]:
        cond["lastTransitionTime"] = OLD
    second = status(stored, *conds, extra={"device": "d1", "address": "192.0.2.1"})
    assert [c["lastTransitionTime"] for c in second["conditions"]] == [OLD, OLD]
    assert second == stored
    assert not needs_write(stored, second)


def test_a_different_outcome_needs_a_write() -> None:
    conds = [Cond("Ready", True, "Programmed")]
    stored = json.loads(json.dumps(status({}, *conds)))
    assert needs_write(stored, status(stored, *conds, message="changed"))
    assert needs_write(stored, status(stored, Cond("Ready", True, "Programmed", "new text")))
    assert needs_write(stored, status(stored, *conds, generation=4))
    assert needs_write(stored, status(stored, *conds, extra={"device": "d2"}))


def test_extra_keys_in_current_do_not_force_a_write() -> None:
    conds = [Cond("Ready", True, "Programmed")]
    stored = json.loads(json.dumps(status({}, *conds)))
    stored["operatingStatus"] = "ONLINE"  # written by someone else
    assert not needs_write(stored, status(stored, *conds))


def test_unknown_generation_leaves_observed_generation_to_whoever_owns_it() -> None:
    st = status({"observedGeneration": 5}, Cond("Ready", True, "R"), generation=None)
    assert "observedGeneration" not in st
    assert "observedGeneration" not in st["conditions"][0]


def as_stored(value: Any) -> Any:
    """What the API server keeps: JSON, with nulls of non-nullable fields pruned.

    No field of our CRDs is nullable (checked against a real API server: a condition written
    with ``observedGeneration: null`` comes back without the key).
    """
    if isinstance(value, dict):
        return {k: as_stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [as_stored(v) for v in value]
    return value


def test_status_has_no_nulls_the_server_would_drop() -> None:
    st = status({}, Cond("Ready", False, "WaitingForParent", "x"), generation=None)
    assert as_stored(st) == st


def test_unknown_generation_write_is_stable_after_a_round_trip() -> None:
    # Children waiting for their parent write with generation=None, again and again.
    conds = [Cond("Programmed", False, "WaitingForParent"), Cond("Ready", False, "X")]
    stored = as_stored(json.loads(json.dumps(status({}, *conds, generation=None))))
    again = status(stored, *conds, generation=None)
    assert not needs_write(stored, again)


def test_long_messages_are_cut_to_the_schema_limit() -> None:
    st = status({}, Cond("Ready", False, "R", "y" * 40000), message="x" * 40000)
    assert len(st["message"]) == 32768
    assert len(st["conditions"][0]["message"]) == 32768


def test_dropped_conditions_are_removed_and_only_then_written() -> None:
    """A VIP that stops terminating TLS loses its CertificatesValid condition: the removal is a
    write when the stored status has it, and nothing when it does not."""
    from lbaas.status import DROP_CONDITIONS, merge_conditions

    stored = [
        {"type": "Ready", "status": "True", "reason": "Ready"},
        {"type": "CertificatesValid", "status": "True", "reason": "Valid"},
    ]
    desired = desired_status(
        {"conditions": stored},
        phase=None,
        reason=None,
        message=None,
        generation=None,
        conditions=[],
        drop=("CertificatesValid",),
    )
    assert desired[DROP_CONDITIONS] == ["CertificatesValid"]
    assert needs_write({"conditions": stored}, desired)
    assert not needs_write({"conditions": stored[:1]}, desired)
    merged = merge_conditions(stored, [], ("CertificatesValid",))
    assert [c["type"] for c in merged] == ["Ready"]
