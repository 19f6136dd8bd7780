"""What a Service is told about its load balancer: Warning Events, each said once.

Reconciles are frequent (every endpoint change), so a problem found by each of them must not
become an Event each time: ``say`` posts a message once per Service and reason, until the
problem is gone (``None``) and comes back. Errors of the generated objects reach the Service
too: a failed apply turns a whole tree Error at once, with one message, so the errors are
gathered for ``RELAY_DELAY`` and posted as one Event per distinct error, naming the VIP when
it is among them (a driver error is one Event, not one per Member).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from lbaas.kube.informer import Change, Key
from lbaas.reporter import Reporter
from lbaas.views import SERVICE_LABEL, Views, meta_of, status_of

RELAY_DELAY = 0.5
"""Seconds over which errors of a Service's objects are gathered into one Event."""


class Notices:
    """Warning Events on Services, without repeats (state in memory: a new leader may say
    a standing problem once more)."""

    def __init__(self, *, views: Views, reporter: Reporter) -> None:
        self.views = views
        self.reporter = reporter
        self._said: dict[tuple[Key, str], str] = {}  # (service, reason) -> last message
        # service -> (reason, message) -> "Kind name" of the objects in that error
        self._errors: dict[Key, dict[tuple[str, str], list[str]]] = {}

    def say(self, key: Key, service: Mapping[str, Any], reason: str, message: str | None) -> None:
        """A Warning Event unless this message was the last one for ``reason``; None: the
        problem is gone (the next one is said again)."""
        if message is None:
            self._said.pop((key, reason), None)
        elif self._said.get((key, reason)) != message:
            self._said[(key, reason)] = message
            self.reporter.warn(service, reason=reason, message=message)

    def forget(self, key: Key) -> None:
        """The Service's load balancer is gone: its problems with it."""
        for said in [k for k in self._said if k[0] == key]:
            del self._said[said]

    def relay_error(self, change: Change) -> None:
        """A generated object turning Error (or changing its error): tell its Service."""
        new, old = status_of(change.new), status_of(change.old)
        if new.get("phase") != "Error" or (old.get("phase"), old.get("message")) == (
            "Error",
            new.get("message"),
        ):
            return
        service = (meta_of(change.new).get("labels") or {}).get(SERVICE_LABEL)
        if not service:
            return
        key = (change.key[0], str(service))
        error = (str(new.get("reason") or "Error"), str(new.get("message") or ""))
        if key not in self._errors:
            asyncio.get_running_loop().call_later(RELAY_DELAY, self._post_errors, key)
        self._errors.setdefault(key, {}).setdefault(error, []).append(
            f"{change.resource.kind} {change.key[1]}"
        )

    def _post_errors(self, key: Key) -> None:
        service = self.views.service(*key)
        for (reason, message), objects in self._errors.pop(key, {}).items():
            if service is None:
                break
            objects.sort(key=lambda o: not o.startswith("VIP "))
            more = f" (and {len(objects) - 1} more of its objects)" if len(objects) > 1 else ""
            self.reporter.warn(service, reason=reason, message=f"{objects[0]}{more}: {message}")
