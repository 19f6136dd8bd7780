"""Children without a parent (lbaas.trees.orphans) against a fake reporter: a status write that
meets a newer object (409) is tried again soon, not left until the parent timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from lbaas.config import OperatorSettings
from lbaas.trees import orphans
from lbaas.trees.orphans import Orphans

MONITOR = {
    "apiVersion": "lbaas.dev/v1alpha1",
    "kind": "HealthMonitor",
    "metadata": {"name": "r", "namespace": "ns", "generation": 1, "resourceVersion": "7"},
    "spec": {"poolRef": "r", "type": "TCP", "delay": 5, "timeout": 3},
}


class Views:
    """The one HealthMonitor, its Pool missing."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return dict(MONITOR) if (kind, namespace, name) == ("HealthMonitor", "ns", "r") else None

    def missing_parent(self, kind: str, namespace: str, spec: Mapping[str, Any]) -> str | None:
        return "Pool r"


class Reporter:
    """Refuses the first ``conflicts`` writes as the API server does a stale resourceVersion."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts = conflicts
        self.written: list[dict[str, Any]] = []

    async def status(self, obj: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
        if self.conflicts:
            self.conflicts -= 1
            return False
        self.written.append(dict(desired))
        return True


async def _run(conflicts: int, seconds: float) -> Reporter:
    reporter = Reporter(conflicts)
    settings = OperatorSettings(parent_timeout=60)
    watcher = Orphans(views=Views(), reporter=reporter, settings=settings)  # type: ignore[arg-type]
    try:
        watcher.check("HealthMonitor", "ns", "r")
        await asyncio.sleep(seconds)
    finally:
        watcher.stop()
    return reporter


def test_a_write_that_met_a_newer_object_is_tried_again_soon(monkeypatch: Any) -> None:
    monkeypatch.setattr(orphans, "RETRY_SECONDS", 0.05)
    reporter = asyncio.run(_run(conflicts=2, seconds=0.5))
    assert len(reporter.written) == 1, reporter.written  # two 409s, then Pending, once
    assert reporter.written[0]["phase"] == "Pending"
    reasons = {c["reason"] for c in reporter.written[0]["conditions"]}
    assert reasons == {"WaitingForParent"}


def test_without_a_conflict_it_writes_once_and_waits_for_the_timeout() -> None:
    reporter = asyncio.run(_run(conflicts=0, seconds=0.3))
    assert [w["phase"] for w in reporter.written] == ["Pending"]


def test_a_pending_another_writer_replaced_is_said_again(monkeypatch: Any) -> None:
    """The condition still says WaitingForParent (this generation) but an agent wrote the phase
    over it: the orphan is reported again instead of waiting for the timeout in silence."""
    stale = {
        "phase": "Active",
        "observedGeneration": 1,
        "conditions": [
            {"type": "Programmed", "status": "False", "reason": "WaitingForParent",
             "lastTransitionTime": "2026-01-01T00:00:00Z", "message": "Pool r does not exist"},
        ],
    }  # fmt: skip
    monkeypatch.setitem(MONITOR, "status", stale)
    reporter = asyncio.run(_run(conflicts=0, seconds=0.3))
    assert [w["phase"] for w in reporter.written] == ["Pending"]
