"""A client for HAProxy's CLI sockets: the master CLI (``-S``) and the runtime API (``stats
socket``). One command per connection, as HAProxy's non-interactive mode expects.

Every socket wait is cut to the driver call's deadline (``lbaas.drivers.deadline``): when the
deadline is what ended a command, ``DriverTimeout`` is raised instead of :class:`CLIError`,
so that no caller mistakes it for a refusal and falls back to a (long) reload.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lbaas.drivers.deadline import budget, expired
from lbaas.drivers.errors import DriverTimeout

QUERY_TIMEOUT = 2.0
"""Seconds a read-only query of the periodic checks (member health, ``verify``, ``orphans``)
may wait. A deaf HAProxy must not hold its device for a whole driver call with each of them:
the probe, queued behind them (one call at a time per device), would report it late."""


class CLIError(Exception):
    """The socket did not answer, or HAProxy refused the command."""


def command(path: Path, line: str, timeout: float = 5.0, payload: list[str] | None = None) -> str:
    """Send one command and return HAProxy's whole answer. ``payload``: lines sent after
    ``<<`` (``add map ... <<``), each one line without ``;`` either."""
    for part in [line, *(payload or ())]:
        if "\n" in part or "\r" in part or ";" in part or (payload is not None and not part):
            raise CLIError(f"refusing a command that would be several: {part!r}")
    wait = budget(timeout, f"talking to HAProxy ({line.split(' ', 1)[0]} on {path.name})")
    text = line if payload is None else "\n".join([f"{line} <<", *payload, ""])
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(wait)
        try:
            sock.connect(str(path))
            sock.sendall(text.encode() + b"\n")
            # The master CLI answers only once it sees the end of the request.
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            if expired():
                raise DriverTimeout(f"waiting for HAProxy's answer to {line!r}") from exc
            raise CLIError(f"{path}: {exc.strerror or exc}") from exc
    return b"".join(chunks).decode(errors="replace")


def expect_empty(path: Path, line: str) -> None:
    """A command that answers nothing when it succeeds (``set server``, ``enable health``)."""
    answer = command(path, line).strip()
    if answer:
        raise CLIError(f"{line!r}: {answer}")


@dataclass(frozen=True)
class ProcInfo:
    """The master's ``show proc``: its pid, reload counters and workers."""

    master_pid: int
    reloads: int
    """Reloads of this master, failed ones included: it only grows."""
    failed_reloads: int
    """Failed reloads since the last successful one (HAProxy resets it)."""
    workers: dict[int, int]
    """pid → number of reloads the worker has survived (0 = current)."""

    @property
    def current_workers(self) -> list[int]:
        return [pid for pid, reloads in self.workers.items() if reloads == 0]


_MASTER = re.compile(r"^(\d+)\s+master\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?")
_WORKER = re.compile(r"^(\d+)\s+worker\s+(\d+)")


def show_proc(master_socket: Path, timeout: float = 2.0) -> ProcInfo:
    text = command(master_socket, "show proc", timeout)
    info = parse_proc(text)
    if info is None:
        raise CLIError(f"{master_socket}: unexpected answer to 'show proc': {text[:200]!r}")
    return info


def parse_proc(text: str) -> ProcInfo | None:
    """Parse the master CLI's ``show proc`` (HAProxy 2.6 layout)."""
    master = None
    workers: dict[int, int] = {}
    for line in text.splitlines():
        if match := _MASTER.match(line):
            master = match
        elif match := _WORKER.match(line):
            workers[int(match[1])] = int(match[2])
    if master is None:
        return None
    return ProcInfo(int(master[1]), int(master[2]), int(master[3] or 0), workers)


# -- servers ----------------------------------------------------------------------------------

ADMIN_MAINT = 0x23
"""SRV_ADMF_MAINT: forced, inherited or resolution maintenance. Configuration maintenance
(0x04) stays set after ``set server ... state ready``, so it is not part of the mask."""
ADMIN_DRAIN = 0x18
CHECK_ENABLED = 0x04
OP_STOPPED, OP_STARTING, OP_RUNNING, OP_STOPPING = 0, 1, 2, 3


@dataclass(frozen=True)
class ServerState:
    """One row of ``show servers state``: what a running server looks like."""

    backend: str
    name: str
    address: str
    port: int
    op_state: int
    admin_state: int
    weight: int
    check_state: int

    @property
    def in_maintenance(self) -> bool:
        return bool(self.admin_state & ADMIN_MAINT)

    @property
    def draining(self) -> bool:
        return bool(self.admin_state & ADMIN_DRAIN)

    @property
    def checked(self) -> bool:
        return bool(self.check_state & CHECK_ENABLED)


def parse_servers_state(text: str) -> dict[str, dict[str, ServerState]]:
    """``show servers state`` (format 1) as backend → server → state."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "1" or len(lines) < 2 or not lines[1].startswith("# "):
        raise CLIError(f"unexpected answer to 'show servers state': {text[:200]!r}")
    columns = lines[1][2:].split()
    backends: dict[str, dict[str, ServerState]] = {}
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < len(columns):
            continue
        row = dict(zip(columns, fields, strict=False))
        address = row["srv_addr"]
        if ":" in address:  # IPv4 comes canonical; a device of 10,000 servers parses faster
            with contextlib.suppress(ValueError):
                address = ipaddress.ip_address(address).compressed
        state = ServerState(
            backend=row["be_name"],
            name=row["srv_name"],
            address=address,
            port=int(row["srv_port"]) if row["srv_port"].isdigit() else 0,
            op_state=int(row["srv_op_state"]),
            admin_state=int(row["srv_admin_state"]),
            weight=int(row["srv_uweight"]),
            check_state=int(row["srv_check_state"]),
        )
        backends.setdefault(state.backend, {})[state.name] = state
    return backends


class NoSuchBackend(CLIError):
    """The running process has no such backend."""


def servers_state(
    runtime_socket: Path, backend: str, timeout: float = 5.0
) -> dict[str, ServerState]:
    """The servers of ``backend`` (raises :class:`NoSuchBackend`)."""
    text = command(runtime_socket, f"show servers state {backend}", timeout)
    if text.startswith("Can't find backend"):
        raise NoSuchBackend(f"no backend {backend} in the running HAProxy")
    return parse_servers_state(text).get(backend, {})


def filter_servers_state(text: str, keep: Callable[[ServerState], bool]) -> str:
    """``show servers state`` (format 1) with only the rows of the servers ``keep`` accepts
    (what a reload should carry over); an answer it cannot read becomes an empty file."""
    try:
        kept = {
            (state.backend, state.name)
            for servers in parse_servers_state(text).values()
            for state in servers.values()
            if keep(state)
        }
    except CLIError:
        return "1\n"
    lines = text.splitlines()
    columns = lines[1][2:].split()
    backend, server = columns.index("be_name"), columns.index("srv_name")
    rows = [
        line
        for line in lines[2:]
        if len(fields := line.split()) == len(columns) and (fields[backend], fields[server]) in kept
    ]
    return "\n".join([*lines[:2], *rows]) + "\n"


def all_servers_state(
    runtime_socket: Path, timeout: float = 10.0
) -> dict[str, dict[str, ServerState]]:
    """Every backend's servers in one command (device-wide health, post-reload checks)."""
    return parse_servers_state(command(runtime_socket, "show servers state", timeout))


def current_sessions(runtime_socket: Path, backend: str, server: str) -> int:
    """Requests ``backend/server`` is serving now (``scur`` of ``show stat``); 0 when gone."""
    text = command(runtime_socket, f"show stat {backend} 4 -1", 2.0)
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return 0
    header = lines[0][2:].split(",")
    try:
        name, scur = header.index("svname"), header.index("scur")
    except ValueError:
        return 0
    for line in lines[1:]:
        fields = line.split(",")
        if len(fields) > max(name, scur) and fields[name] == server:
            return int(fields[scur] or 0)
    return 0


def backends(runtime_socket: Path, timeout: float = 5.0) -> list[str]:
    """Names of the running process's backends (``show backend``)."""
    text = command(runtime_socket, "show backend", timeout)
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def frontend_status(runtime_socket: Path, frontend: str, timeout: float = 5.0) -> str | None:
    """``OPEN`` / ``STOP`` (disabled) ... of a frontend, None if the process has none."""
    text = command(runtime_socket, f"show stat {frontend} 1 -1", timeout)
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[0] == frontend and fields[1] == "FRONTEND":
            return fields[17]
    return None


def frontend_statuses(runtime_socket: Path, timeout: float = 10.0) -> dict[str, str]:
    """Every frontend's status in one command (``show stat -1 1 -1``: frontends only)."""
    text = command(runtime_socket, "show stat -1 1 -1", timeout)
    found = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) > 17 and fields[1] == "FRONTEND":
            found[fields[0]] = fields[17]
    return found


BULK_MIN = 16
"""Fewer VIPs than this are always read per backend."""


class Running:
    """The running servers and frontends of a device, as a batch of VIPs needs them: read per
    backend (two commands per VIP) for a few VIPs, or once for the whole device (two commands
    in all, but the answer grows with the device) when the batch is a good part of it. Whole-
    device answers leave out backends without servers: those read as empty."""

    def __init__(self, socket: Path, wanted: int, served: int) -> None:
        self.socket = socket
        # Per backend ~1 ms of round trips; per server of the device ~15 us of answer to parse.
        self.bulk = wanted >= BULK_MIN and wanted * 8 >= served
        self._servers: dict[str, dict[str, ServerState]] | None = None
        self._frontends: dict[str, str] | None = None

    def servers(self, backend: str) -> dict[str, ServerState]:
        """Raises :class:`NoSuchBackend` (per-backend reads only)."""
        if not self.bulk:
            return servers_state(self.socket, backend)
        if self._servers is None:
            self._servers = all_servers_state(self.socket)
        return self._servers.get(backend, {})

    def frontend(self, frontend: str) -> str | None:
        if not self.bulk:
            return frontend_status(self.socket, frontend)
        if self._frontends is None:
            self._frontends = frontend_statuses(self.socket)
        return self._frontends.get(frontend)
