"""HAProxy liveness through the operator, with goals and pass/fail (issue 11; part of
`make bench`, needs an API server with our CRDs: KUBECONFIG).

The real operator process (product defaults: the restart must come from the watch, not the
probe timer) drives a managed HAProxy Device with one VIP and two members. The bench's
fixed-rate client (bench/fixedrate.py, ``RATE`` requests a second, errors and non-2xx
counted) runs through the VIP while the HAProxy master is SIGKILLed ``KILLS`` times. Per kill:

- detected: when the new master was started, after the kill (``/proc`` start time; the
  operator's watch noticed the death, its probe restarted HAProxy); goal < 1 s;
- traffic back (``FixedRate.traffic_back``, the one definition of every part): from the kill
  to the first request that succeeded after the last that failed; goal < 2 s;
- requests failed: those sent during the outage, and those that failed once traffic was
  back (goal 0).

Five kills are too few for a percentile: the rows show the worst and every value.

VIPs come from 127.0.70.224/28, backends listen on ``<LBAAS_TEST_NET>.71.x``. Run alone:
``.venv/bin/python bench/hxoperator.py`` (with KUBECONFIG set and no other operator on it).
"""

from __future__ import annotations

import os
import shutil
import signal
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
from fixedrate import FixedRate  # noqa: E402
from hxdriver import _hxsupport  # noqa: E402
from table import Row, print_table  # noqa: E402

from helpers import Api, kubectl, wait_for  # noqa: E402

KILLS, RATE = 5, 100.0
POOL = "127.0.70.224/28"


def _started_at(pid: int) -> float:
    """When ``pid`` started, in CLOCK_BOOTTIME seconds (the clock of /proc start times)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return ticks / os.sysconf("SC_CLK_TCK")


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
        with FixedRate(address, port, rate=RATE) as client:
            for _ in range(KILLS):
                time.sleep(0.5)
                pid = hx.read_pid(state_dir / "haproxy.pid")
                killed_boot, killed = time.clock_gettime(time.CLOCK_BOOTTIME), time.monotonic()
                os.kill(pid, signal.SIGKILL)
                new = wait_for(
                    lambda p=pid: (n := hx.read_pid(state_dir / "haproxy.pid")) != p and n,
                    10,
                    "a new master",
                )
                back = client.wait_back(killed)
                time.sleep(0.3)  # requests once traffic is back: none may fail
                failed = client.failed_after(killed)
                after = client.failed_after(killed + back + 1e-6)
                found["detected"].append(_started_at(new) - killed_boot)
                found["back"].append(back)
                found["during"].append(failed - after)
                found["after"].append(after)
        found["client"] = [float(len(client.samples)), client.errors, client.non_2xx]
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
    sent, errors, non_2xx = (int(v) for v in found["client"])

    def ms(values: list[float]) -> str:
        each = ", ".join(f"{v * 1000:.0f}" for v in values)
        return f"{max(values) * 1000:.0f} ms (each: {each})"

    what = f"SIGKILL of HAProxy under load ({KILLS} kills)"
    return [
        Row(f"{what}: detected, worst", ms(detected), "< 1 s", max(detected) < 1),
        Row(f"{what}: traffic back, worst", ms(back), "< 2 s", max(back) < 2),
        Row(
            f"{what}: requests failed per kill at {RATE:g}/s, worst",
            f"{max(during):.0f} (each: {', '.join(f'{v:.0f}' for v in during)})",
        ),
        Row(f"{what}: requests failed once traffic was back", str(sum(after)), "0", not any(after)),
        Row(f"{what}: the client, {sent} requests: errors / non-2xx", f"{errors} / {non_2xx}"),
    ]


if __name__ == "__main__":
    work = Path(tempfile.mkdtemp(prefix="lbaas-bench-live-"))
    print_table("HAProxy liveness through the operator", rows(work))  # needs KUBECONFIG
