"""The distribution installs one top-level package, ``gossipcert``, and runs from a wheel.

PyPI has other distributions that own ``harness``, ``chaos``, ``reports`` and ``specs``;
so every folder of the repository installs under ``gossipcert`` (pyproject.toml's
package-dir mapping) and nothing else lands at the top of site-packages. The sdist and
wheel pass ``twine check``; the runtime dependencies are exactly what the package imports;
pyproject.toml is the one place the version is written.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.specs import gossipcert_version

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = ("harness", "chaos", "reports", "specs", "reference_node", "adapters")
# Import name -> the distribution that provides it, for every third-party module the
# installed package imports.
RUNTIME = {"yaml": "pyyaml", "hypothesis": "hypothesis", "jsonschema": "jsonschema",
           "referencing": "referencing", "aiohttp": "aiohttp", "cryptography": "cryptography",
           "msgpack": "msgpack"}
# Imported only where they are needed, never when the package is imported: the Docker SDK
# by the docker and swarm backends (extra ``docker``), pytest by the pytest plugin (which
# only pytest loads).
OPTIONAL = {"docker": "docker", "pytest": "pytest"}
# What the test suite alone imports; it must never reach a user's environment.
TEST_ONLY = ("pytest", "toxiproxy-python", "docker")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()


def third_party_imports() -> dict[str, list[tuple[str, bool]]]:
    """Top-level module -> (file, imported at module level) of every import in the
    package's sources that is neither the standard library nor gossipcert."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            top = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                for name in names:
                    root = name.split(".")[0]
                    if root in sys.stdlib_module_names or root in ("gossipcert", "__future__"):
                        continue
                    rel = str(path.relative_to(REPO))
                    found.setdefault(root, []).append((rel, id(node) in top))
    return found


def test_runtime_dependencies_are_exactly_what_the_package_imports() -> None:
    imports = third_party_imports()
    assert set(imports) == set(RUNTIME) | set(OPTIONAL), sorted(imports)
    project = PYPROJECT["project"]
    assert sorted(_name(r) for r in project["dependencies"]) == sorted(RUNTIME.values())
    # The Docker SDK: inside the functions of the Docker backends, never at import time.
    assert not [where for where, at_top in imports["docker"] if at_top], imports["docker"]
    assert {where for where, _ in imports["pytest"]} == {"harness/commands/pytest_plugin.py"}
    extras = {name: {_name(r) for r in reqs}
              for name, reqs in project["optional-dependencies"].items()}
    assert extras["docker"] == {"docker"}
    assert set(TEST_ONLY) <= extras["test"]
    assert extras["test"] | {"build", "twine"} <= extras["dev"]  # scripts/test.sh: dev


def test_the_version_is_written_once() -> None:
    """--version, the reports and the reference node all read the installed distribution's
    version, which is pyproject.toml's; no source states a version of its own."""
    version = PYPROJECT["project"]["version"]
    assert gossipcert_version() == metadata.version("gossipcert") == version
    stated = [
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if re.search(r"__version__\s*=|" + re.escape(f'"{version}"'),
                     path.read_text(encoding="utf-8"))
    ]
    assert not stated, stated
    # The reference node ships in the package: its manifest declares the package's version.
    manifest = (REPO / "reference_node" / "manifest.yaml").read_text(encoding="utf-8")
    assert f'version: "{version}"' in manifest


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"gossipcert {PYPROJECT['project']['version']}\n"


def test_other_platforms_get_one_line(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Off Linux nothing that starts nodes can work: one line and exit 5 before anything
    starts; the commands that only read files still run."""
    monkeypatch.setattr(sys, "platform", "darwin")
    assert main(["certify", "--impl", "reference"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Linux only" in err and "darwin" in err
    assert main(["scenarios"]) == 0


def test_without_the_docker_extra_the_engine_commands_name_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # import docker: ImportError
    assert main(["images", "list"]) == 5
    err = capsys.readouterr().err
    assert "pip install 'gossipcert[docker]'" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout's files, copied: setuptools builds in the source tree, and a stale
    build/ or egg-info/ there would ship files the tree no longer has."""
    copy = tmp_path_factory.mktemp("tree") / "gossipcert"
    shutil.copytree(REPO, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
        "gossipcert-runs", "runs"))
    return copy


@pytest.fixture(scope="module")
def wheel(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built straight from the checkout."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "--quiet", "-w", str(out), str(tree)], check=True, timeout=300)
    (path,) = out.glob("gossipcert-*.whl")
    return path


@pytest.mark.slow
def test_wheel_has_exactly_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"gossipcert", next(t for t in top if t.endswith(".dist-info"))}
    # Data the package reads at run time travels with it.
    for needed in ("gossipcert/specs/requirements.yaml", "gossipcert/chaos/scenarios/default.yaml",
                   "gossipcert/reference_node/manifest.yaml",
                   "gossipcert/harness/drivers/docker/reference.Dockerfile"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "gossipcert = gossipcert.harness.commands.cli:main" in text
    # The report writers travel as entry points: the harness finds them only that way.
    assert "[gossipcert.reports]" in text
    for name, module in (("json", "json_report"), ("markdown", "markdown"), ("html", "html"),
                         ("junit", "junit")):
        assert f"{name} = gossipcert.reports.{module}:write" in text


@pytest.fixture(scope="module")
def dist(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) from ``python -m build``, which builds the wheel from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
                   check=True, timeout=300, capture_output=True)
    (sdist,) = out.glob("gossipcert-*.tar.gz")
    (built,) = out.glob("gossipcert-*.whl")
    return sdist, built


@pytest.mark.slow
def test_build_and_twine_check(dist: tuple[Path, Path], wheel: Path) -> None:
    """The sdist holds everything the wheel is made of: the wheel built from it ships the
    same files, byte for byte, as the wheel built from the checkout."""
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, dist)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    from_sdist, from_tree = zipfile.ZipFile(dist[1]), zipfile.ZipFile(wheel)
    assert sorted(from_sdist.namelist()) == sorted(from_tree.namelist())
    differ = [n for n in from_tree.namelist() if from_sdist.read(n) != from_tree.read(n)]
    assert not differ, differ


@pytest.mark.slow
def test_wheel_alone_installs_and_certifies(dist: tuple[Path, Path], tmp_path: Path) -> None:
    """A fresh virtualenv, the wheel without extras (its dependencies from the package
    index), run from a directory that holds no checkout: the runtime dependencies
    suffice, and no test-only package (nor what they pull in) comes with them."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir)  # no pip of its own: this one's installs into it (--python)
    pip = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python")]
    subprocess.run([*pip, "install", "--quiet", str(dist[1])], check=True, timeout=600)
    listed = subprocess.run([*pip, "list", "--format=json"], capture_output=True, text=True,
                            check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert not installed & {*TEST_ONLY, "requests", "future"}, sorted(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(env_dir / "bin" / "gossipcert"), *argv], cwd=elsewhere,
                              capture_output=True, text=True, timeout=300)

    version = run("--version")
    assert (version.returncode, version.stdout) == (0, f"gossipcert {gossipcert_version()}\n")
    scenarios = run("scenarios")
    assert scenarios.returncode == 0 and "default" in scenarios.stdout, scenarios.stderr
    result = run("certify", "--impl", "reference", "--scenario", "default", "--nodes", "3",
                 "--seed", "4", "--report-dir", str(elsewhere / "run"))
    # One scenario leaves requirements untested: INCOMPLETE (3) is its best verdict.
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((elsewhere / "run" / "report.json").read_text())
    assert report["verdict"] == "incomplete"
    assert not any(v["status"] == "fail" for v in report["requirements"])
    assert "INCOMPLETE" in (elsewhere / "run" / "badge.svg").read_text()
    # The Docker backends need the extra: they say so, and nothing starts.
    docker = run("certify", "--backend", "docker", "--report-dir", str(elsewhere / "d"))
    assert docker.returncode == 5 and "gossipcert[docker]" in docker.stderr, docker.stderr
