"""Fencing and locking of one device's state dir: the parts of ownership a driver keeps.

The operator hands each call a ``fence`` (``DeviceHandle.fence``) that grows every time the
device changes owner. A driver that stores the highest fence it has seen on the device and
refuses older ones makes a paused former owner harmless: its late call is refused instead of
undoing the new owner's work. :class:`DeviceDir` does that for drivers whose device state is a
directory: one thread lock per directory, a file lock against another operator process (an old
one still shutting down), and the fence check under both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.errors import StaleOwnerError
from lbaas.drivers.toolkit.files import atomic_write, read_text

OWNER_FILE = "owner.json"
LOCK_FILE = ".lock"


def check_fence(path: Path, fence: int, owner: str) -> None:
    """Refuse a caller older than the newest owner seen; remember a newer one.

    Fence 0 is an unfenced caller (tests, tools): allowed, and remembers nothing. Called under
    the device's file lock, so the read-compare-write is atomic between processes.
    """
    if fence <= 0:
        return
    seen, holder = 0, ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        data = json.loads(read_text(path) or "{}")
        seen, holder = int(data.get("fence", 0)), str(data.get("owner", ""))
    if fence < seen:
        raise StaleOwnerError(
            f"this agent ({owner or 'unnamed'}, fence {fence}) no longer owns the device:"
            f" {holder or 'another agent'} has fence {seen}"
        )
    if fence > seen:
        atomic_write(path, json.dumps({"fence": fence, "owner": owner}) + "\n", 0o600)


class DeviceDir:
    """Serialises work on state dirs: ``with dirs.session(root, handle):`` holds the thread
    lock of ``root``, then its file lock, then checks ``handle``'s fence (``owner.json``)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}

    def lock_of(self, root: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(root, threading.Lock())

    @contextlib.contextmanager
    def session(self, root: Path, device: DeviceHandle) -> Iterator[None]:
        """Exclusive use of ``root`` for ``device``'s call; raises ``StaleOwnerError`` for a
        caller older than the newest owner seen. ``root`` must exist."""
        with self.lock_of(root), (root / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                check_fence(root / OWNER_FILE, device.fence, device.owner)
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
