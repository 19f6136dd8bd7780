"""``kubectl lbaas``: status, describe, why and top (see lbaas.plugin and docs/kubectl-plugin.md).

Exit codes: 0 shown; 1 the object does not exist (or cannot be read); 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from lbaas import __version__
from lbaas.plugin import top as topmod
from lbaas.plugin import tree as treemod
from lbaas.plugin import why as whymod
from lbaas.plugin.kube import KINDS, PLURALS, NotFound, Reader, load
from lbaas.plugin.output import emit, fields, table

OPERATOR_NAMESPACE = "lbaas-system"
METRICS_SERVICE = "lbaas-operator-metrics"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kubectl lbaas", description="Look at lbaas-operator's load balancers."
    )
    top.add_argument("--version", action="version", version=f"kubectl-lbaas {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    common.add_argument("--context", help="kubeconfig context")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
    common.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    common.add_argument(
        "--operator-namespace",
        default=OPERATOR_NAMESPACE,
        help="where the operator runs: its Leases, Device Events, metrics pods"
        f" (default {OPERATOR_NAMESPACE})",
    )
    sub = top.add_subparsers(dest="command", required=True)
    for name, about in (
        ("status", "a VIP's tree: one line per object"),
        ("describe", "a VIP's tree in full: messages, members, device, agent, last Events"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=about, description=about)
        cmd.add_argument("vip", help="VIP name")
        cmd.add_argument("--events", type=int, default=10, help="last Events shown (10)")
    why = sub.add_parser(
        "why",
        parents=[common],
        help="the reason chain of a Pending or Error object",
        description="KIND/NAME: vip, pool, member, healthmonitor (hm) or device",
    )
    why.add_argument("object", help="KIND/NAME, e.g. member/web-1 or device/lb-1")
    tp = sub.add_parser("top", parents=[common], help="per-VIP traffic from the agents")
    tp.add_argument("vip", nargs="?", help="one VIP (default: all in the namespace)")
    tp.add_argument("-A", "--all-namespaces", action="store_true")
    tp.add_argument(
        "--metrics-url",
        action="append",
        default=[],
        help="read this /metrics URL instead of the operator's pods (repeatable)",
    )
    tp.add_argument(
        "--metrics-service",
        default=METRICS_SERVICE,
        help=f"the operator's metrics Service (default {METRICS_SERVICE})",
    )
    tp.add_argument(
        "--interval",
        type=float,
        default=6.0,
        help="longest wait between the two reads, seconds (6)",
    )
    return top


def status_text(tree: dict[str, Any], *, full: bool) -> str:
    vip = tree["vip"]
    rows: list[list[Any]] = [
        [
            f"VIP/{vip['name']}",
            vip["phase"],
            vip.get("operatingStatus"),
            vip["reason"],
            f"{vip['address']}:{vip['port']} {vip['protocol']}",
        ]
    ]
    for pool in tree["pools"]:
        rows.append(
            [
                f"  Pool/{pool['name']}",
                pool["phase"],
                pool.get("operatingStatus"),
                pool["reason"],
                pool["method"],
            ]
        )
        for hm in pool["healthMonitors"]:
            rows.append([f"    HealthMonitor/{hm['name']}", hm["phase"], "", hm["reason"], ""])
        for m in pool["members"]:
            rows.append(
                [
                    f"    Member/{m['name']}",
                    m["phase"],
                    m.get("operatingStatus"),
                    m["reason"],
                    f"{m['address']} w={m['weight']}",
                ]
            )
    for policy in tree.get("policies", []):
        detail = f"priority {policy['priority']} {policy['action']}"
        rows.append([f"  L7Policy/{policy['name']}", policy["phase"], "", policy["reason"], detail])
    device = tree["device"]
    if device is None:
        rows.append(["Device", "-", "", "", "not bound to a device"])
    elif not device["found"]:
        rows.append([f"Device/{device['name']}", "missing", "", "", ""])
    else:
        lease = device.get("lease") or {}
        owner = f"agent {device['agent'] or '-'}, lease holder {lease.get('holder') or '-'}"
        rows.append([f"Device/{device['name']}", device["phase"], "", device["reason"], owner])
    text = table(["OBJECT", "PHASE", "OPERATING", "REASON", "DETAIL"], rows)
    text += f"\n\nmembers serving: {treemod.health(tree)}"
    if full:
        text += "\n\n" + _messages(tree) + "\n\n" + _events(tree)
    for note in tree.get("notes", []):
        text += f"\nnote: {note}"
    return text


def _messages(tree: dict[str, Any]) -> str:
    objects = (
        [tree["vip"]]
        + [o for p in tree["pools"] for o in [p, *p["healthMonitors"], *p["members"]]]
        + list(tree.get("policies", []))
    )
    if tree["device"] and tree["device"].get("found"):
        objects.append(tree["device"])
    lines = ["Messages:"]
    for o in objects:
        if o.get("message") or o.get("observedGeneration"):
            lines.append(f"  {o['kind']}/{o['name']}: {o.get('message') or ''}".rstrip())
            if o.get("observedGeneration"):
                lines.append(f"    observedGeneration {o['observedGeneration']}")
    device = tree["device"] or {}
    if device.get("lease"):
        lease = device["lease"]
        lines.append(
            f"  Lease/{lease['name']}: holder {lease['holder'] or '(none)'},"
            f" renewed {lease['renewTime'] or '-'}, transitions {lease['transitions']}"
        )
    return "\n".join(lines) if len(lines) > 1 else "Messages: none"


def _events(tree: dict[str, Any]) -> str:
    if not tree["events"]:
        return "Events: none"
    rows = [[e["time"], e["type"], e["reason"], e["object"], e["message"]] for e in tree["events"]]
    return "Events:\n" + table(["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"], rows, "  ")


def why_text(links: list[dict[str, Any]]) -> str:
    lines = [f"why: {whymod.verdict(links)}", ""]
    for depth, item in enumerate(links):
        pad = "  " * depth
        head = f"{pad}{item['kind']}/{item['name']}"
        if item.get("missing"):
            lines.append(f"{head}: missing. {item.get('message', '')}".rstrip())
            continue
        state = " ".join(x for x in (item.get("phase"), item.get("reason")) if x)
        lines.append(f"{head}: {state or '(no status yet)'}")
        shown = {
            k: v
            for k, v in item.items()
            if k not in ("kind", "name", "phase", "reason", "exclusions", "devices")
        }
        if fields(shown):
            lines.append(fields(shown, pad + "  "))
        for exclusion in item.get("exclusions", []):
            lines.append(f"{pad}  - {exclusion}")
        if "devices" in item and not item["devices"]:
            lines.append(f"{pad}  no Device exists, or none you may read")
        elif item.get("devices"):
            rows = [
                [
                    d["name"],
                    d["phase"],
                    d["reason"],
                    d["schedulable"],
                    d["free"],
                    d["allowedNamespaces"],
                ]
                for d in item["devices"]
            ]
            lines.append(
                table(
                    ["DEVICE", "PHASE", "REASON", "SCHEDULABLE", "FREE", "NAMESPACES"],
                    rows,
                    pad + "  ",
                )
            )
    return "\n".join(lines)


def run_top(reader: Reader, args: argparse.Namespace, namespace: str | None) -> tuple[Any, str]:
    vips = reader.objects("vips", namespace)
    if args.vip:
        vips = [v for v in vips if v["metadata"]["name"] == args.vip]
        if not vips:
            raise NotFound(f"VIP {args.vip} not found in namespace {namespace}")
    health = topmod.members_up(
        reader.objects("members", namespace), reader.objects("pools", namespace)
    )
    if args.metrics_url:
        endpoints = [topmod.Endpoint(url, url=url) for url in args.metrics_url]
    else:
        endpoints = topmod.discover(reader, args.operator_namespace, args.metrics_service)
    figures, problems = topmod.measure(reader, endpoints, interval=args.interval)
    if not endpoints:
        problems.append(
            f"no metrics endpoint found: Service {args.operator_namespace}/"
            f"{args.metrics_service} has no endpoints (--metrics-service,"
            " --metrics-url)"
        )
    rows, data = [], []
    for vip in sorted(vips, key=lambda v: (v["metadata"]["namespace"], v["metadata"]["name"])):
        key = (vip["metadata"]["namespace"], vip["metadata"]["name"])
        status = vip.get("status") or {}
        traffic = figures.get(key, {})
        entry = {
            "namespace": key[0],
            "name": key[1],
            "device": status.get("device") or "",
            "phase": status.get("phase") or "",
            "operatingStatus": status.get("operatingStatus") or "",
            "members": health.get(key, "0/0"),
            "traffic": traffic or None,
        }
        data.append(entry)
        rows.append(
            [
                *key,
                entry["device"],
                entry["phase"],
                entry["operatingStatus"],
                entry["members"],
                *_traffic_cells(traffic),
            ]
        )
    if endpoints and not any(e["traffic"] for e in data) and len(problems) < len(endpoints):
        problems.append(topmod.NO_TRAFFIC)
    headers = [
        "NAMESPACE",
        "VIP",
        "DEVICE",
        "PHASE",
        "OPERATING",
        "MEMBERS",
        "REQ/S",
        "5XX/S",
        "ERR/S",
        "IN",
        "OUT",
        "SESSIONS",
        "RT",
    ]
    text = table(headers, rows) + "".join(f"\n{p}" for p in problems)
    return {"vips": data, "problems": problems}, text


def _traffic_cells(t: dict[str, float | None]) -> list[str]:
    def num(v: float | None, unit: str = "") -> str:
        return "" if v is None else f"{v:.1f}{unit}"

    def size(v: float | None) -> str:
        if v is None:
            return ""
        for unit in ("B/s", "KB/s", "MB/s", "GB/s"):
            if v < 1024 or unit == "GB/s":
                return f"{v:.0f}{unit}" if unit == "B/s" else f"{v:.1f}{unit}"
            v /= 1024
        return ""

    rt = t.get("rt")
    return [
        num(t.get("requests")),
        num(t.get("5xx")),
        num(t.get("errors")),
        size(t.get("in")),
        size(t.get("out")),
        "" if t.get("sessions") is None else f"{t['sessions']:.0f}",
        "" if rt is None else f"{rt * 1000:.0f}ms",
    ]


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = parser().parse_args(argv)
    try:
        client, default_ns = load(args.kubeconfig, args.context)
    except Exception as exc:  # no kubeconfig, bad context
        print(f"error: cannot load the kubeconfig: {exc}", file=sys.stderr)
        return 2
    reader = Reader(client)
    namespace = args.namespace or default_ns
    try:
        if args.command in ("status", "describe"):
            data = treemod.gather(
                reader,
                namespace,
                args.vip,
                operator_namespace=args.operator_namespace,
                events=args.events,
            )
            text = status_text(data, full=args.command == "describe")
        elif args.command == "why":
            kind, sep, name = args.object.partition("/")
            plural = PLURALS.get(kind.lower())
            if not sep or not name or plural is None:
                print(
                    f"error: KIND/NAME expected, KIND one of {sorted(set(KINDS))}: {args.object!r}",
                    file=sys.stderr,
                )
                return 2
            links = whymod.chain(
                reader, plural, name, namespace, operator_namespace=args.operator_namespace
            )
            if links and links[0].get("missing") and len(links) == 1:
                raise NotFound(f"{links[0]['kind']} {name} not found")
            data, text = {"verdict": whymod.verdict(links), "chain": links}, why_text(links)
        else:
            scope = None if args.all_namespaces else namespace
            data, text = run_top(reader, args, scope)
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        for note in reader.notes:
            print(f"note: {note}", file=sys.stderr)
        return 1
    emit(data, args.output, text, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
