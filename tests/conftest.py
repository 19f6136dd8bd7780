"""Shared fixtures: a real Kubernetes API server (KUBECONFIG, else the test bed, else kind).

When none is available, cluster tests are skipped with the reason printed; with
``LBAAS_STRICT=1`` (CI sets it) every such skip for a missing tool becomes a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from helpers import CRDS, LEASE_NAMESPACE, ROOT, kubectl, need_tool
from lbaas_devtools.devcluster import NoClusterError, up


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reachable API server with our CRDs installed and Established."""
    if not shutil.which("kubectl"):
        need_tool("kubectl not found")
    started_testbed = False
    if not os.environ.get("KUBECONFIG"):
        # A state dir of our own: the suite never touches the testbed `make run` uses.
        os.environ.setdefault("TESTBED_STATE", f"/tmp/lbaas-pytest-{os.getuid()}")
        # Stop it at the end only if this session started it (another may be using it).
        status = subprocess.run(
            [str(ROOT / "../shared/testbed/testbed"), "status"], capture_output=True, check=False
        )
        started_testbed = status.returncode != 0
    try:
        cluster = up(ROOT)
    except NoClusterError as exc:
        need_tool(str(exc))
    os.environ["KUBECONFIG"] = cluster.kubeconfig
    # A private discovery cache: kubectl must see our CRDs (and categories) at once.
    os.environ["KUBECACHEDIR"] = str(tmp_path_factory.mktemp("kubecache"))
    kubectl("apply", "-f", str(CRDS))
    kubectl("create", "namespace", LEASE_NAMESPACE, check=False)
    for crd in sorted(CRDS.glob("*.yaml")):
        kubectl("wait", "--for=condition=Established", "-f", str(crd), "--timeout=60s")
    yield cluster.kubeconfig
    if started_testbed and cluster.source == "testbed" and not os.environ.get("LBAAS_KEEP_CLUSTER"):
        subprocess.run(
            [str(ROOT / "../shared/testbed/testbed"), "down"], check=False, capture_output=True
        )


@pytest.fixture
def namespace(kubeconfig: str) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's objects."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
