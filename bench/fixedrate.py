"""The bench's one client: requests at a fixed rate, every answer recorded, nothing dropped.

``FixedRate`` sends a request every ``1 / rate`` seconds on a fresh connection (open loop:
the schedule never waits for an answer; ``workers`` requests may be in flight, a late one is
sent as soon as a worker is free and counted as late). Every request is kept as a
:class:`Sample`: when it was sent, its status code (None: no answer: refused, reset, timed
out, cut) and the body (the member's name, for the tests' backends). ``summary()`` gives
what every row that uses it shows: requests, errors (no answer), non-2xx answers.

Two definitions every part shares:

- **member -> traffic**: from a change (a Member created or weighted up) to the first 2xx
  answer from that member among the requests sent after it (:meth:`first_from`); for a
  member taken out, to the last answer from it (:meth:`last_from`);
- **traffic back** after a SIGKILL (:meth:`traffic_back`): from the kill to the first
  request that succeeded after the last one that failed (0 when none failed: the data plane
  never stopped). "The first success after the kill" alone would read 0 when the old worker
  still answers for a moment after its master died; "after the last failure" is when traffic
  is back for good.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    sent: float  # time.monotonic()
    code: int | None  # None: no answer
    body: str = ""

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code <= 299


@dataclass
class FixedRate:
    address: str
    port: int
    rate: float = 200.0
    workers: int = 4
    timeout: float = 2.0
    samples: list[Sample] = field(default_factory=list)
    late: int = 0
    """Requests sent more than one interval after their slot (the client could not keep up)."""
    _slot: int = 0
    _start: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> FixedRate:
        self._start = time.monotonic()
        for _ in range(self.workers):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 2)

    def _next(self) -> float:
        with self._lock:
            slot = self._slot
            self._slot += 1
        return self._start + slot / self.rate

    def _run(self) -> None:
        interval = 1 / self.rate
        while not self._stop.is_set():
            due = self._next()
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            sent = time.monotonic()
            code, body = self._one()
            with self._lock:
                self.late += sent - due > interval
                self.samples.append(Sample(sent, code, body))

    def _one(self) -> tuple[int | None, str]:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=self.timeout)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return None, ""
        finally:
            conn.close()

    # ---- what the rows show ------------------------------------------------------------------

    def since(self, moment: float) -> list[Sample]:
        with self._lock:
            return sorted((s for s in self.samples if s.sent >= moment), key=lambda s: s.sent)

    @property
    def errors(self) -> int:
        return sum(1 for s in list(self.samples) if s.code is None)

    @property
    def non_2xx(self) -> int:
        return sum(1 for s in list(self.samples) if s.code is not None and not s.ok)

    def summary(self) -> str:
        return (
            f"{len(self.samples)} requests at {self.rate:g}/s: {self.errors} errors,"
            f" {self.non_2xx} non-2xx"
        )

    # ---- the shared definitions --------------------------------------------------------------

    def first_from(self, member: str, since: float, timeout: float = 10) -> float:
        """Seconds from ``since`` to the sending of the first 2xx answer by ``member``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((s for s in self.since(since) if s.ok and s.body == member), None)
            if found is not None:
                return found.sent - since
            time.sleep(0.002)
        raise RuntimeError(f"{member} served nothing within {timeout}s")

    def last_from(self, member: str, since: float, quiet: float = 0.2) -> float:
        """Seconds from ``since`` to the last answer by ``member``, once it has been silent
        for ``quiet`` seconds of answers from others (0: it never answered after ``since``)."""
        while True:
            time.sleep(0.02)
            after = [s for s in self.since(since) if s.code is not None]
            mine = [s.sent for s in after if s.body == member]
            last = mine[-1] if mine else since
            if after and after[-1].sent - last >= quiet:
                return last - since

    def traffic_back(self, killed: float, *, settle: float = 0.5) -> float | None:
        """Seconds from ``killed`` to the first success after the last failure; None while
        traffic is not back, or back for less than ``settle`` seconds of requests."""
        after = self.since(killed)
        failures = [s.sent for s in after if not s.ok]
        back = next((s for s in after if s.ok and (not failures or s.sent > failures[-1])), None)
        if back is None or after[-1].sent - back.sent < settle:
            return None
        return back.sent - killed if failures else 0.0

    def wait_back(self, killed: float, timeout: float = 30) -> float:
        """:meth:`traffic_back`, waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(IndexError):
                back = self.traffic_back(killed)
                if back is not None:
                    return back
            time.sleep(0.05)
        raise RuntimeError(f"traffic not back within {timeout}s of the kill")

    def failed_after(self, killed: float) -> int:
        """Requests sent after ``killed`` that got no 2xx answer."""
        return sum(1 for s in self.since(killed) if not s.ok)
