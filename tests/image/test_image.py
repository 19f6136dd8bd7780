"""The container image, built and run for real.

``hack/image.sh build`` (what ``make image`` runs) builds the image with HAProxy; the operator
then runs in it against the test bed the way the chart runs its pod: the chart's user, a
read-only root filesystem with /tmp the only writable place, all capabilities dropped, no
privilege escalation; plus host network and the kubeconfig mounted read-only. From inside the
container it drives an HAProxy that serves the example VIP with real traffic on 127.0.40.1
to backends on 127.0.41.x, and it stops on SIGTERM within the chart's grace period.

Skipped, naming the tool, where neither podman nor a running docker exists (a failure under
``LBAAS_STRICT=1``). The Debian base is cached by hack/image.sh and the engine caches layers:
a warm run takes about half a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import container as chart_container
from chartkit import render, require_helm
from dataplane.hxsupport import Backend

from helpers import GROUP, PLURALS, ROOT, VERSION, Api, free_port, need_tool, wait_for
from lbaas.config import OperatorSettings

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

IMAGE_SH = ROOT / "hack" / "image.sh"
# One tag per checkout: test runs in two worktrees never swap each other's image.
TAG = f"localhost/lbaas-operator:test-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]}"
CHART = ROOT / "charts" / "lbaas-operator"
EXAMPLES = ROOT / "manifests" / "examples"
VIP_POOL, VIP_ADDRESS = "127.0.40.0/28", "127.0.40.1"  # first host of the pool
BACKEND_ADDRESSES = ("127.0.41.1", "127.0.41.2")
MEMBER_NETWORK = "127.0.41.0/24"  # the backends: loopback is refused unless listed
IMAGE_BUDGET_MB = 300  # measured: 233 MB with HAProxy on the Debian base


@dataclass
class Engine:
    """docker or podman as hack/image.sh found it, with the flags this machine needs."""

    cmd: list[str]
    container_flags: list[str]  # for `run` (and `build`): runtime, ulimits

    @property
    def name(self) -> str:
        return Path(self.cmd[0]).name

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.cmd, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name} {shlex.join(args)}: {result.stderr[-3000:]}")
        return result

    def read_only(self) -> list[str]:
        # podman adds writable tmpfs on /tmp, /run, /var/tmp by default; the chart's pod has none.
        return ["--read-only", *(["--read-only-tmpfs=false"] if self.name == "podman" else [])]


@pytest.fixture(scope="module")
def engine() -> Engine:
    found = subprocess.run(
        [str(IMAGE_SH), "engine"], capture_output=True, text=True, timeout=60, check=False
    )
    if found.returncode == 3:
        need_tool(found.stderr.strip().removeprefix("image: "))
    assert found.returncode == 0, found.stderr
    cmd, flags = found.stdout.splitlines()
    return Engine(shlex.split(cmd), shlex.split(flags))


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    env = {**os.environ, "ENGINE": engine.name, "WITH_HAPROXY": "true"}
    start = time.monotonic()
    built = subprocess.run(
        [str(IMAGE_SH), "build", TAG], env=env, capture_output=True, text=True, timeout=900
    )
    assert built.returncode == 0, built.stderr[-5000:]
    print(f"image built in {time.monotonic() - start:.1f} s: {built.stderr.splitlines()[-1]}")
    return built.stdout.strip()


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return dict(yaml.safe_load((CHART / "values.yaml").read_text()))


def pod_flags(values: dict[str, Any], engine: Engine) -> list[str]:
    """The chart's container securityContext as engine flags."""
    sc = values["securityContext"]
    flags = ["--user", f"{sc['runAsUser']}:{sc['runAsGroup']}"]
    if sc.get("readOnlyRootFilesystem"):
        flags += engine.read_only()
    for cap in sc.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    assert not sc.get("privileged"), "the chart's pod is not privileged"
    return flags


def probe_path() -> str:
    template = (CHART / "templates" / "_pod.tpl").read_text()  # every workload's pod
    paths = set(re.findall(r"httpGet:\s*\n\s*path: (\S+)", template))
    assert len(paths) == 1, paths
    return paths.pop()


# ---- the image as built -------------------------------------------------------------------------


def test_image_config_matches_the_chart(engine: Engine, image: str, values: dict[str, Any]) -> None:
    info = json.loads(engine("image", "inspect", image).stdout)[0]
    config = info["Config"]
    sc = values["securityContext"]
    assert config["User"] == f"{sc['runAsUser']}:{sc['runAsGroup']}"
    assert values["podSecurityContext"]["runAsUser"] == sc["runAsUser"]
    ports = {values["config"]["metricsPort"], values["config"]["healthPort"]}
    defaults = OperatorSettings()
    assert ports == {defaults.metrics_port, defaults.health_port}
    assert set(config["ExposedPorts"]) == {f"{port}/tcp" for port in ports}
    assert config["Entrypoint"] == ["lbaas-operator"]
    docs = render(require_helm(), "--set", "mode=run")
    (run_mode,) = [d for d in docs if d["kind"] == "Deployment"]
    assert chart_container(run_mode)["args"] == config["Cmd"], "the chart's run mode runs the CMD"
    assert config["WorkingDir"] == "/tmp" and "HOME=/tmp" in config["Env"]
    size_mb = info["Size"] / 1e6
    print(f"image size: {size_mb:.0f} MB")
    assert size_mb < IMAGE_BUDGET_MB, f"{size_mb:.0f} MB: what grew? (podman image tree)"


CONTENTS = """
import importlib.metadata as md, importlib.util as iu, json, os, shutil
try:
    open("/opt/lbaas/probe", "w")
    root_writable = True
except OSError:
    root_writable = False
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "root_writable": root_writable,
    "dists": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "modules": [m for m in ("lbaas_devtools", "lbaas_fake_driver", "kubernetes.aio")
                if iu.find_spec(m.split(".")[0]) and iu.find_spec(m)],
    "haproxy": shutil.which("haproxy"),
}))
"""


def test_cli_and_contents(engine: Engine, image: str, values: dict[str, Any]) -> None:
    run = ["run", "--rm", *engine.container_flags, *pod_flags(values, engine)]
    helped = engine(*run, image, "--help")
    assert "usage: lbaas-operator" in helped.stdout and "run" in helped.stdout
    run_help = engine(*run, image, "run", "--help")
    assert "usage: lbaas-operator run" in run_help.stdout
    seen = json.loads(engine(*run, "--entrypoint", "python3", image, "-c", CONTENTS).stdout)
    assert (seen["uid"], seen["gid"]) == (65532, 65532)
    assert not seen["root_writable"]
    assert "lbaas-operator" in seen["dists"]
    for unwanted in ("lbaas-devtools", "lbaas-fake-driver", "pip", "pytest", "ruff", "mypy"):
        assert unwanted not in seen["dists"], f"{unwanted} is in the image"
    assert seen["modules"] == [], "developer tooling or dead weight in the image"
    assert seen["haproxy"], "WITH_HAPROXY=true but no haproxy on PATH"


# ---- the operator in the image, against the test bed --------------------------------------------


def _load(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


def example_objects(ns: str, site: str, vip_port: int, backends: list[Backend]) -> list[Any]:
    """manifests/examples/ moved to this test's namespace, addresses and a state dir in the
    container's /tmp."""
    (device,) = _load("device.yaml")
    device["metadata"].update(name=site, labels={"lbaas.dev/site": site})
    device["spec"]["config"]["stateDir"] = "/tmp/haproxy"
    device["spec"].update(
        addressPool=[VIP_POOL], memberNetworks=[MEMBER_NETWORK], allowedNamespaces=[ns]
    )
    tree = _load("web.yaml")
    members = iter(backends)
    for obj in tree:
        obj["metadata"]["namespace"] = ns
        if obj["kind"] == "VIP":
            obj["spec"]["port"] = vip_port
            obj["spec"]["deviceSelector"] = {"matchLabels": {"lbaas.dev/site": site}}
        elif obj["kind"] == "Member":
            backend = next(members)
            obj["spec"].update(address=backend.address, port=backend.port)
    return [device, *tree]


def http_get(address: str, port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection(address, port, timeout=2)
        conn.request("GET", "/")
        body = conn.getresponse().read().decode()
        conn.close()
        return body
    except OSError:
        return None


def healthy(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False


def release(api: Api, objects: list[dict[str, Any]]) -> None:
    """Delete what the test made, finalizers dropped: the operator that owned them is gone."""
    for obj in reversed(objects):
        plural, name = PLURALS[obj["kind"]], obj["metadata"]["name"]
        ns = obj["metadata"].get("namespace")
        body = {"metadata": {"finalizers": None}}
        with contextlib.suppress(Exception):
            if ns:
                api.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, plural, name, body)
            else:
                api.custom.patch_cluster_custom_object(GROUP, VERSION, plural, name, body)
        api.delete(obj["kind"], name, ns)


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    made = [Backend(f"web-{i + 1}", address) for i, address in enumerate(BACKEND_ADDRESSES)]
    yield made
    for server in made:
        server.shutdown()
        server.server_close()


def test_operator_in_the_image_serves_the_example_vip(
    engine: Engine,
    image: str,
    values: dict[str, Any],
    kubeconfig: str,
    namespace: str,
    backends: list[Backend],
    tmp_path: Path,
) -> None:
    # The pod's volumes: the kubeconfig read-only, readable by the non-root user; an empty /tmp.
    kube = tmp_path / "kubeconfig"
    shutil.copyfile(kubeconfig, kube)
    kube.chmod(0o644)
    writable = tmp_path / "tmp"
    writable.mkdir()
    writable.chmod(0o1777)
    metrics_port, health_port = free_port(), free_port()
    vip_port = free_port(VIP_ADDRESS)
    container = f"lbaas-image-{uuid.uuid4().hex[:8]}"
    env = {
        "KUBECONFIG": "/etc/lbaas/kubeconfig",
        "LBAAS_METRICS_PORT": str(metrics_port),
        "LBAAS_HEALTH_PORT": str(health_port),
        "LBAAS_NAMESPACES": namespace,
        "LBAAS_AGENT_ID": "image-test",
        "LBAAS_LEASE_NAMESPACE": namespace,
        "LBAAS_PROBE_INTERVAL": "1",
        "LBAAS_MEMBER_STATUS_INTERVAL": "1",
    }
    api = Api()
    objects = example_objects(namespace, f"image-{namespace}", vip_port, backends)
    grace = int(values["terminationGracePeriodSeconds"])
    try:
        engine(
            "run", "--detach", "--name", container, *engine.container_flags,
            *pod_flags(values, engine), "--network", "host",
            "--volume", f"{kube}:/etc/lbaas/kubeconfig:ro", "--volume", f"{writable}:/tmp",
            *(f"--env={key}={value}" for key, value in env.items()),
            image, "run",
        )  # fmt: skip
        started = time.monotonic()

        def live() -> bool:
            state = engine("inspect", "--format", "{{.State.Running}}", container).stdout
            assert state.strip() == "true", engine("logs", container).stderr[-3000:]
            return healthy(health_port, probe_path())

        wait_for(live, 60, "the operator's /healthz in the container", interval=0.3)
        print(f"healthy {time.monotonic() - started:.1f} s after start")
        for obj in objects:
            api.create(obj)
        try:
            api.wait_phase("Device", objects[0]["metadata"]["name"], None, "Ready", 60)
            vip = api.wait_phase("VIP", "web", namespace, "Active", 90)
        except AssertionError as exc:
            log = engine("logs", container).stderr[-4000:]
            haproxy_log = writable / "haproxy" / "haproxy.log"
            extra = haproxy_log.read_text()[-2000:] if haproxy_log.exists() else ""
            raise AssertionError(f"{exc}\noperator:\n{log}\nhaproxy:\n{extra}") from exc
        print(f"VIP Active {time.monotonic() - started:.1f} s after start")
        assert vip["status"]["address"] == VIP_ADDRESS

        # Real traffic through the HAProxy that the operator started inside the container.
        answers: set[str] = set()

        def both_backends() -> bool:
            answers.add(http_get(VIP_ADDRESS, vip_port) or "")
            return {b.name for b in backends} <= answers

        try:
            wait_for(both_backends, 30, f"both backends through {VIP_ADDRESS}:{vip_port}")
        except AssertionError as exc:
            statuses = {o["metadata"]["name"]: api.status(o["kind"], o["metadata"]["name"],
                        o["metadata"].get("namespace")) for o in objects}  # fmt: skip
            log = engine("logs", container).stderr[-4000:]
            raise AssertionError(
                f"{exc}\nanswers: {answers}\nstatuses: {statuses}\noperator:\n{log}"
            ) from exc
        metrics = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=5)
        metrics.request("GET", "/metrics")
        assert b"lbaas_" in metrics.getresponse().read()

        # SIGTERM, as the kubelet sends it; SIGKILL only after the chart's grace period.
        stopping = time.monotonic()
        engine("stop", "--time", str(grace), container, timeout=grace + 30)
        took = time.monotonic() - stopping
        print(f"stopped {took:.1f} s after SIGTERM")
        code = engine("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
        assert code == "0", f"exit status {code} (137: killed after {grace} s)"
        assert took < grace
        with socket.socket() as client:  # HAProxy lived in the container, and went with it
            client.settimeout(2)
            assert client.connect_ex((VIP_ADDRESS, vip_port)) != 0
    finally:
        engine("rm", "--force", container, check=False)
        release(api, objects)
