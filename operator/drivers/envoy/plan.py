"""Which trees a device will serve after a call, and why the others are not (``_Plan``).

Each tree of the batch is rendered (every value checked, ``render.checks``) and its listeners
tried (``toolkit.listen``): the address is on the host, the port is free or already the
device's Envoy's (a listener of that name runs there: ``/listeners``), no other tree of the
device has it. The trees already on the device keep
what they hold: a batch's tree asking for a socket another has gets ``AddressInUse``. A stored
tree that cannot be served any more (its address left the host, its certificate file is gone)
is left out (``parked``) with why; the others are served.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lbaas.drivers.envoy import admin, inotify
from lbaas.drivers.envoy.admin import AdminError
from lbaas.drivers.envoy.device import Device
from lbaas.drivers.envoy.render.tree import Rendered, Socket
from lbaas.drivers.errors import DriverError, Reason
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit import listen

Outcome = dict[str, DriverError | None]
Running = dict[str, tuple[str, int]] | None
"""Envoy's listeners: name → address:port (None: Envoy down or silent)."""


def watched(rendered: Iterable[Rendered]) -> int:
    """The files Envoy watches for these trees: LDS, CDS, EDS and SDS files."""
    return 2 + sum(len(r.endpoints) + len(r.secrets) for r in rendered)


def _problem(sock: Socket, held: bool, ours: set[int]) -> DriverError | None:
    if refusal := listen.not_allowed(sock.address):
        return refusal
    if held:
        return listen.address_problem(sock.address, sock.port)
    return listen.port_problem(sock.address, sock.port, ours, udp=sock.udp)


def _running(dev: Device) -> dict[str, tuple[str, int]] | None:
    """Envoy's listeners (name → address:port), read once per call from its admin API; None
    when Envoy is down or does not answer (every socket is then tried)."""
    sock = dev.admin()
    if sock is None:
        return None
    try:
        return admin.listeners(sock)
    except AdminError:
        return None


def _held(rendered: Rendered, running: dict[str, tuple[str, int]] | None) -> set[Socket]:
    """The sockets of ``rendered`` that Envoy holds already: a listener of the same name runs
    on the same address:port (its socket is Envoy's; reading ``/proc/net`` instead costs tens
    of milliseconds per call on a host with many connections)."""
    held = set()
    for listener in rendered.listeners if running else ():
        address = listener["address"]["socket_address"]
        bound = (address["address"], address["port_value"])
        if running is not None and running.get(listener["name"]) == bound:
            held.add(Socket(*bound, address.get("protocol") == "UDP"))
    return held


class Plan:
    """The trees the device will serve after this call, and why the others are not."""

    def __init__(self, dev: Device, changes: Mapping[str, LoadBalancer | None]) -> None:
        self.outcome: Outcome = {}
        self.serving: dict[str, Rendered] = {}
        self.trees: dict[str, LoadBalancer] = {}
        self.parked: dict[str, str] = {}
        stored, broken = dev.memo.trees.load_all(dev.paths.trees)
        self.stored = stored
        self.parked |= {key: why for key, why in broken.items() if key not in changes}
        pid = dev.supervisor.pid()
        running, ours = _running(dev), {pid} if pid else set()
        claimed: dict[Socket, str] = {}
        for key, lb in stored.items():
            if key in changes:
                continue
            try:
                self._claim(dev, key, lb, claimed, running, ours)
            except DriverError as exc:
                self.parked[key] = exc.user_message
        self.accepted: dict[str, LoadBalancer | None] = {}
        for key, change in changes.items():
            if change is None:
                self.accepted[key] = None
                continue
            try:
                self._claim(dev, key, change, claimed, running, ours)
                self.accepted[key] = change
            except DriverError as exc:
                self.outcome[key] = exc
                if key in stored:  # the device goes on serving what it served for it
                    try:
                        self._claim(dev, key, stored[key], claimed, running, ours)
                    except DriverError as old:
                        self.parked[key] = old.user_message
        self._fit_watches(dev, pid, claimed, running, ours)

    def _fit_watches(self, dev: Device, pid: int | None, claimed: dict[Socket, str],
                     running: Running, ours: set[int]) -> None:  # fmt: skip
        """Refuse the batch's trees, last first, while Envoy would watch more files than the
        host lets it (``inotify``); each refused one keeps what the device served for it."""
        needed = watched(self.serving.values())
        if needed <= (inotify.instances(pid) if pid else 0):
            return  # no more than Envoy watches now: no need to look at the host
        available = inotify.budget(pid)
        for key in reversed([k for k, lb in self.accepted.items() if lb is not None]):
            if needed <= available:
                return
            self.outcome[key] = inotify.over(needed, available)
            del self.accepted[key]
            self.serving.pop(key, None)
            self.trees.pop(key, None)
            for sock in [s for s, holder in claimed.items() if holder == key]:
                del claimed[sock]
            if key in self.stored:
                try:
                    self._claim(dev, key, self.stored[key], claimed, running, ours)
                except DriverError as old:
                    self.parked[key] = old.user_message
            needed = watched(self.serving.values())

    def _claim(self, dev: Device, key: str, lb: LoadBalancer, claimed: dict[Socket, str],
               running: dict[str, tuple[str, int]] | None, ours: set[int]) -> None:  # fmt: skip
        rendered = dev.render(lb)
        held = _held(rendered, running)
        for file, text in rendered.secrets.items():
            if text is None and not (dev.paths.sds / file).exists():
                raise DriverError(
                    f"the certificate file {file} is missing and a stored tree holds no key;"
                    " the load balancer is served again when it is next applied",
                    retryable=False,
                    reason=Reason.CERTIFICATE_INVALID,
                )
        for sock in rendered.sockets:
            holder = claimed.get(sock)
            if holder is not None and holder != key:
                raise DriverError(
                    f"{sock} is already used by VIP {holder} on this device",
                    retryable=False,
                    reason=Reason.ADDRESS_IN_USE,
                )
            if problem := _problem(sock, sock in held, ours):
                raise problem
        for sock in rendered.sockets:
            claimed[sock] = key
        self.serving[key] = rendered
        self.trees[key] = lb

    def drop(self, key: str, why: str) -> None:
        self.serving.pop(key, None)
        self.trees.pop(key, None)
        self.parked[key] = why
