"""The distribution installs one top-level package, ``gossipcert``, and runs from a wheel.

PyPI has other distributions that own ``harness``, ``chaos``, ``reports`` and ``specs``;
so every folder of the repository installs under ``gossipcert`` (pyproject.toml's
package-dir mapping) and nothing else lands at the top of site-packages.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "--quiet", "-w", str(out), str(REPO)], check=True, timeout=300)
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


@pytest.mark.slow
def test_installed_wheel_certifies_from_another_directory(wheel: Path, tmp_path: Path) -> None:
    """A fresh virtualenv with the wheel alone (its dependencies borrowed from this one's
    site-packages by a path file, so the test needs no network), run from a directory
    that holds no checkout: the reference node certifies."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True).stdout
    # Only the dependencies: a plain path line adds the directory without running its own
    # path files, so this checkout's editable install stays out.
    Path(site.strip(), "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)],
                   check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(python), "-c", "import gossipcert.harness as h; print(h.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, check=True).stdout
    assert str(REPO) not in where and str(env_dir) in where
    result = subprocess.run(
        [str(env_dir / "bin" / "gossipcert"), "certify", "--impl", "reference", "--nodes", "3",
         "--quick", "--seed", "4", "--report-dir", str(elsewhere / "run")],
        cwd=elsewhere, capture_output=True, text=True, timeout=300)
    # --quick leaves requirements untested: INCOMPLETE (3) is its best verdict.
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads((elsewhere / "run" / "report.json").read_text())
    assert report["verdict"] == "incomplete"
    assert not any(v["status"] == "fail" for v in report["requirements"])
