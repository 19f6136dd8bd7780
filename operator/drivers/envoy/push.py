"""Handing Envoy a new LDS or CDS file, and knowing what it made of it.

Envoy reads a file of its filesystem xDS again when a file is renamed into its watched
directory; the driver writes to a temporary name beside the file and renames it
(``toolkit.files.atomic_write``). What Envoy made of it is read from its stats: the
subscription's ``version_text`` becomes the file's ``version_info`` when every resource was
taken; ``update_rejected`` grows when one was refused (the others are taken: Envoy builds each
listener and cluster on its own), and ``/config_dump`` then names the refused ones and why
(``error_state``). A change is done when no cluster (CDS) or listener (LDS) is warming any more:
new clusters have their endpoints and first health checks, new listeners listen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lbaas.drivers.deadline import budget
from lbaas.drivers.envoy import admin
from lbaas.drivers.envoy.admin import AdminBusy, AdminError
from lbaas.drivers.envoy.render.tree import version_of
from lbaas.drivers.errors import DriverError, DriverTimeout
from lbaas.drivers.toolkit.files import atomic_write, read_text


@dataclass(frozen=True)
class Subscription:
    prefix: str
    warming: str
    dump: str


CDS = Subscription(
    "cluster_manager.cds", "cluster_manager.warming_clusters", "dynamic_active_clusters"
)
LDS = Subscription(
    "listener_manager.lds", "listener_manager.total_listeners_warming", "dynamic_listeners"
)


def _read(sock: Path, sub: Subscription, timeout: float) -> dict[str, str]:
    pattern = f"^({sub.prefix.replace('.', '[.]')}[.](version_text|update_rejected)|{sub.warming})$"
    return admin.stats(sock, pattern, timeout)


def push(path: Path, text: str, sub: Subscription, *, sock: Path | None, timeout: float
         ) -> dict[str, str]:  # fmt: skip
    """Replace ``path`` with ``text`` (when it differs) and, when Envoy runs (``sock``), wait
    until it took it: the resources it refused, by name, with its reason.

    :raises DriverTimeout: Envoy did not take the file in time (the file is in place: Envoy
        or the next call finishes the change).
    :raises DriverError: Envoy's admin API stopped answering.
    """
    if read_text(path) == text:
        return {}
    version = version_of(text)
    before = None
    if sock is not None:
        try:
            before = admin.counter(_read(sock, sub, timeout), f"{sub.prefix}.update_rejected")
        except AdminError as exc:
            raise DriverError(f"Envoy's admin API does not answer: {exc}") from exc
    atomic_write(path, text, 0o644)
    if sock is None or before is None:
        return {}
    return wait_taken(sock, sub, version, before, timeout)


def wait_endpoints(sock: Path, versions: dict[str, str | None], timeout: float) -> None:
    """Wait until Envoy runs each cluster's endpoints of the given EDS file versions (one
    ``/stats`` read per poll for the whole device)."""
    deadline = time.monotonic() + budget(timeout, "waiting for Envoy to take new endpoints")
    while True:
        left = deadline - time.monotonic()
        try:
            running = admin.stats(sock, r"^cluster\..*\.version_text$", min(1.0, max(left, 0.01)))
        except AdminBusy:
            running = {}  # busy taking the update: asked again until the deadline
        except AdminError as exc:
            raise DriverError(f"Envoy's admin API stopped answering: {exc}") from exc
        late = [n for n, v in versions.items() if running.get(f"cluster.{n}.version_text") != v]
        if not late:
            return
        if left <= 0:
            raise DriverTimeout(f"waiting for Envoy to take the endpoints of {late[0]}")
        time.sleep(0.005)


def wait_taken(sock: Path, sub: Subscription, version: str | None, rejected_before: int,
               timeout: float) -> dict[str, str]:  # fmt: skip
    deadline = time.monotonic() + budget(timeout, f"waiting for Envoy to take its {sub.prefix}")
    refused: dict[str, str] | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DriverTimeout(f"waiting for Envoy to take its new {sub.prefix[-3:].upper()}")
        try:
            values = _read(sock, sub, min(1.0, left))
            if refused is None:
                if values.get(f"{sub.prefix}.version_text") == version:
                    refused = {}
                elif admin.counter(values, f"{sub.prefix}.update_rejected") > rejected_before:
                    refused = admin.failures(sock, sub.dump, min(2.0, left)) or {
                        "": "Envoy refused the update and named no resource"
                    }
            if refused is not None and admin.counter(values, sub.warming) == 0:
                return refused
        except AdminBusy:
            pass  # busy taking the file (a big update): asked again until the deadline
        except AdminError as exc:
            raise DriverError(f"Envoy's admin API stopped answering: {exc}") from exc
        time.sleep(0.005)
