"""Bridges between the asyncio loops of :mod:`lbaas.agents` and blocking code.

Lease calls are blocking (the ``kubernetes`` client) and run in a thread pool of their own,
so that a hung API server cannot starve the runtime's default executor; the runtime's
callbacks may be plain functions or coroutines.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from typing import Any, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

_T = TypeVar("_T")

TRANSIENT = (TimeoutError, OSError, ApiException, urllib3.exceptions.HTTPError)
"""Errors of a Lease call worth a warning and a retry at the next tick, not a traceback."""

Callback = Callable[..., Awaitable[None] | None]
"""A runtime callback: a function or a coroutine function."""


async def call_in_thread(
    executor: Executor, timeout: float, fn: Callable[..., _T], *args: Any
) -> _T:
    """Run blocking ``fn(*args)`` in ``executor``; TimeoutError after ``timeout`` seconds.

    On timeout the call is cancelled if it has not started; one that has started runs on in
    its thread, and its answer is dropped. Callers must treat a write they gave up on as maybe
    done (which compare-and-swap and incarnations make harmless).
    """
    if timeout <= 0:
        raise TimeoutError
    future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    return await asyncio.wait_for(future, timeout)


async def call_back(callback: Callback | None, *args: Any) -> None:
    """Call a runtime callback, awaiting it when it is a coroutine."""
    if callback is None:
        return
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


async def wait_any(events: Iterable[asyncio.Event], timeout: float) -> None:
    """Return once one of ``events`` is set, or after ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
