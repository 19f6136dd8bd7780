"""Scale-out (issue 12): the same work with 1 agent and with 3, a slow driver.

48 fake Devices whose driver takes 200 ms per VIP applied (``applyDelayPerVip``: a vendor API
with one call per VIP), 300 VIPs, the product's defaults (8 driver workers per agent, a 10 s
lease, a 5 s driver timeout: bench/defaults.py). One controller binds them; the agents (1,
then 3, in fresh namespaces) apply them. Reported: time until every VIP is Active (goal: 3
agents >= 2.5x faster than 1) and each agent's peak RSS.

Why 48 devices: an agent drives at most ``driverWorkers`` devices at once, so scale-out shows
only when one agent has more devices than workers (48 over 8 workers: 6 rounds; over 3 agents:
2). With 12 devices and 2 workers per agent (the former setting) the figure measured a
setting no user runs. A device's ~6 VIPs x 200 ms fit well within the default driver timeout.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import defaults
import kubernetes
from scale import Row, peak_rss_mb

from helpers import GROUP, LEASE_NAMESPACE, VERSION, OperatorProcess, kubectl

DEVICES, VIPS, DELAY = 48, 300, 0.2
ENV = defaults.product_env(LBAAS_LEASE_NAMESPACE=LEASE_NAMESPACE)
WORKERS = int(ENV["LBAAS_DRIVER_WORKERS"])


def _api() -> Any:
    kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return kubernetes.client.CustomObjectsApi()


def one_round(work: Path, agents: int) -> tuple[float, list[float]]:
    """Seconds until all VIPs are Active with ``agents`` agents; their peak RSS (MB)."""
    api = _api()
    ns = f"scaleout-{agents}-{os.getpid()}"
    kubectl("create", "namespace", ns)
    work = work / ns
    work.mkdir(parents=True)
    label = {"fleet": ns}
    for d in range(DEVICES):
        (work / f"c{d}").write_text(f'{{"applyDelayPerVip": {DELAY}}}')
        spec = {
            "driver": "fake",
            "config": {"stateFile": str(work / f"s{d}"), "controlFile": str(work / f"c{d}")},
            "addressPool": [f"10.{140 + d}.0.0/24"],
            "allowedNamespaces": [ns],
            "agentSelector": {"matchLabels": label},
        }
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Device"}
        body |= {"metadata": {"name": f"{ns}-{d}", "labels": label}, "spec": spec}
        api.create_cluster_custom_object(GROUP, VERSION, "devices", body)
    procs = [
        OperatorProcess(
            work / "controller.log", **ENV, LBAAS_NAMESPACES=ns, LBAAS_AGENT_ID=f"{ns}-c"
        )
    ]
    for i in range(agents):
        env = {**ENV, "LBAAS_NAMESPACES": ns, "LBAAS_AGENT_ID": f"{ns}-a{i}"}
        procs.append(OperatorProcess(work / f"a{i}.log", **env))
    try:
        procs[0].start("controller")
        for proc in procs[1:]:
            proc.start("agent", "--labels", f"fleet={ns}")
        # Devices owned, probed and spread first (4 per agent with 3: a new agent gets its
        # share within two lease periods): the figure is the agents' work, not lease timing.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            statuses = [
                api.get_cluster_custom_object(GROUP, VERSION, "devices", f"{ns}-{d}").get("status")
                or {}
                for d in range(DEVICES)
            ]
            held = Counter(s.get("agent") for s in statuses)
            if (
                all(s.get("phase") == "Ready" for s in statuses)
                and len(held) == agents
                and max(held.values()) - min(held.values()) <= 1
            ):
                break
            time.sleep(0.5)
        started = time.monotonic()

        def create(i: int) -> None:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "VIP",
                "metadata": {"name": f"v{i}"},
                "spec": {"port": 80, "deviceSelector": {"matchLabels": label}},
            }
            api.create_namespaced_custom_object(GROUP, VERSION, ns, "vips", body)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(VIPS)))
        while time.monotonic() - started < 600:
            items = api.list_namespaced_custom_object(GROUP, VERSION, ns, "vips")["items"]
            if sum((v.get("status") or {}).get("phase") == "Active" for v in items) == VIPS:
                break
            time.sleep(0.5)
        took = time.monotonic() - started
        rss = [peak_rss_mb(p.proc.pid) for p in procs[1:] if p.proc is not None]
        return took, rss
    finally:
        for proc in procs:
            proc.stop()


def run(work: Path) -> list[Row]:
    one, rss1 = one_round(work, 1)
    three, rss3 = one_round(work, 3)
    speedup = one / three
    return [
        Row(f"{VIPS} VIPs, {DEVICES} devices, {DELAY * 1000:.0f} ms per VIP, {WORKERS} workers"
            f" per agent ({defaults.settings_note()}): 1 agent",
            f"{one:.1f} s, peak RSS {rss1[0]:.0f} MB"),
        Row("same, 3 agents", f"{three:.1f} s, peak RSS {'/'.join(f'{r:.0f}' for r in rss3)} MB"),
        Row("speed-up with 3 agents", f"{speedup:.1f}x", ">= 2.5x", speedup >= 2.5),
    ]  # fmt: skip
