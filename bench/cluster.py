"""The cluster a benchmark runs on: one place for what ``make bench`` and each part's own
``main`` (``python bench/tenant.py`` ...) need.

``KUBECONFIG`` when set, else the test bed under ``TESTBED_STATE`` (default
``/tmp/<stem>-<uid>``, private to that benchmark), stopped afterwards. The CRDs are applied
and Established and the Lease namespace exists before anything runs.

A test bed the bench starts writes an audit log of every write (tests/auditlog.py):
:data:`AUDIT` reads it (None on a cluster given by KUBECONFIG: no log to read there).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from auditlog import AuditLog, server_args

from helpers import LEASE_NAMESPACE, kubectl
from lbaas_devtools.devcluster import Cluster, down, up

ROOT = Path(__file__).resolve().parent.parent
AUDIT: AuditLog | None = None


def prepare(cluster: Cluster) -> None:
    """Point KUBECONFIG at ``cluster``; CRDs Established, the Lease namespace present."""
    os.environ["KUBECONFIG"] = cluster.kubeconfig
    kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in sorted((ROOT / "crds").glob("*.yaml")):
        kubectl("wait", "--for=condition=Established", "-f", str(crd), "--timeout=60s")
    kubectl("create", "namespace", LEASE_NAMESPACE, check=False)


def fresh() -> None:
    """A new, empty test bed in place of the current one (parts that must not share)."""
    down(ROOT)
    prepare(up(ROOT, use_env=False))


@contextlib.contextmanager
def bench_cluster(stem: str) -> Iterator[tuple[Cluster, bool]]:
    """(the cluster, whether it is a test bed this run brought up and may throw away)."""
    global AUDIT
    started_here = not os.environ.get("KUBECONFIG")
    if started_here:
        os.environ.setdefault("TESTBED_STATE", f"/tmp/{stem}-{os.getuid()}")
        audit = Path(tempfile.mkdtemp(prefix=f"{stem}-audit-"))
        os.environ["TESTBED_SERVER_ARGS"] = server_args(audit)
        AUDIT = AuditLog(audit / "audit.log")
    cluster = up(ROOT)
    owned = started_here and cluster.source == "testbed"
    try:
        prepare(cluster)
        if AUDIT is not None and not AUDIT.exists():
            # A test bed already up under this state dir was started without the flags.
            print(f"  (no audit log at {AUDIT.path}: server-side counts not available)")
            AUDIT = None
        yield cluster, owned
    finally:
        if owned:
            down(ROOT)  # a benchmark leaves no API server behind
