"""``make bench`` fails on a planted regression, and only reports it with BENCH_STRICT=0.

Bench part 1 (VIP + Pool + 3 Members -> all Active, goal p99 < 1 s) runs on a test bed of its
own (the bench starts one, with its audit log, and stops it): three trees, once as is (every
goal met, exit 0), once with a planted slow device (every fake-driver call takes 1.5 s:
``BENCH_PLANT_DELAY``; the p99 goal is missed, exit 1, the row and the summary say FAIL), and
once more planted with ``BENCH_STRICT=0`` (reported, exit 0).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.timeout(600)


def bench(tmp_path: Path, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    run_env.update(TESTBED_STATE=str(tmp_path / f"testbed-{name}"), BENCH="1", BENCH_TREES="3",
                   **env)  # fmt: skip
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py")],
        env=run_env, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


def p99_row(output: str) -> str:
    (row,) = [line for line in output.splitlines() if line.startswith("p99 / max")]
    return row


def test_bench_passes_then_fails_on_a_planted_slow_device(tmp_path: Path) -> None:
    clean = bench(tmp_path, "clean")
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert p99_row(clean.stdout).endswith("pass") and "every goal met" in clean.stdout

    planted = bench(tmp_path, "planted", BENCH_PLANT_DELAY="1.5")
    assert planted.returncode == 1, planted.stdout[-3000:] + planted.stderr[-3000:]
    assert "PLANTED: every driver call 1.5 s" in planted.stdout
    assert p99_row(planted.stdout).endswith("FAIL")
    summary = planted.stdout.split("make bench FAILED:")[1]
    assert "(1): p99 / max" in summary and "not measured" not in summary

    reported = bench(tmp_path, "reported", BENCH_PLANT_DELAY="1.5", BENCH_STRICT="0")
    assert reported.returncode == 0, reported.stdout[-3000:]
    assert p99_row(reported.stdout).endswith("FAIL")
    assert "reported only" in reported.stdout
