"""Preflight decides before any node starts: which planes a scenario needs, whether this
machine offers them, and what is skipped (with the reason) or moved to another plane.

The machine is built by hand (:class:`Machine`) or its checks are made to fail the way a
real machine fails them: iptables hidden by a PATH without it, a non-root user by a
patched ``geteuid``. No node starts in any of these tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from gossipcert.chaos import packet
from gossipcert.harness.commands.doctor import doctor
from gossipcert.harness.commands.rerender import rerender
from gossipcert.harness.drivers.faultplanes import LinkFaults, PacketFaults
from gossipcert.harness.drivers.interface import NO_LATENCY
from gossipcert.harness.errors import EXIT_INCOMPLETE, EXIT_UNAVAILABLE
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import Manifest, load_manifest
from gossipcert.harness.profiles import judged_timing
from gossipcert.harness.run.certify import CertifyOptions, certify
from gossipcert.harness.run.explore import left_out, space_for
from gossipcert.harness.run.pipeline import (
    PublishedRun,
    RunSpec,
    node_ids,
    publish,
    skipped_run,
    write_suite_report,
)
from gossipcert.harness.run.preflight import (
    Machine,
    UnavailableError,
    check_backend,
    declared_faults,
    fit,
    fit_or_refuse,
    offers,
    packet_reason,
    resolve,
)
from gossipcert.harness.run.suite import merge_verdicts
from gossipcert.harness.workloads.faults import Latency, Loss, Partition
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.scenario import load_scenario, schedule

NO_ROOT = "the packet plane needs root (iptables)"
NO_IPTABLES = "iptables is not installed (Debian package: iptables)"
EVERYTHING = Machine()
NOT_ROOT = Machine(packet=NO_ROOT, delay=NO_ROOT, root=False)
NO_DELAY = Machine(delay="no NFQUEUE here")

REFERENCE = load_manifest("reference")  # routing: dial-map
SERF = load_manifest("serf")  # routing: none


def declare(monkeypatch: pytest.MonkeyPatch, plane: type, faults: set[str]) -> None:
    """Make ``plane`` declare ``faults`` for every run."""
    monkeypatch.setattr(plane, "faults_for", staticmethod(lambda manifest, backend: faults))


def ops_of(name: str) -> list[Op]:
    timing = judged_timing(REFERENCE.declared_timing).timing
    return schedule(load_scenario(name), node_ids(5), 1, timing)


# ---- the decision table ----------------------------------------------------------------

# manifest, machine, fault, plane asked -> plane used (None: cannot), reason fragment
TABLE = [
    (REFERENCE, EVERYTHING, "cut", "auto", "link", None),
    (REFERENCE, EVERYTHING, "loss", "auto", "packet", None),
    (REFERENCE, EVERYTHING, "latency", "auto", "link", None),
    (REFERENCE, EVERYTHING, "cut", "packet", "packet", None),
    (REFERENCE, NOT_ROOT, "cut", "auto", "link", None),
    (REFERENCE, NOT_ROOT, "latency", "auto", "link", None),
    (REFERENCE, NOT_ROOT, "loss", "auto", None, NO_ROOT),
    (REFERENCE, NOT_ROOT, "cut", "packet", "link", None),  # moved, with a note
    (SERF, EVERYTHING, "cut", "auto", "packet", None),
    (SERF, EVERYTHING, "loss", "auto", "packet", None),
    (SERF, EVERYTHING, "latency", "auto", None, "latency needs the link plane"),
    (SERF, EVERYTHING, "cut", "link", "packet", None),
    (SERF, NOT_ROOT, "cut", "auto", None, NO_ROOT),
    (SERF, NOT_ROOT, "cut", "link", None, "dial map"),
]


@pytest.mark.parametrize(("manifest", "machine", "fault", "asked", "used", "why"), TABLE)
def test_where_each_fault_goes(manifest: Manifest, machine: Machine, fault: str, asked: str,
                               used: str | None, why: str | None,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    # What each plane declares is pinned: the table is about the decisions.
    declare(monkeypatch, LinkFaults, {"cut", "latency"})
    declare(monkeypatch, PacketFaults, {"cut", "loss"})
    where = resolve(offers(manifest, "process", machine), fault, asked)
    assert where.plane == used
    if why is not None:
        assert why in (where.reason or "")
    if used is not None and asked not in ("auto", used):
        assert where.note and asked in where.note and used in where.note


def test_the_swarm_packet_plane_is_the_agents_not_this_machines() -> None:
    """On Swarm the agents run iptables on each host: this machine's lack is not theirs."""
    where = resolve(offers(SERF, "swarm", NOT_ROOT), "cut")
    assert where.plane == "packet"


def test_declared_abilities_flow_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Preflight reads the planes' declared faults: a link plane that gains loss carries
    the lossy scenario without root; a packet plane that gains latency gives it to an
    implementation without a dial map, where the delay line is there."""
    declare(monkeypatch, LinkFaults, {"cut", "latency"})
    declare(monkeypatch, PacketFaults, {"cut", "loss"})
    assert fit(ops_of("lossy"), offers(REFERENCE, "process", NOT_ROOT)).skipped
    declare(monkeypatch, LinkFaults, {"cut", "loss", "latency"})
    fitted = fit(ops_of("lossy"), offers(REFERENCE, "process", NOT_ROOT))
    assert fitted.skipped is None and fitted.notes == ()

    declare(monkeypatch, PacketFaults, {"cut", "loss", "latency"})
    storm = ops_of("latency-storm")
    assert fit(storm, offers(SERF, "process", EVERYTHING)).skipped is None
    skipped = fit(storm, offers(SERF, "process", NO_DELAY)).skipped
    assert skipped == "latency needs the packet plane: no NFQUEUE here"


def test_each_plane_declares_its_faults_per_run() -> None:
    """Datagram loss on the link plane only for an implementation that routes datagrams
    through it; delays on the packet plane except through the swarm's agents."""
    assert declared_faults(LinkFaults, REFERENCE, "process") == {"cut", "latency", "loss"}
    tcp_only = replace(REFERENCE, process=replace(REFERENCE.process, udp_route_args=[]))
    assert declared_faults(LinkFaults, tcp_only, "process") == {"cut", "latency"}
    assert declared_faults(PacketFaults, SERF, "process") == {"cut", "loss", "latency"}
    assert declared_faults(PacketFaults, SERF, "swarm") == {"cut", "loss"}


def test_partitions_runs_on_the_link_plane_alone_with_a_note() -> None:
    ops = ops_of("partitions")
    assert any(isinstance(op, Partition) and op.plane == "packet" for op in ops)
    fitted = fit(ops, offers(REFERENCE, "process", NOT_ROOT))
    assert fitted.skipped is None
    assert not any(getattr(op, "plane", "auto") == "packet" for op in fitted.ops)
    assert fitted.notes == ("a cut meant for the packet plane runs on the link plane "
                            f"({NO_ROOT})",)
    # Everything else is the same sequence.
    assert len(fitted.ops) == len(ops)
    unchanged = fit(ops, offers(REFERENCE, "process", EVERYTHING))
    assert unchanged.ops == tuple(ops) and unchanged.notes == ()


@pytest.mark.parametrize(("manifest", "skipped"), [
    (REFERENCE, set()),  # the link plane alone: no root
    (SERF, {"default", "broadcast-partitions", "partitions", "flapping", "latency-storm",
            "lossy", "paused-node"}),
])
def test_which_shipped_scenarios_a_plain_user_cannot_run(manifest: Manifest,
                                                         skipped: set[str]) -> None:
    planes = offers(manifest, "process", NOT_ROOT)
    found = {name for name in ("default", "broadcast-partitions", "partitions", "flapping",
                               "churn", "crash-restart", "latency-storm", "lossy",
                               "paused-node")
             if fit(ops_of(name), planes).skipped}
    assert found == skipped


def test_one_line_per_missing_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    ops = [Loss((("n1", "n2"),), 0.1), Latency((("n1", "n2"),), 100, 0),
           Loss((("n2", "n1"),), 0.1)]
    declare(monkeypatch, PacketFaults, {"cut", "loss"})
    assert fit(ops, offers(SERF, "process", NOT_ROOT)).skipped == (
        f"loss needs the packet plane: {NO_ROOT}; {NO_LATENCY}")
    declare(monkeypatch, PacketFaults, {"cut", "loss", "latency"})
    assert fit(ops, offers(SERF, "process", NOT_ROOT)).skipped == (
        f"loss and latency need the packet plane: {NO_ROOT}")


# ---- the machine's own checks ------------------------------------------------------------


def test_iptables_hidden_by_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert packet_reason() == NO_IPTABLES
    machine = Machine.probe()
    assert machine.packet == NO_IPTABLES and machine.iptables is None
    assert resolve(offers(SERF, "process", machine), "loss").reason == \
        f"loss needs the packet plane: {NO_IPTABLES}"
    # The reference node routes its datagrams through the link plane: loss needs no root.
    assert resolve(offers(REFERENCE, "process", machine), "loss").plane == "link"


def test_a_plain_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Root is named first: a plain user's PATH has no sbin, so iptables would look absent."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert Machine.probe().packet == NO_ROOT
    monkeypatch.setenv("PATH", str(tmp_path))
    assert Machine.probe().packet == NO_ROOT


def test_a_backend_that_cannot_run_here_is_refused() -> None:
    no_engine = Machine(docker="no Docker engine answers (FileNotFoundError)")
    with pytest.raises(UnavailableError, match="docker backend cannot run") as caught:
        check_backend("docker", no_engine)
    assert caught.value.exit_code == EXIT_UNAVAILABLE
    assert check_backend("process", no_engine) is no_engine


def test_a_replay_that_cannot_run_here_is_refused() -> None:
    with pytest.raises(UnavailableError, match=NO_ROOT.replace("(", r"\(").replace(")", r"\)")):
        fit_or_refuse([Loss((("n1", "n2"),), 0.1)], offers(SERF, "process", NOT_ROOT),
                      "the replay")


def test_explore_draws_only_what_is_available() -> None:
    judged = judged_timing(REFERENCE.declared_timing)
    planes = offers(REFERENCE, "process", NOT_ROOT)
    space = space_for(REFERENCE, node_ids(5), judged, planes=planes)
    assert space.network and space.latency and space.loss and left_out(planes) == []
    serf = space_for(SERF, node_ids(5), judged, planes=offers(SERF, "process", NOT_ROOT))
    assert not serf.network and not serf.loss


# ---- what a skipped scenario leaves ------------------------------------------------------


def test_a_skipped_scenario_leaves_its_requirements_untested() -> None:
    catalogue = load_catalogue()
    spec = RunSpec(backend="process", nodes=tuple(node_ids(5)), seed=1,
                   timing=judged_timing(REFERENCE.declared_timing).timing, ops=(),
                   scenario="lossy", catalogue=tuple(catalogue), manifest=REFERENCE)
    record = skipped_run(spec, NO_ROOT)
    by_id = {v.id: v for v in record.verdicts}
    assert by_id["FD-NO-FP-LOSS"].status == "untested"
    assert NO_ROOT in by_id["FD-NO-FP-LOSS"].evidence
    assert not any(v.status in ("pass", "fail") for v in record.verdicts)
    # In a suite, a pass elsewhere does not cover for the skipped scenario it names.
    passed = [replace(v, status="pass") for v in record.verdicts if v.id == "FD-NO-FP-LOSS"]
    merged = {v.id: v for v in merge_verdicts(catalogue, [("default", passed),
                                                           ("lossy", record.verdicts)])}
    assert merged["FD-NO-FP-LOSS"].status == "untested"
    assert NO_ROOT in merged["FD-NO-FP-LOSS"].evidence


def test_certify_skips_what_this_machine_cannot_run(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    """``--scenario lossy`` as a plain user: no node starts, INCOMPLETE (exit 3), and
    every report says what was skipped and why."""
    monkeypatch.setattr(packet, "unavailable_reason", lambda: NO_ROOT)
    declare(monkeypatch, LinkFaults, {"cut", "latency"})
    result = certify(CertifyOptions(scenario="lossy", seed=1, report_dir=tmp_path))
    assert result.exit_code == EXIT_INCOMPLETE
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] == "incomplete"
    assert report["preflight"] == {"skipped": [{
        "scenario": "lossy", "reason": f"loss needs the packet plane: {NO_ROOT}"}], "notes": []}
    loss = next(r for r in report["requirements"] if r["id"] == "FD-NO-FP-LOSS")
    assert loss["status"] == "untested" and NO_ROOT in loss["evidence"]["summary"]
    assert "lossy skipped" in (tmp_path / "report.md").read_text()
    assert "lossy skipped" in (tmp_path / "report.html").read_text()
    assert not (tmp_path / "nodes").exists()
    # Rendered again from its history, the report still says why.
    assert rerender(tmp_path, print_line=lambda line: None) == EXIT_INCOMPLETE
    again = json.loads((tmp_path / "report.json").read_text())
    assert again["preflight"] == report["preflight"]
    assert NO_ROOT in next(r for r in again["requirements"]
                           if r["id"] == "FD-NO-FP-LOSS")["evidence"]["summary"]


def test_the_command_line_refuses_an_unreachable_docker(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock",
           "GOSSIPCERT_DOCKER_TIMEOUT_S": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--backend", "docker",
         "--quick", "--report-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("gossipcert: error: the docker backend cannot run")
    assert len(result.stderr.strip().splitlines()) == 1


# ---- doctor ------------------------------------------------------------------------------


def test_doctor_all_available() -> None:
    lines: list[str] = []
    machine = Machine(docker=None, swarm=None, iptables="/usr/sbin/iptables")
    assert doctor([], out=lines.append, machine=machine) == 0
    text = "\n".join(lines)
    assert "all available" in text
    assert "latency    yes  link plane (dial map)" in text
    assert "loss       yes  packet plane (needs root, iptables)" in text


def test_doctor_names_what_is_missing_for_whom() -> None:
    lines: list[str] = []
    code = doctor(["tests/impls/heartbeat"], as_json=True, out=lines.append,
                  machine=Machine(packet=NO_ROOT, delay=NO_ROOT, root=False, docker=None,
                                  swarm="this Docker engine is in no swarm"))
    assert code == EXIT_UNAVAILABLE
    data = json.loads("\n".join(lines))
    assert not data["ok"] and not data["root"]
    planes = {p["name"]: p for p in data["planes"]}
    assert planes["packet plane"]["available"] is False
    assert planes["packet plane"]["detail"] == NO_ROOT
    assert planes["link plane"]["available"] and planes["docker backend"]["available"]
    impls = {i["impl"]: i for i in data["implementations"]}
    reference = impls["gossipcert-reference"]["faults"]
    assert reference["cut"] == {"available": True, "plane": "link",
                                "detail": "link plane (dial map)"}
    assert reference["loss"]["available"] is True and reference["loss"]["plane"] == "link"
    assert "heartbeat" in " ".join(impls)


def test_doctor_on_the_command_line() -> None:
    result = subprocess.run([sys.executable, "-m", "gossipcert.harness", "doctor", "--json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, EXIT_UNAVAILABLE), result.stderr
    data = json.loads(result.stdout)
    assert (result.returncode == 0) == data["ok"]
    assert {p["name"] for p in data["planes"]} >= {"link plane", "packet plane",
                                                   "process faults", "docker backend",
                                                   "swarm backend"}
    bad = subprocess.run([sys.executable, "-m", "gossipcert.harness", "doctor", "--impl",
                          "/no/such/manifest.yaml"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_a_suite_lists_its_skipped_scenarios(tmp_path: Path) -> None:
    """A suite's report gathers what each scenario run's preflight skipped or moved."""
    catalogue = load_catalogue()
    runs = []
    for name, reason in (("lossy", NO_ROOT), ("latency-storm", "no delay line")):
        spec = RunSpec(backend="process", nodes=tuple(node_ids(5)), seed=1,
                       timing=judged_timing(REFERENCE.declared_timing).timing, ops=(),
                       scenario=name, catalogue=tuple(catalogue), manifest=REFERENCE)
        record = skipped_run(spec, reason)
        run_dir = tmp_path / "scenarios" / name
        report = publish(record, run_dir, mode="suite", run_extra={"skipped": reason})
        runs.append(PublishedRun(name, run_dir, report, record.verdicts, record.entries,
                                 record.index))
    report = write_suite_report(tmp_path, runs, catalogue=catalogue,
                                run_info={"nodes": node_ids(5), "backend": "process"})
    assert report["verdict"] == "incomplete"
    assert [s["scenario"] for s in report["preflight"]["skipped"]] == ["lossy",
                                                                       "latency-storm"]
    assert [r.get("skipped") for r in report["runs"]] == [NO_ROOT, "no delay line"]
    assert f"skipped: {NO_ROOT}" in (tmp_path / "report.md").read_text()
