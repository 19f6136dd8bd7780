"""Long-lived keep-alive clients through a VIP: what a browser or a connection pool does.

The serial client of ``hxsupport.Load`` opens a connection per request, so it cannot see a
data plane that drops established connections (a reload that kills the old worker, a
listener rebound). :class:`KeepAlive` holds ``connections`` HTTP/1.1 connections open and
sends a request on each every ``interval`` seconds, reusing the connection, and counts:

- ``requests`` answered 200, and ``failures``: every request that got no complete answer,
  or another status. A failure is a request *lost*: a client without retries saw an error;
- ``closed``: connections the server ended politely, after a response saying
  ``Connection: close`` (HAProxy's old worker hands its clients over after a reload with
  ``option idle-close-on-response``), or while idle and seen closed before the next request
  was sent. The client opens a new connection then; nothing was lost;
- ``opened``: connections opened in all (``connections`` + reconnects).

A connection found closed while idle is not a failure: HTTP/1.1 lets a server close an idle
connection at any time, and the request was never sent. One reset *while* a request is on
the wire is.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class KeepAlive:
    address: str
    port: int
    connections: int = 8
    interval: float = 0.2
    max_seconds: float = 900.0
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    closed: int = 0
    opened: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> KeepAlive:
        for i in range(self.connections):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def summary(self) -> str:
        return (
            f"{self.connections} keep-alive connections: {self.requests} requests,"
            f" {len(self.failures)} lost, {self.closed} closed politely by the server,"
            f" {self.opened} opened"
        )

    # ---- one connection ---------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=5)
        conn.connect()
        with self._lock:
            self.opened += 1
        return conn

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        # Spread the connections over the interval: they never send at the same instant.
        self._stop.wait(self.interval * index / self.connections)
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is not None and closed_while_idle(conn):
                    conn.close()
                    conn = None
                    self._count(closed=1)
                if conn is None:
                    conn = self._connect()
                conn.request("GET", "/", headers={"Connection": "keep-alive"})
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    self._fail(index, f"HTTP {response.status} {body[:60]!r}")
                else:
                    self._count(requests=1)
                if response.will_close:
                    conn.close()
                    conn = None
                    self._count(closed=1)
            except (OSError, http.client.HTTPException) as exc:
                self._fail(index, f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.interval)
        if conn is not None:
            conn.close()

    def _count(self, *, requests: int = 0, closed: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.closed += closed

    def _fail(self, index: int, what: str) -> None:
        with self._lock:
            self.failures.append(f"connection {index} at {time.monotonic():.2f}: {what}")


def closed_while_idle(conn: http.client.HTTPConnection) -> bool:
    """The server closed (or reset) ``conn`` while no request was on it."""
    sock = conn.sock
    if sock is None:
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
