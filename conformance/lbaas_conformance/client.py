"""The kit's client: one request per connection (so every request is balanced anew), a
steady client that counts every failure, and waits that end with a clear message."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]


def get(
    address: str,
    port: int,
    path: str = "/",
    *,
    headers: dict[str, str] | None = None,
    source: str | None = None,
    timeout: float = 5.0,
) -> Answer:
    """One request on a new connection (raises ``OSError`` / ``HTTPException`` when refused,
    reset or cut)."""
    conn = http.client.HTTPConnection(
        address, port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        return Answer(
            response.status,
            response.read().decode(errors="replace"),
            {k.lower(): v for k, v in response.getheaders()},
        )
    finally:
        conn.close()


def try_get(address: str, port: int, path: str = "/", **kw: Any) -> Answer | None:
    """``get``, or None when the request failed at the connection level."""
    try:
        return get(address, port, path, **kw)
    except (OSError, http.client.HTTPException):
        return None


def spread(address: str, port: int, count: int, **kw: Any) -> Counter[str]:
    """Which member answered each of ``count`` requests (failures count as ``"!<status>"``
    or ``"!refused"``)."""
    found: Counter[str] = Counter()
    for _ in range(count):
        answer = try_get(address, port, **kw)
        if answer is None:
            found["!refused"] += 1
        elif answer.status != 200:
            found[f"!{answer.status}"] += 1
        else:
            found[answer.body] += 1
    return found


def until(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; ``AssertionError`` naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not seen within {timeout:.0f} s")
        time.sleep(every)
    return time.monotonic() - start


@dataclass
class Steady:
    """A client sending requests back to back (a new connection each) until stopped; every
    failed one (refused, reset, cut, not 200) is kept in ``failures``."""

    address: str
    port: int
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Steady:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                answer = get(self.address, self.port)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"request {self.sent}: {type(exc).__name__}: {exc}")
                continue
            if answer.status != 200:
                self.failures.append(f"request {self.sent}: HTTP {answer.status}")
            else:
                self.seen[answer.body] += 1


class InFlight:
    """A slow request on its own thread: ``answer`` (or ``error``) once it has returned."""

    def __init__(self, address: str, port: int, seconds: float) -> None:
        self.answer: Answer | None = None
        self.error: str | None = None
        self._thread = threading.Thread(
            target=self._run, args=(address, port, seconds), daemon=True
        )
        self._thread.start()

    def _run(self, address: str, port: int, seconds: float) -> None:
        try:
            self.answer = get(address, port, f"/?sleep={seconds}", timeout=seconds + 10)
        except (OSError, http.client.HTTPException) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)
