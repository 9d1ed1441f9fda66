"""The harness image: ``gossipcert`` in a container certifies on the process backend, with
the packet plane when the container has NET_ADMIN, and leaves the mounted directory's
files to its owner."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from gossipcert.harness.commands.container import hand_over, owner_of

USER = (1234, 1234)  # a user the image does not know, as a CI runner's often is
AS_USER = f"{USER[0]}:{USER[1]}"


def test_what_a_root_run_made_goes_to_the_directory_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (it chowns)")
    os.chown(tmp_path, *USER)
    old = tmp_path / "old"
    old.mkdir()
    (old / "keep").write_text("x")
    since = float(int(time.time()) + 1)
    os.utime(old, (since - 10, since - 10))
    os.utime(old / "keep", (since - 10, since - 10))
    assert owner_of(tmp_path, {}) == USER
    time.sleep(1.1)
    made = tmp_path / "report" / "nodes" / "n1.log"
    made.parent.mkdir(parents=True)
    made.write_text("x")
    assert hand_over(tmp_path, USER, since) == 3
    for path in (tmp_path / "report", made.parent, made):
        assert (path.stat().st_uid, path.stat().st_gid) == USER
    assert (old / "keep").stat().st_uid == 0  # not the run's: left alone
    assert owner_of(tmp_path, {"GOSSIPCERT_OWNER": "0:0"}) is None
    assert owner_of(tmp_path, {"GOSSIPCERT_OWNER": "42:7"}) == (42, 7)
    with pytest.raises(ValueError, match="UID:GID"):
        owner_of(tmp_path, {"GOSSIPCERT_OWNER": "me"})


def _docker(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _planes(doctor_json: str) -> dict[str, dict]:
    data = json.loads(doctor_json)
    rows = {r["name"]: r for r in data["planes"]}
    for row in data["planes"]:
        rows.update({m["name"]: m for m in row.get("mechanisms", [])})
    return rows


@pytest.mark.docker
@pytest.mark.slow
def test_the_harness_image_certifies_the_reference(tmp_path: Path) -> None:
    """Build (the base cached), certify the default scenario at 3 nodes inside the image
    as root with the checkout mounted; the report belongs to the checkout's owner. Doctor
    there: the packet plane with NET_ADMIN, and why not without it or as a user."""
    from gossipcert.harness.drivers.images import HARNESS_REPO, build_harness, docker_client

    t0 = time.monotonic()
    tag = build_harness(docker_client(), lambda line: None)
    built_s = time.monotonic() - t0
    os.chown(tmp_path, *USER)
    name = f"gossipcert-harness-test-{uuid.uuid4().hex[:8]}"
    try:
        result = _docker("run", "--rm", "--name", name, "--cap-add", "NET_ADMIN",
                         "-v", f"{tmp_path}:/work", "-w", "/work", f"{HARNESS_REPO}:latest",
                         "certify", "--impl", "reference", "--scenario", "default",
                         "--nodes", "3", "--seed", "1", "--report-dir", "/work/report")
    finally:
        _docker("rm", "-f", name, timeout=60)
    certify_s = time.monotonic() - t0 - built_s
    # One scenario leaves requirements untested: INCOMPLETE (3) is its best verdict.
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["verdict"] == "incomplete"
    assert not any(r["status"] == "fail" for r in report["requirements"])
    assert any(r["status"] == "pass" for r in report["requirements"])
    for path in [tmp_path / "report", *(tmp_path / "report").rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == USER, path

    with_cap = _docker("run", "--rm", "--cap-add", "NET_ADMIN", tag, "doctor", "--json")
    rows = _planes(with_cap.stdout)
    for plane in ("link plane", "packet plane", "iptables", "delay line"):
        assert rows[plane]["available"], rows[plane]
    without = _planes(_docker("run", "--rm", tag, "doctor", "--json").stdout)
    assert not without["packet plane"]["available"]
    assert "NET_ADMIN" in without["packet plane"]["detail"]
    assert without["link plane"]["available"]
    # As the user (docker run --user): the run writes as that user; no packet plane.
    as_user = _docker("run", "--rm", "--cap-add", "NET_ADMIN", "--user", AS_USER,
                      "-v", f"{tmp_path}:/work", "-w", "/work", tag, "report", "/work/report")
    assert as_user.returncode == 3, as_user.stdout[-2000:] + as_user.stderr[-2000:]
    user_rows = _planes(_docker("run", "--rm", "--cap-add", "NET_ADMIN", "--user",
                                AS_USER, tag, "doctor", "--json").stdout)
    assert "root" in user_rows["packet plane"]["detail"]
    print(f"harness image: build {built_s:.1f} s, certify {certify_s:.1f} s, "
          f"total {time.monotonic() - t0:.1f} s")
