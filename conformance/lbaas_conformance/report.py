"""The run's verdict per profile and feature (pure: outcomes in, a YAML-ready document out).

A feature's status:

- ``failed``: a test of it failed (or, with ``--strict``, a declaration check did: a core
  feature of a selected profile not declared, a declared feature no test proves yet);
- ``skipped``: not declared (reason ``not declared``), or declared but every test of it was
  skipped (the reasons are listed: e.g. the driver declares no data plane) or deselected
  (``-k``);
- ``untested``: declared, and no test of the kit proves it yet ("no test yet"; a failure
  under ``--strict``: a declared feature without a test is not proven);
- ``passed``: declared, some test of it passed and none failed. ``layers`` says which layers
  proved it (``contract`` only, for a driver without a data plane).

The pseudo-feature ``contract`` (profile ``CONTRACT``) holds what every driver must pass.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lbaas.drivers.capabilities import FEATURES
from lbaas_conformance.features import (
    CONTRACT,
    CONTRACT_PROFILE,
    DECLARATION,
    profile_of,
)

STATUSES = ("passed", "failed", "skipped", "untested")
NO_TEST_YET = "no test yet"
NOT_DECLARED = "not declared"
NOT_RUN = "its tests were not run (deselected)"


@dataclass(frozen=True)
class Outcome:
    """One test's result: ``outcome`` is passed, failed or skipped (an error in setup or
    teardown is a failure)."""

    test: str
    feature: str
    layer: str
    outcome: str
    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class Run:
    driver: str
    driver_contract: int
    declared: frozenset[str]
    traffic: bool
    strict: bool
    profiles: Sequence[str]
    kit_version: str
    contract_version: int
    model_version: int
    seconds: float
    tested: frozenset[str] = frozenset()
    """Features the kit has a test of (``features.tested()``)."""


def feature_entry(
    name: str, declared: bool, outcomes: Sequence[Outcome], *, has_tests: bool
) -> dict[str, Any]:
    """The verdict on ``name`` (``has_tests``: the kit has a test of it, run or not)."""
    proofs = [o for o in outcomes if o.layer != DECLARATION]
    failed = [o for o in outcomes if o.outcome == "failed"]
    passed = [o for o in proofs if o.outcome == "passed"]
    if failed:
        status, reason = "failed", failed[0].reason
    elif not declared:
        status, reason = "skipped", NOT_DECLARED
    elif not proofs and has_tests:
        status, reason = "skipped", NOT_RUN
    elif not proofs:
        status, reason = "untested", NO_TEST_YET
    elif passed:
        status, reason = "passed", ""
    else:
        status = "skipped"
        reason = "; ".join(sorted({o.reason for o in proofs if o.reason}))
    entry: dict[str, Any] = {
        "feature": name,
        "level": "core" if name == CONTRACT else FEATURES[name].level,
        "declared": declared,
        "status": status,
    }
    if name != CONTRACT:
        entry["description"] = FEATURES[name].description
    if reason:
        entry["reason"] = reason
    if passed:
        entry["layers"] = sorted({o.layer for o in passed})
    entry["tests"] = [_test(o) for o in outcomes]
    return entry


def _test(o: Outcome) -> dict[str, Any]:
    found: dict[str, Any] = {
        "test": o.test,
        "layer": o.layer,
        "outcome": o.outcome,
        "seconds": round(o.seconds, 3),
    }
    if o.reason:
        found["reason"] = o.reason
    return found


def build(run: Run, outcomes: Iterable[Outcome]) -> dict[str, Any]:
    """The report document of ``run``."""
    by_feature: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_feature.setdefault(o.feature, []).append(o)
    profiles = []
    totals: Counter[str] = Counter()
    for profile in run.profiles:
        names = (
            [CONTRACT]
            if profile == CONTRACT_PROFILE
            else [f for f in FEATURES if FEATURES[f].profile == profile]
        )
        entries = [
            feature_entry(
                n,
                n == CONTRACT or n in run.declared,
                by_feature.get(n, []),
                has_tests=n in run.tested,
            )
            for n in names
        ]
        counts = Counter(e["status"] for e in entries)
        totals.update(counts)
        profiles.append(
            {
                "profile": profile,
                "summary": {s: counts.get(s, 0) for s in STATUSES},
                "features": entries,
            }
        )
    return {
        "kit": {
            "version": run.kit_version,
            "contractVersion": run.contract_version,
            "modelVersion": run.model_version,
        },
        "driver": {
            "name": run.driver,
            "contractVersion": run.driver_contract,
            "throughShim": run.driver_contract == 0,
            "traffic": run.traffic,
            "declared": sorted(run.declared),
        },
        "strict": run.strict,
        "result": "failed" if totals.get("failed") else "passed",
        "summary": {s: totals.get(s, 0) for s in STATUSES},
        "seconds": round(run.seconds, 1),
        "profiles": profiles,
    }


def statuses(report: dict[str, Any]) -> dict[str, str]:
    """feature → status, from a report document (the matrix and the tests read this)."""
    return {f["feature"]: f["status"] for p in report.get("profiles", []) for f in p["features"]}


__all__ = ["NOT_DECLARED", "NO_TEST_YET", "Outcome", "Run", "build", "profile_of", "statuses"]
