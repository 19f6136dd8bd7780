"""Before a data plane is told to listen: can ``address:port`` be bound on this host?

A data plane that fails to bind one listener may disturb the others (HAProxy 2.6 pauses every
listener of its running worker while it retries; Envoy refuses the listener after the file
naming it was taken) and the error it reports names no tree. So a driver tries each new
listener first, as the data plane would, and refuses the one tree that cannot listen:

- the address: binding ``address:0`` fails with EADDRNOTAVAIL when the host does not have it;
- the port, for listeners the data plane does not already hold: EADDRINUSE is a refusal unless
  every socket in the way belongs to the device's own processes (``ours``), found through
  ``/proc/net/{tcp,udp}*`` and the processes' file descriptors.

Unspecified (``0.0.0.0``) and multicast addresses are never served: such a listener would take
every address's traffic on its port that no other listener claims.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Collection, Iterable
from pathlib import Path

from lbaas.drivers.errors import DriverError, Reason

_LISTEN = "0A"
"""TCP_LISTEN in /proc/net/tcp*; a bound UDP socket is TCP_CLOSE (07)."""
_UDP_BOUND = "07"


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def try_bind(address: str, port: int, *, udp: bool = False) -> int:
    """0, or the errno of binding ``address:port`` as a data plane would (SO_REUSEADDR)."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(_family(address), kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc.errno or -1
    return 0


def not_allowed(address: str) -> DriverError | None:
    """AddressNotAllowed for unspecified and multicast addresses, else None."""
    ip = ipaddress.ip_address(address)
    if ip.is_unspecified or ip.is_multicast:
        return DriverError(
            f"a VIP cannot listen on {address}: unspecified and multicast addresses are never"
            " served",
            retryable=False,
            reason=Reason.ADDRESS_NOT_ALLOWED,
        )
    return None


def not_available(address: str, port: int) -> DriverError:
    return DriverError(
        f"address {address} is not available on the device host, so {address}:{port} cannot"
        " listen; the other VIPs of the device are not affected",
        retryable=False,
        reason=Reason.ADDRESS_NOT_AVAILABLE,
    )


def address_problem(address: str, port: int) -> DriverError | None:
    """AddressNotAvailable when the host does not have ``address`` (any port)."""
    code = try_bind(address, 0)
    if code in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return not_available(address, port)
    return None


def port_problem(address: str, port: int, ours: Collection[int], *, udp: bool = False
                 ) -> DriverError | None:  # fmt: skip
    """Why ``address:port`` cannot listen, or None. ``ours``: pids of the device's own data
    plane, whose sockets are no obstacle (they bind beside themselves with SO_REUSEPORT)."""
    code = try_bind(address, port, udp=udp)
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
        holders = listening_pids(address, port, udp=udp)
        if holders and holders <= set(ours):
            return None
        return in_use(address, port, f"listening pids: {sorted(holders) or 'unknown'}", udp=udp)
    return DriverError(
        f"{address}:{port} cannot listen: {os.strerror(code)}",
        retryable=False,
        reason=Reason.ADDRESS_NOT_AVAILABLE,
    )


def in_use(address: str, port: int, detail: str = "", *, udp: bool = False) -> DriverError:
    what = f"{address}:{port}{'/udp' if udp else ''}"
    return DriverError(
        f"{what} is already in use by another process on the device host; the VIP is not"
        " configured and the other VIPs of the device are not affected",
        detail=detail,
        retryable=False,
        reason=Reason.ADDRESS_IN_USE,
    )


def _proc_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``/proc/net/*`` addresses: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _sockets(tables: Iterable[str], state: str) -> Iterable[tuple[str, int, str]]:
    """(address, port, inode) of the sockets in ``state`` of the given /proc/net tables."""
    for table in tables:
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != state:
                    continue
                local, _, port = fields[1].partition(":")
                yield _proc_address(local).compressed, int(port, 16), fields[9]


def _tables(udp: bool, version: int | None = None) -> list[str]:
    kind = "udp" if udp else "tcp"
    names = {4: f"/proc/net/{kind}", 6: f"/proc/net/{kind}6"}
    return [names[version]] if version else list(names.values())


def listening_inodes(address: str, port: int, *, udp: bool = False) -> set[str]:
    """Inodes of the listening sockets in the way of ``address:port`` (itself or the wildcard
    address of its family)."""
    wanted = ipaddress.ip_address(address)
    state = _UDP_BOUND if udp else _LISTEN
    found = set()
    for bound, bound_port, inode in _sockets(_tables(udp, wanted.version), state):
        ip = ipaddress.ip_address(bound)
        if bound_port == port and (ip == wanted or ip.is_unspecified):
            found.add(inode)
    return found


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    found.add(link[8:-1])
    return found


def listening_pids(address: str, port: int, *, udp: bool = False) -> set[int]:
    """Processes holding a socket in the way of ``address:port`` (as far as this process may
    look at their file descriptors)."""
    inodes = listening_inodes(address, port, udp=udp)
    pids: set[int] = set()
    if not inodes:
        return pids
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _socket_inodes(int(entry.name)) & inodes:
            pids.add(int(entry.name))
    return pids


def held_listeners(pids: Collection[int], *, udp: bool = False) -> set[tuple[str, int]]:
    """The ``(address, port)`` listeners that ``pids`` hold (wildcards included)."""
    inodes: set[str] = set()
    for pid in pids:
        inodes |= _socket_inodes(pid)
    state = _UDP_BOUND if udp else _LISTEN
    return {(a, p) for a, p, inode in _sockets(_tables(udp), state) if inode in inodes}
