"""Member changes on the running HAProxy without a reload (dynamic servers, HAProxy >= 2.6).

The plan compares three views of one backend (one pool): the servers it should have (the
rendered fragment), the server lines of the fragment on disk (what the running servers were
made from) and the running servers (``show servers state``). So it repairs, in the same
stroke, a change of the spec, a half-done earlier apply and a change made on the runtime
socket by hand. Each pool of a load balancer is its own backend, planned on its own.

What 2.6 supports and what it does not (checked against 2.6.12):

- ``add server`` takes address, weight, ``backup``, ``check`` with ``inter``/``rise``/``fall``,
  ``addr``/``port`` and ``check-ssl verify none``, on backends balanced by ``roundrobin``,
  ``leastconn`` or ``source`` with ``hash-type consistent`` (what the driver renders), with or
  without stick tables. It takes nothing from ``default-server`` (so the driver writes every
  option on each server line) and starts the server in maintenance with checks off: the plan
  sends ``enable health`` *then* ``state ready``, so the server starts UP with a full health
  count, as a server read from the file does.
- It has no ``cookie`` keyword: with HTTP_COOKIE persistence, adding or removing a member is a
  reload (the fragment's structure digest includes the server set then).
- ``del server`` needs the server in maintenance and without connections. The plan first
  sets it to ``drain`` (no new connection goes to it) and waits, up to ``DRAIN_SECONDS`` and
  the call's deadline, for the requests in flight to finish (``scur`` of ``show stat``); then
  ``state maint``, ``shutdown sessions server`` (nothing is left open by then) and ``del
  server``, retried briefly. A member still serving when the wait ends (a long download, a
  long-lived TCP connection), or a ``del server`` that keeps failing, makes the apply fall back
  to a reload: the old worker finishes what it serves (up to ``hard-stop-after``) and the new
  one has no such server. Either way a member removed under load cuts no request.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lbaas.drivers.deadline import remaining
from lbaas.drivers.haproxy import faults, runtime
from lbaas.drivers.haproxy.proxies import Backend, Server
from lbaas.drivers.haproxy.runtime import CLIError, ServerState

DELETE_RETRY_SECONDS = 0.5
DRAIN_SECONDS = 2.0
"""How long a removed member's requests in flight may take to finish before they are cut."""


@dataclass(frozen=True)
class Op:
    """One runtime change of one server: ``add``, ``delete``, ``weight``, ``state`` or
    ``address`` (after a reload only, see :func:`reconcile`)."""

    kind: str
    backend: str
    server: str
    want: Server | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.backend}/{self.server}"


def _matches(want: Server, written: str | None, running: ServerState) -> bool:
    """Was ``running`` made from ``want``'s line? The file tells for what ``show servers
    state`` cannot show (backup, check options); the address and port are checked as well."""
    if written is not None and written != want.fixed:
        return False
    return (running.address, running.port) == (want.address, want.port)


def plan(
    target: Backend, written: Mapping[str, str], running: Mapping[str, ServerState]
) -> list[Op] | None:
    """The runtime operations that make ``running`` match ``target``'s servers (``written``:
    its server lines on disk), or None when only a reload can (a server must be added or
    removed on a non-dynamic backend).

    Order: new servers first, then replacements, then removals, so a backend never goes
    through a moment without the servers that stay; weights and states last.
    """
    backend = target.name
    wanted = target.server_map()
    adds: list[Op] = []
    replaces: list[Op] = []
    tunes: list[Op] = []
    for name, want in wanted.items():
        have = running.get(name)
        if have is None:
            adds.append(Op("add", backend, name, want))
        elif not _matches(want, written.get(name), have):
            replaces += [Op("delete", backend, name), Op("add", backend, name, want)]
        else:
            if have.weight != want.weight:
                tunes.append(Op("weight", backend, name, want))
            if (have.in_maintenance or have.draining) if want.enabled else not have.in_maintenance:
                tunes.append(Op("state", backend, name, want))
    removes = [Op("delete", backend, name) for name in running if name not in wanted]
    ops = adds + replaces + removes + tunes
    if not target.dynamic and any(op.kind in ("add", "delete") for op in ops):
        return None
    return ops


def execute(runtime_socket: Path, ops: list[Op]) -> None:
    """Send ``ops``; raise CLIError when HAProxy refuses one (the caller then reloads)."""
    for op in ops:
        for line in _commands(op):
            if (
                line.startswith("set server ")
                and line.endswith(" state maint")
                and (op.kind == "delete")
            ):
                _drained(runtime_socket, op.backend, op.server)
            if line.startswith("del server "):
                _delete(runtime_socket, line)
            elif line.startswith("add server "):
                answer = runtime.command(runtime_socket, line).strip()
                if answer != "New server registered.":
                    raise CLIError(f"{line!r}: {answer}")
            elif op.kind == "address":
                # Answers what it did ("IP changed from ...", "no need to change the addr,
                # port changed from ...", "nothing changed"); anything else is a refusal.
                answer = runtime.command(runtime_socket, line).strip()
                if "changed" not in answer:
                    raise CLIError(f"{line!r}: {answer}")
            else:
                runtime.expect_empty(runtime_socket, line)
            faults.point("runtime-command")


def _commands(op: Op) -> list[str]:
    target = f"{op.backend}/{op.server}"
    want = op.want
    if op.kind == "delete":
        return [
            f"set server {target} state drain",
            f"set server {target} state maint",
            f"shutdown sessions server {target}",
            f"del server {target}",
        ]
    assert want is not None
    if op.kind == "add":
        lines = [f"add server {target} {want.add_args()}"]
        if want.check:
            lines.append(f"enable health {target}")
        if want.enabled:
            lines.append(f"set server {target} state ready")
        return lines
    if op.kind == "weight":
        return [f"set server {target} weight {want.weight}"]
    if op.kind == "address":
        return [f"set server {target} addr {want.address} port {want.port}"]
    return [f"set server {target} state {'ready' if want.enabled else 'maint'}"]


def _drained(runtime_socket: Path, backend: str, server: str) -> None:
    """Wait (bounded) until ``server`` serves no request any more (it takes no new ones).

    :raises CLIError: it still serves some when the wait ends: the caller reloads instead
        (the old worker finishes them), rather than cut them.
    """
    deadline = time.monotonic() + remaining(DRAIN_SECONDS)
    while True:
        sessions = runtime.current_sessions(runtime_socket, backend, server)
        if sessions == 0:
            return
        if time.monotonic() >= deadline:
            raise CLIError(
                f"{backend}/{server} still serves {sessions} connection(s) after the drain wait:"
                " removing it by a reload, which lets them finish"
            )
        time.sleep(0.005)


def _delete(runtime_socket: Path, line: str) -> None:
    """``del server``, retried while the sessions just shut down let go of the server."""
    deadline = time.monotonic() + DELETE_RETRY_SECONDS
    while True:
        answer = runtime.command(runtime_socket, line).strip()
        if answer == "Server deleted." or answer.startswith("No such server"):
            return
        if time.monotonic() >= deadline:
            raise CLIError(f"{line!r}: {answer}")
        time.sleep(0.01)


def reconcile(
    runtime_socket: Path,
    backends: Iterable[Backend],
    running: Mapping[str, Mapping[str, ServerState]],
) -> int:
    """After a reload: make every backend's ports, weights and states what the files say.

    The server-state file carries runtime values over a reload, which is what keeps health
    state; it also carries a weight or a maintenance set by hand, which this undoes, and a
    server's *port* (HAProxy 2.6 applies ``srv_port`` from the file over the configured one):
    a member whose port changed in the same apply as a reload, or a port set by hand, would
    keep serving the old one until the next verification. So a server running at another
    address or port than its line is set back with ``set server ... addr ... port ...``.
    The servers themselves were just read from the files: none is added or removed here.
    Returns the number of commands sent.
    """
    sent = 0
    for backend in backends:
        have = running.get(backend.name, {})
        ops = plan(backend, {}, have) or []
        moved = [
            Op("address", backend.name, name, want)
            for name, want in backend.server_map().items()
            if name in have and (have[name].address, have[name].port) != (want.address, want.port)
        ]
        tunes = moved + [op for op in ops if op.kind in ("weight", "state")]
        execute(runtime_socket, tunes)
        sent += len(tunes)
    return sent
