"""How many files Envoy may watch on this host: its inotify budget.

Envoy watches every file of its filesystem xDS with an inotify instance of its own (LDS, CDS,
each EDS file, each SDS file), and the kernel caps a user's instances
(``fs.inotify.max_user_instances``: 128 by default, shared by every process of the user). An
Envoy that needs one more aborts (``assert failure: inotify_fd_ >= 0``) and, restarted from
the same files, aborts again: one VIP too many would take the whole device down. So ``plan``
refuses the trees that would need more than :func:`budget` (reason ``InotifyLimit``,
retryable: instances freed by others make room).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from lbaas.drivers.errors import DriverError

LIMIT_FILE = Path("/proc/sys/fs/inotify/max_user_instances")
DEFAULT_LIMIT = 128
MARGIN = 2
"""Left for the rest of Envoy (none needed today) and the driver's own tooling."""
INOTIFY_LIMIT = "InotifyLimit"


def limit() -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(LIMIT_FILE.read_text())
    return DEFAULT_LIMIT


def instances(pid: int) -> int:
    """The inotify instances ``pid`` holds (0 when it cannot be read)."""
    count = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                count += os.readlink(fd) == "anon_inode:inotify"
    return count


def used_by_others(exclude: int | None) -> int:
    """Instances held by this user's processes other than ``exclude`` (the device's Envoy)."""
    uid, total = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        with contextlib.suppress(OSError):
            if entry.stat().st_uid == uid:
                total += instances(int(entry.name))
    return total


def budget(envoy: int | None) -> int:
    """How many files the device's Envoy (pid ``envoy``, None: not running) may watch."""
    return limit() - used_by_others(envoy) - MARGIN


def over(needed: int, available: int) -> DriverError:
    return DriverError(
        f"the device's Envoy would watch {needed} files (its listeners, clusters, the EDS file of"
        f" each pool with endpoints: files, the SDS file of each certificate) and this host lets"
        f" it watch {available} (fs.inotify.max_user_instances {limit()}, less what this user's"
        " other processes hold): raise fs.inotify.max_user_instances on the device host, or use"
        " endpoints: inline; the other VIPs of the device are not affected",
        reason=INOTIFY_LIMIT,
    )
