"""Fleet scale (issue 13): cold start, API writes, warm restart and memory, against a baseline.

On one namespace holding N VIPs x M members, each with a Pool and a HealthMonitor (N*(M+3)
objects, created before any operator runs), over 10 fake devices that apply instantly:

1. the operator's cold start: time until every object is Active, API writes per object
   (counted at the server from its audit log: every kind, Leases and Events included, refused
   writes too; the operator's own 2xx counter beside it), peak RSS;
2. its warm restart over the cluster it left Active and idle: the writes other than Lease renewals
   (goal: none) over a window that ends when the operator is idle (no such write for two
   member-status intervals), and time until every tree was verified against its device;
3. the baseline, same run, on the same objects created afresh (on a fresh cluster when the
   bench owns one): a bare kopf operator whose only handler writes ``phase: Active`` on each
   object (the cost of kopf itself); the ratio must be <= 1.

Progress is counted from outside, by a watch on the four kinds, the same way for both. The
operator runs with the product's defaults (member status every 5 s, resync 60 s, 8 driver
workers: bench/defaults.py).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cluster
import defaults
import kubernetes
from auditlog import Write, by_kind
from table import Row

from helpers import GROUP, LEASE_NAMESPACE, VERSION, OperatorProcess, kubectl

HERE = Path(__file__).resolve().parent
KINDS = ("vips", "pools", "members", "healthmonitors")
DEVICES = 10
BASELINE_MESSAGE = "baseline"


def _client() -> kubernetes.client.CustomObjectsApi:
    kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    return kubernetes.client.CustomObjectsApi()


def objects(namespace: str, vips: int, members: int) -> Iterator[tuple[str, dict[str, Any]]]:
    api_version = f"{GROUP}/{VERSION}"
    for i in range(vips):
        v = f"v{i}"

        def obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
            return {
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": name},
                "spec": spec,
            }

        yield "vips", obj("VIP", v, {"port": 80, "protocol": "HTTP"})
        yield "pools", obj("Pool", v, {"vipRef": v})
        yield "healthmonitors", obj("HealthMonitor", v, {"poolRef": v, "type": "TCP"})
        for j in range(members):
            address = f"10.{i // 250}.{i % 250}.{j + 1}"
            spec = {"poolRef": v, "address": address, "port": 8080}
            yield "members", obj("Member", f"{v}-m{j}", spec)


def create(namespace: str, work: Path, vips: int, members: int) -> float:
    """The devices and the objects, 16 requests at a time; seconds taken."""
    api = _client()
    for d in range(DEVICES):
        state = work / f"dev{d}"
        (work / f"dev{d}.control").write_text("{}")
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Device",
            "metadata": {"name": f"{namespace}-{d}"},
            "spec": {
                "driver": "fake",
                "config": {"stateFile": str(state), "controlFile": str(work / f"dev{d}.control")},
                "addressPool": [f"10.{100 + d}.0.0/16"],
                "capacity": {"maxVIPs": vips},
                "allowedNamespaces": [namespace],
                "memberNetworks": ["10.0.0.0/8"],
            },
        }
        api.create_cluster_custom_object(GROUP, VERSION, "devices", body)
    started = time.monotonic()

    def one(item: tuple[str, dict[str, Any]]) -> None:
        plural, body = item
        api.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body, _preload_content=False
        )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(one, objects(namespace, vips, members)))
    return time.monotonic() - started


class Counter:
    """Objects of the four kinds whose status passes ``done``, kept by list + watch."""

    def __init__(self, namespace: str, done: Callable[[dict[str, Any]], bool]) -> None:
        self.namespace, self.done = namespace, done
        self.state: dict[tuple[str, str], bool] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in KINDS]

    def __enter__(self) -> Counter:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()

    def count(self) -> int:
        with self.lock:
            return sum(self.state.values())

    def _run(self, plural: str) -> None:
        api = _client()
        while not self.stop.is_set():
            try:
                self._list_and_watch(api, plural)
            except Exception as exc:  # an overloaded API server times out: list again
                print(f"  (counter: {plural}: {type(exc).__name__}; listing again)", flush=True)
                time.sleep(1)

    def _list_and_watch(self, api: Any, plural: str) -> None:
        listed = api.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, _request_timeout=120
        )
        with self.lock:
            for item in listed["items"]:
                self.state[(plural, item["metadata"]["name"])] = self.done(item)
        watch = kubernetes.watch.Watch()
        for event in watch.stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            resource_version=listed["metadata"]["resourceVersion"],
            timeout_seconds=60,
        ):
            item = event["object"]
            with self.lock:
                self.state[(plural, item["metadata"]["name"])] = self.done(item)
            if self.stop.is_set():
                return


def active(item: dict[str, Any]) -> bool:
    return (item.get("status") or {}).get("phase") == "Active"


def by_baseline(item: dict[str, Any]) -> bool:
    return (item.get("status") or {}).get("message") == BASELINE_MESSAGE


def wait_count(counter: Counter, total: int, started: float, limit: float) -> float:
    while counter.count() < total:
        if time.monotonic() - started > limit:
            raise RuntimeError(f"only {counter.count()} of {total} after {limit:.0f}s")
        time.sleep(0.2)
    return time.monotonic() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        named = line.startswith(name + "{") or line.startswith(name + " ")
        if named and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def status_writes(text: str) -> float:
    return sum(metric(text, "lbaas_api_writes_total", resource=k) for k in KINDS)


def operator(work: Path, namespace: str, name: str) -> OperatorProcess:
    return defaults.operator(
        work / f"{name}.log",
        LBAAS_NAMESPACES=namespace,
        LBAAS_AGENT_ID="bench",
        LBAAS_LEASE_NAMESPACE=LEASE_NAMESPACE,
    )


IDLE_QUIET = 2 * float(defaults.defaults()["LBAAS_MEMBER_STATUS_INTERVAL"])
"""Seconds without a write (Lease renewals aside) after which the operator counts as idle."""


def split(writes: list[Write], limit: int = 8) -> str:
    counts = by_kind(writes)
    shown = [f"{verb} {resource} {n}" for (verb, resource), n in counts.most_common(limit)]
    rest = sum(counts.values()) - sum(n for _, n in counts.most_common(limit))
    return ", ".join(shown) + (f", other {rest}" if rest else "")


def baseline(work: Path, namespace: str, total: int, limit: float) -> tuple[float, float]:
    """The bare kopf operator on the same objects: (seconds, peak RSS MB)."""
    log = (work / "kopf-baseline.log").open("wb")
    kopf = Path(sys.executable).parent / "kopf"
    argv = [
        str(kopf),
        "run",
        "--standalone",
        f"--namespace={namespace}",
        str(HERE / "kopf_baseline.py"),
    ]
    with Counter(namespace, by_baseline) as counter:
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            took = wait_count(counter, total, started, limit)
            rss = peak_rss_mb(proc.pid)
            print(f"  bare kopf: {took:.1f} s", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return took, rss


def fresh_objects(work: Path, name: str, vips: int, members: int) -> tuple[str, Path, float]:
    """A new namespace holding the fleet: (namespace, its work dir, seconds to create)."""
    namespace = f"{name}-{os.getpid()}"
    kubectl("create", "namespace", namespace)
    work = work / namespace  # the fake devices' state files: never shared with another run
    work.mkdir(parents=True)
    return namespace, work, create(namespace, work, vips, members)


def run(work: Path, vips: int, members: int, reset: Callable[[], None] | None = None) -> list[Row]:
    """Both operators start on the same objects as created, untouched: the baseline on a
    fresh cluster (``reset``) or else in a namespace of its own. On the objects the
    operator had just made Active (status, finalizers, 30,000 revisions) kopf took 188 s
    instead of 82 s: a baseline run second would flatter the operator."""
    total = vips * (members + 3)
    limit = 600.0
    namespace, ours_work, created = fresh_objects(work, "scale", vips, members)
    ours = cold_and_warm(ours_work, namespace, total, vips, limit)
    if reset is not None:
        reset()
    namespace, kopf_work, _ = fresh_objects(work, "baseline", vips, members)
    kopf_s, kopf_rss = baseline(kopf_work, namespace, total, limit)
    rss = ours["rss"]
    rss_kb = (rss - 60) * 1024 / total
    ratio = ours["cold"] / kopf_s
    own = ours["writes"] / total
    rows = [
        Row("objects (VIPs x members, + a Pool and a HealthMonitor each)", f"{total}"),
        Row("created through the API (no operator)", f"{created:.1f} s"),
        Row("cold start: all Active", f"{ours['cold']:.1f} s", "< 60 s", ours["cold"] < 60),
        Row("bare kopf operator, same objects", f"{kopf_s:.1f} s, peak RSS {kopf_rss:.0f} MB"),
        Row("ratio operator / bare kopf", f"{ratio:.2f}", "<= 1.0", ratio <= 1.0),
    ]
    if "server_cold" in ours:
        cold: list[Write] = ours["server_cold"]
        per_object = len(cold) / total
        rows += [
            Row(
                "API writes per object, cold start (at the server: every kind, Leases and"
                " Events, refused ones too)",
                f"{per_object:.2f}",
                "<= 1.5",
                per_object <= 1.5,
            ),
            Row("  of which (verb resource count)", split(cold)),
            Row(
                f"  until idle (no write but Lease renewals for {IDLE_QUIET:.0f} s)",
                f"{len(ours['server_cold_idle']) / total:.2f} per object",
            ),
            Row("  the operator's own counter (2xx, no Leases)", f"{own:.2f} per object"),
        ]
    else:
        rows += [
            Row(
                "API writes per object, cold start (operator's own counter: no audit log"
                " on a KUBECONFIG cluster)",
                f"{own:.2f}",
                "<= 1.5",
                own <= 1.5,
            )
        ]
    rows.append(Row("peak RSS", f"{rss:.0f} MB, {rss_kb:.1f} KB/object", "< 300 MB", rss < 300))
    if "server_warm" in ours:
        warm: list[Write] = ours["server_warm"]
        others = [w for w in warm if w.resource != "leases"]
        leases = len(warm) - len(others)
        rows += [
            Row(
                f"warm restart: writes other than Leases (at the server, {ours['window']:.0f} s"
                f" until idle: none for {IDLE_QUIET:.0f} s)",
                split(others) or "0",
                "0",
                not others,
            ),
            Row("warm restart: Lease writes (takeover + renewals) in that window", f"{leases}"),
        ]
    else:
        warm_writes = ours["warm_status_writes"]
        rows.append(
            Row(
                "warm restart: status writes (operator's own counter)",
                f"{warm_writes:.0f}",
                "0",
                warm_writes == 0,
            )
        )
    rows += [
        Row("warm restart: trees verified", f"{ours['warm']:.1f} s", "< 30 s", ours["warm"] < 30),
        Row("warm restart: applies (drift found)", f"{ours['warm_applies']:.0f}"),
    ]
    return rows  # fmt: skip


def cold_and_warm(
    work: Path, namespace: str, total: int, vips: int, limit: float
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    audit = cluster.AUDIT
    with Counter(namespace, active) as counter:
        proc = operator(work, namespace, "cold")
        started = time.monotonic()
        mark = audit.mark() if audit else 0
        proc.start()
        figures["cold"] = wait_count(counter, total, started, limit)
        if audit is not None:
            figures["server_cold"] = audit.writes(mark)
            # Let it finish (device counts are written every 3 s): a warm restart must not
            # be charged with the cold run's last writes.
            idle = audit.wait_idle(mark, quiet=IDLE_QUIET, timeout=limit)
            figures["server_cold_idle"] = [w for w in audit.writes(mark) if w.at <= idle]
        print(f"  cold start: {figures['cold']:.1f} s", flush=True)
        text = proc.metrics()
        figures["writes"] = metric(text, "lbaas_api_writes_total")
        for resource in (*KINDS, "devices", "events"):
            figures[f"writes_{resource}"] = metric(
                text, "lbaas_api_writes_total", resource=resource
            )
        assert proc.proc is not None
        figures["rss"] = peak_rss_mb(proc.proc.pid)
        proc.stop()
    proc = operator(work, namespace, "warm")
    started = time.monotonic()
    wall = time.time()
    mark = audit.mark() if audit else 0
    proc.start()
    verified = float("nan")
    while time.monotonic() - started < limit:
        text = proc.metrics()
        done = metric(text, "lbaas_driver_calls_total", op="verify")
        if done >= vips:
            verified = time.monotonic() - started
            break
        time.sleep(0.2)
    if audit is not None:
        # The window ends when the operator is idle: nothing but Lease renewals for a while.
        idle = audit.wait_idle(mark, quiet=IDLE_QUIET, timeout=limit) + IDLE_QUIET
        figures["server_warm"] = [w for w in audit.writes(mark) if w.at <= idle]
        figures["window"] = idle - wall
    else:
        time.sleep(2)  # no audit log: the operator's own counter, a fixed window
    text = proc.metrics()
    figures["warm"] = verified
    figures["warm_status_writes"] = status_writes(text)
    figures["warm_applies"] = metric(text, "lbaas_driver_calls_total", op="apply")
    proc.stop()
    return figures


if __name__ == "__main__":
    rows = run(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
    print(json.dumps([r.__dict__ for r in rows], indent=1))
