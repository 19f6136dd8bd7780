"""A local Kubernetes API for development and tests: KUBECONFIG, else the test bed, else kind.

One implementation for people (``make cluster``) and for the test suite's cluster fixture.
The test bed (``../shared/testbed``) is a real apiextensions-apiserver + etcd for machines
without Docker; kind is the path where Docker exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KIND_CLUSTER = "lbaas"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    source: str  # "KUBECONFIG", "testbed" or "kind"


class NoClusterError(RuntimeError):
    """No API server could be had; the message names what is missing."""


def testbed_script(root: Path | None = None) -> Path | None:
    env = os.environ.get("LBAAS_TESTBED")
    candidates = [Path(env)] if env else []
    base = root or Path.cwd()
    candidates += [base / "../shared/testbed/testbed", base.parent / "shared/testbed/testbed"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return None


def reachable(kubeconfig: str) -> bool:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "--request-timeout=5s", "get", "--raw", "/version"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def up(root: Path | None = None, *, use_env: bool = True) -> Cluster:
    """Return a reachable cluster, starting the test bed or kind if needed."""
    if use_env and os.environ.get("KUBECONFIG"):
        kubeconfig = os.environ["KUBECONFIG"]
        if reachable(kubeconfig):
            return Cluster(kubeconfig, "KUBECONFIG")
        raise NoClusterError(f"KUBECONFIG={kubeconfig} is set but its API server does not answer")
    script = testbed_script(root)
    if script is not None:
        result = subprocess.run([str(script), "up"], stdout=subprocess.PIPE, text=True, check=False)
        if result.returncode != 0:
            raise NoClusterError(
                f"the test bed failed to start ({script} up, exit "
                f"{result.returncode}); see its stderr above"
            )
        line = result.stdout.strip().splitlines()[-1]
        return Cluster(line.split("=", 1)[1].strip().strip("'\""), "testbed")
    if _docker_works() and shutil.which("kind"):
        kubeconfig = str(Path.home() / ".kube" / f"kind-{KIND_CLUSTER}")
        clusters = subprocess.run(
            ["kind", "get", "clusters"], capture_output=True, text=True, check=False
        ).stdout.split()
        if KIND_CLUSTER not in clusters:
            subprocess.run(
                [
                    "kind",
                    "create",
                    "cluster",
                    "--name",
                    KIND_CLUSTER,
                    "--kubeconfig",
                    kubeconfig,
                    "--wait",
                    "120s",
                ],
                check=True,
            )
        else:
            subprocess.run(
                [
                    "kind",
                    "export",
                    "kubeconfig",
                    "--name",
                    KIND_CLUSTER,
                    "--kubeconfig",
                    kubeconfig,
                ],
                check=True,
                capture_output=True,
            )
        return Cluster(kubeconfig, "kind")
    raise NoClusterError(
        "no Kubernetes API server: KUBECONFIG is unset, the test bed (../shared/testbed/testbed"
        " or $LBAAS_TESTBED) is missing, and kind+docker are not available"
    )


def down(root: Path | None = None) -> None:
    script = testbed_script(root)
    if script is not None:
        subprocess.run([str(script), "down"], check=False)
    elif shutil.which("kind"):
        subprocess.run(["kind", "delete", "cluster", "--name", KIND_CLUSTER], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["up", "down"])
    args = parser.parse_args(argv)
    if args.action == "down":
        down()
        return 0
    try:
        cluster = up()
    except NoClusterError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    print(f"cluster: using {cluster.source}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
