"""Helpers shared by the test modules (importable as ``helpers``: tests/ is on pythonpath)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lbaas.drivers.documents import load_balancer
from lbaas.drivers.model import LoadBalancer, Member

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "crds"


def need_tool(reason: str) -> None:
    """Skip for a missing external tool, or fail when LBAAS_STRICT=1 says it must be there."""
    if os.environ.get("LBAAS_STRICT") == "1":
        pytest.fail(f"{reason} (LBAAS_STRICT=1 forbids skipping)")
    pytest.skip(reason)


def kubectl(
    *args: str,
    check: bool = True,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", f"--cache-dir={os.environ.get('KUBECACHEDIR', '')}", *args]
        if os.environ.get("KUBECACHEDIR")
        else ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


# ---- the operator as a real process, and a thin API client for tests ------------------------


GROUP, VERSION = "lbaas.dev", "v1alpha1"
PLURALS = {
    "VIP": "vips",
    "Pool": "pools",
    "Member": "members",
    "HealthMonitor": "healthmonitors",
    "L7Policy": "l7policies",
    "Device": "devices",
}


LEASE_NAMESPACE = "lbaas-leases"
"""Where the operators the tests start keep their Leases (created by the session fixture)."""


_PORTS = random.SystemRandom()  # not the global generator: hypothesis seeds that one


def port_free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def free_port(address: str = "0.0.0.0") -> int:
    """A port nobody listens on at ``address`` (default: any address), chosen at random below
    Linux's ephemeral range (32768-60999) and above the test bed's (20000-31999).

    A port the kernel hands out for a bind to port 0 is an ephemeral one: until our process
    binds it, any outgoing connection may be given it (two CI runs lost an operator start to
    ``address already in use`` that way).
    """
    for _ in range(500):
        port = _PORTS.randint(10000, 19999)
        if port_free(address, port):
            return port
    raise AssertionError(f"no free port at {address} in 10000-19999")


class OperatorProcess:
    """``lbaas-operator run`` in a subprocess: the real kopf runtime, killable like in life."""

    def __init__(self, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.env = {
            **os.environ,
            "LBAAS_PROBE_INTERVAL": "1",
            "LBAAS_MEMBER_STATUS_INTERVAL": "1",
            "LBAAS_PARENT_TIMEOUT": "60",
            "LBAAS_RETRY_BACKOFF_MAX": "2",
            "LBAAS_DRIVER_TIMEOUT": "4",
            "LBAAS_LEASE_DURATION": "6",
            "LBAAS_LEASE_RENEW_PERIOD": "1",
            "LBAAS_AGENT_ID": "pytest",
            "LBAAS_LEASE_NAMESPACE": LEASE_NAMESPACE,
            "LBAAS_METRICS_PORT": str(self.metrics_port),
            "LBAAS_HEALTH_PORT": str(self.health_port),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, role: str = "run", *args: str) -> OperatorProcess:
        exe = Path(sys.executable).parent / "lbaas-operator"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(exe), role, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd="/"
        )
        wait_for(self._live, 30, "operator liveness endpoint")
        return self

    def _live(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"operator exited: {self.log_path.read_text()[-3000:]}")
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
            ) as rsp:
                return bool(rsp.status == 200)
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as rsp:
            return str(rsp.read().decode())


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Api:
    """CRUD on our kinds through the kubernetes client (faster than kubectl per call)."""

    def __init__(self, kubeconfig: str | None = None) -> None:
        """The suite's cluster ($KUBECONFIG), or the one of ``kubeconfig`` (a test bed of a
        test's own: the default configuration of the client is left alone)."""
        import kubernetes

        client = None
        if kubeconfig is None:
            # Explicit: the client reads $KUBECONFIG only once, when it is first imported.
            kubernetes.config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        else:
            client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.core = kubernetes.client.CoreV1Api(client)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        plural = PLURALS[obj["kind"]]
        obj = {"apiVersion": f"{GROUP}/{VERSION}", **obj}
        ns = obj["metadata"].get("namespace")
        if ns:
            return dict(
                self.custom.create_namespaced_custom_object(GROUP, VERSION, ns, plural, obj)
            )
        return dict(self.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj))

    def get(self, kind: str, name: str, ns: str | None = None) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            if ns:
                return dict(
                    self.custom.get_namespaced_custom_object(
                        GROUP, VERSION, ns, PLURALS[kind], name
                    )
                )
            return dict(self.custom.get_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_spec(self, kind: str, name: str, ns: str | None, spec: dict[str, Any]) -> None:
        body = {"spec": spec}
        if ns:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, ns, PLURALS[kind], name, body
            )
        else:
            self.custom.patch_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name, body)

    def delete(self, kind: str, name: str, ns: str | None = None) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            if ns:
                self.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURALS[kind], name)
            else:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURALS[kind], name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def status(self, kind: str, name: str, ns: str | None = None) -> dict[str, Any]:
        obj = self.get(kind, name, ns)
        return dict((obj or {}).get("status") or {})

    def wait_phase(
        self,
        kind: str,
        name: str,
        ns: str | None,
        phase: str,
        timeout: float = 30,
        reason: str | None = None,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.get(kind, name, ns)
            status = (obj or {}).get("status") or {}
            if status.get("phase") == phase and (reason is None or status.get("reason") == reason):
                return obj
            return None

        return dict(wait_for(check, timeout, f"{kind} {ns}/{name} phase {phase} {reason or ''}"))

    def wait_gone(self, kind: str, name: str, ns: str | None, timeout: float = 30) -> None:
        wait_for(lambda: self.get(kind, name, ns) is None, timeout, f"{kind} {name} gone")

    def events(self, ns: str, name: str, type_: str = "Warning") -> list[Any]:
        items = self.core.list_namespaced_event(
            ns, field_selector=f"involvedObject.name={name},type={type_}"
        ).items
        return list(items)


class FakeDevice:
    """A Device of the test driver: its state file is the 'device', its control file our lever."""

    def __init__(self, api: Api, name: str, directory: Path, **spec: Any) -> None:
        self.api, self.name = api, name
        self.state_file = directory / f"{name}.state.json"
        self.control_file = directory / f"{name}.control.json"
        self.call_log = directory / f"{name}.calls.jsonl"
        self.control_file.write_text("{}")
        body = {
            "driver": "fake",
            "config": {
                "stateFile": str(self.state_file),
                "controlFile": str(self.control_file),
                "callLog": str(self.call_log),
            },
        }
        body.update(spec)
        self.body = {
            "kind": "Device",
            "metadata": {"name": name, "labels": spec.pop("labels", {})},
            "spec": body,
        }
        self.body["spec"].pop("labels", None)

    def create(self) -> FakeDevice:
        self.api.create(self.body)
        self.api.wait_phase("Device", self.name, None, "Ready", 30)
        return self

    def create_unprobed(self) -> FakeDevice:
        """Create it without waiting for an agent to probe it."""
        self.api.create(self.body)
        return self

    def control(self, **control: Any) -> None:
        self.control_file.write_text(json.dumps(control))

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return {}

    def calls(self) -> list[dict[str, Any]]:
        """Every driver call on this device: op, owner, fence, start, end (monotonic)."""
        try:
            lines = self.call_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def listeners(self) -> dict[str, Any]:
        """``address:port`` → ``{"vip": key, "listener": name, "tree": document}``."""
        return dict(self.state().get("listeners", {}))

    def vip(self, key: str) -> LoadBalancer | None:
        """The tree the device stores for load balancer ``key`` (None: it serves none)."""
        return next((stored(e) for e in self.listeners().values() if e["vip"] == key), None)


def stored(entry: dict[str, Any]) -> LoadBalancer:
    """The tree of one listener entry of the fake device's state file."""
    return load_balancer(entry["tree"])


def stored_members(entry: dict[str, Any] | LoadBalancer | None) -> dict[str, Member]:
    """Every member of a stored tree (an entry of the state file, or its tree), by name."""
    if entry is None:
        return {}
    lb = entry if isinstance(entry, LoadBalancer) else stored(entry)
    return {member.name: member for _, member in lb.members()}


def tree(
    ns: str, vip: str, members: int = 3, *, monitor: bool = True, **vip_spec: Any
) -> list[dict[str, Any]]:
    """A VIP with its pool, ``members`` members and (optionally) a health monitor."""
    objs: list[dict[str, Any]] = [
        {
            "kind": "VIP",
            "metadata": {"name": vip, "namespace": ns},
            "spec": {"port": 80, "protocol": "HTTP", **vip_spec},
        },
        {
            "kind": "Pool",
            "metadata": {"name": vip, "namespace": ns},
            "spec": {"vipRef": vip, "protocol": "HTTP"},
        },
    ]
    objs += [
        {
            "kind": "Member",
            "metadata": {"name": f"{vip}-m{i}", "namespace": ns},
            "spec": {"poolRef": vip, "address": f"192.0.2.{i + 1}", "port": 8080},
        }
        for i in range(members)
    ]
    if monitor:
        objs.append(
            {
                "kind": "HealthMonitor",
                "metadata": {"name": vip, "namespace": ns},
                "spec": {"poolRef": vip, "type": "HTTP", "delay": 2, "timeout": 1},
            }
        )
    return objs
