"""Notice the moment a device's data-plane process dies (``Driver.watch``).

A managed data plane is not the operator's child (it runs in its own session and outlives the
operator), so there is no SIGCHLD: a thread holds a pidfd of the process (``os.pidfd_open``),
which becomes readable the instant the process exits, and ``poll``s it together with a pipe
that stops the thread. While no process runs (between its death and the restart ``probe``
does), the thread looks for the new one every :data:`RESCAN` seconds. (HAProxy: the master is
watched; 2.6's master exits when its current worker dies.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

from lbaas.drivers.toolkit.process import pid_alive

log = logging.getLogger(__name__)
RESCAN = 0.05
REFRESH_MS = 5000
"""Re-read the pid this often even when nothing happened (a replaced process)."""


class DeathWatch(threading.Thread):
    """Calls ``changed`` once each time the process ``find_pid`` names exits."""

    def __init__(self, find_pid: Callable[[], int | None], changed: Callable[[], None],
                 name: str) -> None:  # fmt: skip
        super().__init__(name=f"deathwatch-{name}", daemon=True)
        self._find_pid = find_pid
        self._changed = changed
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self.is_alive() and threading.current_thread() is not self:
            self.join(5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                pid = self._find_pid()
            except Exception:  # a hung socket, a vanished state dir: look again later
                log.debug("looking for the process failed", exc_info=True)
                pid = None
            if pid is None:
                self._stopping.wait(RESCAN)
                continue
            if self._wait_for_exit(pid):
                self._notify()

    def _wait_for_exit(self, pid: int) -> bool:
        """Block until ``pid`` exits (True), the watch stops or REFRESH_MS pass (False)."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            events = dict(poller.poll(REFRESH_MS))
        finally:
            os.close(pidfd)
        # A zombie (nobody reaps daemons in some containers) is dead too.
        return pidfd in events and not self._stopping.is_set() and not pid_alive(pid)

    def _notify(self) -> None:
        try:
            self._changed()
        except Exception:
            log.exception("the device-changed callback failed")
