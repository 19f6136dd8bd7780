"""Which VIPs the next configuration of a device serves, and whether HAProxy takes it.

A plan starts from every VIP file of the device (``vips/*.json``) and a *batch*: the VIPs being
applied (new trees) or deleted. Its job is to keep the blast radius of any VIP to that VIP:

- The device's other VIPs come first, the served ones before the rest, so that a VIP that
  already listens keeps its listener whatever the batch asks for. One that cannot be served
  (unreadable file, a value HAProxy cannot take, a listener that is taken or not on the host)
  is *parked*: left out of the configuration, remembered with why, reported by ``verify``.
- Then the batch, the served VIPs first. A VIP of the batch that cannot be served is *refused*:
  it gets its own non-retryable error, its file is not written, and what the device served
  for it before (its old file) goes on being served, exactly as if it had not been in the
  batch. The rest of the batch does not depend on it.
- :func:`validate` runs ``haproxy -c`` over the whole result (its changed files staged beside
  the real ones, then renamed into place by the reload) and leaves out the VIPs whose
  files HAProxy's error lines point at (refused when in the batch, parked otherwise), each
  with only its own error lines (one tenant never reads another's), until HAProxy accepts it.
  A rejection that names no VIP is raised (:class:`~.process.ConfigRejected`) for the caller.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from lbaas.drivers.errors import DriverError, UnsupportedError
from lbaas.drivers.haproxy import maps
from lbaas.drivers.haproxy.device import Device
from lbaas.drivers.haproxy.names import keys_in
from lbaas.drivers.haproxy.preflight import Preflight
from lbaas.drivers.haproxy.process import ConfigRejected
from lbaas.drivers.haproxy.render import Fragment, render_global
from lbaas.drivers.haproxy.runtime import ProcInfo
from lbaas.drivers.haproxy.store import key_of
from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.files import atomic_write, read_text

Change = tuple[LoadBalancer | None, Fragment | None]
"""One VIP of a batch: its new tree and fragment, or (None, None) to delete it."""

_FILE = re.compile(r"\[([^\s\[\]:]+):\d+\]")
"""``parsing [<file>:<line>]`` or ``config : [<file>:<line>]`` in HAProxy's error lines."""


class Plan:
    """The VIPs the next configuration serves (``included``), those left out (``parked``:
    other VIPs; ``refused``: the batch's), and the batch's changes still to be made
    (``accepted``: key → new tree, None for a deletion)."""

    def __init__(self, dev: Device, master: ProcInfo | None, asked: bool) -> None:
        self.dev = dev
        self.asked = asked
        self.included: dict[str, Fragment] = {}
        self.parked: dict[str, str] = {}
        self.accepted: dict[str, LoadBalancer | None] = {}
        self.refused: dict[str, DriverError] = {}
        self._preflight = Preflight(dev.paths.root, master.master_pid if master else None)
        self._owners: dict[tuple[str, int], str] = {}
        self._old: dict[str, LoadBalancer] = {}
        self._old_broken: dict[str, str] = {}

    @property
    def void(self) -> bool:
        """A batch was asked for and none of it can be applied: nothing is to change (a
        refusal never reloads the device, nor finishes other work on its behalf)."""
        return self.asked and not self.accepted

    def admit(self, key: str, fragment: Fragment) -> DriverError | None:
        """Include ``fragment`` unless one of its listeners is another's or cannot work."""
        mine: set[tuple[str, int]] = set()
        for frontend in fragment.frontends:
            other = self._owners.get(frontend.listener)
            if other is not None or frontend.listener in mine:
                return DriverError(
                    f"{frontend.address}:{frontend.port} is already used by VIP"
                    f" {other or key} on this device",
                    retryable=False,
                    reason="AddressInUse",
                )
            mine.add(frontend.listener)
            if frontend.enabled and (problem := self._preflight.problem(*frontend.listener)):
                return problem
        self._owners |= dict.fromkeys(mine, key)
        self.included[key] = fragment
        return None

    def serve_file(self, key: str, tree: LoadBalancer) -> None:
        """Include a VIP as its file on the device says, or park it."""
        try:
            candidate = self.dev.memo.fragment(tree)
        except (UnsafeValueError, UnsupportedError) as exc:
            self.parked[key] = str(exc)
            return
        if problem := self.admit(key, candidate):
            self.parked[key] = problem.user_message

    def leave_out(self, key: str, error: DriverError) -> None:
        """Take ``key`` out of the configuration: refused if the batch brought it (its old
        file is served again, if it can be), parked otherwise."""
        fragment = self.included.pop(key, None)
        for frontend in fragment.frontends if fragment is not None else ():
            if self._owners.get(frontend.listener) == key:
                del self._owners[frontend.listener]
        if key not in self.accepted:
            self.parked[key] = error.user_message
            return
        del self.accepted[key]
        self.refused[key] = error
        if key in self._old:
            self.serve_file(key, self._old[key])
        elif key in self._old_broken:
            self.parked[key] = self._old_broken[key]


def make_plan(dev: Device, batch: Mapping[str, Change], master: ProcInfo | None) -> Plan:
    """The plan of ``batch`` over the device's VIP files (see the module docstring)."""
    plan = Plan(dev, master, bool(batch))
    for stale in [*dev.paths.conf_d.glob(".*.new"), *dev.paths.root.glob(".*.new")]:
        stale.unlink(missing_ok=True)  # staged by a process killed before its reload
    trees, broken = dev.memo.trees.load_all(dev.paths.vips)
    plan._old = {key: trees.pop(key) for key in batch if key in trees}
    plan._old_broken = {key: broken.pop(key) for key in batch if key in broken}
    plan.parked.update(broken)
    served = {key_of(p) for p in dev.paths.conf_d.glob("*.cfg")}
    for key in sorted(trees, key=lambda k: (k not in served, k)):
        plan.serve_file(key, trees[key])
    for key in sorted(batch, key=lambda k: (k not in served, k)):
        lb, fragment = batch[key]
        plan.accepted[key] = lb
        if fragment is not None and (problem := plan.admit(key, fragment)):
            plan.leave_out(key, problem)
    return plan


def files(dev: Device, plan: Plan) -> tuple[dict[Path, str], list[Path]]:
    """(files to write → text, files to remove) for ``plan``: the global file, the fragments
    and their L7 map files."""
    desired = {dev.paths.config: render_global(dev.settings)}
    desired |= {dev.fragment_path(k): f.text for k, f in plan.included.items()}
    for fragment in plan.included.values():
        desired |= maps.files(dev.paths.root, fragment.maps)
    changed = {path: text for path, text in desired.items() if read_text(path) != text}
    removed = [p for p in dev.paths.conf_d.glob("*.cfg") if p not in desired]
    removed += [p for p in dev.paths.maps.glob("*.map") if p not in desired]
    return changed, removed


class Staging:
    """A plan's changed files, written beside their final paths under names HAProxy does not
    load (``.<name>.<random>.new``): ``haproxy -c`` reads them there and the reload renames
    them into place (``install``), so each file is written once. Not synced: the VIP files are
    the truth, and conf.d is rendered again at every start. Leftovers of a killed process are
    removed by the next plan."""

    def __init__(self, changed: Mapping[Path, str]) -> None:
        self.files: dict[Path, Path] = {}
        try:
            for path, text in changed.items():
                fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
                self.files[path] = Path(name)
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
                os.chmod(name, 0o644)
        except BaseException:
            self.discard()
            raise

    def install(self) -> None:
        while self.files:
            final, tmp = self.files.popitem()
            os.replace(tmp, final)

    def discard(self) -> None:
        """Remove what was not installed (safe to call at any time)."""
        for tmp in self.files.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self.files.clear()


def blame(dev: Device, alerts: list[str], staged: Mapping[Path, Path]) -> dict[str, list[str]]:
    """VIP key → HAProxy's error lines that point at it (by file, or by proxy name)."""
    names = {str(tmp): final for final, tmp in staged.items()}
    found: dict[str, list[str]] = {}
    for alert in alerts:
        keys = set()
        for match in _FILE.finditer(alert):
            path = Path(names.get(match[1], match[1]))
            if path.parent == dev.paths.conf_d and path.suffix == ".cfg":
                keys.add(key_of(path))
        keys |= keys_in(alert)
        for key in keys:
            found.setdefault(key, []).append(alert)
    return found


def rejected(exc: ConfigRejected, lines: list[str]) -> ConfigRejected:
    """One VIP's share of a rejection: its own error lines only."""
    return ConfigRejected(
        "HAProxy rejected this VIP's configuration, so it is not applied (the device's other"
        " VIPs are not affected): " + " | ".join(lines),
        detail=exc.detail,
        alerts=lines,
    )


def validate(dev: Device, plan: Plan) -> tuple[dict[Path, str], list[Path], Staging]:
    """``haproxy -c`` the plan's files, leaving out the VIPs HAProxy blames until it accepts
    them; returns :func:`files` and their :class:`Staging` (the caller installs or discards
    it). Each round leaves out at least one VIP, so it ends; raises :class:`ConfigRejected`
    when HAProxy names no VIP of the plan."""
    while True:
        changed, removed = files(dev, plan)
        if plan.void or (not changed and not removed):
            return changed, removed, Staging({})
        staging = Staging(changed)
        for path, text in changed.items():  # new maps: the check reads them where they go
            if path.parent == dev.paths.maps and not path.exists():
                atomic_write(path, text, 0o644)
        final = [dev.paths.config, *sorted(dev.fragment_path(k) for k in plan.included)]
        try:
            with dev.memo.pace.fixed_part():
                dev.supervisor.check([staging.files.get(p, p) for p in final])
        except ConfigRejected as exc:
            blamed = blame(dev, exc.alerts, staging.files)
            staging.discard()
            blamed = {key: lines for key, lines in blamed.items() if key in plan.included}
            if not blamed:
                raise
            for key, lines in blamed.items():
                plan.leave_out(key, rejected(exc, lines))
            continue
        except BaseException:
            staging.discard()
            raise
        return changed, removed, staging
