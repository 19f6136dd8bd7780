"""Writing a tree's statuses: against the newest cached copies, only while the VIP is ours.

A reconcile builds its tree once; by the time it reports, its own earlier writes (Pending)
and the watch have moved the objects on. ``fresh`` points the tree at the newest copies so
reports keep transition times right; ``write`` sends each object's status (the VIP's only
while it still names this device) and posts a Warning Event when an object turns Error or
its error changes, or when a VIP has no default pool (any more): it serves, but answers 503
to what no policy takes (a second Pool added without ``defaultPoolRef`` does that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from lbaas.reporter import Reporter
from lbaas.status import DEFAULT_POOL, condition
from lbaas.trees.tree import Tree
from lbaas.views import Views, status_of


class TreeWriter:
    """The reporter, used for one tree at a time."""

    def __init__(self, views: Views, reporter: Reporter) -> None:
        self.views = views
        self.reporter = reporter

    def fresh(self, tree: Tree) -> Tree:
        """Point the tree's objects at their newest cached copies (statuses written since it
        was built), so reports keep transition times right and compare with the truth."""
        for obj in tree.objects:
            latest = self.views.latest(obj.snap)
            if latest is not None:
                obj.snap = latest
        return tree

    async def write(self, device: str, pairs: Iterable[tuple[Any, dict[str, Any]]]) -> bool:
        """Write the statuses of a tree; False when the VIP moved or changed meanwhile."""
        ok = True

        async def one(obj: Any, desired: dict[str, Any]) -> None:
            nonlocal ok
            latest = self.views.latest(obj.snap)
            if latest is None:
                return
            was = (status_of(latest).get("phase"), status_of(latest).get("message"))
            if desired.get("phase") == "Error" and was != ("Error", desired.get("message")):
                self.reporter.warn(latest, reason=desired["reason"], message=desired["message"])
            default = condition(desired, DEFAULT_POOL)
            if default.get("status") == "False":
                before = condition(status_of(latest), DEFAULT_POOL)
                if (before.get("status"), before.get("message")) != ("False", default["message"]):
                    self.reporter.warn(latest, reason=default["reason"], message=default["message"])
            if obj.kind == "VIP":
                if status_of(latest).get("device") != device:
                    ok = False
                    return
                written = await self.reporter.status(latest, desired)
            else:
                written = await self.reporter.status(latest, desired)
            ok = ok and written

        await asyncio.gather(*(one(obj, desired) for obj, desired in pairs))
        return ok
