"""When the harness's own parts fail mid-run, the run ends with one line, a partial report
with the verdict ``error`` and exit code 4 (never 1, which blames the implementation),
and nothing left running.

Each failure is provoked for real: a link plane frozen with SIGSTOP, a link plane that
runs out of descriptors while making proxies, a Docker engine that stops answering behind
a relay, and a host firewall that makes a node's address unreachable.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gossipcert.chaos.procutil import free_port
from gossipcert.chaos.runlabels import OWNER_LABEL
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient
from gossipcert.harness.drivers.sweep import orphaned_processes
from gossipcert.harness.errors import (
    EXIT_HARNESS_ERROR,
    HarnessError,
    HostError,
    LaunchError,
)
from gossipcert.harness.judging.verdict import Verdict
from gossipcert.harness.run.pipeline import cut_short, harness_failure
from gossipcert.harness.run.report import build_report, load_report_schema

# A partition as the first step: the link plane is called at once.
PARTITION_FIRST = """
name: partition-first
description: a partition right away, then writes
min_nodes: 3
steps:
  - kind: partition
    shape: halves
  - kind: writes
    puts: 4
"""

KILL_FIRST = """
name: kill-first
description: a node killed right away
min_nodes: 3
steps:
  - kind: kill
  - kind: writes
    puts: 4
"""


def _certify_argv(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gossipcert.harness", "certify", "--seed", "1",
            "--report-dir", str(tmp_path / "run"), *extra]


def _scenario(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def _run_watching(argv: list[str], on_line: Callable[[str, subprocess.Popen[str]], None],
                  env: dict[str, str] | None = None,
                  timeout_s: float = 240) -> tuple[int, str, str]:
    """Run the CLI, calling ``on_line`` for every progress line as it comes."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()  # type: ignore[union-attr]
                                                        ), daemon=True)
    reader.start()
    err: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stderr is not None
    for line in proc.stderr:
        err.append(line)
        on_line(line, proc)
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(timeout=60)
    reader.join(timeout=10)
    return proc.returncode, "".join(out), "".join(err)


def _assert_harness_error(code: int, stderr: str, run_dir: Path, fragment: str) -> dict[str, Any]:
    assert code == EXIT_HARNESS_ERROR, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("gossipcert: error:")]
    assert len(errors) == 1, stderr
    assert fragment in errors[0], errors[0]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "error"
    assert fragment in report["harness_error"]["message"]
    assert report["certificate"]["capabilities_certified"] == []
    assert all(r["status"] != "fail" for r in report["requirements"])
    junit = (run_dir / "report.junit.xml").read_text()
    assert 'type="harness"' in junit
    assert "harness error" in (run_dir / "report.md").read_text()
    assert orphaned_processes() == {}, "a process of the run was left behind"
    return report


def _children_matching(pid: int, mark: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{name}/stat").read_text()
            ppid = int(stat[stat.rfind(")") + 2:].split()[1])
            if ppid == pid and mark in Path(f"/proc/{name}/cmdline").read_text():
                found.append(int(name))
    return found


# ---- the verdict of a run cut short, without a cluster --------------------------------


def _verdict(status: str) -> Verdict:
    return Verdict(id="FD-DETECT", title="t", level="MUST", status=status, measured=None,
                   bound=None, unit="ms", evidence="seen")


def test_a_run_cut_short_fails_nothing_and_certifies_nothing() -> None:
    failure = HarnessError("the link plane stopped answering")
    verdicts = cut_short([_verdict("fail"), _verdict("pass")], failure)
    assert [v.status for v in verdicts] == ["error", "pass"]
    assert "cut short by a harness error" in verdicts[0].evidence
    report = build_report(
        implementation="x", seed=1, verdicts=verdicts, faults=[], run={"nodes": []},
        certificate={"capabilities_certified": ["failure-detection"]},
        harness_error={"message": str(failure), "scenario": "default", "kind": "HarnessError"})
    assert report["verdict"] == "error"
    assert report["certificate"]["capabilities_certified"] == []
    import jsonschema

    jsonschema.validate(report["harness_error"],
                        load_report_schema()["properties"]["harness_error"])


def test_what_counts_as_the_harness_failing() -> None:
    assert isinstance(harness_failure(TimeoutError("timed out"), started_up=True), HarnessError)
    assert isinstance(harness_failure(TimeoutError("timed out"), started_up=False),
                      HarnessError)
    host = HostError("no route")
    assert harness_failure(host, started_up=True) is host
    # A node that would not start or restart is the user's to act on, not the harness's.
    assert harness_failure(LaunchError("node n2 not ready"), started_up=True) is None
    assert harness_failure(LaunchError("node n2 not ready"), started_up=False) is None


def test_an_internal_error_is_one_line_and_exit_4(tmp_path: Path, monkeypatch: Any,
                                                  capsys: Any) -> None:
    from gossipcert.harness.commands import cli
    from gossipcert.harness.run import certify as certify_module

    def broken(opts: Any) -> Any:
        raise RuntimeError("a defect of the harness")

    monkeypatch.setattr(certify_module, "certify", broken)
    assert cli.main(["certify", "--report-dir", str(tmp_path / "r")]) == EXIT_HARNESS_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: a defect" in err
    path = err.split("traceback in ")[1].rstrip(")\n")
    assert "RuntimeError" in Path(path).read_text()
    Path(path).unlink()


# ---- provoked on real processes --------------------------------------------------------


@pytest.mark.slow
def test_a_link_plane_that_stops_answering(tmp_path: Path) -> None:
    """The link plane server is frozen (SIGSTOP) as the cluster comes up; the partition
    then times out against it."""
    frozen: list[int] = []

    def freeze(line: str, proc: subprocess.Popen[str]) -> None:
        if "cluster up" in line and not frozen:
            for pid in _children_matching(proc.pid, "gossipcert.chaos.toxiproxy"):
                os.kill(pid, signal.SIGSTOP)
                frozen.append(pid)

    code, _, err = _run_watching(
        _certify_argv(tmp_path, "--nodes", "4", "--scenario",
                      _scenario(tmp_path, PARTITION_FIRST)), freeze)
    assert frozen, err
    _assert_harness_error(code, err, tmp_path / "run", "TransportError")
    for pid in frozen:
        assert not Path(f"/proc/{pid}").exists(), "the frozen link plane was left behind"


@pytest.mark.slow
def test_a_link_plane_that_cannot_make_a_proxy(tmp_path: Path) -> None:
    """A shared link plane that runs out of file descriptors refuses the run's proxies
    (7 nodes need 42); the run's proxies it did make are removed again."""
    port = free_port("127.0.0.1")
    server = subprocess.Popen(
        ["prlimit", "--nofile=28:28", sys.executable, "-m", "gossipcert.chaos.toxiproxy",
         "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None and b"listening" in server.stdout.readline()
        result = subprocess.run(
            _certify_argv(tmp_path, "--nodes", "7", "--quick",
                          "--toxiproxy-url", f"http://127.0.0.1:{port}"),
            capture_output=True, text=True, timeout=120)
        report = _assert_harness_error(result.returncode, result.stderr, tmp_path / "run",
                                       "Too many open files")
        assert report["requirements"]  # the partial report still lists the catalogue
        assert ToxiproxyClient(f"http://127.0.0.1:{port}").proxies() == {}
    finally:
        server.kill()
        server.wait()


@pytest.mark.slow
def test_a_node_unreachable_for_reasons_of_the_host(tmp_path: Path) -> None:
    """Once the cluster is up, the host's firewall answers every connection to n2's
    address with "network unreachable": that is the host, not the node."""
    rule: list[str] = []

    def cut_route(line: str, proc: subprocess.Popen[str]) -> None:
        if "cluster up" in line and not rule:
            history = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
            start = next(json.loads(h) for h in history
                         if '"start"' in h and '"n2"' in h and '"invoke"' in h)
            host = start["args"]["gossip"].rsplit(":", 1)[0]
            rule.extend(["OUTPUT", "-d", host, "-p", "tcp", "-j", "REJECT",
                         "--reject-with", "icmp-net-unreachable"])
            subprocess.run(["iptables", "-I", *rule], check=True)

    try:
        code, _, err = _run_watching(_certify_argv(tmp_path, "--nodes", "3", "--quick"),
                                     cut_route)
    finally:
        if rule:
            subprocess.run(["iptables", "-D", *rule], check=False)
    assert rule, err
    _assert_harness_error(code, err, tmp_path / "run", "a fault of the harness's host")


class _DockerRelay:
    """A Unix socket in front of the Docker engine's that can stop answering."""

    def __init__(self, path: Path, engine: str = "/var/run/docker.sock") -> None:
        self.path = path
        self.engine = engine
        self.frozen = threading.Event()
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(64)
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.engine)
            self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.frozen.is_set():  # swallow nothing: hold it
                    time.sleep(0.05)
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()
        for s in self._open:
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture
def docker_relay(tmp_path: Path) -> Iterator[_DockerRelay]:
    relay = _DockerRelay(tmp_path / "docker.sock")
    yield relay
    relay.close()


@pytest.mark.docker
@pytest.mark.slow
def test_a_docker_engine_that_stops_answering(tmp_path: Path,
                                              docker_relay: _DockerRelay) -> None:
    """The engine's API is held (not refused) once the cluster is up: the next call times
    out, the run ends as a harness error, and once the engine answers again the run's
    containers and network are gone."""
    import docker

    harness: list[int] = []

    def hold(line: str, proc: subprocess.Popen[str]) -> None:
        harness[:] = [proc.pid]
        if "cluster up" in line:
            docker_relay.frozen.set()
        if "harness error:" in line:
            docker_relay.frozen.clear()  # the engine recovers: the run cleans up

    code, _, err = _run_watching(
        _certify_argv(tmp_path, "--nodes", "3", "--backend", "docker", "--scenario",
                      _scenario(tmp_path, KILL_FIRST)),
        hold, env={"DOCKER_HOST": f"unix://{docker_relay.path}",
                   "GOSSIPCERT_DOCKER_TIMEOUT_S": "5"})
    report = _assert_harness_error(code, err, tmp_path / "run", "timed out")
    assert report["run"]["backend"] == "docker"
    client = docker.from_env()
    ours = {"label": f"{OWNER_LABEL}"}
    leftovers = [c.name for c in client.containers.list(all=True, filters=ours)
                 if c.labels.get(OWNER_LABEL, "").startswith(f"{harness[0]}:")]
    networks = [n.name for n in client.networks.list(filters=ours)
                if (n.attrs.get("Labels") or {}).get(OWNER_LABEL, "").startswith(
                    f"{harness[0]}:")]
    assert leftovers == [] and networks == [], (leftovers, networks)
