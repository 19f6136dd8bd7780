"""The compatibility shim: a contract-0 driver served through contract 1 (until 0.3.0).

:class:`LegacyDriver` wraps a ``lbaas.drivers.base.Driver``: it declares what contract 0 could
express (its ``supported_protocols``, one listener, one pool, the 0.1 options), converts each
tree of the driver data model back to the 0.1 ``LoadBalancer`` built from ``lbaas.api``
specs, and maps the answers (member statuses, orphans) forward. The scheduler therefore never
gives such a driver a tree it could not have received in 0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from lbaas.api.device import DeviceSpec
from lbaas.api.healthmonitor import HealthMonitorSpec
from lbaas.api.member import MemberSpec
from lbaas.api.pool import PoolSpec
from lbaas.api.vip import SessionPersistence, VIPSpec
from lbaas.drivers import base
from lbaas.drivers.contract import DeviceHandle, Drift, Driver, ProbeResult, Statuses
from lbaas.drivers.errors import DriverError
from lbaas.drivers.model import LoadBalancer, MemberStatus, Pool

REMOVED_IN = "0.3.0"

V0_FEATURES = frozenset(
    {
        "method.round-robin",
        "method.least-connections",
        "method.source-ip",
        "member.weight",
        "member.backup",
        "member.admin-state",
        "member.monitor-address",
        "pool.admin-state",
        "listener.connection-limit",
        "listener.admin-state",
        "monitor.ping",
        "monitor.tcp",
        "monitor.http",
        "monitor.https",
        "persistence.source-ip",
        "persistence.http-cookie",
        "persistence.app-cookie",
    }
)
"""What a 0.1 tree could ask for, besides its protocol."""
_PROTOCOLS = {"TCP": "protocol.tcp", "HTTP": "protocol.http", "HTTPS": "protocol.https"}


def to_v0(lb: LoadBalancer) -> base.LoadBalancer:
    """The 0.1 tree of ``lb`` (one listener, at most one pool: the listener's default)."""
    listener = lb.listeners[0]
    pool: Pool | None = lb.pool(listener.default_pool) if listener.default_pool else None
    persistence = pool.persistence if pool is not None else None
    spec = VIPSpec(
        address=lb.address or None,
        port=listener.port,
        protocol=str(listener.protocol),
        connection_limit=-1 if listener.connection_limit is None else listener.connection_limit,
        admin_state_up=listener.admin_state_up,
        session_persistence=SessionPersistence(
            type=str(persistence.type), cookie_name=persistence.cookie_name
        )
        if persistence is not None
        else None,
    )
    members: tuple[base.MemberEntry, ...] = ()
    monitor = None
    if pool is not None:
        members = tuple(
            base.MemberEntry(
                m.name,
                MemberSpec(
                    pool_ref=pool.name,
                    address=m.address,
                    port=m.port,
                    weight=m.weight,
                    backup=m.backup,
                    admin_state_up=m.admin_state_up,
                    monitor_address=m.monitor_address,
                    monitor_port=m.monitor_port,
                ),
            )
            for m in pool.members
        )
        if pool.monitor is not None:
            mon = pool.monitor
            monitor = HealthMonitorSpec(
                pool_ref=pool.name,
                type=str(mon.type),
                delay=mon.delay,
                timeout=mon.timeout,
                max_retries=mon.max_retries,
                max_retries_down=mon.max_retries_down,
                http_method=mon.http_method,
                url_path=mon.url_path,
                expected_codes=mon.expected_codes,
                admin_state_up=mon.admin_state_up,
            )
    return base.LoadBalancer(
        namespace=lb.namespace,
        name=lb.name,
        address=lb.address,
        spec=spec,
        pool_name=pool.name if pool is not None else None,
        pool=PoolSpec(
            vip_ref=lb.name,
            protocol=str(pool.protocol),
            lb_method=str(pool.method),
            admin_state_up=pool.admin_state_up,
        )
        if pool is not None
        else None,
        members=members,
        monitor_name=pool.monitor.name if pool is not None and pool.monitor else None,
        monitor=monitor,
    )


def _placeholder(key: str) -> base.LoadBalancer:
    """A 0.1 tree known only by its key (enough for a contract-0 ``delete``)."""
    namespace, _, name = key.partition("/")
    return base.LoadBalancer(namespace, name, "0.0.0.0", VIPSpec(port=1))


class LegacyDriver(Driver):
    """A contract-0 driver behind contract 1 (see the module docstring)."""

    def __init__(self, inner: base.Driver) -> None:
        self.inner = inner
        protocols = {_PROTOCOLS[p] for p in inner.supported_protocols if p in _PROTOCOLS}
        self._features = frozenset(V0_FEATURES | protocols)
        self._last: dict[tuple[str, str], base.LoadBalancer] = {}

    def capabilities(self, config: Mapping[str, Any]) -> frozenset[str]:
        return self._features

    @staticmethod
    def _handle(device: DeviceHandle) -> base.DeviceHandle:
        spec = DeviceSpec.model_validate({"driver": device.driver or "legacy",
                                          "config": dict(device.config)})  # fmt: skip
        return base.DeviceHandle(
            name=device.name,
            spec=spec,
            labels=device.labels,
            credentials=device.credentials,
            owner=device.owner,
            fence=device.fence,
        )

    def _v0(self, device: DeviceHandle, lb: LoadBalancer) -> base.LoadBalancer:
        old = to_v0(lb)
        self._last[(device.name, lb.key)] = old
        return old

    def validate_config(self, config: Mapping[str, Any]) -> None:
        self.inner.validate_config(config)

    def supports(self, lb: LoadBalancer, config: Mapping[str, Any]) -> str | None:
        if len(lb.listeners) != 1:
            return "a contract-0 driver serves exactly one listener per VIP"
        return self.inner.supports(to_v0(lb))

    def apply(self, device: DeviceHandle, lb: LoadBalancer) -> None:
        self.inner.apply(self._handle(device), self._v0(device, lb))

    def apply_many(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, DriverError | None]:
        return self.inner.apply_many(self._handle(device), [self._v0(device, lb) for lb in lbs])

    def delete(self, device: DeviceHandle, key: str) -> None:
        old = self._last.pop((device.name, key), None) or _placeholder(key)
        self.inner.delete(self._handle(device), old)

    def probe(self, device: DeviceHandle) -> ProbeResult:
        return self.inner.probe(self._handle(device))

    def member_statuses(
        self, device: DeviceHandle, lbs: Sequence[LoadBalancer]
    ) -> Mapping[str, Statuses]:
        found = self.inner.member_statuses(self._handle(device), [to_v0(lb) for lb in lbs])
        return {
            key: {name: MemberStatus(str(status)) for name, status in statuses.items()}
            for key, statuses in found.items()
        }

    def verify(self, device: DeviceHandle, lb: LoadBalancer) -> list[Drift] | None:
        return self.inner.verify(self._handle(device), self._v0(device, lb))

    def orphans(self, device: DeviceHandle, expected: Collection[str]) -> list[str]:
        found = self.inner.orphans(self._handle(device), expected)
        for old in found:
            self._last[(device.name, old.key)] = old
        return [old.key for old in found]

    def watch(self, device: DeviceHandle, changed: Callable[[], None]) -> Callable[[], None]:
        return self.inner.watch(self._handle(device), changed)

    def select_device(
        self, lb: LoadBalancer, candidates: Sequence[DeviceHandle]
    ) -> DeviceHandle | None:
        by_name = {c.name: c for c in candidates}
        picked = self.inner.select_device(to_v0(lb), [self._handle(c) for c in candidates])
        return by_name.get(picked.name) if picked is not None else None

    def close(self) -> None:
        self.inner.close()
