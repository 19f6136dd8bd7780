"""Three agents on one host, each driving managed HAProxy devices; one is killed.

The killed agent's HAProxy keeps serving (it runs in its own session); another agent on the
same host adopts the device (its ``agentSelector`` admits every agent here), and a Member
added after the kill serves traffic through the adopted device. Real processes, real HAProxy,
real HTTP on 127.0.80-81.x.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dataplane.hxsupport import Backends, Load, get, haproxy_binary, stop_haproxy, wait_applied

from helpers import Api, OperatorProcess, tree, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]

ENV = {"LBAAS_LEASE_DURATION": "6", "LBAAS_LEASE_RENEW_PERIOD": "1", "LBAAS_DRIVER_TIMEOUT": "4"}
POOLS = ("127.0.80.0/28", "127.0.80.16/28", "127.0.80.32/28")


@pytest.fixture
def fleet(kubeconfig: str, namespace: str, tmp_path: Path) -> Iterator[dict[str, OperatorProcess]]:
    haproxy_binary()
    procs: dict[str, OperatorProcess] = {}

    def start(name: str, role: str, *args: str) -> None:
        env = {**ENV, "LBAAS_AGENT_ID": name, "LBAAS_NAMESPACES": namespace}
        procs[name] = OperatorProcess(tmp_path / f"{name}.log", **env).start(role, *args)

    start("c1", "controller")
    for name in ("a1", "a2", "a3"):
        start(name, "agent", "--labels", f"host=local,fleet={namespace}")
    yield procs
    for proc in procs.values():
        proc.stop()


def test_an_adopted_haproxy_device_keeps_serving_and_takes_changes(
    api: Api, namespace: str, fleet: dict[str, OperatorProcess]
) -> None:
    backends = Backends()
    state_dirs = [Path(tempfile.mkdtemp(prefix="lbag-", dir="/tmp")) for _ in POOLS]
    try:
        for i, (pool, state_dir) in enumerate(zip(POOLS, state_dirs, strict=True)):
            api.create(
                {
                    "kind": "Device",
                    "metadata": {"name": f"{namespace}-hx{i}"},
                    "spec": {
                        "driver": "haproxy",
                        "config": {"stateDir": str(state_dir), "haproxyBinary": haproxy_binary()},
                        "addressPool": [pool],
                        "allowedNamespaces": [namespace],
                        "memberNetworks": ["127.0.0.0/8"],
                        "agentSelector": {"matchLabels": {"host": "local", "fleet": namespace}},
                    },
                }
            )
        for i in range(len(POOLS)):
            api.wait_phase("Device", f"{namespace}-hx{i}", None, "Ready", 30)
        servers = backends.http(4)
        for i in range(len(POOLS)):
            objs = tree(namespace, f"s{i}", members=0, monitor=False, port=8080)
            objs[1]["spec"]["protocol"] = "HTTP"
            objs.append(
                {
                    "kind": "Member",
                    "metadata": {"name": f"s{i}-a", "namespace": namespace},
                    "spec": {
                        "poolRef": f"s{i}",
                        "address": servers[0].address,
                        "port": servers[0].port,
                    },
                }
            )
            for obj in objs:
                api.create(obj)
            wait_applied(api, "Member", f"s{i}-a", namespace)
        # The victim: the agent driving the device of VIP s0.
        device = api.status("VIP", "s0", namespace)["device"]
        victim = api.status("Device", device)["agent"]
        address = api.status("VIP", "s0", namespace)["address"]
        assert get(address, 8080)[0] == 200

        with Load(address, 8080, max_seconds=60) as load:
            wait_for(lambda: load.sent >= 20, 10, "load running")
            fleet[victim].kill9()
            killed = time.monotonic()
            adopted = wait_for(
                lambda: api.status("Device", device).get("agent") not in (None, "", victim),
                25,
                "another agent adopts the device",
            )
            assert adopted
            took = time.monotonic() - killed
            # A change made after the kill reaches HAProxy through the new owner.
            new = servers[1]
            api.create(
                {
                    "kind": "Member",
                    "metadata": {"name": "s0-b", "namespace": namespace},
                    "spec": {"poolRef": "s0", "address": new.address, "port": new.port},
                }
            )
            wait_applied(api, "Member", "s0-b", namespace)
            wait_for(lambda: new.hits > 0, 10, "the new member serves", interval=0.05)
        print(
            f"agent {victim} killed: device adopted by"
            f" {api.status('Device', device)['agent']} in {took:.1f}s;"
            f" {load.sent} requests, {len(load.failures)} failed"
        )
        assert load.failures == [], load.failures[:5]
    finally:
        for i in range(len(POOLS)):
            api.delete("VIP", f"s{i}", namespace)
        for i in range(len(POOLS)):
            api.wait_gone("VIP", f"s{i}", namespace, 30)
            api.delete("Device", f"{namespace}-hx{i}")
        # Stop HAProxy only once no agent drives its Device: an agent still supervising it
        # starts it again (and it outlived the suite, twice in four CI runs).
        for i in range(len(POOLS)):
            with contextlib.suppress(AssertionError):
                api.wait_gone("Device", f"{namespace}-hx{i}", None, 30)
        for state_dir in state_dirs:
            stop_haproxy(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)
        for server in backends.started:
            server.shutdown()
            server.server_close()
