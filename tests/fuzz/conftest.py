"""The HAProxy binary and a device-like directory for the fuzz properties."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import need_tool
from lbaas.drivers.haproxy.render import GlobalSettings, render_global


@pytest.fixture(scope="module")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(binary, directory holding haproxy.cfg and conf.d/ as a device's state dir does)."""
    binary = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not binary:
        need_tool("haproxy binary not found")
    assert binary is not None
    work = tmp_path_factory.mktemp("fuzz")
    (work / "conf.d").mkdir()
    (work / "maps").mkdir()
    (work / "server-state").write_text("1\n")
    settings = GlobalSettings(
        str(work / "haproxy.sock"), str(work / "server-state"), 60, state_dir=str(work)
    )
    (work / "haproxy.cfg").write_text(render_global(settings))
    return binary, work
