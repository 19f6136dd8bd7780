"""Helpers shared by the test modules (importable as ``helpers``: tests/ is on pythonpath)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"


def need_tool(reason: str) -> None:
    """Skip for a missing external tool, or fail when LBAAS_STRICT=1 says it must be there."""
    if os.environ.get("LBAAS_STRICT") == "1":
        pytest.fail(f"{reason} (LBAAS_STRICT=1 forbids skipping)")
    pytest.skip(reason)


def kubectl(
    *args: str,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", f"--cache-dir={os.environ.get('KUBECACHEDIR', '')}", *args]
        if os.environ.get("KUBECACHEDIR")
        else ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result
