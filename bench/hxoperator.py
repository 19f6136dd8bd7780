"""HAProxy liveness through the operator, with goals and pass/fail (issue 11; part of
`make bench`, needs an API server with our CRDs: KUBECONFIG).

The real operator process (default probe interval: the restart must come from the watch, not
the probe timer) drives a managed HAProxy Device with one VIP and two members. A client sends
one request every ``PAUSE`` seconds through the VIP while the HAProxy master is SIGKILLed
``KILLS`` times. Per kill:

- detected: when the new master was started, after the kill (``/proc`` start time; the
  operator's watch noticed the death, its probe restarted HAProxy); goal < 1 s;
- traffic back: from the kill to the first request that succeeded after one that failed;
  goal < 2 s;
- requests failed: those sent during the outage (the client's rate times the outage), and
  those that failed once traffic was back (goal 0).

VIPs come from 127.0.70.224/28, backends listen on ``<LBAAS_TEST_NET>.71.x``. Run alone:
``.venv/bin/python bench/hxoperator.py`` (with KUBECONFIG set and no other operator on it).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"
for path in (TESTS, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import defaults  # noqa: E402
from hxdriver import _hxsupport  # noqa: E402
from table import Row, print_table  # noqa: E402

from helpers import Api, kubectl, wait_for  # noqa: E402

KILLS, PAUSE = 5, 0.01
POOL = "127.0.70.224/28"


def _started_at(pid: int) -> float:
    """When ``pid`` started, in CLOCK_BOOTTIME seconds (the clock of /proc start times)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


def _outage(events: list[tuple[float, bool]], killed: float) -> float | None:
    """Seconds from the kill to the first success after a failure (None: not back yet)."""
    failed = next((t for t, ok in events if t >= killed and not ok), None)
    if failed is None:
        return None
    back = next((t for t, ok in events if t >= failed and ok), None)
    return None if back is None else back - killed


def sigkill_through_operator(work: Path) -> dict[str, list[float]]:
    """Per kill: detection, traffic back (seconds), failed during and after the outage."""
    hx = _hxsupport()
    binary = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if not binary:
        raise RuntimeError("haproxy binary not found")
    api = Api()
    ns = f"bench-live-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    state_dir = Path(tempfile.mkdtemp(prefix="lbbl-", dir="/tmp"))
    device = f"{ns}-hx"
    backends = hx.Backends(third=71)
    operator = defaults.operator(work / "liveness-operator.log", LBAAS_NAMESPACES=ns).start()
    found: dict[str, list[float]] = {"detected": [], "back": [], "during": [], "after": []}
    try:
        config = {"managed": True, "stateDir": str(state_dir), "haproxyBinary": binary}
        spec = {
            "driver": "haproxy",
            "config": config,
            "addressPool": [POOL],
            "allowedNamespaces": [ns],
            "memberNetworks": ["127.0.0.0/8"],
        }
        api.create({"kind": "Device", "metadata": {"name": device}, "spec": spec})
        api.wait_phase("Device", device, None, "Ready", 30)
        port = hx.free_port_in(POOL)
        objs = [
            ("VIP", "web", {"port": port, "protocol": "HTTP"}),
            ("Pool", "web", {"vipRef": "web", "protocol": "HTTP"}),
        ] + [
            ("Member", f"web-{b.name}", {"poolRef": "web", "address": b.address, "port": b.port})
            for b in backends.http(2)
        ]
        for kind, name, body in objs:
            api.create({"kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": body})
        for kind, name, _ in objs:
            hx.wait_applied(api, kind, name, ns)
        address = api.status("VIP", "web", ns)["address"]
        with hx.Load(address, port, pause=PAUSE, max_seconds=600) as load:
            for _ in range(KILLS):
                wait_for(lambda: load.events and load.events[-1][1], 10, "traffic")
                time.sleep(0.5)
                pid = hx.read_pid(state_dir / "haproxy.pid")
                killed_boot, killed = time.clock_gettime(time.CLOCK_BOOTTIME), time.monotonic()
                os.kill(pid, signal.SIGKILL)
                new = wait_for(
                    lambda p=pid: (n := hx.read_pid(state_dir / "haproxy.pid")) != p and n,
                    10,
                    "a new master",
                )
                wait_for(lambda k=killed: _outage(load.events, k) is not None, 10, "back")
                back = _outage(load.events, killed) or 0.0
                sent = load.sent
                wait_for(lambda s=sent: load.sent >= s + 30, 10, "requests after")
                window = [ok for t, ok in load.events if t >= killed]
                after = [ok for t, ok in load.events if t > killed + back]
                found["detected"].append(_started_at(new) - killed_boot)
                found["back"].append(back)
                found["during"].append(window.count(False) - after.count(False))
                found["after"].append(after.count(False))
        return found
    finally:
        for kind, name in (("VIP", "web"),):
            api.delete(kind, name, ns)
        try:
            api.wait_gone("VIP", "web", ns, 30)
            api.delete("Device", device)
            wait_for(lambda: api.get("Device", device) is None, 30, "device gone")
        finally:
            operator.stop()
            hx.stop_haproxy(state_dir)
            shutil.rmtree(state_dir, ignore_errors=True)
            for server in backends.started:
                server.shutdown()
                server.server_close()


def rows(work: Path) -> list[Row]:
    found = sigkill_through_operator(work)
    detected, back = found["detected"], found["back"]
    during, after = found["during"], found["after"]

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f} ms"

    what = f"SIGKILL of HAProxy under load ({KILLS} kills)"
    return [
        Row(f"{what}: detected (median / max)", ms(detected), "< 1 s", max(detected) < 1),
        Row(f"{what}: traffic back (median / max)", ms(back), "< 2 s", max(back) < 2),
        Row(
            f"{what}: requests failed per kill, one every {PAUSE * 1000:.0f} ms (median / max)",
            f"{statistics.median(during):.0f} / {max(during):.0f}",
        ),
        Row(f"{what}: requests failed once traffic was back", str(sum(after)), "0", not any(after)),
    ]


if __name__ == "__main__":
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-live-"))
    print_table("HAProxy liveness through the operator", rows(work))  # needs KUBECONFIG
