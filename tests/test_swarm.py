"""The swarm backend: nodes as Docker Swarm services across the engines of a swarm, on a
per-run overlay, faults through a fault agent on every engine, nothing left behind.

Real swarms: a single-node swarm of the main engine, and two engines on this machine
(``scripts/swarm-two-engines.sh``: a second dockerd in its own network namespace, joined
as a worker), so nodes really sit on two engines and the overlay carries their traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from gossipcert.chaos.runlabels import OWNER_LABEL, RUN_LABEL
from gossipcert.chaos.swarm_agent import Agent, AgentClient, AgentError, build_app
from gossipcert.harness.drivers.backends.swarm import SwarmBackend, spread
from gossipcert.harness.errors import EXIT_UNAVAILABLE
from gossipcert.harness.manifest import REFERENCE_MANIFEST
from test_docker_backend import kill_once_cluster_up

REPO = Path(__file__).resolve().parent.parent
TWO_ENGINES = REPO / "scripts" / "swarm-two-engines.sh"
ENGINES_SCENARIO = Path(__file__).resolve().parent / "data" / "swarm-engines.yaml"
CLI = [sys.executable, "-m", "gossipcert.harness"]

# ---- without Docker -----------------------------------------------------------------


def test_nodes_spread_in_runs_so_halves_fall_between_two_engines() -> None:
    ids = [f"n{i}" for i in range(1, 6)]
    placed = spread(ids, ["manager", "worker"])
    assert placed == {"n1": "manager", "n2": "manager", "n3": "worker", "n4": "worker",
                      "n5": "worker"}
    assert set(spread(ids, ["only"]).values()) == {"only"}
    assert len(set(spread(ids, ["a", "b", "c"]).values())) == 3
    assert set(spread(["n1", "n2"], ["a", "b", "c"]).values()) == {"a", "b"}


class _FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _fake_engine(path: Path, containers: dict[str, dict[str, Any]],
                 calls: list[str]) -> _FakeEngine:
    """A Docker engine API on a unix socket: inspect, kill, pause, unpause, info."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def address_string(self) -> str:
            return "engine"

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/info":
                self._send(200, {"Swarm": {"NodeID": "node-a"}})
                return
            cid = self.path.split("/")[2]
            if cid in containers:
                self._send(200, containers[cid])
            else:
                self._send(404, {"message": f"No such container: {cid}"})

        def do_POST(self) -> None:  # noqa: N802
            calls.append(self.path)
            self._send(204, None)

    server = _FakeEngine(str(path), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextlib.contextmanager
def _serving(app: web.Application) -> Iterator[int]:
    """``app`` on a free loopback port, on an event loop of its own thread; yields the port."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = int(runner.addresses[0][1])
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def test_the_agent_touches_only_containers_of_its_run(tmp_path: Path) -> None:
    calls: list[str] = []
    containers = {
        "ours": {"Config": {"Labels": {RUN_LABEL: "gc-1-2-3"}},
                 "State": {"Pid": 4242, "Running": True, "Paused": False}},
        "theirs": {"Config": {"Labels": {RUN_LABEL: "gc-other"}}, "State": {}},
    }
    engine = _fake_engine(tmp_path / "docker.sock", containers, calls)
    agent = Agent("secret", "gc-1-2-3", socket_path=str(tmp_path / "docker.sock"))
    try:
        with _serving(build_app(agent)) as port:
            client = AgentClient("127.0.0.1", port, "secret")
            assert client.health()["node_id"] == "node-a"
            assert client.state("ours")["Pid"] == 4242
            client.container("ours", "kill")
            client.container("ours", "pause")
            assert calls == ["/containers/ours/kill?signal=KILL", "/containers/ours/pause"]
            with pytest.raises(AgentError, match="not of run gc-1-2-3"):
                client.container("theirs", "kill")
            with pytest.raises(AgentError, match="no container missing"):
                client.state("missing")
            with pytest.raises(AgentError, match="iptables needs"):
                client._call("POST", "/iptables", {"pid": "1", "args": []})
            with pytest.raises(AgentError, match="wrong or missing token"):
                AgentClient("127.0.0.1", port, "guess").health()
            with pytest.raises(AgentError, match="no such path /secret/nothing"):
                client._call("GET", "/nothing")
            assert calls == ["/containers/ours/kill?signal=KILL", "/containers/ours/pause"]
            client.close()
    finally:
        engine.shutdown()


def test_node_ids_in_packet_rules_become_overlay_addresses() -> None:
    backend = SwarmBackend()
    backend._services = {"n1": object(), "n2": object()}
    ips = {"n1": "10.213.0.7", "n2": "10.213.0.9"}
    backend.overlay_ip = ips.get  # type: ignore[method-assign]
    backend.template_values = {"control_port": "7947"}
    backend._control_ports = {"n1": 9001, "n2": 9002}
    backend._gateway_ports = {8474: 32000, 9001: 32001, 9002: 32002}
    args = ["-A", "GC-x-i", "-s", "n1", "-d", "n2", "-p", "udp", "-m", "comment",
            "--comment", "gc cut n1->n2", "-j", "DROP"]
    assert backend._addresses_in(args) == [
        "-A", "GC-x-i", "-s", "10.213.0.7", "-d", "10.213.0.9", "-p", "udp", "-m",
        "comment", "--comment", "gc cut n1->n2", "-j", "DROP"]
    # A node's packets counted but its control answers, which the harness knows by the
    # port the gateway publishes.
    count = ["-s", "n2", "-m", "multiport", "!", "--sports", "32002"]
    assert backend._addresses_in(count) == ["-s", "10.213.0.9", "-m", "multiport", "!",
                                            "--sports", "7947"]


# ---- real swarms --------------------------------------------------------------------


def _docker(*args: str, host: str | None = None, check: bool = True) -> str:
    argv = ["docker", *(["-H", host] if host else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout.strip()


def _swarm_state(host: str | None = None) -> str:
    return _docker("info", "--format", "{{.Swarm.LocalNodeState}}", host=host, check=False)


def _owned(pid: int, host: str | None = None) -> dict[str, list[str]]:
    """What of harness ``pid`` an engine holds: services (managers only), containers,
    networks."""
    owner = f"label={OWNER_LABEL}"
    mine = f"{pid}:"
    out: dict[str, list[str]] = {"services": [], "containers": [], "networks": []}
    listings = {
        "containers": ["ps", "-a", "--filter", owner, "--format",
                       '{{.Names}} {{.Label "gossipcert.owner"}}'],
        "networks": ["network", "ls", "--filter", owner, "--format",
                     '{{.Name}} {{.Label "gossipcert.owner"}}'],
    }
    if host is None:  # `docker service ls --format` has no .Label
        ids = _docker("service", "ls", "-q", "--filter", owner, check=False).split()
        if ids:
            listings["services"] = ["service", "inspect", "--format",
                                    '{{.Spec.Name}} {{index .Spec.Labels "gossipcert.owner"}}',
                                    *ids]
    for kind, argv in listings.items():
        for line in _docker(*argv, host=host, check=False).splitlines():
            name, _, label = line.partition(" ")
            if label.startswith(mine):
                out[kind].append(name)
    return out


def _nothing(owned: dict[str, list[str]]) -> bool:
    return not any(owned.values())


def _gone(pid: int, host: str | None = None, timeout_s: float = 20.0) -> dict[str, list[str]]:
    """What of harness ``pid`` an engine still holds once it had ``timeout_s`` to let go
    (a worker removes a removed service's containers on its own time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        owned = _owned(pid, host)
        if _nothing(owned) or time.monotonic() > deadline:
            return owned
        time.sleep(0.5)


def _one_error_line(stderr: str) -> str:
    """The error a run ended with: one line, the last, after the progress lines."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("gossipcert: error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    return errors[0]


def _certify(run_dir: Path, *args: str, env: dict[str, str] | None = None,
             timeout_s: float = 600) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.Popen([*CLI, "certify", "--backend", "swarm", *args, "--report-dir",
                             str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    stdout, stderr = proc.communicate(timeout=timeout_s)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), proc.pid


@pytest.fixture
def single_swarm() -> Iterator[None]:
    """The main engine as a one-node swarm manager (initialised here when it is in no
    swarm, and left again afterwards)."""
    if _swarm_state() == "active":
        if len(_docker("node", "ls", "-q", check=False).split()) > 1:
            pytest.skip("the main engine is in a swarm of several nodes already")
        yield
        return
    _docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        _docker("swarm", "leave", "--force", check=False)


@pytest.mark.docker
@pytest.mark.slow
def test_an_engine_in_no_swarm_is_refused_in_one_line(tmp_path: Path) -> None:
    if _swarm_state() != "inactive":
        pytest.skip("the main engine is in a swarm")
    result, _ = _certify(tmp_path / "run", "--nodes", "3", "--quick", timeout_s=120)
    assert result.returncode == EXIT_UNAVAILABLE, result.stdout + result.stderr
    assert _one_error_line(result.stderr).endswith(
        "is in no swarm (swarm state inactive); run on a swarm manager or point DOCKER_HOST "
        "at one"), result.stderr


@pytest.mark.docker
@pytest.mark.slow
def test_certify_on_a_single_node_swarm(single_swarm: None, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result, pid = _certify(run_dir, "--nodes", "3", "--quick", "--seed", "11")
    assert "Traceback" not in result.stderr, result.stderr
    # --quick: the default scenario alone, INCOMPLETE (exit 3) with nothing failed.
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["run"]["backend"] == "swarm"
    assert not [r for r in report["requirements"] if r["status"] in ("fail", "error")]
    assert (run_dir / "nodes" / "n1" / "stderr.log").exists()
    assert _nothing(_owned(pid)), _owned(pid)


@pytest.mark.docker
@pytest.mark.slow
def test_a_node_that_exits_at_start_is_bad_input_and_leaves_nothing(
        single_swarm: None, tmp_path: Path) -> None:
    data = yaml.safe_load(REFERENCE_MANIFEST.read_text())
    data["launch"]["docker"]["command"] = [
        "python3", "-c", "import sys; sys.stderr.write('no such gossip\\n'); sys.exit(3)"]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    result, pid = _certify(tmp_path / "run", "--impl", str(path), "--nodes", "3", "--quick",
                           timeout_s=180)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "node n1 exited with code 3 at start" in result.stderr, result.stderr
    assert "no such gossip" in result.stderr
    assert "Traceback" not in result.stderr
    assert _nothing(_owned(pid)), _owned(pid)


@pytest.mark.docker
@pytest.mark.slow
def test_unplaceable_nodes_fail_in_one_line(single_swarm: None, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from gossipcert.harness.drivers.backends import swarm
    from gossipcert.harness.drivers.cluster import Cluster
    from gossipcert.harness.errors import LaunchError
    from gossipcert.harness.manifest import load_manifest

    monkeypatch.setattr(swarm, "spread", lambda ids, nodes: {i: "no-such-node" for i in ids})
    backend = swarm.SwarmBackend()
    cluster = Cluster(load_manifest("reference"), 3, tmp_path, backend=backend, seed=3)
    started = time.monotonic()
    with pytest.raises(LaunchError) as info, cluster:
        pass
    message = str(info.value)
    assert message.startswith("node n1: the swarm cannot place its task: no suitable node")
    assert "\n" not in message
    assert time.monotonic() - started < 60
    assert _nothing(_owned(os.getpid())), _owned(os.getpid())


@pytest.fixture(scope="module")
def two_engines() -> Iterator[str]:
    """The main engine a manager, a second dockerd in a network namespace its worker;
    yields the second engine's DOCKER_HOST."""
    before = _swarm_state()
    up = subprocess.run(["sh", str(TWO_ENGINES), "up"], capture_output=True, text=True,
                        timeout=300)
    assert up.returncode == 0, up.stderr
    host = up.stdout.strip().splitlines()[-1]
    try:
        yield host
    finally:
        down = subprocess.run(["sh", str(TWO_ENGINES), "down"], capture_output=True,
                              text=True, timeout=300)
        assert down.returncode == 0, down.stderr
        assert _swarm_state() == before, "the main engine's swarm state was not restored"


@pytest.mark.docker
@pytest.mark.slow
def test_a_worker_engine_is_refused_in_one_line(two_engines: str, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": two_engines}
    result, _ = _certify(tmp_path / "run", "--nodes", "3", "--quick", env=env, timeout_s=120)
    assert result.returncode == EXIT_UNAVAILABLE, result.stdout + result.stderr
    assert "is a swarm worker, not a manager" in _one_error_line(result.stderr)


@pytest.mark.docker
@pytest.mark.slow
def test_certify_on_two_engines_partitions_between_them(two_engines: str,
                                                        tmp_path: Path) -> None:
    """Five nodes on two engines; the halves partition falls between the engines and is
    cut by the packet plane through both engines' agents, then healed; a node is paused
    and another crash-restarted through the agents."""
    run_dir = tmp_path / "run"
    seen: dict[str, set[str]] = {"manager": set(), "worker": set()}
    stop = threading.Event()

    def watch() -> None:  # which engine runs which node, from the engines' own lists
        while not stop.wait(1.0):
            for engine, host in (("manager", None), ("worker", two_engines)):
                names = _docker("ps", "--filter", f"label={RUN_LABEL}", "--format",
                                '{{.Label "gossipcert.node"}}', host=host, check=False)
                seen[engine] |= {n for n in names.split() if n.startswith("n")}

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result, pid = _certify(run_dir, "--nodes", "5", "--seed", "2", "--scenario",
                               str(ENGINES_SCENARIO))
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert "Traceback" not in result.stderr, result.stderr
    assert (run_dir / "report.json").exists(), result.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    failing = {r["id"]: r["evidence"] for r in report["requirements"]
               if r["status"] in ("fail", "error")}
    assert result.returncode == 3 and not failing, (failing, result.stderr[-3000:])
    passed = {r["id"] for r in report["requirements"] if r["status"] == "pass"}
    assert {"PARTITION-HEAL", "KV-AFTER-PARTITION", "FD-NO-FP-PAUSE",
            "KV-AFTER-RESTART", "MEM-REJOIN"} <= passed, passed
    # Nodes on both engines, as the engines list their containers.
    assert seen["manager"] == {"n1", "n2"}, seen
    assert seen["worker"] >= {"n3", "n4", "n5"}, seen
    entries = [json.loads(line) for line in (run_dir / "history.jsonl").open()]
    faults = [e for e in entries if e.get("type") == "fault"]
    partition = next(e for e in faults if e["op"] == "partition")
    assert partition["args"]["groups"] == [["n1", "n2"], ["n3", "n4", "n5"]]
    assert partition["args"]["plane"] == "packet"
    after = faults[faults.index(partition) + 1:]
    assert after and after[0]["op"] == "heal", "the partition was not healed"
    assert {"pause", "resume", "kill", "restart"} <= {e["op"] for e in faults}
    # Nothing of the run on either engine: services, networks, containers.
    assert _nothing(_owned(pid)), _owned(pid)
    assert _nothing(_gone(pid, two_engines)), _owned(pid, two_engines)


@pytest.mark.docker
@pytest.mark.slow
def test_clean_sweeps_a_swarm_run_killed_midway(two_engines: str, tmp_path: Path) -> None:
    pid = kill_once_cluster_up("--backend", "swarm", "--nodes", "3", "--seed", "41",
                               "--report-dir", str(tmp_path / "run"))
    left = _owned(pid)
    assert left["services"] and left["networks"] and left["containers"], left
    assert _owned(pid, two_engines)["containers"], "no node ran on the worker"
    result = subprocess.run([*CLI, "clean"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "swarm service(s)" in result.stdout
    assert _nothing(_owned(pid)), _owned(pid)
    assert _nothing(_gone(pid, two_engines)), _owned(pid, two_engines)
