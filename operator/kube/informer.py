"""Informers: list, then watch, one resource into an in-memory cache.

The operator reads the cluster only through these caches (never a list call per object).
A thread per informer holds the blocking list/watch stream and parses each event; the cache
and every handler run on the event loop, in event order, so the rest of the operator never
sees a half-updated view.

- ``synced`` is set once the first complete list is in the cache: nothing acts on a
  half-listed cluster (kopf's indices gave the same guarantee, at a cost quadratic in the
  number of objects; see issue 13).
- A 410 Gone, or a watch that cannot be resumed, lists again and diffs the list into the
  cache (objects missing from it are reported deleted).
- ``offer`` puts an object the operator itself wrote (the API's answer) into the cache at
  once, when it is newer than the cached one; its watch echo is then no change and wakes
  nobody. At 13,000 objects that halves the events the operator handles. A deleted object
  leaves a tombstone (its last resourceVersion) so that a write's answer arriving after
  the deletion event (the agent dropping a VIP's finalizer: the API answers with the
  object it then deletes) cannot bring it back into the cache as a ghost.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lbaas.kube.client import Gone, Kube, trim
from lbaas.kube.resources import Resource

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""
Obj = dict[str, Any]
WATCH_TIMEOUT = 290
DELETED_MEMORY = 4096


@dataclass(frozen=True)
class Change:
    """One change of the cache: ``old`` None = added, ``new`` None = deleted."""

    resource: Resource
    key: Key
    old: Obj | None
    new: Obj | None


Handler = Callable[[Change], None]


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def version_of(obj: Mapping[str, Any] | None) -> int:
    """resourceVersion as a number (etcd's revision; -1 when not a number)."""
    raw = ((obj or {}).get("metadata") or {}).get("resourceVersion") or ""
    return int(raw) if str(raw).isdigit() else -1


class Informer:
    """The cache of one resource (in one namespace, or all), kept current by a watch."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        namespace: str | None = None,
        selector: str = "",
        keep_annotations: bool = False,
        fields: str = "",
        keep: Callable[[Obj], bool] | None = None,
        watch_timeout: int = WATCH_TIMEOUT,
    ) -> None:
        """``selector``/``fields``: label and field selectors of the list and watch. ``keep``:
        objects it refuses are not cached (nor reported): the cache holds only what the
        caller needs of what the server sends. ``watch_timeout``: seconds a watch request
        lasts (also how long the thread may outlive ``stop``)."""
        self.kube = kube
        self.resource = resource
        self.namespace = namespace
        self.selector = selector
        self.fields = fields
        self.keep = keep
        self.watch_timeout = watch_timeout
        self.keep_annotations = keep_annotations
        self.last_error = ""
        """The last failure of the list or watch ("" once it works again), for messages."""
        self.cache: dict[Key, Obj] = {}
        self.synced = asyncio.Event()
        self.handlers: list[Handler] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._relisted = 0
        self._deleted: dict[Key, int] = {}  # recently deleted objects: key → deletion version

    def __repr__(self) -> str:
        return f"Informer({self.resource.plural}, {self.namespace or 'all'})"

    def get(self, key: Key) -> Obj | None:
        return self.cache.get(key)

    # ---- running ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{self.resource.plural}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        version = ""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                self.last_error = ""
                for event in self.kube.watch_lines(
                    self.resource,
                    self.namespace,
                    self.selector,
                    version,
                    self.watch_timeout,
                    self.fields,
                ):
                    if self._stop.is_set():
                        return
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    version = meta.get("resourceVersion") or version
                    if event.get("type") == "BOOKMARK":
                        continue
                    self._post(event["type"], trim(obj, keep_annotations=self.keep_annotations))
                backoff = 0.5
            except Gone:
                log.info("%r: watch expired (410); listing again", self)
                version = ""
            except Exception as exc:  # the API server restarts, a connection breaks
                if self._stop.is_set():
                    return
                self.last_error = str(getattr(exc, "reason", "") or exc)[:200]
                log.warning("%r: watch failed (%s); retrying in %.1fs", self, exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _list(self) -> str:
        items, version = self._list_all()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._replace, items, version)
        return version

    def _list_all(self) -> tuple[list[Obj], str]:
        items: list[Obj] = []
        cont = None
        while True:
            page = self.kube.list_page(
                self.resource, self.namespace, self.selector, cont, self.fields
            )
            kind = self.resource.kind
            api_version = self.resource.api_version
            for item in page.get("items") or ():
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", api_version)
                items.append(trim(item, keep_annotations=self.keep_annotations))
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items, str((page.get("metadata") or {}).get("resourceVersion") or "")

    def _post(self, kind: str, obj: Obj) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._apply, kind, obj)

    # ---- the cache (event loop only) ----------------------------------------------------

    def _replace(self, items: list[Obj], version: str) -> None:
        """A complete list, taken at ``version``: diff it into the cache.

        The watch keeps running while :meth:`relist` lists, so the cache may already hold
        what happened after the list: an object created since (absent from the list) stays,
        and one deleted since (its tombstone is newer than the listed copy) is not revived.
        """
        listed_at = int(version) if version.isdigit() else -1
        seen = set()
        for obj in items:
            key = key_of(obj)
            if self.keep is not None and not self.keep(obj):
                continue
            seen.add(key)
            if self._revives(key, obj):
                continue
            self._store(key, obj)
        for key in [k for k in self.cache if k not in seen]:
            if listed_at >= 0 and version_of(self.cache[key]) > listed_at:
                continue  # created (or changed) after the list was taken
            old = self.cache.pop(key)
            self._deleted[key] = version_of(old)
            self._emit(Change(self.resource, key, old, None))
        self._relisted += 1
        if not self.synced.is_set():
            log.info("%r: synced, %d objects", self, len(self.cache))
            self.synced.set()

    def _apply(self, kind: str, obj: Obj) -> None:
        key = key_of(obj)
        if kind == "DELETED":
            self._deleted[key] = version_of(obj)
            if len(self._deleted) > DELETED_MEMORY:
                self._deleted.pop(next(iter(self._deleted)))
            old = self.cache.pop(key, None)
            if old is not None:
                self._emit(Change(self.resource, key, old, None))
            return
        self._store(key, obj)

    def _store(self, key: Key, obj: Obj) -> None:
        if self.keep is not None and not self.keep(obj):
            return
        old = self.cache.get(key)
        if old is not None:
            new_version, old_version = version_of(obj), version_of(old)
            if new_version >= 0 and old_version >= 0 and new_version <= old_version:
                return  # our own write, offered earlier, or an older copy
        self.cache[key] = obj
        self._emit(Change(self.resource, key, old, obj))

    async def relist(self) -> None:
        """List again now and diff into the cache (a new leader must see at least everything
        written before it took over, not only what the watch delivered so far)."""
        items, version = await asyncio.get_running_loop().run_in_executor(
            self.kube.pool, self._list_all
        )
        self._replace(items, version)

    def offer(self, obj: Obj | None) -> None:
        """An object as the API answered our write: cache it now if it is newer.

        The answer may arrive after the watch reported the object deleted (removing the last
        finalizer deletes it): such an answer must not bring it back.
        """
        if obj is None:
            return
        meta = obj.get("metadata") or {}
        key = key_of(obj)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            old = self.cache.pop(key, None)
            if old is not None:
                self._emit(Change(self.resource, key, old, None))
            return
        if self._revives(key, obj):
            return
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        self._store(key, trim(obj, keep_annotations=self.keep_annotations))

    def forget(self, key: Key) -> None:
        """Drop ``key`` from the cache, telling no one (the caller no longer needs it)."""
        self.cache.pop(key, None)

    def _revives(self, key: Key, obj: Obj) -> bool:
        """Whether ``obj`` is a copy from before its deletion (which the cache has seen)."""
        gone = self._deleted.get(key)
        return gone is not None and 0 <= version_of(obj) <= gone

    def _emit(self, change: Change) -> None:
        for handler in self.handlers:
            try:
                handler(change)
            except Exception:
                log.exception("%r: handler %r failed", self, handler)
