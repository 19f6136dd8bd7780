"""One round of the hostile battery (``battery.run`` drives the rounds): creates, then
updates of live objects, then the quota case; and the clearing between rounds.

- Refused by the API server (creates and updates alike): the answer must carry the case's
  message. Refused updates go to the victim tree, the one under keep-alive load.
- Creates the operator must refuse (or serve): created together, each must reach its phase,
  reason and message, with a Warning Event of that reason about *that* object (its uid: a
  name of an earlier round, or an earlier object of the same name, cannot stand in).
- Updates the operator must refuse (or serve): each case gets a live tree of its own in
  tenant C (``battery.LIVE_TREE``), Active and serving first; then its object of the case's
  kind is patched, must reach the outcome, with a Warning Event posted after the patch; then
  the patch is undone and the whole tree must be Active at its generation and serve again.
  Live trees come in batches of the namespace quota.
- ``reloads`` records the device reloads each step caused, for the test to judge.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

# battery.py registers itself under this name (it is imported as dataplane.battery by the
# tests, by path by bench/tenant.py), and loads this module after it.
from lbaas_battery_battery import (  # type: ignore[import-not-found]
    LIVE_TREE,
    QUOTA,
    Case,
    Tenancy,
    live_tree,
    matches,
    names,
    pick,
    sibling,
)

from helpers import LEASE_NAMESPACE, wait_for

Target = tuple[str, str, str | None]
"""(kind, name, namespace) of the object a case is about."""
SUFFIX = {kind: suffix for kind, suffix, _ in LIVE_TREE}
VICTIM = "victim"


@dataclass
class Battery:
    stage: Tenancy
    created: list[Target] = field(default_factory=list)
    uids: dict[Target, str] = field(default_factory=dict)
    reloads: list[tuple[str, int]] = field(default_factory=list)
    """(step, device reloads it caused), in order."""
    served: dict[str, bool] = field(default_factory=dict)
    known: list[str] = field(default_factory=list)

    def _step(self, name: str, before: int) -> int:
        now = self.stage.reloads()
        self.reloads.append((name, now - before))
        print(f"  battery step {name}: {now - before} reloads, at {time.strftime('%X')}")
        return now

    def _quiet(self, seconds: float = 1.5, limit: float = 20.0) -> int:
        """The device's disruption count once it has not moved for ``seconds``: the deletions
        of the round before may still be reaching the device (a VIP is gone from the API once
        its tree left the device's config; the reload that follows is counted here, not
        against the refused objects of the next step)."""
        now, since, end = self.stage.reloads(), time.monotonic(), time.monotonic() + limit
        while time.monotonic() < end and time.monotonic() - since < seconds:
            time.sleep(0.25)
            if (latest := self.stage.reloads()) != now:
                now, since = latest, time.monotonic()
        return now

    def round(self, cases: list[Case]) -> list[str]:
        """Apply every case once; the problems found (empty: all as expected)."""
        before = self._quiet()
        problems = [p for case in cases if case.rejected for p in self._reject(case)]
        before = self._step("rejected", before)
        waiting = [c for c in cases if not c.rejected and not c.quota and c.update is None]
        for case in waiting:
            self._create(case)
        problems += self._outcomes(waiting, timeout=45)
        self._step("operator cases", before)
        updates = [c for c in cases if c.update is not None and not c.rejected]
        for start in range(0, len(updates), QUOTA):
            problems += self._updates(updates[start : start + QUOTA])
        before = self.stage.reloads()
        for case in (c for c in cases if c.quota):
            problems += self._quota(case)
        self._step("quota", before)
        return problems

    # ---- where a case lands -------------------------------------------------------------------

    def _namespace(self, case: Case) -> str | None:
        return None if case.kind == "Device" else self.stage.b

    def target(self, case: Case) -> Target:
        if case.update is None:
            return case.kind, case.obj_name, self._namespace(case)
        if case.rejected:
            return case.kind, VICTIM + SUFFIX[case.kind], self.stage.b
        return case.kind, case.obj_name + SUFFIX[case.kind], self.stage.c

    # ---- refused by the API server ------------------------------------------------------------

    def _reject(self, case: Case) -> list[str]:
        try:
            if case.update is None:
                self._create(case)
            else:
                kind, name, namespace = self.target(case)
                assert namespace is not None
                self.stage.patch(kind, name, namespace, case.update)
        except ApiException as exc:
            message = json.loads(exc.body or "{}").get("message", exc.body)
            if exc.status in (400, 422) and case.expect["rejected"] in message:
                return []
            return [f"{case.name}: rejected with {exc.status} {message!r}"]
        return [f"{case.name}: accepted by the API server"]

    # ---- creates ------------------------------------------------------------------------------

    def _record(self, target: Target, obj: dict[str, Any]) -> None:
        self.created.append(target)
        self.uids[target] = obj["metadata"]["uid"]

    def _create(self, case: Case) -> None:
        """Create the case's object; with ``parent: own``, its Pool and VIP after it, so the
        device sees the whole tree at once (a VIP applied alone first would be a legitimate
        change, and reload the device); a VIP's own Pool before it."""
        ns, spec = self._namespace(case), dict(case.spec)
        if case.parent == "own" and case.kind == "VIP":
            # The Pool first: the VIP is placed with it (a VIP bound alone, then given a pool
            # its device cannot serve, would be another case: Unsupported at apply). Seen by
            # the operator (it says the Pool waits) before the VIP comes: the two watches are
            # separate streams, the VIP's could be seen first.
            pool = self.stage.create("Pool", case.obj_name, ns, {"vipRef": case.obj_name})
            self._record(("Pool", case.obj_name, ns), pool)
            self.stage.api.wait_phase("Pool", case.obj_name, ns, "Pending", 30)
            self._record(self.target(case), self.stage.create("VIP", case.obj_name, ns, spec))
            return
        if case.parent == "own":
            spec["poolRef" if case.kind == "HealthMonitor" else "vipRef"] = case.obj_name
        self._record(self.target(case), self.stage.create(case.kind, case.obj_name, ns, spec))
        if case.parent == "own":
            vip: dict[str, Any] = {"port": self.stage.values["port"]}
            if case.kind == "L7Policy":
                vip["protocol"] = "HTTP"  # a policy needs an HTTP VIP (else ProtocolMismatch)
            for kind, spec in (("Pool", {"vipRef": case.obj_name}), ("VIP", vip)):
                self._record((kind, case.obj_name, ns),
                             self.stage.create(kind, case.obj_name, ns, spec))  # fmt: skip

    def _outcomes(
        self, cases: list[Case], timeout: float, since: dict[int, float] | None = None
    ) -> list[str]:
        """Wait until every case shows its outcome (or the timeout), then check the Events
        (for updates: posted at ``since[case.index]`` or later)."""
        deadline = time.monotonic() + timeout
        pending = {c.index: c for c in cases}
        last: dict[int, dict[str, Any]] = {}
        while pending and time.monotonic() < deadline:
            for case in list(pending.values()):
                obj = self.stage.api.get(*self.target(case))
                last[case.index] = (obj or {}).get("status") or {}
                if matches(case, obj):
                    del pending[case.index]
            time.sleep(0.3)
        problems = []
        for case in cases:
            shown = pick(last.get(case.index, {}))
            if case.known is None and case.index in pending:
                problems.append(f"{case.name}: {case.kind} {self.target(case)[1][:60]} shows"
                                f" {shown}, expected {case.expect}")  # fmt: skip
            elif case.known is not None and case.index not in pending:
                problems.append(f"{case.name}: fixed (remove its `known`: {case.known})")
            elif case.known is not None:
                self.known.append(f"{case.name}: {case.known} (shows {shown})")
        done = [c for c in cases if c.index not in pending and c.known is None]
        return problems + self._events(done, since)

    def _events(self, cases: list[Case], since: dict[int, float] | None) -> list[str]:
        """Each case expecting an Error has a Warning Event of its reason about its object (or
        of the reason its ``event`` names: a VIP that serves on but says why)."""
        seen: dict[tuple[str, str], float] = {}
        for ns in (self.stage.b, self.stage.c, LEASE_NAMESPACE):
            events = self.stage.api.core.list_namespaced_event(ns, field_selector="type=Warning")
            for e in events.items:
                stamp = e.last_timestamp or e.first_timestamp or e.event_time
                key = (e.involved_object.uid or "", e.reason or "")
                seen[key] = max(seen.get(key, 0.0), stamp.timestamp() if stamp else 0.0)
        problems = []
        for case in cases:
            if case.expect.get("phase", "Error") != "Error" and "event" not in case.expect:
                continue
            reason = case.expect.get("event", case.expect.get("reason"))
            target = self.target(case)
            posted = seen.get((self.uids.get(target, "?"), reason))
            # Event times have whole seconds: one second of slack.
            if posted is None or posted < (since or {}).get(case.index, 0.0) - 1:
                problems.append(
                    f"{case.name}: no Warning Event {reason} about"
                    f" {target[0]} {target[1][:60]} (uid {self.uids.get(target)})"
                )
        return problems

    # ---- updates of live trees ----------------------------------------------------------------

    def _updates(self, batch: list[Case]) -> list[str]:
        """Live trees for ``batch``, the hostile patches, their outcomes, the undo."""
        stage, c = self.stage, self.stage.c
        before = stage.reloads()
        trees = {case.index: live_tree(case.obj_name, stage.values) for case in batch}
        for case in batch:
            for kind, name, spec in trees[case.index]:
                self.uids[(kind, name, c)] = stage.create(kind, name, c, spec)["metadata"]["uid"]
        problems = [p for case in batch for p in self._settled(case, trees[case.index], "made")]
        before = self._step("live trees", before)
        since = {}
        for case in batch:
            since[case.index] = time.time()
            kind, name, _ = self.target(case)
            assert case.update is not None
            stage.patch(kind, name, c, case.update)
        problems += self._outcomes(batch, timeout=30, since=since)
        for case in batch:
            served = self.served[case.name] = self._serves(case.obj_name)
            if case.known is None and served != case.expect.get("serves", served):
                problems.append(f"{case.name}: the VIP {'answers' if served else 'is silent'}"
                                " while the update stands")  # fmt: skip
        allowed = sum(int(case.expect.get("reloads", 0)) for case in batch)
        reloaded = stage.reloads() - before
        if reloaded > allowed:
            problems.append(f"updates {[c.name for c in batch]}: {reloaded} device reloads,"
                            f" at most {allowed} expected")  # fmt: skip
        before = self._step("hostile updates", before)
        for case in batch:
            kind, name, _ = self.target(case)
            original = next(spec for k, _, spec in trees[case.index] if k == kind)
            assert case.update is not None
            stage.patch(kind, name, c, {key: original.get(key) for key in case.update})
        problems += [p for case in batch for p in self._settled(case, trees[case.index], "undone")]
        reloaded = stage.reloads() - before
        if reloaded > allowed:
            problems.append(f"undoing {[c.name for c in batch]}: {reloaded} device reloads,"
                            f" at most {allowed} expected")  # fmt: skip
        before = self._step("updates undone", before)
        for case in batch:
            for kind, name, _ in trees[case.index]:
                stage.api.delete(kind, name, c)
        for case in batch:
            stage.api.wait_gone("VIP", case.obj_name, c, 30)
        self._step("live trees cleared", before)
        return problems

    def _settled(self, case: Case, tree: list[tuple[str, str, dict[str, Any]]], when: str
                 ) -> list[str]:  # fmt: skip
        """Every object of the live tree Active at its generation, and its VIP serving."""
        applied = sibling("hxsupport").applied
        c = self.stage.c

        def ready() -> bool:
            return all(applied(self.stage.api, kind, name, c) for kind, name, _ in tree)

        try:
            wait_for(lambda: ready() and self._serves(case.obj_name), 30, "the live tree")
        except AssertionError:
            shown = {name: pick(self.stage.api.status(kind, name, c)) for kind, name, _ in tree}
            return [f"{case.name}: live tree not Active and serving once {when}: {shown}"]
        return []

    def _serves(self, vip: str) -> bool:
        """One request through the VIP ``vip`` of tenant C is answered 200."""
        obj = self.stage.api.get("VIP", vip, self.stage.c) or {}
        address, port = (obj.get("status") or {}).get("address"), obj["spec"]["port"]
        if not address:
            return False
        try:
            return int(sibling("hxsupport").get(address, port, timeout=2)[0]) == 200
        except (OSError, http.client.HTTPException):
            return False

    # ---- the quota, and the clearing ----------------------------------------------------------

    def _quota(self, case: Case) -> list[str]:
        """Fill B's share of the device up to the quota, then one more: that one is refused."""
        stage, b = self.stage, self.stage.b
        bound = [
            n for n in names(stage.api, "VIP", b)
            if stage.api.status("VIP", n, b).get("device") == stage.device
        ]  # fmt: skip
        for i in range(stage.quota - len(bound)):  # the stage's: more where the driver serves more
            name = f"filler{i}-{case.obj_name}"
            obj = stage.create("VIP", name, b, {"port": stage.values["port"]})
            self._record(("VIP", name, b), obj)
            stage.api.wait_phase("VIP", name, b, "Active", 30)
        self._create(case)
        return self._outcomes([case], timeout=20)

    def clear(self) -> None:
        """Delete what the last round created. VIPs first, newest first: a tree leaves the
        device at once (a child deleted first could make a refused tree valid, and applied,
        just before its VIP goes), and the VIP refused for the quota goes before the ones
        whose leaving would make room for it (it would be bound and applied meanwhile)."""
        before = self.stage.reloads()
        order = {"VIP": 0, "L7Policy": 1, "Pool": 2, "HealthMonitor": 3, "Member": 4, "Device": 5}
        newest_first = list(enumerate(self.created))[::-1]
        for _, (kind, name, ns) in sorted(newest_first, key=lambda e: (order[e[1][0]], -e[0])):
            self.stage.api.delete(kind, name, ns)
        for kind, name, ns in self.created:
            if kind in ("VIP", "Device"):
                self.stage.api.wait_gone(kind, name, ns, 30)
        self.created.clear()
        self._step("clear", before)
