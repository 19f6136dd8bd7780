"""Starting, finding, validating and reloading one device's HAProxy master.

HAProxy runs in master-worker mode (``-W -S <master socket> -p <pid file>``) in its own
session: it outlives the operator, and a new operator process finds it again through the pid
file and the master socket. It is not daemonised with ``-D`` because a daemon closes stderr,
and the master's stderr (``haproxy.log``) is where the reason of a failed reload is written.

A reload is the master CLI's ``reload``: the master re-executes itself with the configuration
on disk (``-f haproxy.cfg -f conf.d``), new workers take over the listening sockets, old workers
finish their connections.

A reload HAProxy 2.6 cannot finish because a listener does not bind (address not on this host,
port held by another process) is not harmless: the new process pauses the old workers'
listeners while it retries for about two seconds, so *every* VIP of the device refuses
connections meanwhile. The driver therefore checks listeners before reloading (``preflight``).
A reload refused while parsing pauses nothing.

Every wait here is bounded by the call's deadline (``lbaas.drivers.deadline.budget``); the
process parts common to drivers (pid files, a session of its own, stopping) are
``lbaas.drivers.toolkit.process``'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from lbaas.drivers.deadline import budget
from lbaas.drivers.errors import DriverError, DriverTimeout
from lbaas.drivers.haproxy import runtime
from lbaas.drivers.haproxy.config import HAProxyDeviceConfig
from lbaas.drivers.haproxy.runtime import CLIError, ProcInfo, ServerState
from lbaas.drivers.toolkit.files import atomic_write
from lbaas.drivers.toolkit.process import children, pid_alive, read_pid, spawn, terminate

_ALERT = re.compile(r"^\[(?:ALERT|EMERG)\]\s*\(\d+\)\s*:\s*(.*)$")
MAX_LOG_BYTES = 1 << 20
CHECK_TIMEOUT = 60.0
PROBE_TIMEOUT = 1.0
"""Seconds a worker may take to answer ``show info`` before the probe says not ready."""
MASTER_WINDOW = 2.0
"""Seconds a live master may take to answer (a reload re-executes it) before it counts as
hung."""
MIN_RELOAD_BUDGET = 1.0
"""A reload is not started with less time than this left before the call's deadline."""


class ConfigRejected(DriverError):
    """``haproxy -c`` refused the configuration; ``alerts`` are its own error lines."""

    def __init__(self, message: str, *, detail: str, alerts: list[str]) -> None:
        super().__init__(message, detail=detail, retryable=False, reason="InvalidConfiguration")
        self.alerts = alerts


class ReloadFailed(DriverError):
    """HAProxy refused to load the new configuration (the old worker kept serving); ``alerts``
    are the master's error lines, which name the file, proxy or listener at fault."""

    def __init__(self, message: str, *, alerts: list[str]) -> None:
        super().__init__(message, retryable=False, reason="ReloadFailed")
        self.alerts = alerts


def alert_lines(output: str) -> list[str]:
    """HAProxy's own error lines, without the pid prefix."""
    lines = []
    for line in output.splitlines():
        if match := _ALERT.match(line.strip()):
            lines.append(match[1])
    return lines


class Supervisor:
    """One device's HAProxy processes, as seen from its state dir and sockets."""

    def __init__(self, config: HAProxyDeviceConfig) -> None:
        self.config = config
        self.paths = config.paths()

    def binary(self) -> str:
        found = shutil.which(self.config.haproxy_binary)
        if not found:
            raise DriverError(
                f"haproxy binary {self.config.haproxy_binary!r} not found on the operator host",
                retryable=False,
                reason="HAProxyNotFound",
            )
        return found

    def config_args(self) -> list[str]:
        """What the master loads: the global file, then every VIP fragment (lexical order)."""
        return ["-f", str(self.paths.config), "-f", str(self.paths.conf_d)]

    def check(self, files: list[Path]) -> None:
        """``haproxy -c`` over ``files`` (the global file first, then fragments).

        Raises :class:`ConfigRejected` with HAProxy's own error lines, which name the file and
        line (``parsing [<file>:<line>]``) or the proxy they are about.
        """
        argv = [self.binary(), "-c"]
        for path in files:
            argv += ["-f", str(path)]
        wait = budget(CHECK_TIMEOUT, "validating the configuration (haproxy -c)", 0.2)
        try:
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=wait,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise DriverTimeout("validating the configuration (haproxy -c)") from exc
        if result.returncode != 0:
            output = result.stdout + result.stderr
            errors = alert_lines(output) or output.strip().splitlines()[-5:]
            raise ConfigRejected(
                "HAProxy rejected the generated configuration; the running configuration is"
                " unchanged: " + " | ".join(errors),
                detail=output,
                alerts=errors,
            )

    def master(self, window: float = MASTER_WINDOW) -> ProcInfo | None:
        """The running master, or None if there is none.

        A master re-executing itself for a reload does not answer for a moment, so a live
        HAProxy is asked again for up to ``window`` seconds; a dead one is given up at once.
        Raises a retryable ``HAProxyUnresponsive`` error when the pid file names a live
        HAProxy that does not answer in that time (stopped, hung): starting a second one then
        would fight the first over the addresses.
        """
        deadline = time.monotonic() + budget(window, "asking HAProxy's master for its state")
        while True:
            left = deadline - time.monotonic()
            try:
                return runtime.show_proc(self.paths.master_socket, max(0.01, min(1.0, left)))
            except CLIError:
                pass
            pid = read_pid(self.paths.pid)
            alive = pid is not None and pid_alive(pid) and self._is_haproxy(pid)
            if self.config.managed and not alive:
                return None
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        if not alive:
            return None
        raise DriverError(
            f"HAProxy (pid {pid}) is running but its master socket"
            f" {self.paths.master_socket} does not answer",
            reason="HAProxyUnresponsive",
        )

    def needs_restart(self, info: ProcInfo) -> bool:
        """A managed master started before VIPs moved to conf.d/ would drop them on reload."""
        if not self.config.managed:
            return False
        try:
            argv = Path(f"/proc/{info.master_pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.paths.conf_d).encode() not in argv

    @staticmethod
    def _is_haproxy(pid: int) -> bool:
        try:
            return b"haproxy" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def _log_offset(self) -> int:
        try:
            return self.paths.log.stat().st_size
        except FileNotFoundError:
            return 0

    def _log_alerts(self, offset: int) -> list[str]:
        try:
            with self.paths.log.open("rb") as handle:
                handle.seek(offset)
                return alert_lines(handle.read().decode(errors="replace"))
        except FileNotFoundError:
            return []

    def start(self, takeover: bool = False) -> ProcInfo:
        """Start the master on the configuration files, in its own session; wait for a worker.

        A master still without a worker at the call's deadline is left running (the next call
        adopts it); one without a worker after ``reloadTimeoutSeconds`` is killed.
        """
        if not self.config.managed:
            raise DriverError(
                f"HAProxy is not running (master socket {self.paths.master_socket} does not"
                " answer) and the device is not managed; start it with -W -S"
                f" {self.paths.master_socket} {' '.join(self.config_args())}",
                reason="HAProxyNotRunning",
            )
        limit = self.config.reload_timeout_seconds
        wait = budget(limit, "starting HAProxy", min(MIN_RELOAD_BUDGET, limit))
        if self._log_offset() > MAX_LOG_BYTES:
            os.truncate(self.paths.log, 0)
        offset = self._log_offset()
        argv = [
            self.binary(), "-W",
            "-S", f"{self.paths.master_socket},mode,600",
            "-p", str(self.paths.pid),
            *self.config_args(),
            # Take the listening sockets over from the running process (as a reload does).
            *(["-x", str(self.paths.runtime_socket)] if takeover else []),
        ]  # fmt: skip
        # Output to a file, not a pipe: nobody would drain a pipe once this operator has gone.
        proc = spawn(argv, log=self.paths.log, cwd=self.paths.root)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise DriverError(
                    "HAProxy failed to start: "
                    + (" | ".join(self._log_alerts(offset)) or f"exit status {code}"),
                    reason="HAProxyStartFailed",
                )
            with contextlib.suppress(CLIError, DriverTimeout):
                info = runtime.show_proc(
                    self.paths.master_socket, min(1.0, max(0.01, deadline - time.monotonic()))
                )
                if info.master_pid == proc.pid and info.current_workers:
                    return info
            time.sleep(0.01)
        if wait >= limit:
            proc.kill()
        raise DriverTimeout(
            "starting HAProxy (no worker reported in time: "
            + (" | ".join(self._log_alerts(offset)) or "no error logged")
            + ")"
        )

    def save_server_state(self, carried: Callable[[ServerState], bool] | None = None) -> None:
        """Dump health state so new workers do not start every checked server as UP; only the
        servers ``carried`` accepts (the others start as their configuration line says)."""
        text = ""
        with contextlib.suppress(CLIError):
            text = runtime.command(self.paths.runtime_socket, "show servers state", 10.0)
        if not text.startswith("1\n"):
            text = "1\n"
        elif carried is not None:
            text = runtime.filter_servers_state(text, carried)
        atomic_write(self.paths.server_state, text, 0o600)

    def replace(self, old: ProcInfo) -> ProcInfo:
        """Start a new master that takes the listening sockets over from ``old``'s worker
        (``-x``, as a reload does), then soft-stop ``old``: no connection is refused (used
        once, for a master started with an older command line)."""
        info = self.start(takeover=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(old.master_pid, signal.SIGUSR1)
        return info

    def reload(self, carried: Callable[[ServerState], bool] | None = None) -> ProcInfo:
        """Reload through the master CLI and wait until a new worker serves (or it failed).

        Health state carries over through the server-state file dumped first (of the servers
        ``carried`` accepts: see :meth:`save_server_state`).
        """
        budget(self.config.reload_timeout_seconds, "reloading HAProxy", MIN_RELOAD_BUDGET)
        try:
            before = runtime.show_proc(self.paths.master_socket)
        except CLIError as exc:
            raise DriverError(f"HAProxy master socket does not answer: {exc}") from exc
        self.save_server_state(carried)
        if self._log_offset() > MAX_LOG_BYTES:
            # The master appends (O_APPEND), so truncating in place is safe.
            os.truncate(self.paths.log, 0)
        offset = self._log_offset()
        # The master re-executes itself: the connection may be cut before any answer.
        with contextlib.suppress(CLIError):
            runtime.command(self.paths.master_socket, "reload")
        deadline = time.monotonic() + budget(self.config.reload_timeout_seconds, "reloading")
        while time.monotonic() < deadline:
            time.sleep(0.01)
            try:
                info = runtime.show_proc(
                    self.paths.master_socket, timeout=min(1.0, deadline - time.monotonic())
                )
            except (CLIError, DriverTimeout):
                continue
            if info.reloads <= before.reloads and info.master_pid == before.master_pid:
                continue
            if any(pid not in before.workers for pid in info.current_workers):
                return info
            if info.failed_reloads > before.failed_reloads or not info.current_workers:
                alerts = self._log_alerts(offset) if self.config.managed else []
                raise ReloadFailed(
                    "HAProxy failed to load the new configuration; the previous one keeps"
                    " serving: " + (" | ".join(alerts) or "see HAProxy's log"),
                    alerts=alerts,
                )
        raise DriverTimeout("waiting for HAProxy's new worker after a reload")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the master and its workers (tests and tooling; the driver never calls it)."""
        pid = read_pid(self.paths.pid)
        if pid is None or not pid_alive(pid) or not self._is_haproxy(pid):
            return
        terminate(pid, timeout, also=children(pid))
