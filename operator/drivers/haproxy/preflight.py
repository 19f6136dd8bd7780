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
import errno
import ipaddress
import os
import socket
from collections.abc import Collection
from pathlib import Path

from lbaas.drivers.errors import DriverError
from lbaas.drivers.toolkit.process import children

_LISTEN = "0A"


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def _try_bind(address: str, port: int) -> int:
    """0, or the errno of binding ``address:port`` as HAProxy would (SO_REUSEADDR)."""
    with socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc.errno or -1
    return 0


def not_available(address: str, port: int) -> DriverError:
    return DriverError(
        f"address {address} is not available on the device host, so {address}:{port} cannot"
        " listen; the other VIPs of the device are not affected",
        retryable=False,
        reason="AddressNotAvailable",
    )


def address_problem(address: str, port: int) -> DriverError | None:
    """AddressNotAvailable when the host does not have ``address`` (any port)."""
    code = _try_bind(address, 0)
    if code in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return not_available(address, port)
    return None


def port_problem(address: str, port: int, ours: Collection[int]) -> DriverError | None:
    """Why ``address:port`` cannot listen, or None. ``ours``: pids of this device's HAProxy,
    whose sockets are no obstacle (HAProxy binds beside itself with SO_REUSEPORT)."""
    code = _try_bind(address, port)
    if code == 0:
        return None
    if code in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return not_available(address, port)
    if code == errno.EACCES:
        return DriverError(
            f"port {port} is privileged and the operator may not bind it on the device host",
            retryable=False,
            reason="PortNotPermitted",
        )
    if code == errno.EADDRINUSE:
        holders = listening_pids(address, port)
        if holders and holders <= set(ours):
            return None
        return DriverError(
            f"{address}:{port} is already in use by another process on the device host; the"
            " VIP is not configured and the other VIPs of the device are not affected",
            detail=f"listening pids: {sorted(holders) or 'unknown'}",
            retryable=False,
            reason="AddressInUse",
        )
    return DriverError(
        f"{address}:{port} cannot listen: {os.strerror(code)}",
        retryable=False,
        reason="AddressNotAvailable",
    )


def _proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``/proc/net/tcp*`` addresses: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def listening_inodes(address: str, port: int) -> set[int]:
    """Inodes of the listening TCP sockets in the way of ``address:port`` (itself or the
    wildcard address of its family)."""
    wanted = ipaddress.ip_address(address)
    table = "/proc/net/tcp6" if wanted.version == 6 else "/proc/net/tcp"
    inodes = set()
    with contextlib.suppress(OSError):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local, _, local_port = fields[1].partition(":")
            if int(local_port, 16) != port:
                continue
            bound = _proc_address(local)
            if bound == wanted or bound.is_unspecified:
                inodes.add(int(fields[9]))
    return inodes


def listening_pids(address: str, port: int) -> set[int]:
    """Processes holding a listening socket in the way of ``address:port`` (as far as this
    process may look at their file descriptors)."""
    inodes = {f"socket:[{inode}]" for inode in listening_inodes(address, port)}
    pids: set[int] = set()
    if not inodes:
        return pids
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        pids.add(int(entry.name))
                        break
    return pids


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


def held_listeners(pids: Collection[int]) -> set[tuple[str, int]]:
    """The ``(address, port)`` listeners that ``pids`` hold (wildcards included)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    held = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != _LISTEN or fields[9] not in inodes:
                    continue
                local, _, port = fields[1].partition(":")
                held.add((_proc_address(local).compressed, int(port, 16)))
    return held


class Preflight:
    """The listener checks of one plan, against a snapshot of what the device's HAProxy
    holds: listeners it already has are not bound again (they would look "in use")."""

    def __init__(self, state_dir: Path, master_pid: int | None) -> None:
        self.ours = device_haproxy_pids(state_dir, master_pid)
        self.held = held_listeners(self.ours)

    def problem(self, address: str, port: int) -> DriverError | None:
        ip = ipaddress.ip_address(address)
        if ip.is_unspecified or ip.is_multicast:
            # 0.0.0.0:80 would bind beside the device's other listeners (SO_REUSEPORT) and
            # take every address's traffic on that port that no other VIP claims.
            return DriverError(
                f"a VIP cannot listen on {address}: unspecified and multicast addresses are"
                " never served",
                retryable=False,
                reason="AddressNotAllowed",
            )
        listener = (ip.compressed, port)
        if listener in self.held:
            return address_problem(address, port)
        return port_problem(address, port, self.ours)
