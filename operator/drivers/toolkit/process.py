"""Data-plane processes a driver starts and supervises on the operator's host.

A managed data plane (HAProxy, Envoy) runs in its own session: it outlives the operator, and a
new operator process finds it again by its pid file. Its output goes to a file, never a pipe
(nobody would drain a pipe once this operator has gone). ``pid_alive`` counts a zombie as dead
(nobody reaps daemons in some containers). The death of such a process is noticed at once by
:class:`~lbaas.drivers.toolkit.deathwatch.DeathWatch`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


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


def spawn(argv: Sequence[str], *, log: Path, cwd: Path, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start ``argv`` in a session of its own (it survives the operator), output appended to
    ``log``."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=handle,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )


def terminate(pid: int, timeout: float = 5.0, *, also: Sequence[int] = ()) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` for it and ``also`` (its workers) to exit, then
    SIGKILL what is left (tests and tooling: a driver never stops its data plane)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in [pid, *also]:
        while pid_alive(proc) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid_alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc, signal.SIGKILL)
