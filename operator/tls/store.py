"""The Secrets and ConfigMaps an agent's trees name: watched per namespace, kept only if named.

No cluster-wide watch of Secrets, and no Secret in memory that no tree of this agent names. For
each namespace where this agent serves a tree with TLS references, up to three watches run,
each started when the first tree there needs it and stopped when the last one lets go:

- Secrets with ``fieldSelector=type=kubernetes.io/tls`` (certificates, and CA bundles kept in
  such Secrets): the server sends only TLS Secrets, never the namespace's Helm releases or
  tokens;
- Secrets with ``type!=kubernetes.io/tls``, only while a tree names a CA bundle of kind Secret
  there (such a bundle may be of any type): the two selectors split the namespace's Secrets
  without overlap;
- ConfigMaps, only while a tree names a CA bundle of kind ConfigMap there.

Each informer keeps only the objects some tree names (``Informer.keep``): the others are parsed
as they stream by and dropped. A name a tree starts to need after its informer listed (dropped
then) is read once by name (``GET``); from then on the watch keeps it current. A changed object
wakes exactly the trees that name it (the rotation path: the tree is applied with the new
material).

Why per namespace and not per Secret: a watch is a thread and a connection of the agent, and a
``metadata.name`` watch per Secret costs one each per certificate (thousands), a namespace watch
one per namespace with TLS trees, whatever their number of Secrets. Why not cluster-wide: it
would need Secrets of every namespace granted, and would stream all of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from lbaas.api.tls import TLS_SECRET_TYPE
from lbaas.kube.client import Kube
from lbaas.kube.informer import Change, Informer, Obj
from lbaas.kube.resources import CONFIGMAPS, SECRETS
from lbaas.tls.resolve import Ref

log = logging.getLogger(__name__)

VipKey = tuple[str, str]
Name = tuple[str, str, str]
"""(kind, namespace, name)."""
Watch = tuple[str, str]
"""(namespace, which): which is "tls", "other" (Secrets) or "configmaps"."""

SYNC_TIMEOUT = 10.0
"""Seconds a tree waits for a new watch's first list before it is told the objects cannot be
read (it is retried; the watch keeps trying)."""
ABSENT_TTL = 60.0
"""Seconds a "not found" answer is trusted before the name is read again (an object created
with another type than its watch selects, or before the watch started, is then found)."""
WATCH_TIMEOUT = 60
"""Seconds per watch request: a stopped watch's thread ends within this."""
SELECTORS = {
    "tls": (SECRETS, f"type={TLS_SECRET_TYPE}"),
    "other": (SECRETS, f"type!={TLS_SECRET_TYPE}"),
    "configmaps": (CONFIGMAPS, ""),
}


class Unavailable(Exception):
    """The objects cannot be read now (RBAC, the API server); the message says which."""


def _name(ref: Ref) -> Name:
    return (ref.kind, ref.namespace, ref.name)


def watches_for(refs: Iterable[Ref]) -> set[Watch]:
    """The watches that see every object of ``refs``."""
    found: set[Watch] = set()
    for ref in refs:
        if ref.kind == "ConfigMap":
            found.add((ref.namespace, "configmaps"))
            continue
        found.add((ref.namespace, "tls"))
        if not ref.certificate:
            found.add((ref.namespace, "other"))
    return found


class ReferenceStore:
    """What the agent's trees name, watched (see the module docstring)."""

    def __init__(self, kube: Kube, *, changed: Callable[[VipKey], None]) -> None:
        """``changed`` is called for each tree whose named objects changed."""
        self.kube = kube
        self.changed = changed
        self._wants: dict[VipKey, set[Ref]] = {}
        self._users: dict[Name, set[VipKey]] = {}
        self._need: Counter[Watch] = Counter()
        """How many trees need each watch."""
        self._watches: dict[Watch, Informer] = {}
        self._absent: dict[Name, float] = {}
        self._loose: dict[Name, Obj] = {}
        """Objects read by name that no running watch selects (a certificate Secret of the
        wrong type): read again at each want, never cached for long."""
        self._reading: set[Name] = set()

    # ---- what trees want ---------------------------------------------------------------------

    async def want(self, key: VipKey, refs: set[Ref]) -> None:
        """Tree ``key`` names ``refs`` now (and nothing else): watch them and have them read.

        :raises Unavailable: a watch did not list in time, or a read failed.
        """
        self._set(key, refs)
        informers = [self._watch(w) for w in watches_for(refs)]
        for informer in informers:
            if not informer.synced.is_set():
                try:
                    await asyncio.wait_for(informer.synced.wait(), SYNC_TIMEOUT)
                except TimeoutError:
                    why = informer.last_error or "no answer yet"
                    raise Unavailable(
                        f"the agent cannot list {informer.resource.plural} in namespace"
                        f" {informer.namespace} ({why}): check its RBAC; retrying"
                    ) from None
        for ref in sorted(refs):
            if self._cached(ref) is None and not self._known_absent(ref):
                await self._read(ref)

    def release(self, key: VipKey) -> None:
        """Tree ``key`` names nothing any more (it is gone, or no longer this agent's)."""
        self._set(key, set())

    def close(self) -> None:
        for informer in self._watches.values():
            informer.stop()
        self._watches.clear()

    def lookup(self, ref: Ref) -> Mapping[str, Any] | None:
        """The object ``ref`` names as last seen (None: it does not exist)."""
        found = self._cached(ref)
        return found if found is not None else self._loose.get(_name(ref))

    def watching(self) -> list[Watch]:
        """The running watches (for tests and metrics)."""
        return sorted(self._watches)

    def held(self) -> int:
        """How many objects the watches hold (only named ones)."""
        return sum(len(i.cache) for i in self._watches.values())

    # ---- bookkeeping -----------------------------------------------------------------------

    def _set(self, key: VipKey, refs: set[Ref]) -> None:
        """Record what ``key`` names now; forget names no tree names, stop watches no tree
        needs (incremental: a cold start of thousands of trees stays linear)."""
        before = self._wants.pop(key, set())
        if refs:
            self._wants[key] = set(refs)
        old_names, new_names = {_name(r) for r in before}, {_name(r) for r in refs}
        for name in new_names:
            self._users.setdefault(name, set()).add(key)
        for name in old_names - new_names:
            users = self._users.get(name, set())
            users.discard(key)
            if not users:
                self._users.pop(name, None)
                self._absent.pop(name, None)
                self._loose.pop(name, None)
                for informer in self._watches.values():
                    if (informer.namespace, informer.resource.kind) == (name[1], name[0]):
                        informer.forget((name[1], name[2]))
        self._need.update(watches_for(refs))
        self._need.subtract(watches_for(before))
        for watch in [w for w in self._watches if self._need[w] <= 0]:
            self._watches.pop(watch).stop()
            log.info("stopped watching %s of namespace %s", watch[1], watch[0])
        self._need = +self._need  # drop zero counts

    def _watch(self, watch: Watch) -> Informer:
        informer = self._watches.get(watch)
        if informer is not None:
            return informer
        namespace, which = watch
        resource, fields = SELECTORS[which]
        kind = resource.kind
        informer = Informer(
            self.kube,
            resource,
            namespace=namespace,
            fields=fields,
            keep=lambda obj: self._named(kind, obj),
            watch_timeout=WATCH_TIMEOUT,
        )
        informer.handlers.append(self._on_change)
        self._watches[watch] = informer
        informer.start()
        log.info("watching %s of namespace %s (only the named ones are kept)", which, namespace)
        return informer

    def _named(self, kind: str, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        return (kind, str(meta.get("namespace") or ""), str(meta.get("name") or "")) in self._users

    def _covering(self, ref: Ref) -> list[Informer]:
        return [self._watches[w] for w in sorted(watches_for([ref])) if w in self._watches]

    def _cached(self, ref: Ref) -> Obj | None:
        for informer in self._covering(ref):
            found = informer.get((ref.namespace, ref.name))
            if found is not None:
                return found
        return None

    def _known_absent(self, ref: Ref) -> bool:
        when = self._absent.get(_name(ref))
        return when is not None and time.monotonic() - when < ABSENT_TTL

    async def _read(self, ref: Ref) -> None:
        """Read one named object (not seen by its watch yet): into its watch's cache when the
        watch selects it, else kept aside until the next want."""
        name = _name(ref)
        resource = CONFIGMAPS if ref.kind == "ConfigMap" else SECRETS
        self._reading.add(name)
        try:
            if resource is SECRETS:
                found = await self.kube.get(SECRETS, ref.namespace, ref.name)
            else:
                found = await self.kube.get(CONFIGMAPS, ref.namespace, ref.name)
        except ApiException as exc:
            raise Unavailable(
                f"the agent cannot read {ref.kind} {ref.name} in namespace {ref.namespace}"
                f" ({exc.status} {exc.reason}): check its RBAC; retrying"
            ) from None
        finally:
            self._reading.discard(name)
        self._loose.pop(name, None)
        if found is None:
            self._absent[name] = time.monotonic()
            return
        self._absent.pop(name, None)
        if name not in self._users:
            return  # let go of while it was read
        for informer in self._covering(ref):
            if _selects(informer, found):
                self._reading.add(name)
                try:
                    informer.offer(found)
                finally:
                    self._reading.discard(name)
                return
        self._loose[name] = found

    def _on_change(self, change: Change) -> None:
        name = (change.resource.kind, *change.key)
        if name in self._reading:
            return  # the tree reading it is using it now
        for key in sorted(self._users.get(name, ())):
            self.changed(key)


def _selects(informer: Informer, obj: Mapping[str, Any]) -> bool:
    """Whether ``informer``'s field selector selects ``obj`` (its watch will report it)."""
    if informer.resource is not SECRETS:
        return True
    kind = obj.get("type") or "Opaque"
    return (kind == TLS_SECRET_TYPE) == (informer.fields == f"type={TLS_SECRET_TYPE}")
