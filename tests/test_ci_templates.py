"""The CI templates in examples/ci/ run: every ``run:`` step of the GitHub Actions workflow
and every ``script:`` line of the GitLab job, in order, in a temporary checkout holding
the reference manifest where the templates expect the user's, with the templates' own
variables, installing this checkout's wheel. A template that stops working (a renamed
flag, a report file moved) fails here, not in a user's CI.

The runner understands only what the templates use; any other syntax fails the test with
its name, so a template cannot drift into something this test silently skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
GITHUB = REPO / "examples" / "ci" / "github-actions.yml"
GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"
REPORT_DIR = "gossipcert-report"
# The variables both templates expose, which the test sets.
KNOBS = ("GOSSIPCERT_VERSION", "GOSSIPCERT_SPEC", "GOSSIPCERT_IMPL", "GOSSIPCERT_ARGS",
         "GOSSIPCERT_ALLOW_INCOMPLETE")
QUICK_ARGS = "--scenario default --nodes 3 --seed 1"
# Actions stood in for by the test: checkout (the temp checkout), setup-python (this
# Python 3.11, in a venv), and the two that keep files, checked for the files they keep.
ACTIONS = {"actions/checkout", "actions/setup-python", "actions/upload-artifact",
           "mikepenz/action-junit-report"}
STEP_KEYS = {"name", "id", "if", "env", "run", "uses", "with", "shell"}
GITLAB_JOB_KEYS = {"image", "script", "before_script", "after_script", "variables",
                   "artifacts", "allow_failure", "stage", "tags"}
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class Unsupported(Exception):
    """A template uses syntax this runner does not run."""


@dataclass
class Step:
    name: str
    id: str | None = None
    script: str | None = None
    uses: str | None = None
    with_: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    always: bool = False


def junit_file_name() -> str:
    """The name the JUnit writer gives its file (read from the writer, not assumed)."""
    source = (REPO / "reports" / "junit.py").read_text(encoding="utf-8")
    (name,) = set(re.findall(r'report_dir / "([^"]+\.xml)"', source))
    return name


def github_plan(doc: dict[str, Any]) -> tuple[dict[str, str], list[Step]]:
    """The workflow's env (workflow and job) and its one job's steps."""
    jobs = doc.get("jobs", {})
    if len(jobs) != 1:
        raise Unsupported(f"the runner runs one job, the workflow has {len(jobs)}")
    (job,) = jobs.values()
    for key in ("strategy", "container", "services", "defaults"):
        if key in job:
            raise Unsupported(f"job key {key!r}")
    env = {**{k: str(v) for k, v in doc.get("env", {}).items()},
           **{k: str(v) for k, v in job.get("env", {}).items()}}
    steps = []
    for raw in job["steps"]:
        extra = set(raw) - STEP_KEYS
        if extra:
            raise Unsupported(f"step key(s) {sorted(extra)}")
        name = raw.get("name") or raw.get("uses") or raw.get("run", "").splitlines()[0]
        if raw.get("shell", "bash") != "bash":
            raise Unsupported(f"step {name!r}: shell {raw['shell']!r}")
        cond = raw.get("if")
        if cond not in (None, "always()"):
            raise Unsupported(f"step {name!r}: condition {cond!r}")
        step = Step(name=name, id=raw.get("id"), script=raw.get("run"), uses=raw.get("uses"),
                    with_=dict(raw.get("with") or {}),
                    env={k: str(v) for k, v in (raw.get("env") or {}).items()},
                    always=cond == "always()")
        if step.uses is not None and step.uses.split("@")[0] not in ACTIONS:
            raise Unsupported(f"step {name!r}: action {step.uses!r}")
        for text in [step.script or "", *step.env.values()]:
            for expr in EXPR.findall(text):
                if not re.fullmatch(r"(steps\.[\w-]+\.outputs\.\w+|env\.\w+)", expr):
                    raise Unsupported(f"step {name!r}: expression ${{{{ {expr} }}}}")
        steps.append(step)
    return env, steps


def gitlab_plan(doc: dict[str, Any]) -> tuple[dict[str, str], list[str], dict[str, Any]]:
    """The variables (global and job), the script lines in order, and the artefacts."""
    jobs = {k: v for k, v in doc.items() if k not in ("variables", "stages", "default")
            and not k.startswith(".")}
    if len(jobs) != 1:
        raise Unsupported(f"the runner runs one job, the file has {len(jobs)}")
    (job,) = jobs.values()
    extra = set(job) - GITLAB_JOB_KEYS
    if extra:
        raise Unsupported(f"job key(s) {sorted(extra)}")
    if "after_script" in job:
        raise Unsupported("after_script")
    image = str(job.get("image", ""))
    if image and not image.startswith(f"python:{sys.version_info.major}.{sys.version_info.minor}"):
        raise Unsupported(f"image {image!r}: the runner stands in with Python "
                          f"{sys.version_info.major}.{sys.version_info.minor}")
    variables = {**{k: str(v) for k, v in doc.get("variables", {}).items()},
                 **{k: str(v) for k, v in job.get("variables", {}).items()}}
    lines = [str(x) for x in job.get("before_script", []) + job["script"]]
    return variables, lines, dict(job.get("artifacts") or {})


def _resolve(text: str, outputs: dict[str, dict[str, str]], env: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        if parts[0] == "env":
            return env.get(parts[1], "")
        return outputs.get(parts[1], {}).get(parts[3], "")
    return EXPR.sub(one, text)


@dataclass
class Sandbox:
    """A temp checkout and a Python 3.11 venv whose ``python`` comes first on PATH."""

    checkout: Path
    bin: Path
    overrides: dict[str, str]

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOSSIPCERT_",
                                                                          "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["CI"] = "true"
        return env


def run_github(box: Sandbox, doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every step of the workflow in order, as a runner would; returns the step outputs."""
    env, steps = github_plan(doc)
    missing = [k for k in KNOBS if k not in env]
    assert not missing, f"github-actions.yml no longer declares {missing}"
    env.update(box.overrides)
    outputs: dict[str, dict[str, str]] = {}
    failed: str | None = None
    work = box.checkout.parent / "github-runner"
    work.mkdir(exist_ok=True)
    for i, step in enumerate(steps):
        if failed and not step.always:
            continue
        if step.uses is not None:
            if failed:
                continue  # the files it keeps may be missing: the failure says why
            action = step.uses.split("@")[0]
            if action == "actions/upload-artifact":
                assert (box.checkout / step.with_["path"]).exists(), step.with_
            elif action == "mikepenz/action-junit-report":
                assert (box.checkout / step.with_["report_paths"]).is_file(), step.with_
            continue
        assert step.script is not None
        out_file = work / f"output-{i}"
        out_file.write_text("")
        step_env = {**box.base_env(), **env,
                    **{k: _resolve(v, outputs, env) for k, v in step.env.items()},
                    "GITHUB_OUTPUT": str(out_file), "GITHUB_WORKSPACE": str(box.checkout)}
        script = work / f"step-{i}.sh"
        script.write_text(_resolve(step.script, outputs, env))
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail",
                                 str(script)], cwd=box.checkout, env=step_env,
                                capture_output=True, text=True, timeout=600)
        if step.id:
            outputs[step.id] = dict(line.split("=", 1) for line in
                                    out_file.read_text().splitlines() if "=" in line)
        if result.returncode != 0:
            failed = (f"step {step.name!r} exited {result.returncode}:\n"
                      f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    assert failed is None, failed
    return outputs


def run_gitlab(box: Sandbox, doc: dict[str, Any]) -> None:
    """The job's script lines in one shell, as GitLab's runner does (``set -eo pipefail``:
    the job fails at the first failing line), then its artefacts checked."""
    variables, lines, artifacts = gitlab_plan(doc)
    missing = [k for k in KNOBS if k not in variables]
    assert not missing, f"gitlab-ci.yml no longer declares {missing}"
    variables.update(box.overrides)
    script = box.checkout.parent / "gitlab-job.sh"
    script.write_text("set -eo pipefail\n" + "\n".join(lines) + "\n")
    result = subprocess.run(["bash", "--noprofile", "--norc", str(script)], cwd=box.checkout,
                            env={**box.base_env(), **variables}, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for path in artifacts.get("paths", []):
        assert (box.checkout / path).exists(), path
    junit = artifacts.get("reports", {}).get("junit")
    assert junit and (box.checkout / junit).is_file(), junit


def _docs() -> tuple[dict[str, Any], dict[str, Any]]:
    return (yaml.safe_load(GITHUB.read_text(encoding="utf-8")),
            yaml.safe_load(GITLAB.read_text(encoding="utf-8")))


# ---- fast: the templates parse, use only what the runner runs, name the right files ----


def test_templates_use_only_what_the_runner_runs() -> None:
    github, gitlab = _docs()
    env, steps = github_plan(github)
    assert set(KNOBS) <= set(env)
    variables, lines, artifacts = gitlab_plan(gitlab)
    assert set(KNOBS) <= set(variables)
    junit = f"{REPORT_DIR}/{junit_file_name()}"
    assert artifacts["reports"]["junit"] == junit
    publish = next(s for s in steps if (s.uses or "").startswith("mikepenz/"))
    assert publish.with_["report_paths"] == junit and publish.always
    keep = next(s for s in steps if (s.uses or "").startswith("actions/upload-artifact"))
    assert keep.with_["path"].rstrip("/") == REPORT_DIR and keep.always
    assert artifacts["when"] == "always"
    python = next(s for s in steps if (s.uses or "").startswith("actions/setup-python"))
    assert str(python.with_["python-version"]) == "3.11"


def test_a_syntax_the_runner_cannot_run_fails_by_name() -> None:
    github, _ = _docs()
    job = next(iter(github["jobs"].values()))
    job["steps"].append({"name": "odd", "if": "github.event_name == 'push'", "run": "true"})
    with pytest.raises(Unsupported, match="condition"):
        github_plan(github)
    job["steps"][-1] = {"run": "echo ${{ secrets.TOKEN }}"}
    with pytest.raises(Unsupported, match="secrets.TOKEN"):
        github_plan(github)
    with pytest.raises(Unsupported, match="after_script"):
        gitlab_plan({"j": {"script": ["true"], "after_script": ["true"]}})


# ---- slow: both templates run, in order, on a temporary checkout ----------------------


def _build_wheel(out: Path) -> Path:
    from gossipcert.harness.drivers.images import _build_wheel as build

    return build(out)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """One venv for both templates: this checkout's dependencies borrowed by a path file
    (no network), gossipcert itself left for the templates' install step to install."""
    root = tmp_path_factory.mktemp("ci")
    wheel = _build_wheel(root / "wheel")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    # A plain path line: the dependencies, without this checkout's editable install.
    Path(site.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    checkout = root / "checkout"
    manifest = checkout / "path" / "to" / "manifest.yaml"
    manifest.parent.mkdir(parents=True)
    shutil.copy(REPO / "reference_node" / "manifest.yaml", manifest)
    return Sandbox(checkout=checkout, bin=env_dir / "bin", overrides={
        "GOSSIPCERT_SPEC": str(wheel), "GOSSIPCERT_ARGS": QUICK_ARGS,
        "GOSSIPCERT_ALLOW_INCOMPLETE": "true"})


@pytest.mark.slow
def test_both_templates_run_green(sandbox: Sandbox) -> None:
    """GitHub then GitLab, each certifying the default scenario (INCOMPLETE, exit 3,
    allowed by the variable); then the GitHub gate alone with INCOMPLETE not allowed
    fails with 3, and passes a PASS."""
    github, gitlab = _docs()
    t0 = time.monotonic()
    outputs = run_github(sandbox, github)
    assert outputs["certify"]["code"] == "3"
    assert (sandbox.checkout / REPORT_DIR / "report.json").is_file()
    shutil.rmtree(sandbox.checkout / REPORT_DIR)
    run_gitlab(sandbox, gitlab)
    assert (sandbox.checkout / REPORT_DIR / "report.json").is_file()
    _, steps = github_plan(github)
    gate = steps[-1]
    assert gate.script is not None and "CODE" in gate.env
    for code, allow, expected in (("3", "false", 3), ("3", "true", 0), ("0", "false", 0),
                                  ("1", "true", 1)):
        result = subprocess.run(["bash", "-eo", "pipefail", "-c", gate.script],
                                env={**sandbox.base_env(), "CODE": code,
                                     "GOSSIPCERT_ALLOW_INCOMPLETE": allow},
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == expected, (code, allow, result.stdout)
    print(f"both templates: {time.monotonic() - t0:.1f} s")
