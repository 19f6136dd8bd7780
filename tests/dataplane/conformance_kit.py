"""The setting of the Gateway API conformance ports (tests/dataplane/test_gateway_conformance.py),
shaped after the upstream suite's: backend Services ``infra-backend-v1..v3`` in the test's
namespace (its "gateway-conformance-infra"), a Gateway ``same-namespace`` with one HTTP
listener, a device of driver haproxy, and requests as the suite's ``ExpectedResponse``: a
request (host, path, headers) and either the backend that must answer or a status code.

Upstream waits for "eventually consistent" answers; here each expectation is polled until it
holds three times in a row (``consistently``), which is what the suite's default asks for.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dataplane.hxsupport import Backend, Backends, OperatorDevice, free_port_in, get
from gwkit import gateway, listener
from gwsupport import Gw

VERSIONS = ("v1", "v2", "v3")


@dataclass
class Infra:
    """One test's infrastructure: backends, the Gateway, and how to ask it."""

    gw: Gw
    namespace: str
    cls: str
    device: OperatorDevice
    port: int
    backends: dict[str, Backend] = field(default_factory=dict)
    address: str = ""

    def serve(self, service: str, backend: Backend, namespace: str | None = None) -> None:
        """A Service (port 8080, as upstream's) whose one endpoint is ``backend``."""
        namespace = namespace or self.namespace
        self.gw.service(namespace, service, {"name": "http", "port": 8080, "targetPort": "http"})
        self.gw.endpoints(
            namespace,
            service,
            [backend.address],
            backend.port,
            port_name="http",
            slice_name=f"{service}-{backend.name}",
        )

    def gateway(self, name: str = "same-namespace", *listeners: dict[str, Any], **spec: Any) -> str:
        """Create a Gateway (default: one HTTP listener on this test's port); its address."""
        listeners = listeners or (listener("http", self.port, "HTTP"),)
        self.gw.create(gateway(name, self.namespace, *listeners, cls=self.cls, **spec))
        return self.programmed(name)

    def programmed(self, name: str = "same-namespace") -> str:
        self.gw.wait_condition("Gateway", self.namespace, name, "Programmed", "True", timeout=60)
        status = (self.gw.get("Gateway", self.namespace, name) or {})["status"]
        self.address = str(status["addresses"][0]["value"])
        return self.address

    def ask(self, path: str = "/", host: str = "example.com", **headers: str) -> str:
        """The answering backend's name, or the status code when it is not 200."""
        with contextlib.suppress(OSError):
            status, body, _ = get(
                self.address, self.port, path, headers={"Host": host, **headers}, timeout=2
            )
            return body if status == 200 else str(status)
        return "(no answer)"

    def expect(
        self,
        cases: Mapping[tuple[str, str], str] | list[tuple[dict[str, Any], str]],
        timeout: float = 20,
    ) -> None:
        """Every (request, answer) holds three times in a row, within ``timeout``."""
        items = cases.items() if isinstance(cases, Mapping) else cases
        for request, want in items:
            kwargs = (
                request if isinstance(request, dict) else {"path": request[0], "host": request[1]}
            )
            consistently(lambda k=kwargs: self.ask(**k), want, timeout, f"{kwargs}")


def consistently(ask: Callable[[], str], want: str, timeout: float, what: str) -> None:
    deadline, streak, last = time.monotonic() + timeout, 0, ""
    while time.monotonic() < deadline:
        last = ask()
        streak = streak + 1 if last == want else 0
        if streak >= 3:
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: wanted {want}, last answer {last}")


def infra_backends(made: Backends, infra: Infra) -> None:
    for version, backend in zip(VERSIONS, made.http(3), strict=True):
        backend.name = f"infra-backend-{version}"
        infra.backends[version] = backend
        infra.serve(backend.name, backend)


def make_infra(gw: Gw, namespace: str, cls: str, device: OperatorDevice, made: Backends) -> Infra:
    infra = Infra(gw, namespace, cls, device, free_port_in(device.address_pool))
    infra_backends(made, infra)
    return infra
