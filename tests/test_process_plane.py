"""The process plane: pause/resume (SIGSTOP/SIGCONT), restart as the same node, graceful
leave — on the process backend, first on plain processes, then on a live cluster where
the other members must notice each fault and recover from it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gossipcert.harness.drivers.backends import NodeAddress
from gossipcert.harness.drivers.backends.process import ProcessBackend, process_state
from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.drivers.sweep import labelled_processes
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.errors import LaunchError
from gossipcert.harness.manifest import load_manifest

# A node stand-in: appends its pid to a file in its data dir, then sleeps.
WRITER = "import os, sys, time; open(sys.argv[1], 'a').write(f'{os.getpid()}\\n'); time.sleep(60)"


def _start(backend: ProcessBackend, tmp_path: Path) -> Path:
    pids = tmp_path / "data" / "pids"
    pids.parent.mkdir(parents=True)
    addr = NodeAddress("n1", ("127.0.0.2", 1), ("127.0.0.2", 2))
    backend.start(addr, [sys.executable, "-c", WRITER, str(pids)], {"GC_TEST": "1"}, None,
                  tmp_path / "logs")
    assert wait_until(lambda: pids.exists() and pids.read_text().strip() != "", 10) is not None
    return pids


def test_pause_and_resume_show_in_proc_state(tmp_path: Path) -> None:
    backend = ProcessBackend()
    try:
        _start(backend, tmp_path)
        pid = backend.pid("n1")
        assert not backend.paused("n1")
        backend.pause("n1")
        assert wait_until(lambda: process_state(pid) == "T", 5) is not None
        assert backend.paused("n1")
        backend.resume("n1")
        assert wait_until(lambda: not backend.paused("n1"), 5) is not None
        assert process_state(pid) in ("S", "R")
    finally:
        backend.stop_all()
    assert backend.exited("n1") is not None


def test_restart_relaunches_the_same_argv_env_and_data_dir(tmp_path: Path) -> None:
    backend = ProcessBackend()
    try:
        pids = _start(backend, tmp_path)
        first = backend.pid("n1")
        backend.restart("n1")
        assert wait_until(lambda: len(pids.read_text().split()) == 2, 10) is not None
        second = backend.pid("n1")
        assert second != first
        assert pids.read_text().split() == [str(first), str(second)]
        assert process_state(first) in (None, "Z")
        environ = Path(f"/proc/{second}/environ").read_bytes().split(b"\0")
        assert b"GC_TEST=1" in environ
        backend.kill("n1")
        backend.restart("n1")   # a killed node comes back too
        assert wait_until(lambda: len(pids.read_text().split()) == 3, 10) is not None
    finally:
        backend.stop_all()


def test_pausing_a_dead_node_is_a_clear_error(tmp_path: Path) -> None:
    backend = ProcessBackend()
    try:
        _start(backend, tmp_path)
        backend.kill("n1")
        with pytest.raises(LaunchError, match="not running"):
            backend.pause("n1")
        assert backend.netns_pid("n1") is None
    finally:
        backend.stop_all()


def _view(cluster: Cluster, observer: str, subject: str) -> str | None:
    reply = cluster.client(observer).members()
    if not reply.ok:
        return None
    for member in reply.body.get("members", []):
        if member.get("id") == subject:
            return str(member.get("status"))
    return "absent"


def _everyone_sees(cluster: Cluster, subject: str, statuses: tuple[str, ...]) -> bool:
    return all(_view(cluster, o, subject) in statuses
               for o in cluster.live_nodes() if o != subject)


@pytest.mark.slow
def test_process_faults_on_a_live_cluster(tmp_path: Path) -> None:
    manifest = load_manifest("reference")
    with Cluster(manifest, 3, tmp_path, seed=3) as cluster:
        assert wait_until(lambda: _everyone_sees(cluster, "n1", ("alive",)), 20, 0.1) is not None

        # Pause: the others must suspect then declare it dead; resumed, it refutes.
        cluster.pause("n3")
        assert cluster.live_nodes() == ["n1", "n2"]
        assert wait_until(lambda: _everyone_sees(cluster, "n3", ("dead",)), 30, 0.1) is not None
        cluster.resume("n3")
        assert wait_until(lambda: _everyone_sees(cluster, "n3", ("alive",)), 30, 0.1) is not None
        assert _view(cluster, "n3", "n1") == "alive"

        # Restart: same id, new process, back alive everywhere.
        pid_before = cluster.backend.pid("n2")  # type: ignore[attr-defined]
        cluster.restart("n2")
        assert cluster.backend.pid("n2") != pid_before  # type: ignore[attr-defined]
        assert wait_until(lambda: _everyone_sees(cluster, "n2", ("alive",)), 30, 0.1) is not None
        assert cluster.client("n2").node().body["id"] == "n2"

        # Leave: confirmed by the node itself, then seen by the others.
        cluster.leave("n3")
        left = wait_until(lambda: _everyone_sees(cluster, "n3", ("left", "absent")), 30, 0.1)
        assert left is not None
        label = cluster.run_label
        faults = [(e.op, e.node) for e in cluster.history.entries() if e.type == "fault"]
        leave = [e for e in cluster.history.entries() if e.type == "fault" and e.op == "leave"]
    assert faults == [("pause", "n3"), ("resume", "n3"), ("restart", "n2"), ("leave", "n3")]
    assert leave[0].args["confirmed"] is True
    assert labelled_processes(label) == {}
