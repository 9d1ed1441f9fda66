"""The Go examples: HashiCorp memberlist serving the control API (examples/memberlist)
and the minimal Go skeleton (examples/go-skeleton), both built offline in GOPATH mode
with Debian's Go packages.

Fast: build.sh names the Debian package of a missing Go; the skeleton builds with the
standard library alone and answers the calls of a membership-only node. Slow: one
memberlist node built by build.sh reports itself from memberlist's own table and refuses
what it does not claim. The full certification of memberlist is a row of
``tests/test_compliance.py``; its report is kept under ``compliance/memberlist/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest
from gossipcert.chaos.procutil import child_preexec, free_port, stop_process
from host_tools import need

ROOT = Path(__file__).resolve().parent.parent
MEMBERLIST = ROOT / "examples" / "memberlist"
SKELETON = ROOT / "examples" / "go-skeleton"
GOCODE = Path("/usr/share/gocode/src/github.com/hashicorp/memberlist/memberlist.go")


def go_missing() -> str | None:
    """Why Go cannot build here, or None."""
    if shutil.which("go") is None:
        return "go is not installed (Debian package: golang-go)"
    return None


def memberlist_missing() -> str | None:
    """Why the memberlist example cannot build here, or None."""
    if (reason := go_missing()) is not None:
        return reason
    if not GOCODE.exists():
        return ("memberlist is not installed "
                "(Debian package: golang-github-hashicorp-memberlist-dev)")
    return None


def build_memberlist(out: Path | None = None) -> Path:
    """Build the memberlist node with its one script (where its manifest expects it, unless
    ``out`` says otherwise); skips (or fails under CI) when Go or memberlist is missing."""
    need(memberlist_missing())
    argv = [str(MEMBERLIST / "build.sh"), *([str(out)] if out else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    built = out or ROOT / "build" / "memberlist" / "gossipcert-memberlist"
    assert built.is_file()
    return built


def _get(url: str) -> tuple[int, Any]:
    try:
        with urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Any]:
    """Start a built binary as one node on free loopback ports; stop it afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(binary: Path, *extra: str) -> str:
        gossip, control = free_port("127.0.0.1"), free_port("127.0.0.1")
        argv = [str(binary), "--id", "n1", "--gossip", f"127.0.0.1:{gossip}",
                "--control", f"127.0.0.1:{control}", *extra]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=child_preexec()))
        url = f"http://127.0.0.1:{control}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if _get(url + "/v1/node")[1]["ready"]:
                    return url
            except OSError:
                pass
            assert procs[-1].poll() is None, "the node exited"
            assert time.monotonic() < deadline, "the node never became ready"
            time.sleep(0.1)

    yield start
    for proc in procs:
        stop_process(proc)


def test_build_sh_names_the_missing_go_package(tmp_path: Path) -> None:
    """Without go on PATH: one line naming golang-go, exit 3, nothing built."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname", "mkdir"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    done = subprocess.run(["sh", str(MEMBERLIST / "build.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 3
    assert "golang-go" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_go_skeleton_builds_and_answers(tmp_path: Path, running: Any) -> None:
    """The skeleton builds offline with the standard library alone and answers as a
    membership-only node: itself in members, 501 for what it does not claim."""
    need(go_missing())
    binary = tmp_path / "gossipcert-skeleton"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(tmp_path / "gopath"),
           "GOFLAGS": "", "GOPROXY": "off"}
    done = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=SKELETON, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    url = running(binary)
    status, node = _get(url + "/v1/node")
    assert status == 200 and node["capabilities"] == ["membership"] and node["id"] == "n1"
    status, members = _get(url + "/v1/members")
    assert status == 200 and [m["status"] for m in members["members"]] == ["alive"]
    status, body = _get(url + "/v1/kv")
    assert status == 501 and body["error"] == "not_implemented"


@pytest.mark.slow
def test_memberlist_node_reports_memberlist_own_view(tmp_path: Path, running: Any) -> None:
    """One node built by build.sh: its own row from memberlist's table (alive,
    incarnation 1: memberlist starts at one), a keyring from --key, 501 for kv."""
    binary = build_memberlist(tmp_path / "gossipcert-memberlist")
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    url = running(binary, "--key", key)
    status, node = _get(url + "/v1/node")
    assert status == 200 and node["impl"] == "hashicorp-memberlist"
    status, members = _get(url + "/v1/members")
    assert status == 200
    assert [(m["id"], m["status"], m["incarnation"]) for m in members["members"]] == [
        ("n1", "alive", 1)]
    status, ring = _get(url + "/v1/keyring")
    assert status == 200 and ring == {"enabled": True, "primary": key, "keys": [key]}
    status, events = _get(url + "/v1/events?after=0")
    assert status == 200 and events["events"][0]["member"] == "n1"
    assert _get(url + "/v1/kv/a")[0] == 501 and _get(url + "/v1/metrics")[0] == 501
