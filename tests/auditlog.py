"""API writes counted at the server: the API server's audit log, read back.

The test bed's API server takes the standard audit flags (``TESTBED_SERVER_ARGS``, see
../shared/testbed/README.md). :func:`server_args` gives them with :data:`POLICY`: every write
(create, update, patch, delete, deletecollection) of every resource, Leases and Events
included, at level Metadata (who, what, answer code; never a body, so no Secret in the log),
and nothing for reads. :class:`AuditLog` reads the entries after a mark and counts them by
verb, resource (``vips/status`` for a subresource) and user agent: the operator's requests
carry ``User-Agent: lbaas-operator/VERSION`` (``lbaas.kube.client``), so its writes are told
from the test's own. Unlike the operator's own counter (``lbaas_api_writes_total``), this
counts every write the server answered, refused ones (409, 422) included, and Lease renewals.

Lives beside the tests' helpers: the bench parts (bench/scale.py) and the tests
(tests/integration/test_audit_log.py) use it. Run alone:
``python tests/auditlog.py LOG`` prints the counts of a whole log.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

WRITES = ("create", "update", "patch", "delete", "deletecollection")
OPERATOR_AGENT = "lbaas-operator/"
POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    verbs: [get, list, watch]
  - level: Metadata
    verbs: [{", ".join(WRITES)}]
  - level: None
"""


def server_args(directory: Path) -> str:
    """``TESTBED_SERVER_ARGS`` for an audit log ``directory/audit.log`` (policy written
    there too)."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = directory / "audit-policy.yaml"
    policy.write_text(POLICY)
    return f"--audit-log-path={directory / 'audit.log'} --audit-policy-file={policy}"


@dataclass(frozen=True)
class Write:
    """One write as the server logged it."""

    verb: str
    resource: str  # plural, ``/subresource`` appended
    namespace: str
    name: str
    code: int
    user_agent: str
    at: float  # the server's stage timestamp, Unix seconds

    @property
    def ok(self) -> bool:
        return 200 <= self.code <= 299


def _stamp(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse(lines: Iterable[str]) -> Iterator[Write]:
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        if entry.get("stage") != "ResponseComplete" or entry.get("verb") not in WRITES:
            continue
        ref = entry.get("objectRef") or {}
        resource = str(ref.get("resource") or "?")
        if ref.get("subresource"):
            resource += "/" + str(ref["subresource"])
        yield Write(
            verb=str(entry["verb"]),
            resource=resource,
            namespace=str(ref.get("namespace") or ""),
            name=str(ref.get("name") or ""),
            code=int((entry.get("responseStatus") or {}).get("code") or 0),
            user_agent=str(entry.get("userAgent") or ""),
            at=_stamp(str(entry.get("stageTimestamp") or entry["requestReceivedTimestamp"])),
        )


class AuditLog:
    """The audit log file, read from a mark on (a server restarted on the same file appends)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def exists(self) -> bool:
        return self.path.is_file()

    def mark(self) -> int:
        """The current end of the log: ``since`` for a later :meth:`writes`."""
        return self.path.stat().st_size if self.path.is_file() else 0

    def writes(self, since: int = 0, *, agent: str | None = OPERATOR_AGENT) -> list[Write]:
        """Writes logged after ``since`` (whole lines only), by user agents starting with
        ``agent`` (None: everybody's)."""
        if not self.path.is_file():
            return []
        with self.path.open("rb") as log:
            log.seek(since)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1].decode()
        return [
            w
            for w in parse(complete.splitlines())
            if agent is None or w.user_agent.startswith(agent)
        ]

    def wait_idle(
        self,
        since: int,
        *,
        quiet: float,
        timeout: float,
        ignore: tuple[str, ...] = ("leases",),
        agent: str = OPERATOR_AGENT,
    ) -> float:
        """Wait until ``agent`` wrote nothing but ``ignore`` resources (Lease renewals go on
        while an operator runs) for ``quiet`` seconds; the time of its last such write (the
        end of the window), or of the call when there was none."""
        started = time.time()
        while True:
            last = max(
                (w.at for w in self.writes(since, agent=agent) if w.resource not in ignore),
                default=started,
            )
            now = time.time()
            if now - last >= quiet:
                return last
            if now - started > timeout:
                raise TimeoutError(f"{agent} still writing after {timeout:.0f}s")
            time.sleep(0.5)


@contextlib.contextmanager
def audited_testbed(script: Path, state: Path, log_dir: Path) -> Iterator[tuple[str, AuditLog]]:
    """A test bed of its own (state dir ``state``) writing the audit log into ``log_dir``:
    (its kubeconfig, the log). Stopped afterwards."""
    env = {**os.environ, "TESTBED_STATE": str(state), "TESTBED_SERVER_ARGS": server_args(log_dir)}
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [str(script), "up"], env=env, stdout=subprocess.PIPE, text=True, check=True
    )
    kubeconfig = result.stdout.strip().splitlines()[-1].split("=", 1)[1].strip("'\"")
    try:
        yield kubeconfig, AuditLog(log_dir / "audit.log")
    finally:
        subprocess.run([str(script), "down"], env=env, capture_output=True, check=False)


def by_kind(writes: Iterable[Write]) -> Counter[tuple[str, str]]:
    """(verb, resource) → count."""
    return Counter((w.verb, w.resource) for w in writes)


def by_resource(writes: Iterable[Write]) -> Counter[str]:
    return Counter(w.resource.split("/")[0] for w in writes)


def summary(writes: list[Write]) -> str:
    """``patch vips/status 1200, create events 40, ...`` (refused ones counted apart)."""
    counts = by_kind(writes)
    parts = [f"{verb} {resource} {n}" for (verb, resource), n in counts.most_common()]
    refused = sum(1 for w in writes if not w.ok)
    return ", ".join(parts) + (f" ({refused} refused)" if refused else "") if parts else "none"


if __name__ == "__main__":
    log = AuditLog(Path(sys.argv[1]))
    everyone = log.writes(agent=None)
    for agent in sorted({w.user_agent.split(" ")[0] for w in everyone}):
        mine = [w for w in everyone if w.user_agent.split(" ")[0] == agent]
        print(f"{agent}: {len(mine)} writes: {summary(mine)}")
