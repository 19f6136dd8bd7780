"""A test bed of a test's own, to be hurt: its API server stalled (SIGSTOP) or restarted, its
etcd compacted. Never the suite's shared one, never another person's: the processes are
found through the pid files of the state dir this module created.

The test bed (../shared/testbed) runs etcd and the API server from a state dir: ``server.pid``,
``etcd.pid`` and ``ports`` (``API_PORT``, ``ETCD_PORT``) are there. etcd serves its gRPC
gateway on the client port, so the current revision and a compaction are two HTTP requests
(no ``etcdctl`` needed). A restart runs the API server's own command line again, with its
pid file updated, so that ``testbed down`` stops the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from helpers import CRDS, LEASE_NAMESPACE, kubectl


@dataclass
class OwnBed:
    script: Path
    state: Path
    kubeconfig: str

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "TESTBED_STATE": str(self.state)}
        env.pop("KUBECONFIG", None)
        return env

    def pid(self, which: str) -> int:
        """``server`` or ``etcd``: its pid, checked to be this state dir's process."""
        pid = int((self.state / f"{which}.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert f"{self.state}/".encode() in cmdline, f"pid {pid} is not this test bed's {which}"
        return pid

    def port(self, name: str) -> int:
        ports = dict(line.split("=", 1) for line in (self.state / "ports").read_text().split())
        return int(ports[name])

    @contextlib.contextmanager
    def stalled(self) -> Iterator[float]:
        """The API server frozen (SIGSTOP) until the block ends (SIGCONT); yields when."""
        pid = self.pid("server")
        os.kill(pid, signal.SIGSTOP)
        try:
            yield time.monotonic()
        finally:
            os.kill(pid, signal.SIGCONT)

    # ---- etcd ------------------------------------------------------------------------------

    def _etcd(self, path: str, body: dict[str, object]) -> dict[str, object]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port('ETCD_PORT')}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def revision(self) -> int:
        header = self._etcd("/v3/kv/range", {"key": "AA==", "limit": 1})["header"]
        return int(header["revision"])  # type: ignore[index]

    def compact(self) -> int:
        """Compact etcd up to its current revision: no watch can resume from before it."""
        revision = self.revision()
        self._etcd("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    # ---- the API server --------------------------------------------------------------------

    def restart_server(self) -> float:
        """Stop the API server (SIGTERM, as a rollout does; SIGKILL after 2 s) and run its
        command line again; seconds until the new one is ready."""
        pid = self.pid("server")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():  # its graceful end waits on watchers that read nothing
            os.kill(pid, signal.SIGKILL)
            while Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
        started = time.monotonic()
        with (self.state / "server.log").open("ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        (self.state / "server.pid").write_text(f"{proc.pid}\n")
        while not self.ready():
            assert proc.poll() is None, f"the API server exited: see {self.state}/server.log"
            assert time.monotonic() - started < 60, "the API server not ready after 60 s"
            time.sleep(0.1)
        return time.monotonic() - started

    def ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.state / "pki" / "ca.crt"))
        context.load_cert_chain(self.state / "pki" / "admin.crt", self.state / "pki" / "admin.key")
        url = f"https://127.0.0.1:{self.port('API_PORT')}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as answer:
                return bool(answer.read() == b"ok")
        except OSError:
            return False


@contextlib.contextmanager
def own_testbed(script: Path, state: Path) -> Iterator[OwnBed]:
    """A test bed in ``state`` with our CRDs and the Lease namespace; stopped afterwards."""
    bed = OwnBed(script, state, "")
    result = subprocess.run(
        [str(script), "up"], env=bed._env(), stdout=subprocess.PIPE, text=True, check=True
    )
    bed.kubeconfig = result.stdout.strip().splitlines()[-1].split("=", 1)[1].strip("'\"")
    try:
        kubectl("--kubeconfig", bed.kubeconfig, "apply", "-f", str(CRDS))
        kubectl("--kubeconfig", bed.kubeconfig, "create", "namespace", LEASE_NAMESPACE)
        for crd in sorted(CRDS.glob("*.yaml")):
            kubectl("--kubeconfig", bed.kubeconfig, "wait", "--for=condition=Established",
                    "-f", str(crd), "--timeout=60s")  # fmt: skip
        yield bed
    finally:
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, AssertionError):
            os.kill(bed.pid("server"), signal.SIGCONT)  # never leave it frozen
        subprocess.run([str(script), "down"], env=bed._env(), capture_output=True, check=False)
