"""Before a reload: will HAProxy be able to open every listener it is given?

A reload whose listener cannot bind fails only after HAProxy 2.6 has paused every listener of
the running worker for about two seconds (see ``process``): one tenant's impossible address
would take down all VIPs of the device, at every retry. So each listener is tried here first,
with the same options HAProxy uses, and a VIP whose listener cannot work is refused (the one
being applied) or left out (another VIP's file) before anything changes.

- The address: binding ``address:0`` fails with EADDRNOTAVAIL when the host does not have it.
- The port, only for listeners the running HAProxy does not already hold: EADDRINUSE is a
  refusal unless the socket in the way belongs to this device's own HAProxy (found through
  ``/proc/net/tcp*`` and the processes' file descriptors).
"""

from __future__ import annotations

import contextlib
import ipaddress
from pathlib import Path

from lbaas.drivers.errors import DriverError
from lbaas.drivers.toolkit.listen import (
    _proc_address,
    address_problem,
    held_listeners,
    listening_inodes,
    listening_pids,
    not_allowed,
    not_available,
    port_problem,
)
from lbaas.drivers.toolkit.listen import try_bind as _try_bind
from lbaas.drivers.toolkit.process import children

__all__ = [
    "Preflight",
    "_proc_address",
    "_try_bind",
    "address_problem",
    "device_haproxy_pids",
    "held_listeners",
    "listening_inodes",
    "listening_pids",
    "not_available",
    "port_problem",
]


def device_haproxy_pids(state_dir: Path, master_pid: int | None) -> set[int]:
    """This device's HAProxy processes: the master, its workers, and any HAProxy whose command
    line names the state dir (workers of a master that just died may linger a moment)."""
    pids = set()
    if master_pid:
        pids |= {master_pid, *children(master_pid)}
    marker = f"{state_dir}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes()
            if b"haproxy" in cmdline and marker in cmdline:
                pids.add(int(entry.name))
    return pids


class Preflight:
    """The listener checks of one plan, against a snapshot of what the device's HAProxy
    holds: listeners it already has are not bound again (they would look "in use")."""

    def __init__(self, state_dir: Path, master_pid: int | None) -> None:
        self.ours = device_haproxy_pids(state_dir, master_pid)
        self.held = held_listeners(self.ours)

    def problem(self, address: str, port: int) -> DriverError | None:
        ip = ipaddress.ip_address(address)
        if refusal := not_allowed(address):
            # 0.0.0.0:80 would bind beside the device's other listeners (SO_REUSEPORT) and
            # take every address's traffic on that port that no other VIP claims.
            return refusal
        listener = (ip.compressed, port)
        if listener in self.held:
            return address_problem(address, port)
        return port_problem(address, port, self.ours)
