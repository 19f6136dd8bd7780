"""The API server fails under a running operator (issue 22): no failed request, no lost change.

On a test bed of this module's own (``tests/ownbed.py``), so the suite's is never hurt:

- **Stalled longer than a Lease**: the API server is frozen (SIGSTOP) for the Lease duration
  and four seconds more, while a client sends requests through a VIP of a real HAProxy
  Device: not one may fail (the data plane never needs the API server). After SIGCONT, a
  Member is added; the time until the new member answers through the VIP is measured (the
  agent must notice its Lease lapsed, take it again and apply).
- **A watch that expires (410 Gone), at scale**: 120 VIP trees (360 objects) on a fake
  Device; the operator is frozen, etcd compacted and the API server restarted (its watch
  cache starts again at the current revision), then VIPs are created, deleted and changed
  while the operator cannot see; the operator is let go: its watches resume from a revision
  nobody can serve, get 410, list again, and every change must be applied (the log must show
  the 410s: the test cannot pass without one).
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dataplane.hxsupport import (
    Backend,
    Load,
    OperatorDevice,
    get,
    haproxy_binary,
    net,
    stop_haproxy,
)
from dataplane.opsupport import deploy
from ownbed import OwnBed, own_testbed

from helpers import (
    GROUP,
    ROOT,
    VERSION,
    Api,
    FakeDevice,
    OperatorProcess,
    kubectl,
    need_tool,
    tree,
    wait_for,
)
from lbaas_devtools import devcluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

LEASE = 6.0
"""The Lease duration the tests' operators run with (helpers.OperatorProcess)."""
TREES, CHANGED = 120, 20


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBed]:
    script = devcluster.testbed_script(ROOT)
    if script is None:
        need_tool("the test bed (../shared/testbed/testbed) is missing")
    assert script is not None
    state = Path(tempfile.mkdtemp(prefix="lbaas-ownbed-", dir="/tmp"))
    with own_testbed(script, state / "state") as made:
        yield made


@pytest.fixture
def operator(bed: OwnBed, tmp_path: Path) -> Iterator[OperatorProcess]:
    log = tmp_path / "operator.log"
    proc = OperatorProcess(log, KUBECONFIG=bed.kubeconfig, LBAAS_LEASE_DURATION=f"{LEASE:g}")
    yield proc.start()
    if proc.proc is not None:
        os.kill(proc.proc.pid, signal.SIGCONT)
    proc.stop()
    print(f"operator log: {log}")


def new_namespace(bed: OwnBed) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("--kubeconfig", bed.kubeconfig, "create", "namespace", name)
    return name


# ---- stalled for longer than a Lease -------------------------------------------------------


def test_an_api_server_stalled_longer_than_a_lease_fails_no_request(
    bed: OwnBed, operator: OperatorProcess
) -> None:
    api, namespace = Api(bed.kubeconfig), new_namespace(bed)
    backends = [Backend(f"b{i}", net(75, i + 1)) for i in range(2)]
    state_dir = Path(tempfile.mkdtemp(prefix="lbst-", dir="/tmp"))
    pool = f"{net(74, 0)}/28"
    device = OperatorDevice(api, f"hx-{namespace}", state_dir, pool)
    config = {"managed": True, "stateDir": str(state_dir), "haproxyBinary": haproxy_binary()}
    api.create({"kind": "Device", "metadata": {"name": device.name}, "spec": {
        "driver": "haproxy", "config": config, "addressPool": [pool],
        "allowedNamespaces": [namespace], "memberNetworks": ["127.0.0.0/8"]}})  # fmt: skip
    try:
        api.wait_phase("Device", device.name, None, "Ready", 30)
        site = deploy(api, namespace, device, "web", backends[:1])
        with Load(*site.vip, max_seconds=120, pause=0.01) as load:
            time.sleep(1)
            with bed.stalled() as frozen:
                time.sleep(LEASE + 4)
            stalled = time.monotonic() - frozen
            sent_in_stall = sum(1 for t, _ in load.events if frozen <= t <= frozen + stalled)
            member = {"poolRef": "web", "address": backends[1].address, "port": backends[1].port}
            asked = time.monotonic()
            api.create({"kind": "Member", "metadata": {"name": "web-b1", "namespace": namespace},
                        "spec": member})  # fmt: skip
            while get(*site.vip, timeout=2)[1] != "b1":
                assert time.monotonic() - asked < 30, "the new member never answered"
                time.sleep(0.01)
            served = time.monotonic() - asked
            time.sleep(0.5)
        print(
            f"\nAPI server stalled {stalled:.1f} s (Lease {LEASE:g} s): {sent_in_stall} requests"
            f" through the VIP meanwhile, {load.sent} in all, {len(load.failures)} failed;"
            f" a Member added afterwards served in {served:.2f} s"
        )
        assert load.failures == [], load.failures[:5]
        assert sent_in_stall >= 100, sent_in_stall
        assert served < 10, "the change after the stall was not served quickly"
    finally:
        api.delete("VIP", "web", namespace)
        wait_for(lambda: api.get("VIP", "web", namespace) is None, 30, "VIP gone")
        api.delete("Device", device.name)
        wait_for(lambda: api.get("Device", device.name) is None, 30, "Device gone")
        stop_haproxy(state_dir)
        for server in backends:
            server.shutdown()
            server.server_close()


# ---- a watch that expires ---------------------------------------------------------------------


def _trees(namespace: str, names: list[str], device: str) -> list[dict[str, Any]]:
    return [obj for name in names for obj in tree(namespace, name, members=1, monitor=False,
                                                    deviceRef=device)]  # fmt: skip


def _vips(api: Api, namespace: str) -> dict[str, dict[str, Any]]:
    found = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "vips")["items"]
    return {item["metadata"]["name"]: item for item in found}


def _all_active(api: Api, namespace: str, names: set[str]) -> bool:
    vips = _vips(api, namespace)
    return set(vips) == names and all(
        (v.get("status") or {}).get("phase") == "Active" for v in vips.values()
    )


def test_a_watch_that_expires_relists_without_losing_a_change(
    bed: OwnBed, operator: OperatorProcess, tmp_path: Path
) -> None:
    api, namespace = Api(bed.kubeconfig), new_namespace(bed)
    spec = {"allowedNamespaces": [namespace], "addressPool": ["10.201.0.0/16"],
            "capacity": {"maxVIPs": 1000}}  # fmt: skip
    device = FakeDevice(api, f"fk-{namespace}", tmp_path, **spec).create()
    names = [f"v{i}" for i in range(TREES)]
    started = time.monotonic()
    for obj in _trees(namespace, names, device.name):
        api.create(obj)
    wait_for(lambda: _all_active(api, namespace, set(names)), 60, f"{TREES} VIPs Active")
    took = time.monotonic() - started
    assert operator.proc is not None
    os.kill(operator.proc.pid, signal.SIGSTOP)  # blind: it sees nothing of what follows
    try:
        revision = bed.compact()
        restart = bed.restart_server()
        gone, kept = names[:CHANGED], names[CHANGED:]
        added = [f"n{i}" for i in range(CHANGED)]
        for name in gone:
            api.delete("VIP", name, namespace)
        for obj in _trees(namespace, added, device.name):
            api.create(obj)
        for name in kept[:CHANGED]:
            api.patch_spec("Member", f"{name}-m0", namespace, {"weight": 7})
    finally:
        os.kill(operator.proc.pid, signal.SIGCONT)
    let_go = time.monotonic()
    want = set(kept) | set(added)

    def converged() -> bool:
        if not _all_active(api, namespace, want):
            return False
        members = api.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "members")[
            "items"
        ]
        changed = [m for m in members if m["spec"].get("weight") == 7]
        return len(changed) == CHANGED and all(
            (m.get("status") or {}).get("observedGeneration") == m["metadata"]["generation"]
            and m["status"].get("phase") == "Active"
            for m in changed
        )

    wait_for(converged, 60, "every change made while the operator was blind applied")
    caught_up = time.monotonic() - let_go
    served = {tree["vip"].split("/", 1)[1] for tree in device.listeners().values()}
    expired = operator.log_path.read_text().count("watch expired (410); listing again")
    print(
        f"\n{TREES} VIP trees Active in {took:.1f} s; etcd compacted at revision {revision},"
        f" API server restarted in {restart:.1f} s; {CHANGED} VIPs deleted, {CHANGED} created,"
        f" {CHANGED} members changed meanwhile; {expired} watches expired (410) and listed"
        f" again; all applied {caught_up:.1f} s after the operator went on"
    )
    assert expired >= 3, "no watch expired: the test proved nothing"
    assert served == want, (sorted(served - want)[:5], sorted(want - served)[:5])
    for name in names[:CHANGED]:
        assert api.get("VIP", name, namespace) is None
