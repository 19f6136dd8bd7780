"""Crash-safe applies through the operator (issue 11): the operator process, which runs the
HAProxy driver, is SIGKILLed at every step of an apply (``LBAAS_FAULT_POINT``, see
``lbaas.drivers.haproxy.faults``) and started again; each time HAProxy must end up serving
exactly the desired configuration (files, loaded process, ``show servers state``, traffic),
the bystander VIP of the device included, and the statuses must agree.

Each round: the operator is stopped gracefully (its Leases are released), started with the
fault point armed, a change is made through the API, the operator dies at the point while
applying it, and a clean operator (same agent id: it waits one lease duration, short here,
before it takes the device again) verifies the device and repairs it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator

import pytest
from dataplane.hxsupport import Backends, OperatorDevice, applied, names_in, wait_applied
from dataplane.opsupport import BACKEND_THIRD, deploy, desired_lb, serves_exactly

from helpers import Api, OperatorProcess, wait_for
from lbaas.drivers.haproxy.faults import ENV, POINTS

pytestmark = [pytest.mark.cluster, pytest.mark.haproxy]

OPERATOR_ENV = {
    "LBAAS_LEASE_DURATION": "4",
    "LBAAS_LEASE_RENEW_PERIOD": "1",
    "LBAAS_DRIVER_TIMEOUT": "2",
    "LBAAS_PROBE_INTERVAL": "1",
    "LBAAS_RESYNC_INTERVAL": "3",
    "LBAAS_RETRY_BACKOFF_MAX": "1",
}
RELOAD_POINTS = ["after-intent", "after-vip-file", "after-config", "before-reload", "after-reload"]
ROUNDS = [
    *[(point, "limit") for point in RELOAD_POINTS],  # a new connection limit: a reload
    ("runtime-command:1", "add"),  # after ``add server``, before ``set server ... state ready``
    ("runtime-command:2", "remove"),  # after ``state maint`` and ``shutdown sessions``
    ("after-vip-file", "weight"),  # the runtime path: servers changed, files not yet
]


@pytest.fixture
def backends() -> Iterator[Backends]:
    made = Backends(third=BACKEND_THIRD)
    yield made
    for server in made.started:
        server.shutdown()
        server.server_close()


def converged(api: Api, namespace: str, device: OperatorDevice, vips: list[str]) -> bool:
    """Every object Active at its generation, and HAProxy serving exactly their trees."""
    for kind in ("VIP", "Pool", "Member"):
        if not all(applied(api, kind, n, namespace) for n in names_in(api, kind, namespace)):
            return False
    try:
        serves_exactly(device, [desired_lb(api, namespace, vip) for vip in vips])
    except (AssertionError, OSError):
        return False
    return True


def test_operator_killed_at_every_step_of_an_apply(
    api: Api,
    namespace: str,
    operator: OperatorProcess,
    make_hx_device: Callable[..., OperatorDevice],
    backends: Backends,
) -> None:
    assert {p.partition(":")[0] for p, _ in ROUNDS} == set(POINTS)
    device = make_hx_device("127.0.70.112/28")
    a, b, c = backends.http(3)
    site = deploy(api, namespace, device, "crash", [a])
    deploy(api, namespace, device, "bystander", [b])
    vips = ["crash", "bystander"]
    figures: list[str] = []
    try:
        for i, (point, change) in enumerate(ROUNDS):
            operator.stop()
            operator.env[ENV] = point
            operator.start()
            if change == "limit":
                api.patch_spec("VIP", "crash", namespace, {"connectionLimit": 100 + i})
            elif change == "add":
                spec = {"poolRef": "crash", "address": c.address, "port": c.port}
                api.create(
                    {
                        "kind": "Member",
                        "metadata": {"name": "crash-c", "namespace": namespace},
                        "spec": spec,
                    }
                )
            elif change == "remove":
                api.delete("Member", "crash-c", namespace)
            else:
                api.patch_spec("Member", f"crash-{a.name}", namespace, {"weight": 3})
            assert operator.proc is not None
            code = operator.proc.wait(30)
            assert code == -signal.SIGKILL, f"{point}: the operator exited with {code}"
            # Killed mid-apply: the intent of a reload is on disk, and no status claims done.
            if change == "limit":
                assert device.driver_state().pending_reload, point
                assert applied(api, "VIP", "crash", namespace) is None, point
            elif change == "add":
                assert applied(api, "Member", "crash-c", namespace) is None, point
            del operator.env[ENV]
            started = time.monotonic()
            operator.start()
            wait_for(lambda: converged(api, namespace, device, vips), 30, f"repair after {point}")
            figures.append(f"{point} ({change}): {time.monotonic() - started:.1f} s")
            assert not device.driver_state().pending_reload
    finally:
        if operator.proc is not None and operator.proc.poll() is not None:
            operator.env.pop(ENV, None)
            operator.start()  # the fixtures' cleanup needs a live operator
    print("\nkilled at, then converged after the restart (lease wait included):")
    print("\n".join(f"  {line}" for line in figures))
    lb = desired_lb(api, namespace, "crash")
    assert lb.listeners[0].connection_limit == 100 + len(RELOAD_POINTS) - 1
    assert {m.name: m.weight for _, m in lb.members()} == {f"crash-{a.name}": 3}
    assert site.serves_all()
    wait_applied(api, "VIP", "bystander", namespace)
