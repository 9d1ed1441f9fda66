"""Bad input gets one clear message, exit code 2, no traceback, and nothing left running."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from gossipcert.harness.drivers.sweep import orphaned_processes

BASE = """
name: broken-demo
contract: v1
capabilities: [membership]
routing: {routing}
timing: {{probe_interval_ms: 200, suspicion_mult: 3, gossip_interval_ms: 100, fanout: 2}}
launch:
  process:
    ready_timeout_s: 2
    command: {command}
"""


def certify(
    tmp_path: Path, *extra: str, manifest: str | None = None
) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "gossipcert.harness",
            "certify", "--nodes", "3", "--seed", "1",
            "--report-dir", str(tmp_path / "run"), *extra]
    if manifest is not None:
        path = tmp_path / "manifest.yaml"
        path.write_text(manifest)
        args += ["--impl", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def assert_clean_failure(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gossipcert: error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0], result.stderr
    assert orphaned_processes() == {}, "a process of the run was left behind"


def test_manifest_failing_the_schema(tmp_path: Path) -> None:
    result = certify(tmp_path, manifest="name: x\ncontract: v1\n")
    assert_clean_failure(result, "'capabilities' is a required property")


def test_a_manifest_that_claims_nothing_is_not_certified(tmp_path: Path) -> None:
    """``capabilities: []`` (or only capabilities no requirement judges) would certify
    nothing: bad input, never a PASS."""
    command = '["/bin/true"]'
    empty = BASE.format(routing="none", command=command).replace("[membership]", "[]")
    assert_clean_failure(certify(tmp_path, manifest=empty), "should be non-empty")
    unjudged = BASE.format(routing="none", command=command).replace("[membership]", "[events]")
    assert_clean_failure(certify(tmp_path, manifest=unjudged), "claim no requirement")


def test_launch_command_that_does_not_exist(tmp_path: Path) -> None:
    manifest = BASE.format(routing="none", command='["/nonexistent/gossipd", "{id}"]')
    assert_clean_failure(certify(tmp_path, manifest=manifest),
                         "launch command '/nonexistent/gossipd' not found")


@pytest.mark.parametrize("routing", ["none", "dial-map"])
def test_node_that_exits_at_start(tmp_path: Path, routing: str) -> None:
    command = ('["{python}", "-c", "import sys; print(\'bad flag --frobnicate\', '
               'file=sys.stderr); sys.exit(3)"]')
    result = certify(tmp_path, manifest=BASE.format(routing=routing, command=command))
    assert_clean_failure(result, "node n1 exited with code 3 at start")
    assert "bad flag --frobnicate" in result.stderr  # the tail of the node's stderr


def test_node_that_never_becomes_ready(tmp_path: Path) -> None:
    command = ('["{python}", "-c", "import sys, time; print(\'still booting\', '
               'file=sys.stderr, flush=True); time.sleep(60)"]')
    result = certify(tmp_path, manifest=BASE.format(routing="dial-map", command=command))
    assert_clean_failure(result, "not ready after 2 s (init timeout)")
    assert "still booting" in result.stderr


def test_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.2", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = certify(tmp_path, "--base-port", str(port))
    assert_clean_failure(result, f"127.0.0.2:{port} is already in use")


def test_too_few_nodes(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gossipcert.harness",
                             "certify", "--nodes", "2",
                             "--report-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=60)
    assert_clean_failure(result, "--nodes must be at least 3")
