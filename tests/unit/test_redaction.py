"""Credentials never leave the operator through its texts: statuses, Events, reprs, log lines."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from lbaas.api.device import DeviceSpec
from lbaas.drivers.base import DeviceHandle
from lbaas.reporter import RedactingFilter, Redactor

CANARY = "canary-7f3a9c2e51d4"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, Redactor]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    redact = Redactor()
    redact.install()
    try:
        yield logging.getLogger("lbaas.test"), stream, redact
    finally:
        root.removeHandler(handler)
        for h in root.handlers:
            for f in [f for f in h.filters if isinstance(f, RedactingFilter)]:
                h.removeFilter(f)


def test_texts_and_reprs_are_redacted() -> None:
    redact = Redactor()
    assert not redact and redact(f"x {CANARY}") == f"x {CANARY}"
    redact.add({"token": CANARY, "short": "abc"})  # too short to hide without hiding words
    assert redact(f"login with {CANARY} refused ({CANARY})") == "login with *** refused (***)"
    handle = DeviceHandle("d", DeviceSpec(driver="fake"), credentials={"token": CANARY})
    assert CANARY not in repr(handle) and CANARY not in str(handle)


def test_log_lines_and_tracebacks_are_redacted(
    captured: tuple[logging.Logger, io.StringIO, Redactor],
) -> None:
    log, stream, redact = captured
    log.warning("before the Secret was read: %s", "nothing to hide")
    redact.add({"token": CANARY})
    log.warning("apply failed: %s %s", "refused", f"detail {CANARY}")
    try:
        raise RuntimeError(f"vendor SDK crashed with session {CANARY}")
    except RuntimeError:
        log.exception("reconcile failed")
    text = stream.getvalue()
    assert CANARY not in text, text
    assert "apply failed: refused detail ***" in text
    assert "RuntimeError: vendor SDK crashed with session ***" in text  # the traceback, redacted
    assert "nothing to hide" in text
