"""Starting, finding, validating and reloading one device's HAProxy master.

HAProxy runs in master-worker mode (``-W -S <master socket> -p <pid file>``) in its own
session: it outlives the operator, and a new operator process finds it again through the pid
file and the master socket. It is not daemonised with ``-D`` because a daemon closes stderr,
and the master's stderr (``haproxy.log``) is where the reason of a failed reload is written.

A reload is the master CLI's ``reload``: the master re-executes itself with the configuration
on disk, new workers take over the listening sockets, old workers finish their connections.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lbaas.drivers.base import DriverError
from lbaas.drivers.haproxy import runtime
from lbaas.drivers.haproxy.config import HAProxyDeviceConfig
from lbaas.drivers.haproxy.runtime import CLIError, ProcInfo
from lbaas.drivers.haproxy.store import atomic_write

_ALERT = re.compile(r"^\[(?:ALERT|EMERG)\]\s*\(\d+\)\s*:\s*(.*)$")
MAX_LOG_BYTES = 1 << 20


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (nobody reaps daemons in some containers) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


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

    def check(self, candidate: Path) -> None:
        """``haproxy -c``: raise InvalidConfiguration with HAProxy's own error lines."""
        try:
            result = subprocess.run(
                [self.binary(), "-c", "-f", str(candidate)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise DriverError("haproxy -c timed out", reason="ValidationTimeout") from exc
        if result.returncode != 0:
            output = result.stdout + result.stderr
            errors = alert_lines(output) or output.strip().splitlines()[-5:]
            raise DriverError(
                "HAProxy rejected the generated configuration; the running configuration is"
                " unchanged: " + " | ".join(errors),
                detail=output,
                retryable=False,
                reason="InvalidConfiguration",
            )

    def master(self, attempts: int = 3) -> ProcInfo | None:
        """The running master, or None if there is none.

        Raises a retryable error when the pid file names a live process whose socket does not
        answer: starting a second HAProxy then would fight the first over the addresses.
        """
        for attempt in range(attempts):
            try:
                return runtime.show_proc(self.paths.master_socket)
            except CLIError:
                if attempt + 1 < attempts:
                    time.sleep(0.1)
        pid = read_pid(self.paths.pid)
        if self.config.managed and pid is not None and pid_alive(pid) and self._is_haproxy(pid):
            raise DriverError(
                f"HAProxy (pid {pid}) is running but its master socket"
                f" {self.paths.master_socket} does not answer",
                reason="HAProxyUnresponsive",
            )
        return None

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

    def start(self) -> ProcInfo:
        """Start the master on the configuration file, in its own session; wait for a worker."""
        if not self.config.managed:
            raise DriverError(
                f"HAProxy is not running (master socket {self.paths.master_socket} does not"
                " answer) and the device is not managed; start it with -W -S"
                f" {self.paths.master_socket} -f {self.paths.config}",
                reason="HAProxyNotRunning",
            )
        if self._log_offset() > MAX_LOG_BYTES:
            os.truncate(self.paths.log, 0)
        offset = self._log_offset()
        argv = [
            self.binary(), "-W",
            "-S", f"{self.paths.master_socket},mode,600",
            "-p", str(self.paths.pid),
            "-f", str(self.paths.config),
        ]  # fmt: skip
        with self.paths.log.open("ab") as log:
            # A file, not a pipe: nobody would drain a pipe once this operator has gone.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.paths.root,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.config.reload_timeout_seconds
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise DriverError(
                    "HAProxy failed to start: "
                    + (" | ".join(self._log_alerts(offset)) or f"exit status {code}"),
                    reason="HAProxyStartFailed",
                )
            with contextlib.suppress(CLIError):
                info = runtime.show_proc(self.paths.master_socket)
                if info.current_workers:
                    return info
            time.sleep(0.02)
        proc.kill()
        raise DriverError(
            "HAProxy started but its master socket did not report a worker in time: "
            + " | ".join(self._log_alerts(offset)),
            reason="HAProxyStartFailed",
        )

    def save_server_state(self, keep: bool = True) -> None:
        """Dump health and admin state so new workers do not start every server as UP
        (``keep=False`` writes an empty dump: every server then starts as configured)."""
        text = ""
        if keep:
            with contextlib.suppress(CLIError):
                text = runtime.command(self.paths.runtime_socket, "show servers state")
        if not text.startswith("1\n"):
            text = "1\n"
        atomic_write(self.paths.server_state, text, 0o600)

    def reload(self, keep_server_state: bool = True) -> ProcInfo:
        """Reload through the master CLI and wait until a new worker serves (or it failed)."""
        try:
            before = runtime.show_proc(self.paths.master_socket)
        except CLIError as exc:
            raise DriverError(f"HAProxy master socket does not answer: {exc}") from exc
        self.save_server_state(keep_server_state)
        if self._log_offset() > MAX_LOG_BYTES:
            # The master appends (O_APPEND), so truncating in place is safe.
            os.truncate(self.paths.log, 0)
        offset = self._log_offset()
        # The master re-executes itself: the connection may be cut before any answer.
        with contextlib.suppress(CLIError):
            runtime.command(self.paths.master_socket, "reload")
        deadline = time.monotonic() + self.config.reload_timeout_seconds
        while time.monotonic() < deadline:
            time.sleep(0.02)
            try:
                info = runtime.show_proc(self.paths.master_socket, timeout=1.0)
            except CLIError:
                continue
            if info.reloads <= before.reloads and info.master_pid == before.master_pid:
                continue
            if any(pid not in before.workers for pid in info.current_workers):
                return info
            if info.failed_reloads > before.failed_reloads or not info.current_workers:
                alerts = self._log_alerts(offset) if self.config.managed else []
                raise DriverError(
                    "HAProxy failed to load the new configuration; the previous one keeps"
                    " serving: " + (" | ".join(alerts) or "see HAProxy's log"),
                    reason="ReloadFailed",
                )
        raise DriverError("HAProxy did not finish reloading in time", reason="ReloadTimeout")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the master and its workers (tests and tooling; the driver never calls it)."""
        pid = read_pid(self.paths.pid)
        if pid is None or not pid_alive(pid) or not self._is_haproxy(pid):
            return
        workers = children(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in [pid, *workers]:
            while pid_alive(proc) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc, signal.SIGKILL)


def children(parent: int) -> list[int]:
    """Pids whose parent is ``parent`` (an HAProxy master's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry.name))
    return found
