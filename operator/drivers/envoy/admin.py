"""Envoy's admin API, over the device's UNIX socket: readiness, stats, config and hosts.

Every call is bounded (``timeout``, cut to the driver call's deadline by the caller) and
raises :class:`AdminError` when Envoy does not answer or answers an error.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

TIMEOUT = 2.0


class AdminError(Exception):
    """Envoy's admin API did not answer (or answered an error)."""


class AdminBusy(AdminError):
    """Envoy did not answer in time: its main thread is busy (a big update), not gone."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("envoy-admin", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def get(path: Path, url: str, timeout: float = TIMEOUT, *, method: str = "GET") -> str:
    """The body of ``url``; AdminError unless Envoy answers 200."""
    conn = _UnixConnection(path, max(0.01, timeout))
    try:
        conn.request(method, url)
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
    except TimeoutError as exc:
        raise AdminBusy(f"Envoy's admin socket {path} does not answer in time: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise AdminError(f"Envoy's admin socket {path} does not answer: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise AdminError(f"Envoy's admin API answered {response.status} to {url}: {body[:200]}")
    return body


def ready(path: Path, timeout: float = TIMEOUT) -> bool:
    """Envoy is LIVE (initialised: its first LDS and CDS taken, clusters warmed)."""
    try:
        return get(path, "/ready", timeout).strip() == "LIVE"
    except AdminError:
        return False


def stats(path: Path, pattern: str, timeout: float = TIMEOUT) -> dict[str, str]:
    """Stats whose name matches the regex ``pattern``: name → value (text readouts unquoted)."""
    found = {}
    for line in get(path, f"/stats?filter={quote(pattern)}", timeout).splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            found[name] = value.strip().strip('"')
    return found


def counter(values: dict[str, str], name: str) -> int:
    try:
        return int(values.get(name, "0"))
    except ValueError:
        return 0


def config_dump(path: Path, resource: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """The ``configs`` of ``/config_dump?resource=<resource>``."""
    text = get(path, f"/config_dump?resource={resource}", timeout)
    try:
        configs = json.loads(text).get("configs", [])
    except ValueError as exc:
        raise AdminError(f"Envoy's config dump is not JSON: {exc}") from exc
    return [c for c in configs if isinstance(c, dict)]


def clusters(path: Path, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """``/clusters?format=json``: every cluster with its hosts and their health flags."""
    try:
        data = json.loads(get(path, "/clusters?format=json", timeout))
    except ValueError as exc:
        raise AdminError(f"Envoy's cluster list is not JSON: {exc}") from exc
    return [c for c in data.get("cluster_statuses", []) if isinstance(c, dict)]


def failures(path: Path, resource: str, timeout: float = TIMEOUT) -> dict[str, str]:
    """Resources of the last LDS (``dynamic_listeners``) or CDS update Envoy refused: name →
    Envoy's reason (``error_state``)."""
    found = {}
    for config in config_dump(path, resource, timeout):
        state = config.get("error_state")
        if not isinstance(state, dict):
            continue
        name = state.get("failed_configuration", {}).get("name") or config.get("name")
        if isinstance(name, str) and name:
            detail = str(state.get("details", ""))
            found[name] = detail.rsplit("\n", 1)[-1].strip() or detail.strip()
    return found


def listeners(path: Path, timeout: float = TIMEOUT) -> dict[str, tuple[str, int]]:
    """``/listeners?format=json``: the name of every listener Envoy runs → its address:port
    (a few bytes per listener, unlike the config dump)."""
    try:
        data = json.loads(get(path, "/listeners?format=json", timeout))
    except ValueError as exc:
        raise AdminError(f"Envoy's listener list is not JSON: {exc}") from exc
    found = {}
    for status in data.get("listener_statuses", []):
        address = (status.get("local_address") or {}).get("socket_address") or {}
        if isinstance(status.get("name"), str) and "address" in address:
            found[status["name"]] = (str(address["address"]), int(address.get("port_value", 0)))
    return found
