"""Every Kubernetes API call the operator makes, derived from its code (issue 10).

Read statically from the package (``operator/``), so that nothing the code can do is missed:

- **informers** (list + watch): ``lbaas.runtime.informers_for`` evaluated for each role and
  for cluster-wide and namespaced settings (it only builds ``Informer`` objects);
- **writes through** ``Kube``: every call of a ``Kube`` method in the package, with its
  resource constant (``create(EVENTS, ...)``, ``merge_patch(SERVICES, ..., sub="status")``)
  and the verb the method sends (``KUBE_VERBS``; a new ``Kube`` method fails until mapped).
  ``Reporter.status``/``finalizer`` take the resource from the object they are given: those
  resolve through every place that calls them, with the kinds of objects passed there (the
  argument's name: ``vip``, ``device``; else ``SITE_KINDS``, which a new ambiguous call site
  must join);
- **Leases**: ``LeaseStore``'s ``CoordinationV1Api`` calls (read → get, list, create,
  replace → update), per ``LeaseStore`` method, wherever a role uses that method;
- **Secrets**: ``Kube.read_secret`` (get, in the namespace a Device's credentialsSecretRef
  names).

A call site belongs to the roles whose objects reach its class: the roots are the classes
``lbaas.runtime.Process.start`` builds under ``if self.role in (...)``, the edges every
construction of another class of the package. ``tests/integration/test_rbac_dynamic.py``
records what two real operator processes (controller, agent) send and checks it against this.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbaas import leases
from lbaas.config import OperatorSettings
from lbaas.kube import resources
from lbaas.kube.client import Kube
from lbaas.kube.resources import Resource

PACKAGE = Path(inspect.getfile(leases)).resolve().parent  # lbaas/leases.py: the package dir
ROLES = ("controller", "agent")
KUBE_VERBS = {
    "apply_status": ("patch", "status"),
    "apply_finalizer": ("patch", ""),
    "apply": ("patch", ""),
    "merge_patch": ("patch", None),  # None: the ``sub`` keyword says
    "create": ("create", ""),
    "delete": ("delete", ""),
    "read_secret": ("get", ""),
    "list_page": ("list", ""),
    "watch_lines": ("watch", ""),
}
"""What each public ``Kube`` method sends: (verb, subresource)."""
KUBE_INTERNAL = {"request", "call", "close"}
LEASE_VERBS = {"read": "get", "list": "list", "create": "create", "replace": "update"}
TREE = ("VIP", "Pool", "Member", "HealthMonitor", "L7Policy")
CHILDREN = ("Pool", "Member", "HealthMonitor", "L7Policy")
REPORTER_WRITES = ("status", "finalizer", "warn", "info", "event", "service_load_balancer")
SITE_KINDS: dict[tuple[str, str], tuple[str, ...]] = {
    # (function, reporter method) → kinds of the objects it passes, where the name says nothing
    ("lbaas.agents.agent.Agent._take_over", "info"): ("Device",),
    ("lbaas.placement.binder.Binder._write_binding", "status"): ("VIP",),
    ("lbaas.placement.binder.Binder._write_binding", "warn"): ("VIP",),
    ("lbaas.placement.binder.Binder._write_binding", "info"): ("VIP",),
    ("lbaas.placement.binder.Binder._failed", "status"): TREE,  # report.unscheduled
    ("lbaas.placement.binder.Binder._failed", "warn"): TREE,  # the VIP and its children
    ("lbaas.placement.ownerless.Ownerless.report", "status"): TREE,
    ("lbaas.trees.orphans.Orphans._check", "status"): CHILDREN,
    ("lbaas.trees.orphans.Orphans._give_up", "status"): CHILDREN,
    ("lbaas.trees.orphans.Orphans._give_up", "warn"): CHILDREN,
    ("lbaas.trees.writer.TreeWriter.write.one", "status"): TREE,
    ("lbaas.trees.writer.TreeWriter.write.one", "warn"): TREE,
    ("lbaas.services.controller.ServiceController.reconcile", "finalizer"): ("Service",),
    ("lbaas.services.controller.ServiceController._remove", "finalizer"): ("Service",),
}
_NAMED = [(re.compile(r"^(dict\()?(vip|tree\.vip\.snap)\)?$"), ("VIP",)),
          (re.compile(r"^(dict\()?device\)?$"), ("Device",)),
          (re.compile(r"^(dict\()?service\)?$"), ("Service",)),
          (re.compile(r"^latest$"), ("Service",))]  # fmt: skip  # lbaas.services: the newest


@dataclass(frozen=True, order=True)
class Call:
    """One kind of request: ``where`` is cluster (cluster-scoped resource), watched (the
    namespaces the operator watches), release (its own namespace: ``LBAAS_LEASE_NAMESPACE``)
    or secrets (where a Device's credentialsSecretRef points)."""

    role: str
    group: str
    resource: str
    verb: str
    where: str
    names: tuple[str, ...] = ()
    site: str = field(default="", compare=False)


class Unresolved(AssertionError):
    pass


# ---- the package's source ------------------------------------------------------------------


@dataclass
class Site:
    module: str
    function: str  # qualified: Class.method(.inner)
    node: ast.AST
    cls: str | None


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] in ("drivers", "api"):  # drivers and models make no Kubernetes calls
            continue
        name = ".".join(("lbaas", *parts)).removesuffix(".__init__")
        yield name, ast.parse(path.read_text())


def _walk(module: str, tree: ast.Module) -> Iterator[Site]:
    """Every node with the function and class it sits in."""

    def visit(node: ast.AST, stack: list[str], cls: str | None) -> Iterator[Site]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from visit(child, [*stack, child.name], child.name)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, [*stack, child.name], cls)
            else:
                yield Site(module, ".".join(stack), child, cls)
                yield from visit(child, stack, cls)

    yield from visit(tree, [], None)


def _classes() -> dict[str, set[str]]:
    """Class name → names of the package's classes it constructs or inherits from (a base
    class's methods run as the subclass's)."""
    modules = list(_modules())
    names = {n.name for _, t in modules for n in ast.walk(t) if isinstance(n, ast.ClassDef)}
    built: dict[str, set[str]] = {name: set() for name in names}
    for _, tree in modules:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                built[node.name] |= {b.id for b in node.bases if isinstance(b, ast.Name)} & names
    for module, tree in modules:
        for site in _walk(module, tree):
            if site.cls and isinstance(site.node, ast.Call):
                func = site.node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called in names and called != site.cls:
                    built[site.cls].add(called)
    return built


def role_roots() -> dict[str, set[str]]:
    """The classes ``Process.start`` builds for each role (``run`` is both)."""
    from lbaas import runtime

    source = textwrap.dedent(inspect.getsource(runtime.Process.start))
    roots: dict[str, set[str]] = {role: set() for role in ROLES}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and "self.role in" in ast.unparse(node.test):
            roles = {e.value for e in node.test.comparators[0].elts} - {"run"}  # type: ignore[attr-defined]
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                    for role in roles:
                        roots[role].add(call.func.id)
    return roots


def reach() -> dict[str, set[str]]:
    """Class (or module function, as ``module.function``) → the roles whose objects reach
    it. A module function belongs to the roles of the classes that call it."""
    graph = _classes()
    out: dict[str, set[str]] = {}
    for role, roots in role_roots().items():
        todo = [r for r in roots if r in graph]
        while todo:
            cls = todo.pop()
            if role in out.setdefault(cls, set()):
                continue
            out[cls].add(role)
            todo += graph[cls]
    modules = list(_modules())
    functions = {
        (module, node.name)
        for module, tree in modules
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    names = {name for _, name in functions}
    for module, tree in modules:
        for site in _walk(module, tree):
            node = site.node
            called = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if site.cls and called and node.func.id in names:  # type: ignore[attr-defined]
                for owner, name in functions:
                    if name == node.func.id:  # type: ignore[attr-defined]
                        key = f"{owner}.{name}"
                        out.setdefault(key, set()).update(out.get(site.cls, set()))
    return out


# ---- the calls -------------------------------------------------------------------------------


def _roles(roles_of: dict[str, set[str]], site: Site) -> set[str]:
    """The roles of a call site; a site no role reaches is a finding, not a silent skip."""
    top = site.function.split(".")[0]
    roles = roles_of.get(site.cls or f"{site.module}.{top}", set())
    if not roles:
        raise Unresolved(
            f"{site.module}.{site.function}: an API call in code no role reaches"
            " (a module function, or a class built outside the roles' object graph)"
        )
    return roles


def _resource(name: str) -> Resource:
    found = getattr(resources, name, None)
    if not isinstance(found, Resource):
        raise Unresolved(f"{name} is not a resource constant of lbaas.kube.resources")
    return found


RESOURCE_ARGUMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    # (function, argument) → the resource constants it can be, where it is no constant
    ("lbaas.services.objects.GeneratedObjects.apply", "resource"): (
        "VIPS", "POOLS", "MEMBERS", "MONITORS"),
    ("lbaas.services.objects.GeneratedObjects._delete_one", "BY_KIND[obj['kind']].resource"): (
        "VIPS", "POOLS", "MEMBERS", "MONITORS"),
}  # fmt: skip


def _resources_of(module: str, site: Site, argument: ast.AST) -> list[Resource]:
    """The resources a Kube call's first argument names: a constant of lbaas.kube.resources,
    else what ``RESOURCE_ARGUMENTS`` says for that call site."""
    if isinstance(argument, ast.Name) and isinstance(
        getattr(resources, argument.id, None), Resource
    ):
        return [_resource(argument.id)]
    key = (f"{module}.{site.function}", ast.unparse(argument))
    if key not in RESOURCE_ARGUMENTS:
        raise Unresolved(f"{key[0]}: kube call on {key[1]}: add it to apicalls.RESOURCE_ARGUMENTS")
    return [_resource(name) for name in RESOURCE_ARGUMENTS[key]]


def _where(resource: Resource, namespace: str | None, settings: OperatorSettings) -> str:
    if not resource.namespaced:
        return "cluster"
    return "release" if namespace == settings.lease_namespace else "watched"


def informer_calls(settings: OperatorSettings) -> set[Call]:
    from lbaas import runtime

    kube: Any = object.__new__(Kube)  # informers_for only hands it to the Informers
    out = set()
    for role in ROLES:
        for resource, informer in runtime.informers_for(kube, settings, role).items():  # type: ignore[arg-type]
            where = _where(resource, informer.namespace, settings)
            for verb in ("list", "watch"):
                site = f"lbaas.runtime.informers_for({role})"
                out.add(Call(role, resource.group, resource.plural, verb, where, (), site))
    return out


def _kinds(site: Site, method: str, argument: ast.AST | None) -> tuple[str, ...]:
    key = (f"{site.module}.{site.function}", method)
    if key in SITE_KINDS:
        return SITE_KINDS[key]
    text = ast.unparse(argument) if argument is not None else ""
    for pattern, kinds in _NAMED:
        if pattern.match(text):
            return kinds
    raise Unresolved(
        f"{key[0]}: reporter.{method}({text}): which kinds? add it to apicalls.SITE_KINDS"
    )


def reporter_uses() -> list[tuple[Site, str, tuple[str, ...]]]:
    """(site, Reporter method, kinds) for every use of a Reporter write outside reporter.py."""
    uses = []
    for module, tree in _modules():
        if module == "lbaas.reporter":
            continue
        calls = {
            id(site.node.func): site.node
            for site in _walk(module, tree)
            if isinstance(site.node, ast.Call)
        }
        for site in _walk(module, tree):
            node = site.node
            if not (isinstance(node, ast.Attribute) and node.attr in REPORTER_WRITES):
                continue
            if not ast.unparse(node.value).endswith("reporter"):
                continue
            call = calls.get(id(node))
            argument = call.args[0] if call is not None and call.args else None
            uses.append((site, node.attr, _kinds(site, node.attr, argument)))
    return uses


def _reporter_kube_calls() -> dict[str, list[tuple[str, str, Any]]]:
    """Reporter method → its Kube calls: (Kube method, resource constant or "" = the
    object's own kind, ``sub`` keyword). ``warn``/``info`` reach ``_post`` via ``event``."""
    from lbaas import reporter

    out: dict[str, list[tuple[str, str, Any]]] = {}
    tree = ast.parse(textwrap.dedent(inspect.getsource(reporter.Reporter)))
    for method in (
        n for n in ast.walk(tree) if isinstance(n, ast.AsyncFunctionDef | ast.FunctionDef)
    ):
        for node in ast.walk(method):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if ast.unparse(node.func.value) != "self.kube":
                continue
            first = node.args[0] if node.args else None
            constant = first.id if isinstance(first, ast.Name) and first.id.isupper() else ""
            sub = next((k.value for k in node.keywords if k.arg == "sub"), None)
            sub_value = sub.value if isinstance(sub, ast.Constant) else None
            out.setdefault(method.name, []).append((node.func.attr, constant, sub_value))
    out["event"] = out.get("_post", [])
    out["warn"] = out["info"] = out["event"]
    return out


def kube_calls(settings: OperatorSettings) -> set[Call]:
    """Writes and reads through Kube: the Reporter's on behalf of its callers, the rest
    where they are made."""
    public = {n for n, _ in inspect.getmembers(Kube, inspect.isfunction) if not n.startswith("_")}
    unmapped = public - set(KUBE_VERBS) - KUBE_INTERNAL
    if unmapped:
        raise Unresolved(f"Kube methods without a verb in apicalls.KUBE_VERBS: {unmapped}")
    roles_of = reach()
    out: set[Call] = set()
    by_method = _reporter_kube_calls()
    for site, method, kinds in reporter_uses():
        roles = _roles(roles_of, site)
        where_site = f"{site.module}.{site.function}"
        for kube_method, constant, sub in by_method.get(method, []):
            verb, default_sub = KUBE_VERBS[kube_method]
            subresource = sub if default_sub is None else default_sub
            targets = [_resource(constant)] if constant and constant != "EVENTS" else []
            if not constant:
                targets = [resources.BY_KIND[k] for k in kinds]
            for role in roles:
                if constant == "EVENTS":  # about each object: its namespace, Devices' release
                    for kind in kinds:
                        about = resources.BY_KIND[kind]
                        where = "watched" if about.namespaced else "release"
                        out.add(Call(role, "", "events", "create", where, (), where_site))
                for r in targets:
                    plural = f"{r.plural}/{subresource}" if subresource else r.plural
                    where = "cluster" if not r.namespaced else "watched"
                    out.add(Call(role, r.group, plural, verb, where, (), where_site))
    for module, tree in _modules():
        if module in ("lbaas.reporter", "lbaas.kube.client", "lbaas.kube.informer"):
            continue
        for site in _walk(module, tree):
            node = site.node
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not ast.unparse(node.func.value).endswith("kube") or node.func.attr in ("close",):
                continue
            method = node.func.attr
            if method not in KUBE_VERBS:
                raise Unresolved(f"{module}.{site.function}: kube.{method}: not a mapped call")
            verb, _ = KUBE_VERBS[method]
            for role in _roles(roles_of, site):
                if method == "read_secret":
                    where_site = f"{module}.{site.function}"
                    out.add(Call(role, "", "secrets", verb, "secrets", (), where_site))
                    continue
                verbs = (verb, "create") if method == "apply" else (verb,)
                at = f"{module}.{site.function}"
                for r in _resources_of(module, site, node.args[0]):
                    where = "cluster" if not r.namespaced else "watched"
                    out.update(Call(role, r.group, r.plural, v, where, (), at) for v in verbs)
    return out


def _lease_store_verbs() -> dict[str, set[str]]:
    """LeaseStore method → the verbs of the CoordinationV1Api calls it makes (itself or
    through its other methods: ``release`` updates)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(leases.LeaseStore)))
    direct: dict[str, set[str]] = {}
    uses: dict[str, set[str]] = {}
    for method in (n for n in tree.body[0].body if isinstance(n, ast.FunctionDef)):  # type: ignore[attr-defined]
        for node in ast.walk(method):
            if isinstance(node, ast.Attribute) and node.attr.endswith("_namespaced_lease"):
                direct.setdefault(method.name, set()).add(LEASE_VERBS[node.attr.split("_")[0]])
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self":
                uses.setdefault(method.name, set()).add(node.attr)
    verbs = {m: set(v) for m, v in direct.items()}
    for method, called in uses.items():
        for other in called:
            verbs.setdefault(method, set()).update(direct.get(other, set()))
    return verbs


def lease_calls() -> set[Call]:
    """Leases in the release namespace, by the LeaseStore methods each role uses. The leader
    elector only ever names its own Lease (``LEADER_LEASE``): get and update are restricted
    to it; create cannot be (RBAC has no names on create)."""
    verbs = _lease_store_verbs()
    roles_of = reach()
    out: set[Call] = set()
    for module, tree in _modules():
        for site in _walk(module, tree):
            node = site.node
            if not (isinstance(node, ast.Attribute) and node.attr in verbs):
                continue
            if not ast.unparse(node.value).endswith("store"):
                continue
            for role in _roles(roles_of, site):
                for verb in verbs[node.attr]:
                    names = (
                        (leases.LEADER_LEASE,)
                        if site.cls == "LeaderElector" and verb != "create"
                        else ()
                    )
                    out.add(
                        Call(
                            role,
                            "coordination.k8s.io",
                            "leases",
                            verb,
                            "release",
                            names,
                            f"{module}.{site.function}",
                        )
                    )
    return out


def needed(settings: OperatorSettings) -> set[Call]:
    """Everything the operator's roles send, with these settings (``services=False``: the
    Services controller, lbaas.services, does not run)."""
    calls = informer_calls(settings) | kube_calls(settings) | lease_calls()
    if not settings.services:
        calls = {c for c in calls if not c.site.startswith("lbaas.services.")}
    return calls
