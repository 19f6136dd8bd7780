"""The cluster a benchmark runs on: one place for what ``make bench`` and each part's own
``main`` (``python bench/tenant.py`` ...) need.

``KUBECONFIG`` when set, else the test bed under ``TESTBED_STATE`` (default
``/tmp/<stem>-<uid>``, private to that benchmark), stopped afterwards. The CRDs are applied
and Established and the Lease namespace exists before anything runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from helpers import LEASE_NAMESPACE, kubectl
from lbaas_devtools.devcluster import Cluster, down, up

ROOT = Path(__file__).resolve().parent.parent


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
    started_here = not os.environ.get("KUBECONFIG")
    if started_here:
        os.environ.setdefault("TESTBED_STATE", f"/tmp/{stem}-{os.getuid()}")
    cluster = up(ROOT)
    owned = started_here and cluster.source == "testbed"
    try:
        prepare(cluster)
        yield cluster, owned
    finally:
        if owned:
            down(ROOT)  # a benchmark leaves no API server behind
