"""Trees of the driver data model the tests send, built on what the driver declares.

A test asks for what it proves and the rest comes from the driver's declaration: the base
listener protocol is TCP when declared (else HTTP, else UDP) and the base method round robin
(else the first method declared), so an HTTP-only or least-connections-only driver runs the
same contract tests. Health monitors check fast (every second, one failure takes a member
down, one success brings it back) so that health tests take seconds.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from typing import Protocol as TypingProtocol

from lbaas.drivers import model
from lbaas.drivers.model import Method, MonitorType, Protocol

NAMESPACE = "conformance"


class HasEndpoint(TypingProtocol):
    """A member to send traffic to (the kit's, or an :class:`Endpoint`)."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...


_PROTOCOLS = (
    ("protocol.tcp", Protocol.TCP),
    ("protocol.http", Protocol.HTTP),
    ("protocol.udp", Protocol.UDP),
)
_METHODS = (
    ("method.round-robin", Method.ROUND_ROBIN),
    ("method.least-connections", Method.LEAST_CONNECTIONS),
    ("method.source-ip", Method.SOURCE_IP),
)


def base_protocol(declared: Collection[str]) -> Protocol:
    return next((p for f, p in _PROTOCOLS if f in declared), Protocol.TCP)


def base_method(declared: Collection[str]) -> Method:
    return next((m for f, m in _METHODS if f in declared), Method.ROUND_ROBIN)


def monitor(kind: MonitorType = MonitorType.TCP, **changes: Any) -> model.HealthMonitor:
    """A monitor that notices a change within about two seconds."""
    fields: dict[str, Any] = {
        "delay": 1,
        "timeout": 1,
        "max_retries": 1,
        "max_retries_down": 1,
        "url_path": "/healthz",
        **changes,
    }
    return model.HealthMonitor(name="hm", type=kind, **fields)


def member(endpoint: HasEndpoint, **changes: Any) -> model.Member:
    return model.Member(
        name=endpoint.name,
        address=endpoint.address,
        port=endpoint.port,
        **changes,
    )


@dataclass(frozen=True)
class Endpoint:
    """A member that need not exist (contract tests of a device that sends no traffic)."""

    name: str
    address: str
    port: int


@dataclass(frozen=True)
class Builder:
    """Trees for one driver: ``declared`` decides the base protocol and method."""

    declared: frozenset[str]

    @property
    def protocol(self) -> Protocol:
        return base_protocol(self.declared)

    @property
    def method(self) -> Method:
        return base_method(self.declared)

    def pool(
        self,
        members: Sequence[HasEndpoint | model.Member],
        *,
        name: str = "pool",
        protocol: Protocol | None = None,
        **changes: Any,
    ) -> model.Pool:
        built = tuple(m if isinstance(m, model.Member) else member(m) for m in members)
        proto = protocol or self.protocol
        fields: dict[str, Any] = {
            "protocol": Protocol.TCP if proto == Protocol.HTTPS else proto,
            "method": self.method,
            **changes,
        }
        return model.Pool(name=name, members=built, **fields)

    def lb(
        self,
        name: str,
        vip: tuple[str, int],
        members: Sequence[HasEndpoint | model.Member] = (),
        *,
        protocol: Protocol | None = None,
        listener: dict[str, Any] | None = None,
        pools: Sequence[model.Pool] | None = None,
        **pool_changes: Any,
    ) -> model.LoadBalancer:
        """Load balancer ``name`` on ``vip`` (address, port): one listener of ``protocol``
        (the base one by default) whose default pool holds ``members`` (``pool_changes``
        apply to it), or the given ``pools`` (the first is the default)."""
        proto = protocol or self.protocol
        if pools is None:
            pools = (self.pool(members, protocol=proto, **pool_changes),)
        fields: dict[str, Any] = {"default_pool": pools[0].name if pools else None}
        fields.update(listener or {})
        return model.LoadBalancer(
            namespace=NAMESPACE,
            name=name,
            address=vip[0],
            listeners=(model.Listener(name=name, port=vip[1], protocol=proto, **fields),),
            pools=tuple(pools),
        )
