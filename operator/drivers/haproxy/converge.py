"""Make a device serve what its VIP files say, after a batch of VIPs changed: one VIP for
``apply`` and ``delete``, whatever waited for the device for ``apply_many`` (a cold start, a
new owner, a burst of changes), none for ``probe`` (start HAProxy, finish a pending reload).

A batch costs what one change costs: one lock, one plan, one ``haproxy -c``, at most one
reload. Each VIP of the batch goes one of two ways:

- **At run time** (``runtime_path``; no reload, no ``haproxy -c``): when the running master is
  the one the driver last reloaded, no reload is pending, and the VIP's new fragment has the
  structure of the one on disk (only servers, weights or admin states differ).
- **By one checked reload** for all the others together (``plan``, then ``reload``): every VIP
  file is rendered again, listeners are tried, the result passes ``haproxy -c``, the intent
  is recorded, the files are replaced, HAProxy reloads once.

Blast radius of one: every VIP of the batch gets its own outcome. A VIP that cannot be served
(a value HAProxy cannot take, a listener that is taken or not on the host, a fragment
``haproxy -c`` points at) gets its own non-retryable error and is left as the device had it;
the others are applied. Only a failure of the device itself (an unmanaged HAProxy that is
down, a master that does not answer, the call's deadline) reaches every VIP still waiting.
The rare failures that name no VIP (a ``haproxy -c`` rejection without a file or proxy name,
a reload refused although every check passed) are narrowed down by halving the batch, each
half its own plan and reload, until the culprit is alone: more reloads, but only then.

A call takes as many VIPs of the batch as fit before its deadline (``toolkit.pace``: a
1,000-VIP cold start does not fit in the operator's default 5 s); the others get a retryable
``Deferred`` error at once and come with the next batch, so every call makes progress.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from lbaas.drivers.errors import DriverError, DriverTimeout, deferred
from lbaas.drivers.haproxy import certs
from lbaas.drivers.haproxy.device import Device, checked_fragment, in_sync
from lbaas.drivers.haproxy.plan import Change, Plan, blame, make_plan, validate
from lbaas.drivers.haproxy.process import ConfigRejected, ReloadFailed
from lbaas.drivers.haproxy.reload import reload
from lbaas.drivers.haproxy.runtime import ProcInfo
from lbaas.drivers.haproxy.runtime_path import runtime_batch
from lbaas.drivers.haproxy.store import DriverState
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.files import write_many

Outcome = dict[str, DriverError | None]
"""VIP key → its error, or None: applied (or deleted)."""


def converge(dev: Device, changes: Mapping[str, LoadBalancer | None]) -> Outcome:
    """Make the device serve each tree of ``changes`` (None: nothing for that key) and the
    other VIPs as their files say; the outcome of every key of ``changes``. As many VIPs are
    taken as fit before the call's deadline (``pace``); the others are deferred.

    Raises only what no VIP of the batch can be spared: HAProxy down on an unmanaged device,
    a master that does not answer, a rejection or failed reload with no batch to blame it on.
    """
    pace, started = dev.memo.pace, time.monotonic()
    take = pace.take(len(changes))
    taken = dict(list(changes.items())[:take])
    outcome = _converge(dev, taken) | {key: deferred() for key in list(changes)[take:]}
    timed_out = any(isinstance(error, DriverTimeout) for error in outcome.values())
    pace.learn(len(taken), time.monotonic() - started, timed_out)
    return outcome


def _converge(dev: Device, changes: Mapping[str, LoadBalancer | None]) -> Outcome:
    outcome: Outcome = {}
    batch: dict[str, Change] = {}
    for key, lb in changes.items():
        try:
            batch[key] = (lb, checked_fragment(lb, dev.memo.certs_dir) if lb is not None else None)
        except DriverError as exc:
            outcome[key] = exc
    if changes and not batch:
        return outcome  # refused before anything was asked of the device
    state = DriverState.load(dev.paths.state)
    master = dev.supervisor.master()
    if master is None and not dev.config.managed:
        dev.supervisor.start()  # raises HAProxyNotRunning, before anything is written
    if batch and in_sync(dev, state, master):
        done, error = runtime_batch(dev, state, batch)
        outcome |= dict.fromkeys(done)
        batch = {key: change for key, change in batch.items() if key not in done}
        if error is not None:  # the deadline: what is done stays done
            return outcome | dict.fromkeys(batch, error)
        if not batch:
            return outcome
    try:
        return outcome | _reload_batch(dev, batch, state, master)
    except DriverError as exc:  # the device failed (deadline, no answer): not one VIP's error
        if not batch:
            raise
        return outcome | dict.fromkeys(batch, exc)


class _Unattributed(Exception):
    """The batch's accepted VIPs failed together and HAProxy named none of them."""

    def __init__(self, error: DriverError, plan: Plan, blamed: dict[str, list[str]]) -> None:
        super().__init__(error.user_message)
        self.error = error
        self.refused: Outcome = dict(plan.refused)
        self.accepted = list(plan.accepted)
        self.blamed = blamed


def _reload_batch(dev: Device, batch: dict[str, Change], state: DriverState,
                  master: ProcInfo | None) -> Outcome:  # fmt: skip
    """One plan and at most one reload for ``batch``; a failure that names no VIP of it is
    narrowed down (see the module docstring)."""
    try:
        return _reload_apply(dev, state, master, batch)
    except _Unattributed as failed:
        if not batch:
            raise failed.error from failed
        outcome, error, blamed = failed.refused, failed.error, failed.blamed
        rest = {key: batch[key] for key in failed.accepted}
    if len(rest) == 1:
        return outcome | dict.fromkeys(rest, error)
    groups = [rest]
    if own := {key: lines for key, lines in blamed.items() if key in rest}:
        for key, lines in own.items():  # a failed reload whose error lines name VIPs
            outcome[key] = ReloadFailed(
                "HAProxy failed to load this VIP's configuration, so it is not applied (the"
                " device's other VIPs are not affected): " + " | ".join(lines),
                alerts=lines,
            )
            del rest[key]
    elif isinstance(error, ConfigRejected) and _rejected_anyway(dev):
        return outcome | dict.fromkeys(rest, error)  # the device's files without the batch
    else:
        keys = list(rest)
        half = len(keys) // 2
        groups = [{k: rest[k] for k in keys[:half]}, {k: rest[k] for k in keys[half:]}]
    for group in groups:
        if not group:
            continue
        try:
            state = DriverState.load(dev.paths.state)
            outcome |= _reload_batch(dev, group, state, dev.supervisor.master())
        except DriverError as exc:
            outcome |= dict.fromkeys(group, exc)
    return outcome


def _rejected_anyway(dev: Device) -> bool:
    """Does ``haproxy -c`` reject the device's configuration without any change of a batch?"""
    plan = make_plan(dev, {}, dev.supervisor.master())
    try:
        validate(dev, plan)[2].discard()
    except ConfigRejected:
        return True
    return False


def _reload_apply(dev: Device, state: DriverState, master: ProcInfo | None,
                  batch: dict[str, Change]) -> Outcome:  # fmt: skip
    sync = in_sync(dev, state, master)
    plan = make_plan(dev, batch, master)
    try:
        changed, removed, staging = validate(dev, plan)
    except ConfigRejected as exc:
        plan.certs.undo_all()
        raise _Unattributed(exc, plan, {}) from exc
    outcome: Outcome = {**plan.refused, **dict.fromkeys(plan.accepted)}
    try:
        if plan.void:
            plan.certs.undo_all()
            return outcome
        # A tree to apply here had its runtime path declined although the files may match
        # (the runtime API refused a command): only a reload brings the servers back to them.
        applies = any(lb is not None for lb in plan.accepted.values())
        if sync and not changed and not removed and not applies:
            write_many({dev.vip_path(key): None for key in plan.accepted})  # deletions only
            for key in plan.accepted:
                certs.remove(dev.paths.certs, key)
            if plan.parked != state.parked:
                state.parked = plan.parked
                state.save(dev.paths.state)
            dev.memo.changed()
            return outcome
        reload(dev, state, master, plan, changed, removed, staging)
    except ReloadFailed as exc:
        raise _Unattributed(exc, plan, blame(dev, exc.alerts, {})) from exc
    except DriverError as exc:
        if not batch:
            raise
        return {**plan.refused, **dict.fromkeys(plan.accepted, exc)}
    finally:
        staging.discard()
    return outcome
