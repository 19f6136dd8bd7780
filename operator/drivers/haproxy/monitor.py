"""Health monitors in HAProxy terms: check timings, ``option httpchk`` and the expected
status codes as one ``http-check expect`` rule."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from lbaas.drivers.haproxy.tokens import UnsafeValueError
from lbaas.drivers.model import HealthMonitor, MonitorType

EXPECTED_CODES = re.compile(r"[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*")
"""``200``, ``200,202``, ``200-204`` (what the API's schema admits)."""


def _ranges(expected_codes: str) -> list[tuple[int, int]]:
    if not isinstance(expected_codes, str) or not EXPECTED_CODES.fullmatch(expected_codes):
        raise UnsafeValueError("expectedCodes", expected_codes)
    ranges = []
    for part in expected_codes.split(","):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if first > last:
            raise UnsafeValueError("expectedCodes", expected_codes, f"empty range {part}")
        ranges.append((first, last))
    return ranges


def _digit_class(digits: Sequence[int]) -> str:
    if len(digits) == 1:
        return str(digits[0])
    if len(digits) == 10:
        return "[0-9]"
    runs: list[list[int]] = []
    for d in digits:
        if runs and runs[-1][1] == d - 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return (
        "["
        + "".join(f"{a}" if a == b else f"{a}{b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)
        + "]"
    )


def status_regex(ranges: Iterable[tuple[int, int]]) -> str:
    """An anchored regex matching exactly the status codes in ``ranges`` (100-599)."""
    codes = sorted({c for low, high in ranges for c in range(low, high + 1)})
    alternatives = []
    for hundred in range(1, 6):
        in_hundred = [c for c in codes if c // 100 == hundred]
        if len(in_hundred) == 100:
            alternatives.append(f"{hundred}[0-9][0-9]")
            continue
        for ten in range(10):
            units = [c % 10 for c in in_hundred if (c // 10) % 10 == ten]
            if units:
                alternatives.append(f"{hundred}{ten}{_digit_class(units)}")
    return "^(?:" + "|".join(alternatives) + ")$"


def expect_rule(expected_codes: str) -> tuple[str, int | str]:
    """``("status", 200)`` for one code, else ``("rstatus", regex)``."""
    ranges = _ranges(expected_codes)
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return "status", ranges[0][0]
    return "rstatus", status_regex(ranges)


def monitor_view(monitor: HealthMonitor | None) -> dict[str, Any] | None:
    """What the templates need of a monitor; None when nothing is checked (absent or
    admin-down monitor). PING is a TCP connect check (HAProxy cannot send ICMP)."""
    if monitor is None or not monitor.admin_state_up:
        return None
    kind = str(monitor.type)
    view: dict[str, Any] = {
        "delay": monitor.delay,
        "timeout": monitor.timeout,
        "rise": monitor.max_retries,
        "fall": monitor.max_retries_down,
        "http": kind in (MonitorType.HTTP, MonitorType.HTTPS),
        "ssl": kind == MonitorType.HTTPS,
    }
    if view["http"]:
        view["method"] = str(monitor.http_method)
        view["path"] = monitor.url_path
        view["expect_kind"], view["expect"] = expect_rule(monitor.expected_codes)
    return view
