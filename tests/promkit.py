"""A real Prometheus server for tests (Debian's ``prometheus`` binary), and what they feed it.

- :class:`Prometheus`: started with a tiny config scraping the given targets every second, in a
  temporary storage dir; ``query`` evaluates an expression through ``/api/v1/query`` and fails
  the test on any error the server reports.
- :func:`grafana_expr`: a dashboard query as Prometheus sees it once Grafana has expanded its
  macros (``$__rate_interval``...) and variables (``$namespace`` with "All" selected: ``.*``).
- :func:`render_rules`: the chart's PrometheusRule groups rendered by the real helm.

Without the binaries the tests that need them skip (fail under ``LBAAS_STRICT=1``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from chartkit import one, render

from helpers import free_port, need_tool

MACROS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>\w+)\)$")


def require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        need_tool(f"{binary} not found (Debian package prometheus)")
    assert path is not None
    return path


def grafana_expr(expr: str) -> str:
    """``expr`` with Grafana's macros and variables replaced; a variable's ``label_values(e,
    l)`` becomes ``group by (l) (e)`` (the series Grafana would list the values of)."""
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    expr = re.sub(r"\$\{?[a-z]\w*\}?", ".*", expr)
    found = LABEL_VALUES.match(expr.strip())
    if found:
        inner = found.group("expr") or "{__name__=~'.+'}"
        expr = f"group by ({found.group('label')}) ({inner})"
    return expr


def render_rules(helm: str, *values: str) -> dict[str, Any]:
    """The rule file (``{"groups": [...]}``) of the chart's PrometheusRule."""
    docs = render(helm, "--set", "metrics.prometheusRule.enabled=true", *values)
    return {"groups": one(docs, "PrometheusRule")["spec"]["groups"]}


def alerts(rules: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}


class Prometheus:
    """``prometheus`` on 127.0.0.1, scraping ``targets`` (host:port) every second."""

    def __init__(self, work: Path, targets: list[str]) -> None:
        self.binary = require("prometheus")
        self.work = work
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "lbaas",
                    "honor_labels": True,
                    "static_configs": [{"targets": targets}],
                }
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        log = (self.work / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.work / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.work / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._get("/-/ready") is not None, 30, "Prometheus ready")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = (self.work / "prometheus.log").read_text()[-3000:]
                raise AssertionError(f"prometheus exited: {log}")
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as rsp:
                return bytes(rsp.read())
        except (OSError, urllib.error.HTTPError):
            return None

    def api(self, path: str, **params: str) -> Any:
        """``/api/v1/<path>``: its ``data``; an error answer raises with the server's text."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as rsp:
                body = json.loads(rsp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"{params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector (or scalar, as one sample) of ``expr`` now."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_scraped(self, metric: str, samples: int = 3, timeout: float = 30) -> None:
        """Until ``metric`` has ``samples`` samples in the last minute (rates need two)."""
        expr = f"count_over_time({metric}[1m])"
        self._wait(
            lambda: any(float(s["value"][1]) >= samples for s in self.query(expr)),
            timeout,
            f"{samples} scrapes of {metric}",
        )
