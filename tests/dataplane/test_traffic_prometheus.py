"""A real Prometheus scraping the real operator (issue 22), split as the chart runs it: a
``controller`` process and an ``agent`` process (which drives a real HAProxy Device serving a
VIP with two members); ``prometheus`` (Debian's package) scrapes both ``/metrics`` every
second.

- every dashboard query (Grafana's macros and variables expanded, ``promkit.grafana_expr``)
  and every alert expression of the chart is evaluated through the HTTP API: none may fail;
- the per-VIP traffic series move with the requests the test sends: the VIP's requests and
  2xx responses grow by at least what was sent, each member's by its share, bytes in and out
  too, and ``rate()`` over them is above zero; the dashboards' traffic panels find the VIP;
- counters stay monotonic across an HAProxy reload (a structural change of the VIP): no
  ``resets()`` in any lbaas_* counter of the VIP;
- ``kubectl lbaas top`` reads the same series from the operator's ``/metrics`` and shows the
  VIP's request rate while a client sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chartkit import CHART, require_helm
from dataplane.hxsupport import Backends, OperatorDevice, free_port_in, get, net, wait_applied
from dataplane.opsupport import deploy
from promkit import Prometheus, alerts, grafana_expr, render_rules

from helpers import Api, OperatorProcess, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy, pytest.mark.timeout(240)]
SENT = 200


SPLIT = {"LBAAS_MEMBER_STATUS_INTERVAL": "1", "LBAAS_LEASE_DURATION": "10",
         "LBAAS_LEASE_RENEW_PERIOD": "2", "LBAAS_DRIVER_TIMEOUT": "5"}  # fmt: skip


@pytest.fixture(scope="module")
def agent(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The agent, which owns the device and exports its traffic."""
    log = tmp_path_factory.mktemp("agent") / "agent.log"
    proc = OperatorProcess(log, LBAAS_AGENT_ID="prom-agent", **SPLIT).start("agent")
    yield proc
    proc.stop()
    print(f"agent log: {log}")


@pytest.fixture(scope="module")
def operator(agent: OperatorProcess, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[OperatorProcess]:  # fmt: skip
    """The controller: the data-plane fixtures' ``operator`` (the agent runs beside it, so
    that ``make_hx_device``'s Device gets Ready)."""
    log = tmp_path_factory.mktemp("controller") / "controller.log"
    proc = OperatorProcess(log, LBAAS_AGENT_ID="prom-controller", **SPLIT).start("controller")
    yield proc
    proc.stop()
    print(f"controller log: {log}")


@pytest.fixture
def prometheus(operator: OperatorProcess, agent: OperatorProcess, tmp_path: Path
               ) -> Iterator[Prometheus]:  # fmt: skip
    targets = [f"127.0.0.1:{p.metrics_port}" for p in (operator, agent)]
    with Prometheus(tmp_path, targets) as prom:
        yield prom


def total(prom: Prometheus, expr: str) -> float:
    found = prom.query(expr)
    return sum(float(s["value"][1]) for s in found)


def board_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        found += [(f"{path.stem}: {p['title']}", t["expr"]) for p in board["panels"]
                  for t in p.get("targets", [])]  # fmt: skip
        found += [(f"{path.stem}: ${v['name']}", v["query"]) for v in board["templating"]["list"]
                  if v["type"] == "query"]  # fmt: skip
    return found


def test_a_real_prometheus_reads_the_operators_traffic_series(
    api: Api,
    namespace: str,
    agent: OperatorProcess,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
    prometheus: Prometheus,
) -> None:
    pool = f"{net(76, 0)}/28"
    device = make_hx_device(pool)
    monitor = {"type": "HTTP", "urlPath": "/healthz", "delay": 1, "timeout": 1}
    site = deploy(api, namespace, device, "web", backends.http(2), monitor=monitor,
                  port=free_port_in(pool))  # fmt: skip
    vip = f'{{namespace="{namespace}", vip="web"}}'
    ok_class = f'{{namespace="{namespace}", vip="web", class="2xx"}}'
    prometheus.wait_scraped(f"lbaas_vip_requests_total{vip}", samples=2, timeout=60)
    before = {
        "requests": total(prometheus, f"lbaas_vip_requests_total{vip}"),
        "2xx": total(prometheus, f"lbaas_vip_responses_total{ok_class}"),
        "in": total(prometheus, f"lbaas_vip_bytes_in_total{vip}"),
        "out": total(prometheus, f"lbaas_vip_bytes_out_total{vip}"),
    }
    answered = [get(*site.vip)[1] for _ in range(SENT)]
    assert len(answered) == SENT

    def moved() -> bool:
        return total(prometheus, f"lbaas_vip_requests_total{vip}") >= before["requests"] + SENT

    wait_for(moved, 30, "the VIP's request counter moving by what was sent")
    after = total(prometheus, f"lbaas_vip_requests_total{vip}")
    ok = total(prometheus, f"lbaas_vip_responses_total{ok_class}")
    assert ok >= before["2xx"] + SENT, (before, ok)
    assert total(prometheus, f"lbaas_vip_bytes_in_total{vip}") > before["in"]
    assert total(prometheus, f"lbaas_vip_bytes_out_total{vip}") > before["out"]
    for backend in backends.started:
        name = site.member(backend)  # type: ignore[arg-type]
        member = f'{{namespace="{namespace}", member="{name}"}}'
        share = total(prometheus, f"lbaas_member_requests_total{member}")
        assert share >= answered.count(backend.name), (name, share)  # type: ignore[attr-defined]
    wait_for(lambda: total(prometheus, f"rate(lbaas_vip_requests_total{vip}[10s])") > 0, 15,
             "a rate above zero")  # fmt: skip

    # A reload (a new connection limit: a structural change) starts HAProxy's counters again.
    reloads = device.reloads()
    api.patch_spec("VIP", "web", namespace, {"connectionLimit": 500})
    wait_applied(api, "VIP", "web", namespace)
    wait_for(lambda: device.reloads() > reloads, 15, "the reload")
    for _ in range(20):
        get(*site.vip)
    wait_for(lambda: total(prometheus, f"lbaas_vip_requests_total{vip}") >= after + 20, 30,
             "the counter going on after the reload")  # fmt: skip
    counters = [f"lbaas_{level}_{kind}_total" for level in ("vip", "pool", "member")
                for kind in ("requests", "responses", "bytes_in", "bytes_out")]  # fmt: skip
    resets = sum(
        total(prometheus, f'resets({name}{{namespace="{namespace}"}}[5m])') for name in counters
    )
    assert resets == 0, "a counter went down across the reload"

    # Every dashboard query and alert expression, through the HTTP API.
    rules = alerts(render_rules(require_helm()))
    failed = []
    for where, expr in board_queries() + [(f"alert {n}", r["expr"]) for n, r in rules.items()]:
        try:
            prometheus.query(grafana_expr(expr))
        except AssertionError as exc:
            failed.append(f"{where}: {exc}")
    assert not failed, "\n".join(failed)
    traffic = [expr for where, expr in board_queries() if where.startswith("vip-traffic:")
               and "lbaas_vip_requests_total" in expr]  # fmt: skip
    assert traffic and all(prometheus.query(grafana_expr(e)) for e in traffic)

    # kubectl lbaas top, from the same /metrics, while a client sends.
    stop = threading.Event()

    def send() -> None:
        while not stop.wait(0.02):
            get(*site.vip)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        url = f"http://127.0.0.1:{agent.metrics_port}/metrics"
        shown = top("web", "-n", namespace, "--metrics-url", url, "--interval", "2", "-o", "json")
    finally:
        stop.set()
        sender.join(5)
    (row,) = shown["vips"]
    assert row["traffic"]["requests"] > 5, row  # ~40 a second were sent
    assert shown["problems"] == [], shown["problems"]


def top(*args: str) -> dict:  # type: ignore[type-arg]
    """``kubectl lbaas top ...`` (kubectl finds kubectl-lbaas beside this Python)."""
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    result = subprocess.run(["kubectl", "lbaas", "top", *args], capture_output=True, text=True,
                            env=env, check=False, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))
