"""Fault injection for the crash-safety tests, and nothing else.

``point(name)`` marks a step of an apply. When the environment variable ``LBAAS_FAULT_POINT``
names it, the process SIGKILLs itself there, as an operator killed at that instant would die:
no ``finally``, no flush, no lock released by Python. ``name:N`` dies at the N-th time the
point is reached (1 = the first), for points inside loops (``runtime-command``).

Points, in the order an apply reaches them:

- ``after-intent``: a pending reload is recorded, no file changed yet;
- ``after-vip-file``: the VIP's file (``vips/*.json``) is replaced or removed;
- ``after-config``: ``haproxy.cfg`` and ``conf.d/*.cfg`` are replaced;
- ``before-reload``: server state dumped, the reload not sent;
- ``after-reload``: the new worker serves, the driver state not yet saved;
- ``runtime-command``: after each runtime-API command (``add server``, ``set server`` ...).

Unset (always, outside tests) it costs one dictionary lookup per point.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "LBAAS_FAULT_POINT"
POINTS = (
    "after-intent",
    "after-vip-file",
    "after-config",
    "before-reload",
    "after-reload",
    "runtime-command",
)
_reached: Counter[str] = Counter()


def point(name: str) -> None:
    """Die here (SIGKILL) if ``LBAAS_FAULT_POINT`` says so."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition(":")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
