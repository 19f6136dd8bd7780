"""A client for HAProxy's CLI sockets: the master CLI (``-S``) and the runtime API (``stats
socket``). One command per connection, as HAProxy's non-interactive mode expects."""

from __future__ import annotations

import csv
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from lbaas.drivers.haproxy.render import ServerRuntime


class CLIError(Exception):
    """The socket did not answer, or HAProxy refused the command."""


def command(path: Path, line: str, timeout: float = 5.0) -> str:
    """Send one command and return HAProxy's whole answer."""
    if "\n" in line or "\r" in line:
        raise CLIError(f"refusing a multi-line command: {line!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(line.encode() + b"\n")
            # The master CLI answers only once it sees the end of the request.
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            raise CLIError(f"{path}: {exc.strerror or exc}") from exc
    return b"".join(chunks).decode(errors="replace")


@dataclass(frozen=True)
class ProcInfo:
    """The master's ``show proc``: its pid, reload counters and current workers."""

    master_pid: int
    reloads: int
    failed_reloads: int
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


def set_server(
    runtime_socket: Path,
    backend: str,
    server: str,
    value: ServerRuntime,
    previous: ServerRuntime | None,
) -> None:
    """Apply weight and admin state to one server; raise CLIError if HAProxy refuses."""
    commands = []
    if previous is None or previous.weight != value.weight:
        commands.append(f"set server {backend}/{server} weight {value.weight}")
    if previous is None or previous.enabled != value.enabled:
        state = "ready" if value.enabled else "maint"
        commands.append(f"set server {backend}/{server} state {state}")
    for line in commands:
        answer = command(runtime_socket, line).strip()
        if answer:
            raise CLIError(f"{line!r}: {answer}")


@dataclass(frozen=True)
class ServerStat:
    status: str
    weight: int
    check_status: str


def show_stat(runtime_socket: Path, backend: str) -> dict[str, ServerStat]:
    """Servers of ``backend`` from ``show stat`` (empty if the backend is unknown)."""
    text = command(runtime_socket, f"show stat {backend} 4 -1")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        return {}
    rows = csv.DictReader([lines[0][2:], *lines[1:]])
    stats = {}
    for row in rows:
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        weight = row.get("uweight") or row.get("weight") or "0"
        stats[row["svname"]] = ServerStat(
            status=row.get("status", ""),
            weight=int(weight) if weight.isdigit() else 0,
            check_status=row.get("check_status", ""),
        )
    return stats
