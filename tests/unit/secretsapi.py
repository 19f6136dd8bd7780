"""A fake Kubernetes API for Secrets and ConfigMaps, for the agent's reference store in unit tests:
list and watch with field selectors (``type=``, ``type!=``) as the API server applies them, GET
by name, and a record of every request (to prove what is listed, watched and read)."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lbaas.kube.resources import Resource


@dataclass(frozen=True)
class Event:
    version: int
    type: str
    plural: str
    obj: dict[str, Any]


def _selects(fields: str, obj: dict[str, Any]) -> bool:
    for term in filter(None, fields.split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if (obj.get(key) or "Opaque") == value:
                return False
        else:
            key, value = term.split("=", 1)
            if (obj.get(key) or "Opaque") != value:
                return False
    return True


class SecretsApi:
    """Objects by (plural, namespace, name), with growing resourceVersions."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[Event] = []
        self.version = 100
        self.requests: list[tuple[str, str, str, str]] = []
        """(verb, plural, namespace, fields or name)."""

    # ---- what a test does ----------------------------------------------------------------------

    def put(self, plural: str, namespace: str, obj: dict[str, Any]) -> None:
        with self.cond:
            self.version += 1
            body = copy.deepcopy(obj)
            meta = body.setdefault("metadata", {})
            meta.update(namespace=namespace, resourceVersion=str(self.version))
            key = (plural, namespace, meta["name"])
            kind = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = body
            self.events.append(Event(self.version, kind, plural, body))
            self.cond.notify_all()

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self.cond:
            body = self.objects.pop((plural, namespace, name))
            self.version += 1
            body = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
            self.events.append(Event(self.version, "DELETED", plural, body))
            self.cond.notify_all()

    def calls(self, verb: str) -> list[tuple[str, str, str, str]]:
        return [r for r in self.requests if r[0] == verb]

    # ---- what the operator's Kube does ----------------------------------------------------------

    def _matching(self, plural: str, namespace: str | None, fields: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(o)
            for (p, ns, _), o in sorted(self.objects.items())
            if p == plural and ns == namespace and _selects(fields, o)
        ]

    def list_page(
        self,
        resource: Resource,
        namespace: str | None,
        selector: str,
        cont: str | None,
        fields: str = "",
    ) -> dict[str, Any]:
        with self.cond:
            self.requests.append(("list", resource.plural, namespace or "", fields))
            items = self._matching(resource.plural, namespace, fields)
            return {"items": items, "metadata": {"resourceVersion": str(self.version)}}

    def watch_lines(
        self,
        resource: Resource,
        namespace: str | None,
        selector: str,
        version: str,
        timeout: int,
        fields: str = "",
    ) -> Iterator[dict[str, Any]]:
        self.requests.append(("watch", resource.plural, namespace or "", fields))
        seen = int(version)
        deadline = time.monotonic() + min(timeout, 0.5)
        while time.monotonic() < deadline:
            with self.cond:
                fresh = [
                    e
                    for e in self.events
                    if e.version > seen
                    and e.plural == resource.plural
                    and e.obj["metadata"]["namespace"] == namespace
                    and _selects(fields, e.obj)
                ]
                if not fresh:
                    self.cond.wait(0.05)
                    continue
            for event in fresh:
                seen = event.version
                yield {"type": event.type, "object": copy.deepcopy(event.obj)}

    async def get(self, resource: Resource, namespace: str | None, name: str) -> Any:
        self.requests.append(("get", resource.plural, namespace or "", name))
        with self.cond:
            found = self.objects.get((resource.plural, namespace or "", name))
            return copy.deepcopy(found) if found is not None else None
