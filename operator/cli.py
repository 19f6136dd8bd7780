"""The ``lbaas-operator`` command: run a role (``run``, ``controller``, ``agent``) or write CRDs.

- ``run``: controller and agent in one process (the quick start, small installs).
- ``controller``: binds VIPs to Devices and keeps the inventory; one leads at a time.
- ``agent``: owns some Devices (a fair share, through Leases) and drives them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import kopf

from lbaas import metrics
from lbaas.api.crdgen import write_all
from lbaas.config import OperatorSettings, parse_labels
from lbaas.handlers import build_registry
from lbaas.runtime import Role


def settings_from(args: argparse.Namespace) -> OperatorSettings:
    """``LBAAS_*`` variables, overridden by the command line."""
    settings = OperatorSettings.from_env()
    updates: dict[str, object] = {}
    if getattr(args, "namespace", None):
        updates["namespaces"] = list(args.namespace)
    if getattr(args, "all_namespaces", False):
        updates["namespaces"] = []
    for name in ("metrics_port", "health_port", "id"):
        value = getattr(args, name, None)
        if value is not None:
            updates["agent_id" if name == "id" else name] = value
    if getattr(args, "labels", None) is not None:
        updates["agent_labels"] = parse_labels(args.labels)
    return OperatorSettings.model_validate({**settings.model_dump(), **updates})


def run_role(role: Role, settings: OperatorSettings) -> None:
    kopf.configure(
        verbose=settings.log_level.upper() == "DEBUG",
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    logging.getLogger().setLevel(settings.log_level.upper())
    metrics.start_server(settings.metrics_port)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    kopf.run(
        registry=build_registry(settings, role),
        standalone=True,
        clusterwide=True,
        liveness_endpoint=liveness,
    )


def _role(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"lbaas-operator: invalid settings: {exc}", file=sys.stderr)
        return 2
    run_role(args.command, settings)
    return 0


def _crds(args: argparse.Namespace) -> int:
    for path in write_all(Path(args.out)):
        print(path)
    return 0


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        help="watch only this namespace; default: LBAAS_NAMESPACES or all",
    )
    parser.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces")
    parser.add_argument("--metrics-port", type=int, help="Prometheus metrics port (0 = off)")
    parser.add_argument("--health-port", type=int, help="liveness probe port (0 = off)")
    parser.add_argument(
        "--id", help="identity in Leases (LBAAS_AGENT_ID; default: the host name, a pod's name)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lbaas-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for role, text in (
        ("run", "controller and agent in one process, in the foreground"),
        ("controller", "the placement side: one leader binds VIPs to Devices"),
        ("agent", "owns a fair share of the Devices and drives them"),
    ):
        parser_role = sub.add_parser(role, help=text)
        _add_common(parser_role)
        if role in ("run", "agent"):
            parser_role.add_argument(
                "--labels",
                help="agent labels k=v,... matched by Devices' agentSelector (LBAAS_AGENT_LABELS)",
            )
        parser_role.set_defaults(func=_role)
    crds = sub.add_parser("crds", help="write the CRDs generated from the API models")
    crds.add_argument("--out", default="crds", help="directory (default: crds)")
    crds.set_defaults(func=_crds)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
