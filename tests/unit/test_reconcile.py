"""One turn of a VIP on its agent (``TreeReconciler``), without an API server.

A real ``DeviceWorker`` drives the fake driver (a JSON file as the device); statuses, finalizers
and Events go to a fake reporter with server-side-apply semantics (``fakes.py``). Each test
calls the reconciler itself, turn by turn, with the mode a trigger would carry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lbaas.reporter import FINALIZER
from lbaas.trees.loop import Mode, Result
from unit.fakes import NS, Rig, async_test

KEY = (NS, "web")


def phases(rig: Rig, writes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The phases the agent wrote (the controller's binding, "Scheduled", left out)."""
    found = [(w.get("phase", ""), w.get("reason", "")) for w in writes]
    return [p for p in found if p != ("Pending", "Scheduled")]


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or () if c["type"] == kind), {})


async def active_tree(tmp: Path, **settings: Any) -> Rig:
    """A rig whose VIP ``web`` (members m1, m2 and a monitor) is Active on device ``dev``."""
    rig = Rig(tmp, **settings)
    rig.add_device()
    await rig.start_worker()
    rig.add_tree(members={"m1": "10.1.0.1", "m2": "10.1.0.2"}, monitor=True)
    await rig.bind(KEY)
    assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
    assert rig.cluster.status("VIP", "web")["phase"] == "Active"
    return rig


# ---- phases ------------------------------------------------------------------------------------


@async_test
async def test_a_fast_apply_goes_straight_to_active(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree()
        await rig.bind(KEY)
        assert await rig.reconcile() == Result.DONE
        assert phases(rig, rig.reporter.writes_to("VIP", "web")) == [("Active", "Programmed")]
        vip = rig.cluster.status("VIP", "web")
        assert (vip["device"], vip["address"], vip["operatingStatus"]) == (
            "dev",
            "10.0.0.1",
            "ONLINE",
        )
        assert cond(vip, "Scheduled")["status"] == "True"  # the controller's, kept
        assert rig.cluster.status("Member", "m1")["operatingStatus"] == "NO_MONITOR"
        assert list(rig.listeners("dev")) == ["10.0.0.1:80"]
        assert not [e for e in rig.reporter.events if e.type == "Warning"]


@async_test
async def test_pending_only_when_the_apply_is_slower_than_pending_delay(tmp_path: Path) -> None:
    async with Rig(tmp_path, pending_delay=0.05) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree()
        await rig.bind(KEY)
        rig.control("dev", delay=0.3)
        assert await rig.reconcile() == Result.DONE
        for kind, name in (("VIP", "web"), ("Member", "m1")):
            assert phases(rig, rig.reporter.writes_to(kind, name)) == [
                ("Pending", "Applying"),
                ("Active", "Programmed"),
            ], name
        pending = next(w for w in rig.reporter.writes_to("VIP", "web") if w["reason"] == "Applying")
        assert cond(pending, "Programmed")["status"] == "Unknown"


@async_test
async def test_active_reports_member_health_from_the_device(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.control("dev", memberStatus={"m1": "ONLINE", "m2": "ERROR"})
        rig.add_tree(members={"m1": "10.1.0.1", "m2": "10.1.0.2"}, monitor=True)
        await rig.bind(KEY)
        assert await rig.reconcile() == Result.DONE
        assert rig.cluster.status("VIP", "web")["operatingStatus"] == "DEGRADED"
        assert rig.cluster.status("Pool", "web")["operatingStatus"] == "DEGRADED"
        assert rig.cluster.status("Member", "m1")["operatingStatus"] == "ONLINE"
        assert rig.cluster.status("Member", "m2")["operatingStatus"] == "ERROR"
        assert rig.cluster.status("Member", "m2")["phase"] == "Active"  # provisioning is fine


@async_test
async def test_a_refused_tree_is_an_error_with_the_drivers_message(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree()
        await rig.bind(KEY)
        refused = "port 80 is reserved on this appliance"
        rig.control("dev", fail={"apply": {"message": refused, "retryable": False}})
        assert await rig.reconcile() == Result.BLOCKED
        vip = rig.cluster.status("VIP", "web")
        assert (vip["phase"], vip["reason"], vip["message"]) == ("Error", "DriverError", refused)
        assert vip["operatingStatus"] == "OFFLINE"
        assert cond(vip, "Programmed")["status"] == "False"
        (event,) = rig.reporter.events_of("VIP", "web", "DriverError")
        assert (event.kind, event.type, event.message) == ("VIP", "Warning", refused)
        # The same refusal again: no second Event, no write.
        writes = len(rig.reporter.writes)
        assert await rig.reconcile() == Result.BLOCKED
        assert len(rig.reporter.events_of("VIP", "web", "DriverError")) == 1
        assert len(rig.reporter.writes) == writes
        # A retryable failure asks the loop for a retry.
        rig.control("dev", fail={"apply": {"message": "device busy", "retryable": True}})
        assert await rig.reconcile() == Result.RETRY
        assert rig.cluster.status("VIP", "web")["message"] == "device busy"
        rig.control("dev")
        assert await rig.reconcile() == Result.DONE
        assert rig.cluster.status("VIP", "web")["phase"] == "Active"


@async_test
async def test_device_not_ready_keeps_the_phase_and_says_why(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        worker = rig.workers["dev"]
        rig.control("dev", notReady=True)
        await worker.probe()
        assert not worker.ready
        assert (KEY, Mode.REFRESH) in rig.triggered
        applies = rig.applies()
        assert await rig.reconcile(KEY, Mode.REFRESH) == Result.BLOCKED
        vip = rig.cluster.status("VIP", "web")
        assert (vip["phase"], vip["reason"], vip["operatingStatus"]) == (
            "Active",
            "DeviceNotReady",
            "OFFLINE",
        )
        assert cond(vip, "Ready")["status"] == "False"
        assert cond(vip, "Ready")["reason"] == "DeviceNotReady"
        assert cond(vip, "Programmed")["status"] == "True"
        assert "fake device reports not ready" in vip["message"]
        for name in ("m1", "m2"):
            assert rig.cluster.status("Member", name)["operatingStatus"] == "UNKNOWN"
        assert rig.applies() == applies, "no driver call for a device that is not ready"
        # A change meanwhile waits, Pending, and is applied once the device is back.
        rig.cluster.update_spec("Member", "m2", port=9090)
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.BLOCKED
        member = rig.cluster.status("Member", "m2")
        assert (member["phase"], member["reason"]) == ("Pending", "DeviceNotReady")
        rig.control("dev")
        rig.triggered.clear()
        await worker.probe()
        assert (KEY, Mode.VERIFY) in rig.triggered
        assert await rig.reconcile(KEY, Mode.VERIFY) == Result.DONE
        assert rig.members("dev")["m2"].port == 9090
        member = rig.cluster.status("Member", "m2")
        assert (member["phase"], member["observedGeneration"]) == ("Active", 2)
        assert rig.cluster.status("VIP", "web")["operatingStatus"] == "ONLINE"
        assert not rig.reporter.events_of("VIP", "web", "DriftRepaired"), "a change, no drift"


@async_test
async def test_without_a_monitor_members_are_unknown_while_the_device_is_not_ready(
    tmp_path: Path,
) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        worker = await rig.start_worker()
        rig.add_tree()
        await rig.bind(KEY)
        assert await rig.reconcile() == Result.DONE
        assert rig.cluster.status("Member", "m1")["operatingStatus"] == "NO_MONITOR"
        rig.control("dev", notReady=True)
        await worker.probe()
        assert await rig.reconcile(KEY, Mode.REFRESH) == Result.BLOCKED
        assert rig.cluster.status("Member", "m1")["operatingStatus"] == "UNKNOWN"


@async_test
async def test_a_tree_that_failed_to_apply_is_applied_not_verified(tmp_path: Path) -> None:
    """After a failed apply the device is known not to hold the tree: the next turn, whatever
    woke it (the device back Ready triggers VERIFY), applies it and reports no drift."""
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree()
        await rig.bind(KEY)
        rig.control("dev", fail={"apply": {"message": "device unreachable"}})
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.RETRY
        rig.control("dev")
        assert await rig.reconcile(KEY, Mode.VERIFY) == Result.DONE
        assert rig.cluster.status("VIP", "web")["phase"] == "Active"
        assert "10.0.0.1:80" in rig.listeners("dev")
        assert not rig.reporter.events_of("VIP", "web", "DriftRepaired")


@async_test
async def test_a_device_in_error_fails_its_trees(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.cluster.create("Device", "dev", {"driver": "fake", "config": {}})  # no stateFile
        worker = await rig.start_worker()
        assert worker.phase == "Error" and worker.handle is None
        device = rig.cluster.status("Device", "dev")
        assert (device["phase"], device["reason"]) == ("Error", "InvalidConfig")
        assert rig.reporter.events_of("Device", "dev", "InvalidConfig")
        rig.add_tree()
        await rig.bind(KEY)
        assert await rig.reconcile() == Result.BLOCKED
        vip = rig.cluster.status("VIP", "web")
        assert (vip["phase"], vip["reason"]) == ("Error", "DeviceError")
        assert "config.stateFile is required" in vip["message"]
        assert rig.reporter.events_of("VIP", "web", "DeviceError")


@async_test
async def test_an_invalid_spec_is_reported_and_never_applied(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree(port=0)  # the API server's schema would refuse it; the model does too
        await rig.bind(KEY)
        assert await rig.reconcile() == Result.BLOCKED
        vip = rig.cluster.status("VIP", "web")
        assert (vip["phase"], vip["reason"]) == ("Error", "InvalidSpec")
        assert "port" in vip["message"]
        assert rig.applies() == 0


@async_test
async def test_an_address_the_device_does_not_allow(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree(address="10.0.0.2")
        await rig.bind(KEY, address="10.0.0.2")
        assert await rig.reconcile() == Result.DONE
        assert "10.0.0.2:80" in rig.listeners("dev")
        # The device's pool changes: the VIP is taken off it and says why.
        rig.cluster.update_spec("Device", "dev", addressPool=["10.9.0.0/29"])
        await rig.workers["dev"].refresh_handle()
        assert await rig.reconcile() == Result.BLOCKED
        vip = rig.cluster.status("VIP", "web")
        assert (vip["phase"], vip["reason"]) == ("Error", "AddressNotAllowed")
        assert "10.9.0.0/29" in vip["message"]
        assert rig.listeners("dev") == {}
        assert rig.reporter.events_of("VIP", "web", "AddressNotAllowed")


@async_test
async def test_a_member_the_device_may_not_reach_is_left_out(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig:
        rig.add_device()
        await rig.start_worker()
        rig.add_tree(members={"m1": "10.1.0.1", "meta": "169.254.169.254"})
        await rig.bind(KEY)
        assert await rig.reconcile() == Result.DONE
        assert list(rig.members("dev")) == ["m1"]
        refused = rig.cluster.status("Member", "meta")
        assert (refused["phase"], refused["reason"]) == ("Error", "MemberAddressNotAllowed")
        assert "link-local" in refused["message"]
        assert refused["operatingStatus"] == "OFFLINE"
        assert rig.cluster.status("VIP", "web")["phase"] == "Active"
        assert rig.cluster.status("Member", "m1")["phase"] == "Active"


# ---- modes and writes --------------------------------------------------------------------------


@async_test
async def test_an_identical_second_turn_writes_nothing_and_calls_no_driver(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        writes, applies = len(rig.reporter.writes), rig.applies()
        for mode in (Mode.APPLY, Mode.REFRESH):
            assert await rig.reconcile(KEY, mode) == Result.DONE
        assert len(rig.reporter.writes) == writes
        assert rig.applies() == applies
        assert rig.reporter.conflicts == 0


@async_test
async def test_force_applies_even_an_identical_tree(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        writes, applies = len(rig.reporter.writes), rig.applies()
        assert await rig.reconcile(KEY, Mode.FORCE) == Result.DONE
        assert rig.applies() == applies + 1
        assert len(rig.reporter.writes) == writes


@async_test
async def test_apply_sends_a_changed_tree(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        applies = rig.applies()
        rig.cluster.update_spec("Member", "m1", weight=5)
        assert await rig.reconcile(KEY, Mode.APPLY) == Result.DONE
        assert rig.applies() == applies + 1
        assert rig.members("dev")["m1"].weight == 5
        assert rig.cluster.status("Member", "m1")["observedGeneration"] == 2


@async_test
async def test_verify_repairs_drift_and_says_so(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        applies = rig.applies()
        assert await rig.reconcile(KEY, Mode.VERIFY) == Result.DONE
        assert rig.applies() == applies, "no drift, no apply"
        state = rig.device_state("dev")
        (pool,) = state["listeners"]["10.0.0.1:80"]["tree"]["pools"]
        next(m for m in pool["members"] if m["name"] == "m1")["port"] = 1  # changed by hand
        rig.state_file("dev").write_text(json.dumps(state))
        writes = len(rig.reporter.writes)
        assert await rig.reconcile(KEY, Mode.VERIFY) == Result.DONE
        assert rig.applies() == applies + 1
        assert rig.members("dev")["m1"].port == 8080
        (event,) = rig.reporter.events_of("VIP", "web", "DriftRepaired")
        assert event.type == "Warning" and "ConfigChanged" in event.message
        assert len(rig.reporter.writes) == writes, "the statuses were right all along"


@async_test
async def test_refresh_follows_member_health(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        worker = rig.workers["dev"]
        rig.control("dev", memberStatus={"m1": "ERROR", "m2": "ERROR"})
        await worker.members.read([entry[1] for entry in worker.applied.values()])
        assert rig.triggered == [(KEY, Mode.REFRESH)]
        applies = rig.applies()
        assert await rig.reconcile(KEY, Mode.REFRESH) == Result.DONE
        assert rig.cluster.status("VIP", "web")["operatingStatus"] == "ERROR"
        assert rig.cluster.status("Member", "m1")["operatingStatus"] == "ERROR"
        assert rig.applies() == applies


# ---- the end of a loop: gone, moved, deleted ---------------------------------------------------


@async_test
async def test_a_gone_or_moved_vip_ends_its_loop(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        vip = rig.cluster.get("VIP", "web")
        assert vip is not None
        await rig.reporter.status(vip, {"device": "elsewhere"})
        assert await rig.reconcile() == Result.STOP
        assert await rig.reconcile((NS, "no-such-vip")) == Result.STOP


@async_test
async def test_deletion_removes_the_tree_then_the_finalizer(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        rig.cluster.delete("VIP", "web")
        assert rig.cluster.get("VIP", "web") is not None  # held by the finalizer
        assert await rig.reconcile() == Result.STOP
        assert rig.listeners("dev") == {}
        assert rig.device_state("dev")["deletes"] == 1
        assert rig.cluster.get("VIP", "web") is None
        assert rig.reporter.finalizers[-1] == ("VIP", "web", False)
        assert not rig.reporter.events_of("VIP", "web", "DeleteAbandoned")
        assert KEY not in rig.workers["dev"].applied


@async_test
async def test_a_delete_that_keeps_failing_is_abandoned(tmp_path: Path) -> None:
    async with await active_tree(tmp_path, delete_attempts=2) as rig:
        rig.control("dev", fail={"delete": {"message": "appliance locked"}})
        rig.cluster.delete("VIP", "web")
        assert await rig.reconcile() == Result.RETRY
        assert rig.cluster.get("VIP", "web") is not None
        assert await rig.reconcile() == Result.STOP
        assert rig.cluster.get("VIP", "web") is None
        (event,) = rig.reporter.events_of("VIP", "web", "DeleteAbandoned")
        assert event.type == "Warning" and "appliance locked" in event.message
        assert "10.0.0.1:80" in rig.listeners("dev")  # left for the orphan check
        rig.control("dev")
        assert await rig.workers["dev"].remove_orphans() == ["team-a/web"]
        assert rig.listeners("dev") == {}


@async_test
async def test_the_reconcile_adds_a_missing_finalizer(tmp_path: Path) -> None:
    async with await active_tree(tmp_path) as rig:
        vip = rig.cluster.get("VIP", "web")
        assert vip is not None
        await rig.reporter.finalizer(vip, present=False)
        assert await rig.reconcile() == Result.DONE
        vip = rig.cluster.get("VIP", "web")
        assert vip is not None and FINALIZER in vip["metadata"]["finalizers"]
