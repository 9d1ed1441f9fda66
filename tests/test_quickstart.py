"""The README's first command on a machine without the packet plane: as a plain user on a
fresh clone (:func:`quickstart_as_plain_user`, the reference node's compliance run in
``tests/test_compliance.py``), and as root with iptables out of reach. Neither may end in
an ERROR, and nothing is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gossipcert.chaos.packet import our_chains, unavailable_reason
from gossipcert.harness.drivers.sweep import orphaned_processes

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
USER = "gossipcert-user"
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def _without_sbin(path: str) -> str:
    return os.pathsep.join(p for p in path.split(os.pathsep) if p.rstrip("/") not in SBIN)


def _chains() -> dict[tuple[str, str], int | None]:
    """The packet plane's chains of any run, where this machine can list them."""
    return our_chains() if unavailable_reason() is None else {}


def _pip_environment() -> dict[str, str]:
    """This machine's pip configuration as environment variables, so the plain user's
    pip installs from where root's does (root's own config file is not readable to it)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                            capture_output=True, text=True, timeout=60).stdout
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        name = "PIP_" + key.rpartition(".")[2].upper().replace("-", "_")
        env.setdefault(name, value.strip().strip("'\""))
    return env


@pytest.fixture
def plain_user() -> Iterator[pwd.struct_passwd]:
    """An unprivileged account (made with useradd when absent); needs root to make it."""
    if os.geteuid() != 0:
        pytest.skip("creating and switching to an unprivileged account needs root")
    for tool, package in (("useradd", "passwd"), ("runuser", "util-linux"), ("git", "git")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (Debian package: {package}); "
                        "sh scripts/ci-setup.sh installs it")
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True,
                       timeout=60)
        account = pwd.getpwnam(USER)
    yield account
    subprocess.run(["pkill", "-KILL", "-u", USER], check=False, timeout=30)


@pytest.fixture
def fresh_clone(plain_user: pwd.struct_passwd) -> Iterator[Path]:
    """This checkout's committed state, cloned into a directory the account owns."""
    top = Path(tempfile.mkdtemp(prefix="gossipcert-quickstart-", dir="/tmp"))
    try:
        clone = top / "gossipcert"
        subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone)],
                       check=True, timeout=300)
        subprocess.run(["chown", "-R", f"{plain_user.pw_uid}:{plain_user.pw_gid}", str(top)],
                       check=True, timeout=60)
        yield clone
    finally:
        shutil.rmtree(top, ignore_errors=True)


def quickstart_as_plain_user(account: pwd.struct_passwd, clone: Path,
                             *args: str) -> tuple[int, dict[str, Any], Path]:
    """The README's first command (``sh scripts/quickstart.sh ARGS``) run by ``account``
    in ``clone``: its exit code, report and report directory. Whatever the verdict, it
    must end without a traceback or a harness error, and leave no process of the
    account, no node and no packet-plane chain behind."""
    chains_before = _chains()
    env = {"HOME": account.pw_dir, "USER": USER, "LOGNAME": USER, "LANG": "C.UTF-8",
           "PATH": "/usr/local/bin:/usr/bin:/bin", **_pip_environment()}
    result = subprocess.run(
        ["runuser", "-u", USER, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
         "sh", "scripts/quickstart.sh", *args],
        cwd=clone, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
    run_dir = clone / "gossipcert-runs" / "quickstart"
    assert "Traceback" not in result.stderr, tail
    assert (run_dir / "report.json").is_file(), tail
    report = json.loads((run_dir / "report.json").read_text())
    assert "harness_error" not in report, tail
    leftover = subprocess.run(["pgrep", "-u", USER], capture_output=True, text=True,
                              timeout=30).stdout.split()
    assert leftover == [], f"processes of {USER} left running: {leftover}"
    assert orphaned_processes() == {}
    assert _chains() == chains_before
    assert result.returncode == 0 and report["verdict"] == "pass", (
        f"{report['verdict']}: untested {report['certificate']['untested']}; "
        f"preflight {report.get('preflight')}\n{tail}")
    return result.returncode, report, run_dir


def test_certify_without_iptables_never_errors(tmp_path: Path) -> None:
    """The reference on the lossy scenario with iptables out of reach (a PATH without
    the sbin directories): the link plane drops its datagrams itself, so nothing is
    skipped and FD-NO-FP-LOSS is judged (a single scenario leaves the rest untested:
    INCOMPLETE); never ERROR, nothing left running."""
    env = {**os.environ, "PATH": _without_sbin(os.environ.get("PATH", ""))}
    with contextlib.suppress(KeyError):
        del env["VIRTUAL_ENV"]
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", "reference",
         "--scenario", "lossy", "--nodes", "5", "--seed", "1",
         "--report-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env=env)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert "Traceback" not in result.stderr
    assert "harness_error" not in report, result.stderr
    assert result.returncode == 3, result.stderr[-2000:]
    assert not (report.get("preflight") or {}).get("skipped"), report.get("preflight")
    status = {r["id"]: r["status"] for r in report["requirements"]}
    assert status["FD-NO-FP-LOSS"] == "pass", status
    assert not [r for r, s in status.items() if s in ("fail", "error")], status
    recorded = next((tmp_path / "run").rglob("history.jsonl"))
    history = [json.loads(line) for line in recorded.read_text().splitlines()]
    losses = [e for e in history if e.get("type") == "fault" and e.get("op") == "loss"]
    assert losses and all(e["args"]["plane"] == "link" and e["args"]["protocols"] == ["udp"]
                          for e in losses), losses
    assert orphaned_processes() == {}
