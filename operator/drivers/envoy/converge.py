"""Make a device serve its stored trees with a batch of changes: ``apply``, ``apply_many``,
``delete`` and ``probe`` (an empty batch: files again from the stored trees, Envoy started).

A batch costs one round of files, however many trees it holds: the EDS and SDS files of the
trees that changed, the tree files, then one CDS and one LDS file for the whole device (a
second CDS only when clusters went away: they stay until the listeners that used them are
gone, so no request meets a missing cluster). Envoy takes each file without a restart.

Blast radius of one. Before anything is written, each tree of the batch is rendered and its
listeners tried (``plan``). A tree that fails gets its own non-retryable error and the device
keeps serving what it served for it. Should Envoy refuse a
listener or cluster anyway, the tree it belongs to (named in the resource) is put back as it
was (the batch's) or left out (another stored tree, ``parked``, reported by ``verify``) and
the files written again; Envoy kept serving everything else meanwhile.

Crash safety: tree files are written before the CDS and LDS files and are the truth. A driver
killed between the two leaves CDS/LDS files older than the trees; the next call (a probe)
renders every stored tree again and writes what differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from lbaas.drivers.envoy import admin
from lbaas.drivers.envoy.device import Device
from lbaas.drivers.envoy.plan import Outcome, Plan
from lbaas.drivers.envoy.push import CDS, LDS, push, wait_endpoints
from lbaas.drivers.envoy.render.names import key_of, stem
from lbaas.drivers.envoy.render.tree import device_files, discovery, version_of
from lbaas.drivers.envoy.store import DriverState, dump_tree
from lbaas.drivers.errors import DriverError, DriverTimeout, Reason, deferred
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.toolkit.files import read_text, write_many

MAX_ROUNDS = 3


def converge(dev: Device, changes: Mapping[str, LoadBalancer | None]) -> Outcome:
    """Each change applied (None: deleted), as many as fit before the call's deadline."""
    pace, started = dev.memo.pace, time.monotonic()
    take = pace.take(len(changes)) if changes else 0
    taken = dict(list(changes.items())[:take])
    with pace.fixed_part():
        outcome = _converge(dev, taken)
    outcome |= {key: deferred() for key in list(changes)[take:]}
    timed_out = any(isinstance(error, DriverTimeout) for error in outcome.values())
    pace.learn(len(taken), time.monotonic() - started, timed_out)
    return outcome


def _refused(name: str, why: str) -> DriverError:
    return DriverError(
        f"Envoy refused {name or 'the update'}: {why}; this load balancer is not applied (the"
        " device's others are not affected)",
        retryable=False,
        reason=Reason.INVALID_CONFIGURATION,
    )


def _changed(texts: dict[Path, str]) -> dict[Path, str]:
    return {path: text for path, text in texts.items() if read_text(path) != text}


def _write_trees(dev: Device, plan: Plan) -> dict[Path, str | None]:
    """The batch's EDS, SDS and tree files that differ; what they held (for a put back)."""
    applied = [plan.serving[k] for k, lb in plan.accepted.items() if lb is not None]
    eds = _changed({dev.paths.eds / f: t for r in applied for f, t in r.endpoints.items()})
    sds = _changed({dev.paths.sds / f: t for r in applied for f, t in r.secrets.items() if t})
    docs = {dev.tree_path(k): dump_tree(lb) if lb else None for k, lb in plan.accepted.items()}
    before = {path: read_text(path) for path in [*eds, *sds, *docs]}
    write_many(eds, 0o644)
    write_many(sds, 0o600)
    write_many(docs, 0o600)
    for key, lb in plan.accepted.items():
        if lb is not None:
            dev.memo.trees.remember(dev.tree_path(key), lb)
    return before


def _round(dev: Device, plan: Plan, state: DriverState) -> dict[str, str]:
    """One CDS and one LDS file for the trees ``plan`` serves; what Envoy refused."""
    lds, cds = device_files(list(plan.serving.values()))
    wanted = {c["name"] for c in json.loads(cds)["resources"]}
    on_disk = json.loads(read_text(dev.paths.cds) or '{"resources": []}').get("resources", [])
    leaving = [c for c in on_disk if isinstance(c, dict) and c.get("name") not in wanted]
    union = discovery(sorted(json.loads(cds)["resources"] + leaving, key=lambda c: c["name"]))
    sock, timeout = dev.admin(), dev.config.update_timeout_seconds
    refused: dict[str, str] = {}
    wrote = False
    for path, text, sub in ((dev.paths.cds, union if leaving else cds, CDS),
                            (dev.paths.lds, lds, LDS), (dev.paths.cds, cds, CDS)):  # fmt: skip
        if read_text(path) != text:
            state.pushes += 1
            wrote = True
            refused |= push(path, text, sub, sock=sock, timeout=timeout)
    state.rounds += wrote
    return refused


def _sweep(dev: Device, plan: Plan) -> None:
    """EDS files of clusters gone, SDS files of trees no longer stored."""
    eds = {f for r in plan.serving.values() for f in r.endpoints}
    kept = set(plan.stored) | {k for k, lb in plan.accepted.items() if lb is not None}
    kept -= {k for k, lb in plan.accepted.items() if lb is None}
    gone: dict[Path, str | None] = {p: None for p in dev.paths.eds.glob("*.json")}
    gone = {p: None for p in gone if p.name not in eds}
    for path in dev.paths.sds.glob("*.json"):
        if key_of(path.stem.replace("__", "/")) not in kept:
            gone[path] = None
    write_many(gone)


def _converge(dev: Device, changes: Mapping[str, LoadBalancer | None]) -> Outcome:
    if dev.supervisor.pid() is None and not dev.config.managed:
        dev.supervisor.start()  # raises EnvoyNotRunning before anything is written
    plan = Plan(dev, changes)
    state = DriverState.load(dev.paths.state)
    before = _write_trees(dev, plan)
    outcome: Outcome = {**plan.outcome, **dict.fromkeys(plan.accepted)}
    try:
        for _ in range(MAX_ROUNDS):
            if dev.supervisor.pid() is None:
                _round(dev, plan, DriverState())  # files only: Envoy starts from them
                dev.supervisor.start()
                state.starts += 1
                sock = dev.paths.admin_socket
                refused = admin.failures(sock, LDS.dump) | admin.failures(sock, CDS.dump)
            else:
                refused = _round(dev, plan, state)
            if not refused:
                break
            _put_back(dev, plan, refused, before, outcome)
        _sweep(dev, plan)
        _wait_endpoints(dev, plan, before)
    except DriverError as exc:
        if not changes:
            raise
        return {**plan.outcome, **dict.fromkeys(plan.accepted, exc)}
    finally:
        state.parked = plan.parked
        state.save(dev.paths.state)
    return outcome


def _wait_endpoints(dev: Device, plan: Plan, before: dict[Path, str | None]) -> None:
    """Until Envoy runs the batch's new endpoints (a removed member gets nothing more once
    ``apply`` returns)."""
    served = {f for r in plan.serving.values() for f in r.endpoints}
    versions = {
        path.stem.replace("__", "/"): version_of(read_text(path))
        for path in before
        if path.parent == dev.paths.eds and path.name in served
    }
    sock = dev.admin()
    if versions and sock is not None:
        wait_endpoints(sock, versions, dev.config.update_timeout_seconds)


def _put_back(dev: Device, plan: Plan, refused: dict[str, str],
              before: dict[Path, str | None], outcome: Outcome) -> None:  # fmt: skip
    """Trees whose resources Envoy refused: the batch's are put back, the others left out."""
    for name, why in refused.items():
        key = key_of(name)
        if key is None or key not in plan.serving:
            for batch_key, lb in list(plan.accepted.items()):  # unattributed: the batch's fault
                if lb is not None:
                    outcome[batch_key] = _refused(name, why)
                    _restore(dev, plan, batch_key, before)
            continue
        if key in plan.accepted:
            outcome[key] = _refused(name, why)
            _restore(dev, plan, key, before)
        else:
            plan.drop(key, f"Envoy refused {name}: {why}")


def _restore(dev: Device, plan: Plan, key: str, before: dict[Path, str | None]) -> None:
    """``key``'s EDS, SDS and tree files as they were before this call; its stored tree (if
    any) served again."""
    prefix = f"{stem(key)}__"
    mine = {p: t for p, t in before.items() if p.name.startswith(prefix) or p.stem == stem(key)}
    write_many(mine, 0o600)
    for path in mine:
        before.pop(path)
    plan.accepted.pop(key, None)
    plan.serving.pop(key, None)
    plan.trees.pop(key, None)
    if key in plan.stored:
        try:
            plan.serving[key] = dev.render(plan.stored[key])
            plan.trees[key] = plan.stored[key]
        except DriverError as exc:
            plan.parked[key] = exc.user_message
