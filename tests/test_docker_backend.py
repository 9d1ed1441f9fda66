"""The Docker backend: images built offline and cached, nodes as containers on a per-run
network, process faults through the Docker API, and nothing left after a run, even one
whose harness was killed midway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from gossipcert.chaos.runlabels import (
    OWNER_LABEL,
    RUN_LABEL,
    label_stale,
    owner_alive,
    owner_label,
    run_label_pid,
)
from gossipcert.harness.drivers.backends.docker import DockerBackend
from gossipcert.harness.drivers.images import AptSource, ImageError, base_tag, parse_apt_sources
from gossipcert.harness.drivers.sweep import labelled_processes
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.errors import LaunchError, ManifestError
from gossipcert.harness.manifest import REFERENCE_MANIFEST, load_manifest

# ---- without Docker -----------------------------------------------------------------


def test_apt_sources_deb822_pick_the_main_suite() -> None:
    text = """Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb deb-src
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
"""
    assert parse_apt_sources([("debian.sources", text)]) == AptSource(
        "http://mirror.example/debian", "bookworm")


def test_apt_sources_one_line_format_with_options_and_comments() -> None:
    text = """# deb http://old.example/debian buster main
deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian trixie-updates main
deb [arch=amd64] http://mirror.example/debian trixie main contrib
"""
    assert parse_apt_sources([("sources.list", text)]) == AptSource(
        "http://mirror.example/debian", "trixie")


def test_no_usable_apt_source_is_one_clear_error() -> None:
    with pytest.raises(ImageError, match="no Debian mirror"):
        parse_apt_sources(
            [("sources.list", "deb http://x/debian-security bookworm-security main\n")])


def test_base_tag_is_a_hash_of_what_the_image_is_made_of() -> None:
    a = base_tag(AptSource("http://one.example/debian", "bookworm"))
    b = base_tag(AptSource("http://other.example/debian", "bookworm"))
    c = base_tag(AptSource("http://one.example/debian", "trixie"))
    assert a.startswith("gossipcert-base:")
    assert a == b, "the mirror is where the packages come from, not what they are"
    assert a != c


def test_run_labels_name_their_harness_process() -> None:
    me = os.getpid()
    assert run_label_pid(f"gc-7-{me}-123456") == me
    assert run_label_pid(f"gc--7-{me}-123456") == me  # a negative seed
    assert run_label_pid("someone-else") is None
    assert not label_stale(f"gc-7-{me}-1")
    assert not label_stale("not-ours")  # never judged stale: it may belong to anyone
    dead = _dead_pid()
    assert label_stale(f"gc-7-{dead}-1")
    assert owner_alive(owner_label())
    assert not owner_alive(f"{dead}:1")
    assert not owner_alive(f"{me}:1"), "a reused pid with another start time is not the owner"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reference_manifest_has_a_docker_launch() -> None:
    manifest = load_manifest("reference")
    launch = manifest.launch_for("docker")
    assert launch.command[:3] == ["python3", "-m", "gossipcert.reference_node"]


def _manifest_without(section: str, tmp_path: Path) -> Path:
    data = yaml.safe_load(REFERENCE_MANIFEST.read_text())
    del data["launch"][section]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_docker_backend_needs_a_docker_launch_section(tmp_path: Path) -> None:
    manifest = load_manifest(str(_manifest_without("docker", tmp_path)))
    with pytest.raises(ManifestError, match="no launch.docker section"):
        manifest.launch_for("docker")
    with pytest.raises(ManifestError, match="no launch.docker section"):
        DockerBackend().prepare(manifest, "gc-1-1-1", tmp_path)


def test_cli_rejects_docker_backend_without_docker_section(tmp_path: Path) -> None:
    path = _manifest_without("docker", tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness",
         "certify", "--impl", str(path), "--backend",
         "docker", "--nodes", "3", "--report-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "no launch.docker section" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---- with Docker --------------------------------------------------------------------


def _client() -> Any:
    from gossipcert.harness.drivers.images import docker_client

    return docker_client()


def _owned_by(pid: int) -> tuple[list[str], list[str]]:
    """Names of the containers and networks whose owner label is harness ``pid``."""
    client = _client()
    containers = [c.name for c in client.containers.list(all=True, filters={"label": RUN_LABEL})
                  if c.labels.get(OWNER_LABEL, "").startswith(f"{pid}:")]
    networks = [n.name for n in client.networks.list(filters={"label": RUN_LABEL})
                if (n.attrs.get("Labels") or {}).get(OWNER_LABEL, "").startswith(f"{pid}:")]
    return containers, networks


@pytest.mark.docker
@pytest.mark.slow
def test_images_are_cached_by_the_hash_of_their_inputs() -> None:
    from gossipcert.harness.drivers.images import build_reference

    lines: list[str] = []
    first = build_reference(_client(), lines.append)  # builds if the inputs changed
    lines.clear()
    started = time.monotonic()
    again = build_reference(_client(), lines.append)
    assert again == first
    assert all(line.endswith(": cached") for line in lines), lines
    assert time.monotonic() - started < 10
    cli = subprocess.run([sys.executable, "-m", "gossipcert.harness", "images", "build"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    # The reference's tag, then the harness image's (built on the same base).
    assert first in cli.stdout.strip().splitlines()
    assert cli.stdout.strip().splitlines()[-1].startswith("gossipcert-harness:")
    assert "cached" in cli.stdout
    image = _client().images.get(first)
    assert image.labels["gossipcert.image"] == "reference"
    assert image.labels["gossipcert.hash"] == first.split(":")[1]


@pytest.fixture
def docker_cluster(tmp_path: Path) -> Any:
    from gossipcert.harness.drivers.cluster import Cluster

    manifest = load_manifest("reference")
    cluster = Cluster(manifest, 3, tmp_path, backend="docker", seed=5)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.close()
    assert _owned_by(os.getpid()) == ([], []), "the cluster left containers or networks"


def _control_id(cluster: Any, node_id: str) -> Any:
    reply = cluster.client(node_id).node()
    return reply.body.get("id") if reply.ok and isinstance(reply.body, dict) else None


@pytest.mark.docker
@pytest.mark.slow
def test_nodes_are_containers_with_their_own_address(docker_cluster: Any) -> None:
    backend = docker_cluster.backend
    ips = {docker_cluster.addresses[n].control[0] for n in docker_cluster.node_ids}
    assert len(ips) == 3 and not any(ip.startswith("127.") for ip in ips)
    for node_id in docker_cluster.node_ids:
        assert _control_id(docker_cluster, node_id) == node_id
        container = backend._containers[node_id]
        container.reload()
        assert container.attrs["Config"]["Hostname"] == node_id
        assert container.labels[RUN_LABEL] == docker_cluster.run_label
    # Every gossip link goes through a proxy in the Toxiproxy container on the network.
    dials = docker_cluster.routes["n1"]
    assert set(dials) == {"n2", "n3"}
    assert all(addr.startswith(docker_cluster.links.listen_host + ":") for addr in dials.values())


@pytest.mark.docker
@pytest.mark.slow
def test_pause_resume_restart_and_netns(docker_cluster: Any) -> None:
    backend = docker_cluster.backend
    pid = backend.netns_pid("n2")
    assert pid is not None and pid > 1
    ip = docker_cluster.addresses["n2"].gossip[0]
    seen = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-4", "-o", "addr"],
                          capture_output=True, text=True, timeout=10)
    assert ip in seen.stdout, seen.stdout + seen.stderr

    backend.pause("n2")
    assert backend.paused("n2")
    assert docker_cluster.client("n2").node().ok is False  # frozen: no answer
    backend.resume("n2")
    assert not backend.paused("n2")
    assert _control_id(docker_cluster, "n2") == "n2"

    container = backend._containers["n2"]
    assert container.exec_run(["sh", "-c", "echo kept > /data/marker"]).exit_code == 0
    backend.restart("n2")
    assert wait_until(lambda: _control_id(docker_cluster, "n2") == "n2", 30, 0.2) is not None
    assert docker_cluster.addresses["n2"].gossip[0] == ip
    assert container.exec_run(["cat", "/data/marker"]).output.strip() == b"kept"
    assert backend.netns_pid("n2") not in (None, pid)

    backend.kill("n3")
    assert backend.exited("n3") == 137
    assert backend.netns_pid("n3") is None


@pytest.mark.docker
@pytest.mark.slow
def test_a_node_that_exits_at_start_is_reported_with_its_stderr(tmp_path: Path) -> None:
    from gossipcert.harness.drivers.cluster import Cluster

    data = yaml.safe_load(REFERENCE_MANIFEST.read_text())
    data["launch"]["docker"]["command"] = [
        "python3", "-c", "import sys; sys.stderr.write('no such gossip\\n'); sys.exit(3)"]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "run").mkdir()
    cluster = Cluster(load_manifest(str(path)), 3, tmp_path / "run", backend="docker")
    with pytest.raises(LaunchError) as info, cluster:
        pass
    message = str(info.value)
    assert message.startswith("node n1 exited with code 3 at start; its stderr")
    assert "no such gossip" in message
    assert (tmp_path / "run" / "nodes" / "n1" / "stderr.log").read_text() == "no such gossip\n"
    assert _owned_by(os.getpid()) == ([], [])


def kill_once_cluster_up(*certify_args: str) -> int:
    """Start ``gossipcert certify`` with these arguments and SIGKILL the harness as soon as
    it says its cluster is up; its pid (whose run label names what it left)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gossipcert.harness", "certify", *certify_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:
        output.append(line)
        if "cluster up" in line:
            break
    else:
        proc.wait()
        pytest.fail("the run ended before its cluster was up:\n" + "".join(output))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    return proc.pid


def _start_and_kill_midway(tmp_path: Path, seed: int) -> int:
    """Start a docker certify run, SIGKILL its harness once its cluster is up."""
    pid = kill_once_cluster_up("--impl", "reference", "--backend", "docker", "--nodes", "3",
                               "--seed", str(seed), "--report-dir", str(tmp_path / f"run{seed}"))
    containers, networks = _owned_by(pid)
    assert len(containers) == 4 and len(networks) == 1, "the kill left nothing to sweep"
    return pid


@pytest.mark.docker
@pytest.mark.slow
def test_a_run_killed_midway_is_swept_by_clean_and_by_the_next_run(tmp_path: Path) -> None:
    from gossipcert.harness.drivers.cluster import Cluster

    dead = _start_and_kill_midway(tmp_path, seed=31)
    result = subprocess.run([sys.executable, "-m", "gossipcert.harness", "clean"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "gossipcert clean: removed" in result.stdout
    assert _owned_by(dead) == ([], [])

    dead = _start_and_kill_midway(tmp_path, seed=32)
    (tmp_path / "next").mkdir()
    with Cluster(load_manifest("reference"), 3, tmp_path / "next", backend="docker", seed=33):
        assert _owned_by(dead) == ([], []), "the next run did not sweep the dead one"
    assert _owned_by(dead) == ([], [])
    assert _owned_by(os.getpid()) == ([], [])


def _pytest_without_docker(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    """Run one docker-marked test against an engine address where nothing answers."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    env.pop("GOSSIPCERT_REQUIRE_DOCKER", None)
    if require:
        env["GOSSIPCERT_REQUIRE_DOCKER"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "docker", "-p", "no:cacheprovider",
         f"{__file__}::test_images_are_cached_by_the_hash_of_their_inputs"],
        capture_output=True, text=True, timeout=120, env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )


@pytest.mark.slow
def test_without_docker_tests_skip_and_ci_turns_the_skip_into_a_failure(
        tmp_path: Path) -> None:
    skipped = _pytest_without_docker(tmp_path, require=False)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "1 skipped" in skipped.stdout
    assert "Docker is unavailable: no Docker engine answers" in skipped.stdout

    required = _pytest_without_docker(tmp_path, require=True)
    assert required.returncode == 1, required.stdout + required.stderr
    assert "GOSSIPCERT_REQUIRE_DOCKER=1 but Docker is unavailable" in required.stdout


def test_a_loopback_toxiproxy_url_is_refused_on_docker(tmp_path: Path) -> None:
    from gossipcert.harness.errors import ToxiproxyUnavailable

    with pytest.raises(ToxiproxyUnavailable, match="cannot reach the host's loopback"):
        DockerBackend().open_link_server(tmp_path, "http://127.0.0.1:8474")
    server = DockerBackend().open_link_server(tmp_path, "http://10.9.8.7:8474")
    assert (server.url, server.listen_host) == ("http://10.9.8.7:8474", "10.9.8.7")
    server.close()  # not ours: nothing to stop


def _shipped() -> list[str]:
    from gossipcert.harness.workloads.scenario import shipped_scenarios

    return sorted(shipped_scenarios())


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_scenario_passes_on_docker(tmp_path: Path, name: str) -> None:
    """The scenarios the process backend passes hold on containers too: partitions, cuts
    and loss by the packet plane in each container's namespace, pause by docker pause,
    restart of the same container. Each run leaves no container, network or process."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--backend", "docker",
         "--scenario", name, "--nodes", "5", "--seed", "3", "--report-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _, stderr = proc.communicate(timeout=600)
    assert "Traceback" not in stderr, stderr
    report = json.loads((run_dir / "report.json").read_text())
    failing = {r["id"]: r["evidence"] for r in report["requirements"]
               if r["status"] in ("fail", "error")}
    # One scenario alone is INCOMPLETE (exit 3) at best: it must fail nothing.
    assert proc.returncode == 3 and not failing, (failing, stderr[-3000:])
    assert report["verdict"] == "incomplete" and report["run"]["backend"] == "docker"
    exercised = [r for r in report["requirements"]
                 if r["status"] not in ("untested", "not-claimed")]
    assert exercised and all(r["status"] == "pass" for r in exercised), exercised
    assert set(report["certificate"]["untested"]) == {
        r["id"] for r in report["requirements"] if r["status"] == "untested"}
    for i in range(1, 6):
        log = run_dir / "nodes" / f"n{i}" / "stderr.log"
        assert log.exists(), f"the container log of n{i} was not saved"
    assert (run_dir / "toxiproxy.stderr.log").exists()
    assert _owned_by(proc.pid) == ([], []), "the run left containers or networks"
    assert all(not label.startswith(f"gc-3-{proc.pid}-")
               for label in labelled_processes().values()), "the run left a process"
