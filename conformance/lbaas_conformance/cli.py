"""``lbaas-conformance``: run the suite against a driver and a device, or make the matrix.

::

    lbaas-conformance --driver NAME --device-config FILE [--profile P ...] [--strict]
                      [--report report.yaml] [--junit junit.xml] [-k EXPR] [-x] [-v]
    lbaas-conformance matrix report.yaml [report.yaml ...] > docs/support-matrix.md

The run is pytest on the packaged suite with the kit's own configuration (the directory it
is run from does not change it); the exit status is pytest's (0: every declared feature
passed; 1: a test failed; 4: bad usage, e.g. an unknown driver or an invalid device config).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest
import yaml

from lbaas_conformance import matrix, suite


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbaas-conformance",
        description="Run the lbaas driver conformance kit against a driver and one device.",
        epilog="`lbaas-conformance matrix REPORT...` prints the support matrix of reports.",
    )
    parser.add_argument("--driver", required=True, help="the driver's entry-point name")
    parser.add_argument("--device-config", required=True, type=Path, help="device-config YAML")
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        help="profiles to test (repeat or comma-separate); default: all",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on undeclared core features and declared untested ones",
    )
    parser.add_argument("--report", type=Path, help="write the YAML report here")
    parser.add_argument("--junit", type=Path, help="write JUnit XML here")
    parser.add_argument("-k", dest="keyword", help="only tests matching this expression")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def pytest_args(args: argparse.Namespace) -> list[str]:
    here = Path(suite.__file__).parent
    found = [
        str(here),
        "-c",
        str(here / "pytest.ini"),
        "--rootdir",
        str(here),
        "--lbaas-driver",
        args.driver,
        "--lbaas-device-config",
        str(args.device_config.resolve()),
        "-rfE",
    ]
    for profile in args.profile:
        found += ["--lbaas-profile", profile]
    if args.strict:
        found.append("--lbaas-strict")
    if args.report:
        found += ["--lbaas-report", str(args.report.resolve())]
    if args.junit:
        found += [f"--junitxml={args.junit.resolve()}", "-o", "junit_suite_name=lbaas-conformance"]
    if args.keyword:
        found += ["-k", args.keyword]
    if args.exitfirst:
        found.append("-x")
    found += ["-v"] * args.verbose
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        found += ["-p", "lbaas_conformance.plugin"]
    return found


def make_matrix(paths: list[str]) -> int:
    if not paths:
        print("usage: lbaas-conformance matrix REPORT.yaml [REPORT.yaml ...]", file=sys.stderr)
        return 2
    reports = []
    for path in paths:
        try:
            reports.append(yaml.safe_load(Path(path).read_text()))
        except (OSError, yaml.YAMLError) as exc:
            print(f"lbaas-conformance matrix: cannot read {path}: {exc}", file=sys.stderr)
            return 2
    sys.stdout.write(matrix.render(reports))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["matrix"]:
        return make_matrix(argv[1:])
    args = run_parser().parse_args(argv)
    return int(pytest.main(pytest_args(args)))


if __name__ == "__main__":
    sys.exit(main())
