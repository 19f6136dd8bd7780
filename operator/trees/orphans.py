"""Children without a parent: they wait, and say so, and stop waiting after a while.

A Pool whose VIP, or a Member/HealthMonitor whose Pool (or that Pool's VIP) does not exist
shows ``Pending`` ``WaitingForParent``; after ``parent_timeout`` seconds of waiting it turns
``Error`` ``ParentNotFound`` with a Warning Event (no restart needed: a timer per child). It
still joins its tree by itself the moment the parent appears: the agent's reconcile of the
VIP picks up every child the index views hold. The controller runs this: no agent serves a
tree without a VIP.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from lbaas.background import spawn
from lbaas.config import OperatorSettings
from lbaas.kinds import children_of
from lbaas.kube.informer import Obj
from lbaas.reporter import Reporter
from lbaas.status import PROGRAMMED, condition
from lbaas.trees import report
from lbaas.trees.tree import TreeObject
from lbaas.views import Views, is_deleting, meta_of, spec_of, status_of

log = logging.getLogger(__name__)

ChildKey = tuple[str, str, str]  # kind, namespace, name
RETRY_SECONDS = 0.5
"""How soon a child whose status write met a newer object is looked at again."""


def _seconds_since(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


class Orphans:
    """Reports children whose parent is missing, with a timer per child."""

    def __init__(self, *, views: Views, reporter: Reporter, settings: OperatorSettings) -> None:
        self.views = views
        self.reporter = reporter
        self.timeout = settings.parent_timeout
        self._timers: dict[ChildKey, asyncio.TimerHandle] = {}

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def check(self, kind: str, namespace: str, name: str) -> None:
        """Look at a child again (it or one of its parents changed)."""
        spawn(self._check((kind, namespace, name)))

    def check_children_of(self, kind: str, namespace: str, name: str) -> None:
        """Look again at every descendant of the ``kind`` object ``name`` (it came or went)."""
        for child_kind in children_of(kind):
            for child in self.views.children(child_kind.kind, namespace, name):
                child_name = str(child["metadata"]["name"])
                self.check(child_kind.kind, namespace, child_name)
                self.check_children_of(child_kind.kind, namespace, child_name)

    async def _check(self, key: ChildKey) -> None:
        kind, namespace, name = key
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        obj = self.views.get(kind, namespace, name)
        if obj is None or is_deleting(obj):
            return
        missing = self.views.missing_parent(kind, namespace, spec_of(obj))
        if missing is None:
            return
        status = status_of(obj)
        current = status.get("observedGeneration") == meta_of(obj).get("generation")
        if status.get("reason") == "ParentNotFound" and current:
            return
        since = None
        cond = condition(status, PROGRAMMED)
        if (
            cond.get("reason") == "WaitingForParent"
            and current
            and status.get("phase") == "Pending"
        ):
            since = cond.get("lastTransitionTime")  # said already (no other writer since)
        waited = _seconds_since(since) if since else 0.0
        if waited >= self.timeout:
            await self._give_up(obj, missing)
            return
        loop = asyncio.get_running_loop()
        if since is None:
            _, desired = report.waiting(TreeObject(obj), f"{missing} does not exist")
            if not await self.reporter.status(obj, desired):
                # The object changed meanwhile (an agent's write: 409): read it again soon,
                # else it would say nothing until the timeout turned it Error.
                self._timers[key] = loop.call_later(RETRY_SECONDS, self.check, *key)
                return
        self._timers[key] = loop.call_later(self.timeout - waited + 0.1, self.check, *key)

    async def _give_up(self, obj: Obj, missing: str) -> None:
        message = (
            f"{missing} not found after {self.timeout:.0f}s; create it or fix the reference"
            " (this object joins by itself once it exists)"
        )
        _, desired = report.parent_not_found(TreeObject(obj), message)
        if await self.reporter.status(obj, desired):
            self.reporter.warn(obj, reason="ParentNotFound", message=message)
        log.info(
            "%s %s/%s: %s",
            obj["kind"],
            meta_of(obj).get("namespace"),
            meta_of(obj).get("name"),
            message,
        )
