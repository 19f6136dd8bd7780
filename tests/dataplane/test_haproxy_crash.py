"""Crash-safe applies, driver level (issue 11): an operator killed (SIGKILL) at any step of an
apply leaves a device that a fresh driver instance finds and finishes.

The apply runs in a subprocess (``HAProxyDriver().apply`` and nothing else) that dies at one
fault point (``lbaas.drivers.haproxy.faults``). Then, as a restarted operator would, a new
driver instance probes the device, verifies the VIP and applies it again when verify reports
a drift. After that HAProxy must serve exactly the desired configuration: the files are what
the spec renders, the running process loaded them (no pending reload, reload count ours),
``show servers state`` has the desired servers and real requests reach exactly them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from dataplane.hxsupport import Backends, Device, free_vip, make_lb, serving, spread

from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.render import GlobalSettings, render_global, render_vip
from lbaas.drivers.haproxy.store import dump_tree
from lbaas.drivers.model import LoadBalancer

pytestmark = pytest.mark.haproxy

SCRIPT = """
import json, sys
from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.store import load_tree
handle = DeviceHandle("d", driver="haproxy", config=json.loads(sys.argv[1]))
driver, lb = HAProxyDriver(), load_tree(sys.argv[3])
if sys.argv[2] == "delete":
    driver.delete(handle, lb.key)
else:
    driver.apply(handle, lb)
"""

RELOAD_POINTS = ["after-intent", "after-vip-file", "after-config", "before-reload", "after-reload"]
MATRIX = [
    *[("structural", p) for p in RELOAD_POINTS],  # connection limit + a member: one reload
    *[("new-vip", p) for p in RELOAD_POINTS],
    *[("delete", p) for p in RELOAD_POINTS],
    # member added, weight changed: runtime commands (add, ready, weight), no reload
    *[("runtime", p) for p in ["runtime-command:1", "runtime-command:2", "after-vip-file"]],
    ("runtime", "after-config"),
]


def run_killed(device: Device, method: str, lb: LoadBalancer, point: str) -> None:
    env = {**os.environ, "PYTHONSAFEPATH": "1", "LBAAS_FAULT_POINT": point}
    spec = json.dumps(dict(device.handle.config))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, spec, method, dump_tree(lb)],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, f"not killed at {point}: {done.returncode} {done.stderr}"


def serves_exactly(device: Device, driver: HAProxyDriver, lbs: list[LoadBalancer]) -> None:
    fragments = sorted((render_vip(lb) for lb in lbs), key=lambda f: f.key)
    settings = GlobalSettings(
        str(device.state_dir / "haproxy.sock"),
        str(device.state_dir / "server-state"),
        state_dir=str(device.state_dir),
    )
    assert device.config() == render_global(settings) + "".join(f.text for f in fragments)
    assert driver.in_sync(device.handle) and not driver.state(device.handle).pending_reload
    for lb in lbs:
        assert driver.verify(device.handle, lb) == []
        names = serving(lb)
        assert set(spread(lb.address, lb.listeners[0].port, 6 * len(names))) == names


@pytest.mark.parametrize(("change", "point"), MATRIX, ids=[f"{c}-{p}" for c, p in MATRIX])
def test_killed_at_every_step_a_new_driver_finishes_the_apply(
    device: Device, backends: Backends, change: str, point: str
) -> None:
    a, b = backends.http(2)
    web = make_lb(free_vip(), [a])
    other = make_lb(free_vip(), [b], name="other")
    device.driver.apply(device.handle, web)
    device.driver.apply(device.handle, other)
    method, target, desired = "apply", web, [web, other]
    if change == "structural":
        target = make_lb(web_vip(web), [a, b], connection_limit=7)
    elif change == "runtime":
        target = make_lb(web_vip(web), [a, b], member_spec={"b0": {"weight": 3}})
    elif change == "new-vip":
        target = make_lb(free_vip(), [a, b], name="new")
    else:
        method, target = "delete", other
    run_killed(device, method, target, point)

    restarted = HAProxyDriver()  # the operator after its restart
    found = restarted.verify(device.handle, target if method == "apply" else web) or []
    if change != "runtime":
        assert "PendingReload" in [d.kind for d in found]
    elif point != "after-config":  # killed after the last file: nothing left to do
        assert found
    assert restarted.probe(device.handle).ready  # finishes a pending reload
    desired = [lb for lb in desired if lb.key != target.key]
    if method == "apply":
        desired.append(target)
        drifts = restarted.verify(device.handle, target) or []
        if drifts:
            restarted.apply(device.handle, target)
    else:
        for orphan in restarted.orphans(device.handle, [lb.key for lb in desired]):
            restarted.delete(device.handle, orphan)
    serves_exactly(device, restarted, desired)
    assert json.loads((device.state_dir / "driver-state.json").read_text())["parked"] == {}


def web_vip(lb: LoadBalancer) -> tuple[str, int]:
    return lb.address, lb.listeners[0].port


# -- apply_many: a batch killed at every step ---------------------------------------------------

BATCH_SCRIPT = """
import json, sys
from lbaas.drivers.contract import DeviceHandle
from lbaas.drivers.haproxy import HAProxyDriver
from lbaas.drivers.haproxy.store import load_tree
handle = DeviceHandle("d", driver="haproxy", config=json.loads(sys.argv[1]))
lbs = [load_tree(text) for text in json.loads(sys.argv[2])]
HAProxyDriver().apply_many(handle, lbs)
"""

# The runtime part of a mixed batch comes first: its after-vip-file and after-config are the
# first ones reached, the reload's are the second (":2").
BATCH_MATRIX = [
    *[("reload", p) for p in RELOAD_POINTS],  # a structural change and three new VIPs
    *[("mixed", p) for p in ["runtime-command:1", "runtime-command:3", "after-vip-file"]],
    *[("mixed", p) for p in ["after-config", "after-intent", "after-vip-file:2"]],
    *[("mixed", p) for p in ["after-config:2", "before-reload", "after-reload"]],
]
RUNTIME_PHASE = {"runtime-command:1", "runtime-command:3", "after-vip-file", "after-config"}
"""Points of a mixed batch reached before the reload's intent is recorded."""


def run_batch_killed(device: Device, lbs: list[LoadBalancer], point: str) -> None:
    env = {**os.environ, "PYTHONSAFEPATH": "1", "LBAAS_FAULT_POINT": point}
    spec = json.dumps(dict(device.handle.config))
    trees = json.dumps([dump_tree(lb) for lb in lbs])
    done = subprocess.run(
        [sys.executable, "-c", BATCH_SCRIPT, spec, trees],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, f"not killed at {point}: {done.returncode} {done.stderr}"


@pytest.mark.parametrize(
    ("batch", "point"), BATCH_MATRIX, ids=[f"{b}-{p}" for b, p in BATCH_MATRIX]
)
def test_a_batch_killed_at_every_step_is_finished_by_a_new_driver(
    device: Device, backends: Backends, batch: str, point: str
) -> None:
    a, b, c = backends.http(3)
    web = make_lb(free_vip(), [a])
    other = make_lb(free_vip(), [b], name="other")
    device.driver.apply_many(device.handle, [web, other])
    new = [make_lb(free_vip(), [a, c], name=f"new{i}") for i in range(3)]
    if batch == "reload":
        lbs = [make_lb(web_vip(web), [a, b], connection_limit=7), *new]
    else:  # other: a member added and a weight changed, at run time; new VIPs: one reload
        lbs = [make_lb(web_vip(other), [b, c], name="other", member_spec={"b1": {"weight": 3}})]
        lbs += new[:2]
    run_batch_killed(device, lbs, point)

    restarted = HAProxyDriver()  # the operator after its restart
    desired = {lb.key: lb for lb in [web, other, *lbs]}
    reload_phase = batch == "reload" or point not in RUNTIME_PHASE
    found = restarted.verify(device.handle, lbs[-1]) or []
    assert ("PendingReload" in [d.kind for d in found]) == reload_phase, found
    assert restarted.probe(device.handle).ready  # finishes a pending reload
    drifted = [lb for lb in desired.values() if restarted.verify(device.handle, lb)]
    if reload_phase and point != "after-intent":
        # The intent covered every VIP file of the batch: the probe's reload served them all.
        assert drifted == []
    assert restarted.apply_many(device.handle, drifted) == dict.fromkeys([lb.key for lb in drifted])
    serves_exactly(device, restarted, list(desired.values()))
    assert json.loads((device.state_dir / "driver-state.json").read_text())["parked"] == {}
