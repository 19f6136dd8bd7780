"""Writing generated objects: server-side applies in waves and deletes, counted.

Each generated VIP, Pool, Member and HealthMonitor is one server-side apply (one field
manager per source kind; force: these objects are ours), whose answer goes straight into the
informer cache; what the API server refuses (422) is reported on the source rather than
retried. Only objects whose spec, labels or owner differ from the cache are sent, parents in
an earlier wave than their children (a child never waits for its parent). Deletes are sent
once per object: until the watch reports it gone the cache still holds it, and a reconcile
in between must not delete it again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from lbaas.generated.owned import unchanged
from lbaas.kinds import BY_KIND, waves
from lbaas.kube.client import Kube
from lbaas.kube.informer import Change, Obj
from lbaas.views import Views, is_deleting, meta_of, status_of

WAVES = waves()
ObjKey = tuple[str, str]  # kind, name


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


@dataclass
class Outcome:
    """What a sync could not do: names held by other objects, objects the API refused."""

    conflicts: list[str] = field(default_factory=list)  # "Kind name"
    refused: list[str] = field(default_factory=list)  # "Kind name: message"


class GeneratedObjects:
    """Applies and deletes generated objects as ``manager``; remembers deletes in flight."""

    def __init__(self, kube: Kube, views: Views, *, manager: str, writes: Counter) -> None:
        self.kube = kube
        self.views = views
        self.manager = manager
        self.writes = writes
        self._deleted: set[str] = set()  # uids deleted, not yet reported gone by the watch

    def forget(self) -> None:
        self._deleted.clear()

    def gone(self, uid: str) -> None:
        """The watch reported the object deleted."""
        self._deleted.discard(uid)

    async def sync(
        self,
        namespace: str,
        objects: Mapping[ObjKey, Mapping[str, Any]],
        generated: Iterable[Obj],
        *,
        ours: Callable[[Obj], bool],
        kinds: Iterable[str] = tuple(BY_KIND),
    ) -> Outcome:
        """Apply ``objects`` that differ from the cache, in waves; delete the ``generated``
        ones of ``kinds`` no longer wanted. An existing object that is not ``ours`` is left
        alone (a conflict); one being deleted is applied again once it is gone."""
        out = Outcome()
        for wave in WAVES:
            todo = []
            for (kind, name), wanted in objects.items():
                if kind not in wave:
                    continue
                existing = self.views.get(kind, namespace, name)
                if existing is not None:
                    if not ours(existing):
                        out.conflicts.append(f"{kind} {name}")
                        continue
                    if is_deleting(existing) or unchanged(existing, wanted):
                        continue
                todo.append(self.apply(wanted, out.refused))
            await asyncio.gather(*todo)
        kinds = set(kinds)
        stale = [
            o
            for o in generated
            if o["kind"] in kinds
            and (o["kind"], meta_of(o)["name"]) not in objects
            and not is_deleting(o)
        ]
        await self.delete(stale)
        return out

    async def apply(self, body: Mapping[str, Any], refused: list[str]) -> None:
        """Server-side apply of one generated object; the answer goes into the cache. What
        the API server refuses (422) is added to ``refused``: retrying cannot help until the
        source changes."""
        resource = BY_KIND[str(body["kind"])].resource
        try:
            written = await self.kube.apply(resource, body, manager=self.manager, force=True)
        except ApiException as exc:
            if exc.status != 422:
                raise
            refused.append(f"{body['kind']} {body['metadata']['name']}: {_api_message(exc)}")
            return
        self.writes.labels(body["kind"], "apply").inc()
        informer = self.views.informers.get(resource)
        if informer is not None and written:
            informer.offer(dict(written))

    async def delete(self, objs: Iterable[Obj]) -> None:
        """VIPs first, so the agent removes each tree whole rather than member by member."""
        objs = list(objs)
        for first in (True, False):
            batch = [o for o in objs if (o["kind"] == "VIP") == first]
            await asyncio.gather(*(self._delete_one(o) for o in batch))

    async def _delete_one(self, obj: Obj) -> None:
        """Delete once: until the watch reports it gone, the cache still holds the object,
        and a reconcile in between must not send the same delete again."""
        meta = meta_of(obj)
        uid = str(meta.get("uid"))
        if uid in self._deleted:
            return
        self._deleted.add(uid)
        try:
            if await self.kube.delete(
                BY_KIND[obj["kind"]].resource, meta["namespace"], meta["name"]
            ):
                self.writes.labels(obj["kind"], "delete").inc()
        except Exception:
            self._deleted.discard(uid)
            raise


_META = ("generation", "labels", "ownerReferences", "deletionTimestamp")
_STATUS = {
    "VIP": ("phase", "reason", "message", "observedGeneration", "address", "device"),
    "L7Policy": ("phase", "reason", "message"),
}


def matters(change: Change) -> bool:
    """Whether a generated object's change can change what its source should have or show:
    created, deleted, its spec or ownership, a VIP's phase or placement, an L7Policy's phase
    (members' health, rewritten every few seconds, cannot)."""
    old, new = meta_of(change.old), meta_of(change.new)
    if change.old is None or change.new is None or any(old.get(k) != new.get(k) for k in _META):
        return True
    before, after = status_of(change.old), status_of(change.new)
    return any(before.get(k) != after.get(k) for k in _STATUS.get(change.resource.kind, ()))
