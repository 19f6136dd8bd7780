"""The ``lbaas-operator`` command: ``run`` the operator, or write the ``crds``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from lbaas.config import OperatorSettings
    from lbaas.runner import run

    settings = OperatorSettings.from_env()
    if args.namespace:
        settings.namespaces = list(args.namespace)
    if args.all_namespaces:
        settings.namespaces = []
    if args.metrics_port is not None:
        settings.metrics_port = args.metrics_port
    if args.health_port is not None:
        settings.health_port = args.health_port
    run(settings)
    return 0


def _crds(args: argparse.Namespace) -> int:
    from lbaas.api.crdgen import write_all

    for path in write_all(Path(args.out)):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbaas-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator in the foreground")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        help="watch only this namespace (repeatable); default: LBAAS_NAMESPACES or all",
    )
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces")
    run.add_argument("--metrics-port", type=int, help="Prometheus metrics port (0 = off)")
    run.add_argument("--health-port", type=int, help="liveness probe port (0 = off)")
    run.set_defaults(func=_run)

    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--out", default="crds", help="directory (default: crds)")
    crds.set_defaults(func=_crds)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
