"""The pytest plugin: options, which tests run for the driver, and the report.

Installed as a ``pytest11`` entry point, it is loaded by every pytest of the environment but
does nothing unless ``--lbaas-driver`` is given (``lbaas-conformance`` gives it). Then it
loads the driver and the device config, deselects the tests of profiles not asked for, skips
those of features the driver does not declare (and the traffic layer of a device without a
data plane), records every outcome by feature, and writes the YAML report.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbaas.drivers.capabilities import FEATURES
from lbaas.drivers.contract import CONTRACT_VERSION
from lbaas.drivers.errors import DriverError
from lbaas.drivers.model import MODEL_VERSION
from lbaas_conformance import __version__
from lbaas_conformance.config import ConfigError, DeviceConfig, load
from lbaas_conformance.features import (
    ALL_PROFILES,
    CONTRACT,
    CONTRACT_LAYER,
    DECLARATION,
    MARK,
    TRAFFIC,
    profile_of,
    tested,
)
from lbaas_conformance.kit import Kit, contract_of
from lbaas_conformance.report import Outcome, Run, build

KIT = pytest.StashKey["Conformance"]()
SUITE = "lbaas_conformance.suite"
NO_DATA_PLANE = "driver declares no data plane (device config: traffic: false)"
CLEANUP = "after the last test: every load balancer of the run deleted"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lbaas-conformance", "lbaas-operator driver conformance kit")
    group.addoption("--lbaas-driver", help="the driver's entry-point name (group lbaas.drivers)")
    group.addoption("--lbaas-device-config", help="the device-config YAML file")
    group.addoption(
        "--lbaas-profile",
        action="append",
        default=[],
        help=f"a profile to test ({', '.join(ALL_PROFILES[1:])}); default: all",
    )
    group.addoption(
        "--lbaas-strict",
        action="store_true",
        help="fail on undeclared core features and declared features without a test",
    )
    group.addoption("--lbaas-report", help="write the YAML report here")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARK}(feature, layer): the feature a conformance test proves"
    )
    driver = config.getoption("lbaas_driver")
    if not driver:
        return
    path = config.getoption("lbaas_device_config")
    if not path:
        raise pytest.UsageError("--lbaas-device-config is required with --lbaas-driver")
    conformance = Conformance(config, driver, Path(path))
    config.stash[KIT] = conformance
    config.pluginmanager.register(conformance, "lbaas-conformance-run")


def profiles_of(asked: list[str]) -> tuple[str, ...]:
    names = [p.strip().upper() for a in asked for p in a.split(",") if p.strip()]
    if unknown := sorted(set(names) - set(ALL_PROFILES)):
        raise pytest.UsageError(
            f"unknown profile {', '.join(unknown)} (of {', '.join(ALL_PROFILES[1:])})"
        )
    chosen = set(names) or set(ALL_PROFILES)
    return tuple(p for p in ALL_PROFILES if p in chosen or p == ALL_PROFILES[0])


def _reason(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).strip().splitlines()[0][:500] if crash.message else "failed"
    return str(report.longrepr).strip().splitlines()[-1][:500] if report.longrepr else ""


class Conformance:
    """One run: the kit, what each collected test proves, and what came of it."""

    def __init__(self, config: pytest.Config, driver: str, path: Path) -> None:
        self.config = config
        self.started = time.monotonic()
        self.profiles = profiles_of(config.getoption("lbaas_profile"))
        self.strict = bool(config.getoption("lbaas_strict"))
        self.report_path = config.getoption("lbaas_report")
        self.workdir = Path(tempfile.mkdtemp(prefix="lbaas-conformance-"))
        try:
            self.device: DeviceConfig = load(path, workdir=self.workdir)
            self.kit = Kit(driver, self.device)
        except (ConfigError, DriverError) as exc:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise pytest.UsageError(str(exc)) from None
        self.tied: dict[str, tuple[str, str]] = {}
        self.results: dict[str, Outcome] = {}
        self.report: dict[str, Any] | None = None
        for module in pkgutil.iter_modules(importlib.import_module(SUITE).__path__):
            if module.name.startswith("test_"):  # every proof registered before any is run
                importlib.import_module(f"{SUITE}.{module.name}")

    # ---- collection ------------------------------------------------------------------------

    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        proven = tested()
        kept, dropped = [], []
        for item in items:
            marker = item.get_closest_marker(MARK)
            if marker is None:
                module = getattr(item, "module", None)
                if module is not None and module.__name__.startswith(f"{SUITE}."):
                    raise pytest.UsageError(
                        f"{item.nodeid}: no @feature: every kit test proves one"
                    )
                kept.append(item)
                continue
            name, layer = marker.args
            relevant = profile_of(name) in self.profiles
            if layer == DECLARATION:
                relevant = relevant and self._declaration_relevant(item, name, proven)
            if not relevant:
                dropped.append(item)
                continue
            kept.append(item)
            self.tied[item.nodeid] = (name, layer)
            if layer == DECLARATION:
                continue
            if name != CONTRACT and name not in self.kit.features:
                item.add_marker(pytest.mark.skip(reason="not declared by the driver"))
            elif layer == TRAFFIC and not self.device.traffic:
                item.add_marker(pytest.mark.skip(reason=NO_DATA_PLANE))
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept

    @staticmethod
    def _declaration_relevant(item: pytest.Item, name: str, proven: set[str]) -> bool:
        """``test_no_test_yet[f]`` only for features no test proves; ``test_core_declared[f]``
        only for core features."""
        function = getattr(item, "originalname", item.name)
        if function == "test_no_test_yet":
            return name not in proven
        return name in FEATURES and FEATURES[name].level == "core"

    # ---- outcomes --------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        tied = self.tied.get(report.nodeid)
        if tied is None:
            return
        before = self.results.get(report.nodeid)
        outcome = "failed" if report.failed else "skipped" if report.skipped else "passed"
        seconds = report.duration + (before.seconds if before else 0.0)
        if before is not None and (before.outcome == "failed" or outcome == "passed"):
            outcome, reason = before.outcome, before.reason  # the worst phase decides
        else:
            reason = _reason(report) if outcome != "passed" else ""
        self.results[report.nodeid] = Outcome(
            report.nodeid, tied[0], tied[1], outcome, seconds, reason
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.kit.applied:
            self._cleanup(session)
        run = Run(
            driver=self.kit.driver_name,
            driver_contract=contract_of(self.kit.driver),
            declared=self.kit.features,
            traffic=self.device.traffic,
            strict=self.strict,
            profiles=self.profiles,
            kit_version=__version__,
            contract_version=CONTRACT_VERSION,
            model_version=MODEL_VERSION,
            seconds=time.monotonic() - self.started,
            tested=frozenset(tested()),
        )
        self.report = build(run, self.results.values())
        if self.report_path:
            Path(self.report_path).write_text(yaml.safe_dump(self.report, sort_keys=False))

    def _cleanup(self, session: pytest.Session) -> None:
        """Delete every load balancer of the run: part of the contract, reported as such (not
        as a part of whichever test came last)."""
        started, reason = time.monotonic(), ""
        try:
            self.kit.cleanup()
        except Exception as exc:
            reason = f"deleting the run's load balancers failed: {type(exc).__name__}: {exc}"
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.results[CLEANUP] = Outcome(
            CLEANUP,
            CONTRACT,
            CONTRACT_LAYER,
            "failed" if reason else "passed",
            time.monotonic() - started,
            reason,
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            return
        write = terminalreporter.write_line
        terminalreporter.section("lbaas conformance")
        driver = self.report["driver"]
        shim = " (contract 0, through the compatibility shim)" if driver["throughShim"] else ""
        write(f"driver {driver['name']}{shim}: {self.report['result']}")
        for profile in self.report["profiles"]:
            counts = ", ".join(f"{v} {k}" for k, v in profile["summary"].items() if v)
            write(f"  {profile['profile']}: {counts}")
            for entry in profile["features"]:
                if entry["declared"] or entry["status"] == "failed":
                    why = f" ({entry['reason']})" if entry.get("reason") else ""
                    write(f"    {entry['status']:<9} {entry['feature']}{why}")
        if self.report_path:
            write(f"report: {self.report_path}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.kit.driver.close()
        if self.device.teardown:
            subprocess.run(self.device.teardown, shell=True, timeout=60, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
