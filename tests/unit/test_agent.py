"""The agent role wired as in production (informer changes → loops → reconcile → worker →
fake driver → fake reporter), without an API server or Leases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from lbaas.agents.agent import Agent
from lbaas.agents.transfer import Transfer, TransferReason
from lbaas.kube.client import Kube
from unit.fakes import NS, AlwaysHeld, Rig, async_test, eventually

KEY = (NS, "web")


class SlowSecrets:
    """The part of ``Kube`` a worker uses: reading a credentials Secret, slowly."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def read_secret(self, namespace: str, name: str) -> dict[str, str]:
        await asyncio.sleep(self.delay)
        return {"password": "s3cret-value"}


@asynccontextmanager
async def agent_on(rig: Rig, kube: Any = None) -> AsyncIterator[Agent]:
    agent = Agent(
        settings=rig.settings,
        kube=cast(Kube, kube),
        views=rig.views,
        reporter=rig.reporter.as_reporter(),
        drivers=rig.drivers,
        gate=lambda _agent: AlwaysHeld(),
    )
    try:
        yield agent
    finally:
        await agent.stop()


def take(agent: Agent, device: str = "dev") -> None:
    agent.on_acquired(device, 1, Transfer(TransferReason.NEW, None, agent.settings.agent_id))


def phase(rig: Rig, kind: str = "VIP", name: str = "web") -> Any:
    return rig.cluster.status(kind, name).get("phase")


@async_test
async def test_a_new_owner_applies_every_tree_and_serves_changes(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig, agent_on(rig) as agent:
        rig.add_device()
        rig.add_tree()
        await rig.bind(KEY)
        take(agent)
        await eventually(lambda: phase(rig) == "Active", what="the VIP to turn Active")
        assert rig.reporter.events_of("Device", "dev", "OwnerChanged")
        assert list(rig.listeners("dev")) == ["10.0.0.1:80"]
        # A member added later wakes the VIP's loop, which applies the new tree.
        rig.cluster.create("Member", "m2", {"poolRef": "web", "address": "10.1.0.2", "port": 80})
        await eventually(lambda: phase(rig, "Member", "m2") == "Active")
        assert set(rig.members("dev")) == {"m1", "m2"}
        # Deleting the VIP removes it from the device and ends its loop.
        rig.cluster.delete("VIP", "web")
        await eventually(lambda: rig.cluster.get("VIP", "web") is None)
        await eventually(lambda: len(agent.loops) == 0, what="the loop to end")
        assert rig.listeners("dev") == {}


@async_test
async def test_device_readiness_reaches_its_trees(tmp_path: Path) -> None:
    async with Rig(tmp_path) as rig, agent_on(rig) as agent:
        rig.add_device()
        rig.add_tree()
        await rig.bind(KEY)
        take(agent)
        await eventually(lambda: phase(rig) == "Active")
        worker = agent.workers["dev"]
        rig.control("dev", notReady=True)
        await worker.probe()
        await eventually(lambda: rig.cluster.status("VIP", "web")["reason"] == "DeviceNotReady")
        assert phase(rig) == "Active"
        rig.control("dev")
        await worker.probe()
        await eventually(lambda: rig.cluster.status("VIP", "web")["reason"] == "Programmed")


@async_test
async def test_retryable_failures_retry_by_themselves_refusals_wait_for_a_change(
    tmp_path: Path,
) -> None:
    async with Rig(tmp_path, retry_backoff_max=0.2) as rig, agent_on(rig) as agent:
        rig.add_device()
        rig.add_tree()
        await rig.bind(KEY)
        rig.control("dev", fail={"apply": {"message": "device busy", "retryable": True}})
        take(agent)
        await eventually(lambda: rig.cluster.status("VIP", "web").get("message") == "device busy")
        rig.control("dev")  # no trigger: the backoff brings the retry
        await eventually(lambda: phase(rig) == "Active", what="a retry after the backoff")
        refused = {"apply": {"message": "no such port", "retryable": False}}
        rig.control("dev", fail=refused)
        rig.cluster.update_spec("VIP", "web", port=81)
        await eventually(lambda: phase(rig) == "Error")
        writes = len(rig.reporter.writes)
        rig.control("dev")
        await asyncio.sleep(0.6)  # three backoffs' worth: a refusal is not retried
        assert phase(rig) == "Error" and len(rig.reporter.writes) == writes
        rig.cluster.update_spec("VIP", "web", port=82)  # a change is a trigger
        await eventually(lambda: phase(rig) == "Active")
        assert list(rig.listeners("dev")) == ["10.0.0.1:82"]


@async_test
async def test_a_tree_changed_while_its_device_starts_is_not_reported_broken(
    tmp_path: Path,
) -> None:
    """Until its worker has built the handle and probed the device, a tree cannot be judged;
    the takeover applies every tree once the worker is up."""
    async with Rig(tmp_path) as rig, agent_on(rig, SlowSecrets(0.4)) as agent:
        rig.add_device(credentialsSecretRef={"name": "creds", "namespace": "lbaas-system"})
        rig.add_tree()
        await rig.bind(KEY)
        take(agent)
        await asyncio.sleep(0.05)  # the worker is reading its Secret
        rig.cluster.update_spec("VIP", "web", connectionLimit=100)
        await eventually(lambda: phase(rig) == "Active", what="the VIP to turn Active")
        phases = [w.get("phase") for w in rig.reporter.writes_to("VIP", "web")]
        assert "Error" not in phases, rig.reporter.writes_to("VIP", "web")
        assert not rig.reporter.events_of("VIP", "web", "DeviceError")
        assert rig.stored("dev").listeners[0].connection_limit == 100
