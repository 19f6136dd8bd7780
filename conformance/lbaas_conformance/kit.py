"""The kit's view of the device under test: the driver, its handle, and every call bounded.

The driver is loaded by name through ``lbaas.drivers.registry.DriverRegistry`` exactly as the
operator loads it (a contract-0 driver comes wrapped in the compatibility shim). Each call
runs under a deadline (``timing.call``, as the operator's driverTimeout) through
``lbaas.drivers.deadline.deadline_scope``, with the owner and fence a real agent would pass.
The kit remembers what each test applied and deletes it after the test.
"""

from __future__ import annotations

import errno
import itertools
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from lbaas.drivers.capabilities import missing
from lbaas.drivers.contract import DeviceHandle, Drift, Driver, ProbeResult, Statuses
from lbaas.drivers.deadline import deadline_scope
from lbaas.drivers.errors import DriverError
from lbaas.drivers.legacy import LegacyDriver
from lbaas.drivers.model import LoadBalancer
from lbaas.drivers.registry import DriverRegistry
from lbaas_conformance.client import try_get, until
from lbaas_conformance.config import DeviceConfig, render
from lbaas_conformance.trees import NAMESPACE, Builder, Endpoint

T = TypeVar("T")
OWNER = "lbaas-conformance"
DISTURB_HOOK = "conformance_disturb"


def load_driver(name: str) -> Driver:
    """A new driver object for ``name``, from a registry of its own (as a new operator)."""
    return DriverRegistry().get(name)


def contract_of(driver: Driver) -> int:
    return 0 if isinstance(driver, LegacyDriver) else driver.contract_version


class Kit:
    """The device under test and the calls the tests make on it."""

    def __init__(self, driver_name: str, device: DeviceConfig) -> None:
        self.driver_name = driver_name
        self.device = device
        self.driver = load_driver(driver_name)
        self.driver.validate_config(device.config)  # as the operator does for a new Device
        self.features = frozenset(self.driver.capabilities(device.config))
        self.trees = Builder(self.features)
        self.fence = 1
        self.applied: set[str] = set()
        self._slots: list[tuple[str, tuple[str, int]]] = []
        self._spares: list[int] = []
        self._taken_slots = self._taken_spares = 0
        self._members = itertools.count(1)
        self._ports = itertools.count(device.vip_ports[0])
        self._addresses = itertools.cycle(device.addresses)

    # ---- what the tests build -------------------------------------------------------------

    def declares(self, feature: str) -> bool:
        return feature in self.features

    def begin(self) -> None:
        """A test starts: its load balancers are the run's first ones again."""
        self._taken_slots = self._taken_spares = 0

    def slot(self) -> tuple[str, tuple[str, int]]:
        """The name and VIP (address, port) of the test's next load balancer.

        The n-th load balancer of every test has the same name and VIP: a test applies its
        tree over what an earlier test left under that key (applying a tree replaces whatever
        the device held for the key: that is the contract), so a run creates and deletes few
        listeners, each costing a reload on some devices. Everything is deleted at the end.
        """
        if self._taken_slots == len(self._slots):
            self._slots.append((f"lb-{len(self._slots) + 1}", self._new_vip()))
        self._taken_slots += 1
        return self._slots[self._taken_slots - 1]

    def spare_port(self) -> int:
        """A port no load balancer's VIP uses (a second listener's), the same in every test."""
        if self._taken_spares == len(self._spares):
            self._spares.append(self._new_vip()[1])
        self._taken_spares += 1
        return self._spares[self._taken_spares - 1]

    def _new_vip(self) -> tuple[str, int]:
        """A VIP address and a port no earlier one used (skipping ports taken on this host
        when the address is local)."""
        address = next(self._addresses)
        for port in self._ports:
            if port > self.device.vip_ports[1]:
                break
            if _bindable(address, port):
                return address, port
        raise RuntimeError(f"the vipPorts range {self.device.vip_ports} is used up")

    def endpoints(self, count: int, prefix: str = "m") -> list[Endpoint]:
        """Members for contract tests (nothing listens there)."""
        base = self.device.backends[0] if self.device.backends else "192.0.2.10"
        first = next(self._members)
        for _ in range(count - 1):
            next(self._members)
        return [Endpoint(f"{prefix}{first + i}", base, 8080 + i) for i in range(count)]

    def require(self, lb: LoadBalancer) -> None:
        """Skip the test when ``lb`` also asks for features the driver does not declare; fail
        it when the driver refuses a tree its declaration covers (``supports``)."""
        if lacking := missing(lb, self.features):
            pytest.skip(f"the test's tree also asks for {', '.join(lacking)}, not declared")
        if why := self.driver.supports(lb, self.device.config):
            pytest.fail(f"supports() refuses a tree of declared features only: {why}")

    # ---- calls ---------------------------------------------------------------------------

    def handle(self, *, fence: int | None = None, owner: str = OWNER) -> DeviceHandle:
        return DeviceHandle(
            name=self.device.name,
            driver=self.driver_name,
            config=self.device.config,
            labels=self.device.labels,
            credentials=self.device.credentials,
            owner=owner,
            fence=self.fence if fence is None else fence,
        )

    def call(self, fn: Callable[[], T], *, seconds: float | None = None) -> T:
        """``fn()`` under a call deadline (``timing.call`` seconds by default)."""
        limit = self.device.timing.call if seconds is None else seconds
        with deadline_scope(time.monotonic() + limit):
            return fn()

    def probe(self) -> ProbeResult:
        return self.call(lambda: self.driver.probe(self.handle()))

    def apply(self, lb: LoadBalancer, *, driver: Driver | None = None) -> None:
        self.applied.add(lb.key)
        self.call(lambda: (driver or self.driver).apply(self.handle(), lb))

    def apply_many(
        self, lbs: Sequence[LoadBalancer], *, seconds: float | None = None
    ) -> Mapping[str, DriverError | None]:
        self.applied.update(lb.key for lb in lbs)
        return self.call(lambda: self.driver.apply_many(self.handle(), lbs), seconds=seconds)

    def apply_all(self, lbs: Sequence[LoadBalancer]) -> None:
        """``apply_many`` that must succeed for every tree."""
        outcome = self.apply_many(lbs)
        refused = "; ".join(f"{k}: {e.user_message}" for k, e in outcome.items() if e is not None)
        assert not refused, f"apply_many refused {refused}"
        assert set(outcome) == {lb.key for lb in lbs}, f"one outcome per key: {outcome}"

    def delete(self, key: str) -> None:
        self.call(lambda: self.driver.delete(self.handle(), key))
        self.applied.discard(key)

    def verify(self, lb: LoadBalancer, *, driver: Driver | None = None) -> list[Drift] | None:
        return self.call(lambda: (driver or self.driver).verify(self.handle(), lb))

    def orphans(self, expected: Sequence[str]) -> list[str]:
        return self.call(lambda: self.driver.orphans(self.handle(), expected))

    def member_statuses(self, lbs: Sequence[LoadBalancer]) -> Mapping[str, Statuses]:
        return self.call(lambda: self.driver.member_statuses(self.handle(), lbs))

    def cleanup(self) -> None:
        """Delete every load balancer the run applied (after the last test)."""
        for key in sorted(self.applied):
            self.delete(key)

    # ---- traffic ---------------------------------------------------------------------------

    def served(self, lb: LoadBalancer, path: str = "/") -> None:
        """Wait until the listener of ``lb`` answers 200 (the data plane took the change)."""
        port = lb.listeners[0].port

        def answered() -> bool:
            answer = try_get(lb.address, port, path, timeout=2)
            return answer is not None and answer.status == 200

        until(answered, self.device.timing.settle, f"{lb.key} served on {lb.address}:{port}")

    # ---- drift -------------------------------------------------------------------------------

    def disturb(self, lb: LoadBalancer) -> str:
        """Change what the device serves for ``lb`` behind the driver's back: the device
        config's ``disturb`` command, else the driver's ``conformance_disturb(device, key)``;
        skips the test when neither is given. Returns how it was done."""
        if command := self.device.disturb:
            values: dict[str, Any] = {
                "key": lb.key,
                "namespace": lb.namespace,
                "name": lb.name,
                "address": lb.address,
                "port": lb.listeners[0].port,
                "device": self.device.name,
                "config": self.device.config,
                "workdir": self.device.workdir,
            }
            line = render(command, values)
            done = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                pytest.fail(f"disturb command failed ({done.returncode}): {line}\n{done.stderr}")
            return f"disturb command: {shlex.quote(line)}"
        for target in (self.driver, getattr(self.driver, "inner", None)):
            hook = getattr(target, DISTURB_HOOK, None)
            if callable(hook):
                handle = self.handle()
                inner = isinstance(self.driver, LegacyDriver) and target is not self.driver
                hook(LegacyDriver._handle(handle) if inner else handle, lb.key)
                return f"{type(target).__name__}.{DISTURB_HOOK}"
        pytest.skip(
            "no way to disturb the device: give `disturb:` (a shell command) in the device"
            f" config, or implement {DISTURB_HOOK}(device, key) on the driver"
        )


def _bindable(address: str, port: int) -> bool:
    """False only when this host holds ``address:port`` already (a remote address is fine)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as sock:
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE  # EADDRNOTAVAIL: not this host's address
    return True


__all__ = ["NAMESPACE", "OWNER", "Kit", "contract_of", "load_driver"]
