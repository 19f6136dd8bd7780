"""Traffic counters of a device's load balancers, from HAProxy's own: one ``show stat``.

``show stat`` is a CSV table, one row per frontend (``svname`` ``FRONTEND``), backend
(``BACKEND``) and server, with HAProxy's counters since its worker started. A listener is read
from its frontend, a pool from its backend, a member from its server in that backend (names:
``names``). What the rows mean, as the driver contract's :class:`TrafficStats`:

- requests: HTTP requests (``req_tot``) in HTTP mode, sessions (``stot``: connections) in TCP;
- responses by class (``hrsp_1xx`` ... ``hrsp_5xx``, ``hrsp_other``): HTTP only;
- bytes in and out (``bin``, ``bout``), sessions now (``scur``);
- connection errors: a frontend's failed or denied requests and connections (``ereq``,
  ``dreq``, ``dcon``, ``dses``), a backend's or server's failed connections and responses
  (``econ``, ``eresp``);
- response time: ``rtime`` (ms, HAProxy's average over its last 1,024 requests) of backends
  and servers in HTTP mode; None for frontends and TCP, where HAProxy does not know it.

A reload starts a new worker with counters at zero: ``restarts`` (the driver's count of
reloads and starts) tells the exporter so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lbaas.drivers.contract import LoadBalancerStats, TrafficStats
from lbaas.drivers.haproxy.names import backend_name, frontend_name
from lbaas.drivers.model import LoadBalancer

Row = Mapping[str, str]
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")
FRONTEND_ERRORS = ("ereq", "dreq", "dcon", "dses")
BACKEND_ERRORS = ("econ", "eresp")


def parse(text: str) -> dict[tuple[str, str], Row]:
    """``show stat`` → (proxy, server or FRONTEND/BACKEND) → the row by column name."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    rows: dict[tuple[str, str], Row] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        row = dict(zip(header, line.split(","), strict=False))
        rows[(row.get("pxname", ""), row.get("svname", ""))] = row
    return rows


def _int(row: Row, column: str) -> int:
    value = row.get(column) or ""
    return int(value) if value.isdigit() else 0


def traffic(row: Row, *, frontend: bool, restarts: int) -> TrafficStats:
    """One row as the contract's counters."""
    http = row.get("mode") == "http"
    requests = _int(row, "req_tot") if http and row.get("req_tot") else _int(row, "stot")
    errors = FRONTEND_ERRORS if frontend else BACKEND_ERRORS
    rtime = row.get("rtime") or ""
    return TrafficStats(
        requests=requests,
        responses={c: _int(row, f"hrsp_{c}") for c in CLASSES} if http else {},
        bytes_in=_int(row, "bin"),
        bytes_out=_int(row, "bout"),
        current_sessions=_int(row, "scur"),
        connection_errors=sum(_int(row, column) for column in errors),
        response_time_ms=float(rtime) if http and not frontend and rtime.isdigit() else None,
        restarts=restarts,
    )


def lb_stats(lb: LoadBalancer, rows: Mapping[tuple[str, str], Row], restarts: int
             ) -> LoadBalancerStats | None:  # fmt: skip
    """``lb``'s listeners, pools and members (None: the device does not serve it)."""
    listeners = {}
    for listener in lb.listeners:
        row = rows.get((frontend_name(lb, listener), "FRONTEND"))
        if row is not None:
            listeners[listener.name] = traffic(row, frontend=True, restarts=restarts)
    if not listeners:
        return None
    pools, members = {}, {}
    for pool in lb.pools:
        backend = backend_name(lb, pool)
        row = rows.get((backend, "BACKEND"))
        if row is None:
            continue
        pools[pool.name] = traffic(row, frontend=False, restarts=restarts)
        for member in pool.members:
            server = rows.get((backend, member.name))
            if server is not None:
                members[member.name] = traffic(server, frontend=False, restarts=restarts)
    return LoadBalancerStats(listeners=listeners, pools=pools, members=members)


def device_stats(lbs: Sequence[LoadBalancer], text: str, restarts: int
                 ) -> dict[str, LoadBalancerStats]:  # fmt: skip
    """Every load balancer of ``lbs`` the device serves, by key."""
    rows = parse(text)
    found = {lb.key: lb_stats(lb, rows, restarts) for lb in lbs}
    return {key: stats for key, stats in found.items() if stats is not None}
