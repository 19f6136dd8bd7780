"""The README is a front door and the manual in docs/ holds together.

Every markdown link in README.md, docs/*.md and the chart README that points inside the
repository must resolve: the file or folder exists and, for a link to a heading
(``page.md#anchor``), the page has that heading (GitHub's anchor rules). The README stays
short and starts with the two commands a fresh machine needs, and those are real make
targets. The manual names every field of the CRDs and every reason the operator writes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from lbaas.drivers.errors import Reason

DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md"), ROOT / "charts/lbaas-operator/README.md"])
MAX_README_LINES = 160
# Pages another branch writes: a link to one may dangle until that branch is merged (then
# this set should be emptied). Any other missing target fails.
WRITTEN_ELSEWHERE = {DOCS / "drivers.md"}

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """The text without code blocks and inline code (no links live there)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(page: Path) -> Iterator[str]:
    yield from LINK.findall(prose(page.read_text()))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    for _, title in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(title)
        name, n = base, 0
        while name in found:
            n += 1
            name = f"{base}-{n}"
        found.add(name)
    return found


def test_pages_exist() -> None:
    names = {p.name for p in DOCS.glob("*.md")}
    wanted = {"api.md", "status-reasons.md", "multi-tenancy.md", "services.md"}
    assert wanted | {"operations.md", "development.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            if path not in WRITTEN_ELSEWHERE:
                broken.append(f"{target}: no such file")
            continue
        if anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_link_checker_catches_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "# T\n\n[a](missing.md) `[b](code.md)`\n\n  ```\n  [c](fenced.md)\n  ```\n[d](#t)\n"
    )
    assert list(links(page)) == ["missing.md", "#t"]
    assert anchors(page) == {"t"}
    assert slug("What `DriftRepaired` names (HAProxy)") == "what-driftrepaired-names-haproxy"


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"
    assert lines[0].startswith("# ")
    first = [line.strip() for line in lines[1:] if line.strip()][:2]
    assert first[0].startswith("make run"), first
    assert first[1].startswith("make test"), first
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert {"run", "test", "down"} <= targets


def _crd_spec_fields() -> Iterator[tuple[str, str]]:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for name in schema["properties"]["spec"]["properties"]:
            yield crd["spec"]["names"]["kind"], name


def test_api_doc_names_every_spec_field() -> None:
    api = (DOCS / "api.md").read_text()
    missing = [f"{kind}.spec.{name}" for kind, name in _crd_spec_fields() if f"`{name}" not in api]
    assert not missing, f"docs/api.md does not document {missing}"


REASON_CALLS = {"_set_state", "failed", "_failed", "say", "Cond", "_doc", "unscheduled", "Drift"}
CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$")  # CamelCase, HAProxyNotFound too


def reasons_in(tree: ast.Module) -> Iterator[str]:
    """CamelCase constants the code uses as reasons: ``reason=`` arguments, arguments of the
    status and Event helpers, values assigned to ``*reason*`` names, and module constants."""
    values: list[ast.AST] = []
    for node in tree.body:  # NO_AGENT = "NoAgent"
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)
        ):
            values.append(node.value)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            values += [k.value for k in node.keywords if k.arg == "reason"]
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in REASON_CALLS:
                values += node.args
        elif isinstance(node, ast.Assign):
            targets = [n for t in node.targets for n in ast.walk(t)]
            names = [getattr(n, "id", getattr(n, "attr", "")) for n in targets]
            if any("reason" in str(n).lower() for n in names):
                values.append(node.value)
    for value in values:
        for leaf in ast.walk(value):
            if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str):
                yield from CAMEL.findall(leaf.value)


def test_every_reason_is_documented() -> None:
    manual = " ".join(p.read_text() for p in DOCS.glob("*.md"))
    found = {str(r): "lbaas.drivers.errors.Reason" for r in Reason}
    for path in sorted((ROOT / "operator").rglob("*.py")):
        for reason in reasons_in(ast.parse(path.read_text())):
            found.setdefault(reason, str(path.relative_to(ROOT)))
    assert {"NoEligibleDevice", "DriftRepaired", "NoAgent", "InvalidAnnotation"} <= set(found)
    missing = {r: where for r, where in found.items() if not re.search(rf"\b{r}\b", manual)}
    assert not missing, f"reasons no page of docs/ names: {missing}"
