"""Manifests: the shipped one validates, broken ones give one clear message, templates expand."""

from __future__ import annotations

from pathlib import Path

import pytest
from gossipcert.harness.errors import ManifestError
from gossipcert.harness.manifest import launch_argv, load_manifest, process_argv
from gossipcert.harness.profiles import default_timing, profile_timing, profiles


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return path


GOOD = """
name: demo
contract: v1
capabilities: [membership]
timing: {probe_interval_ms: 500, suspicion_mult: 3, gossip_interval_ms: 100, fanout: 2}
launch:
  process:
    command: ["{python}", "-m", "demo", "--id", "{id}", "--probe", "{timing.probe_interval_ms}"]
    seed_args: ["--join", "{seed}"]
"""


def test_reference_manifest_is_valid() -> None:
    manifest = load_manifest("reference")
    assert manifest.accepts_dial_map
    assert manifest.conflict_policy == "lww"
    assert set(default_timing()) <= set(manifest.timing)


def test_defaults_fill_missing_timing(tmp_path: Path) -> None:
    manifest = load_manifest(str(write(tmp_path, GOOD)))
    assert manifest.timing["probe_interval_ms"] == 500
    assert manifest.timing["push_pull_interval_ms"] == default_timing()["push_pull_interval_ms"]
    assert not manifest.accepts_dial_map


def test_timing_may_name_a_shipped_profile(tmp_path: Path) -> None:
    """A manifest names the profile its implementation runs instead of copying it."""
    assert load_manifest("serf").declared_timing == profiles()["lan"]
    assert load_manifest("serf-local").declared_timing == profiles()["local"]
    named = GOOD.replace("timing: {probe_interval_ms: 500, suspicion_mult: 3, "
                         "gossip_interval_ms: 100, fanout: 2}",
                         "timing: {profile: local, probe_interval_ms: 500}")
    manifest = load_manifest(str(write(tmp_path, named)))
    assert manifest.timing == {**profile_timing("local"), "probe_interval_ms": 500}
    with pytest.raises(ManifestError, match="unknown timing profile 'slow'"):
        load_manifest(str(write(tmp_path, named.replace("local", "slow"))))


def test_a_manifest_without_timing_runs_the_default_profile(tmp_path: Path) -> None:
    """A store with no failure detector need not declare a timing: it is judged at the
    default profile, exactly as if the manifest named it."""
    bare = GOOD.replace("timing: {probe_interval_ms: 500, suspicion_mult: 3, "
                        "gossip_interval_ms: 100, fanout: 2}\n", "")
    assert "timing:" not in bare
    manifest = load_manifest(str(write(tmp_path, bare)))
    named = load_manifest(str(write(tmp_path, bare + "timing: {profile: lan}\n")))
    assert manifest.declared_timing == named.declared_timing == profiles()["lan"]
    assert manifest.timing == named.timing


def test_templates_expand(tmp_path: Path) -> None:
    manifest = load_manifest(str(write(tmp_path, GOOD)))
    argv = process_argv(manifest, node_id="n2", gossip=("127.0.0.3", 7000),
                        control=("127.0.0.3", 7001), seeds=["127.0.0.2:7000"],
                        routes={"n1": "127.0.0.1:9"}, data_dir=tmp_path)
    assert argv[2:] == ["demo", "--id", "n2", "--probe", "500", "--join", "127.0.0.2:7000"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\n", "'contract' is a required property"),
        (GOOD.replace("fanout: 2", "fanout: two"), "timing.fanout"),
        (GOOD.replace("contract: v1", "contract: v9"), "contract"),
        ("- just\n- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_manifests_name_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(str(write(tmp_path, text)))
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(str(tmp_path / "nope.yaml"))


def test_unknown_placeholder(tmp_path: Path) -> None:
    manifest = load_manifest(str(write(tmp_path, GOOD.replace("{id}", "{ident}"))))
    with pytest.raises(ManifestError, match="unknown placeholder 'ident'"):
        process_argv(manifest, node_id="n1", gossip=("h", 1), control=("h", 2), seeds=[],
                     routes={}, data_dir=tmp_path)


ROUTED = GOOD + """    route_args: ["--route", "{peer}={addr}"]
    udp_route_args: ["--udp-route", "{peer}={addr}"]
routing: dial-map
"""


def test_a_udp_dial_map_is_declared_per_transport_and_expands_beside_the_tcp_one(
        tmp_path: Path) -> None:
    """``udp_route_args`` declares that datagrams go to a dial map too; the node gets both
    maps, and a manifest without it (or a run without UDP proxies) gets the TCP one only."""
    manifest = load_manifest(str(write(tmp_path, ROUTED)))
    assert manifest.process is not None
    assert manifest.process.udp_route_args == ["--udp-route", "{peer}={addr}"]
    argv = launch_argv(manifest, manifest.process, node_id="n2", gossip=("127.0.0.3", 7000),
                       control=("127.0.0.3", 7001), seeds=[], routes={"n1": "127.0.0.1:9"},
                       data_dir=tmp_path, udp_routes={"n1": "127.0.0.1:9"})
    assert argv[-4:] == ["--route", "n1=127.0.0.1:9", "--udp-route", "n1=127.0.0.1:9"]
    tcp_only = launch_argv(manifest, manifest.process, node_id="n2", gossip=("h", 1),
                           control=("h", 2), seeds=[], routes={"n1": "127.0.0.1:9"},
                           data_dir=tmp_path)
    assert "--udp-route" not in tcp_only
    assert load_manifest("reference").process.udp_route_args  # type: ignore[union-attr]
    assert not load_manifest("tests/impls/heartbeat").process.udp_route_args  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (ROUTED.replace("routing: dial-map", "routing: none"), "udp_route_args needs routing"),
        (ROUTED.replace('    route_args: ["--route", "{peer}={addr}"]\n', ""),
         "udp_route_args without route_args"),
        (ROUTED.replace('"--udp-route", "{peer}={addr}"', '"--udp-route", "{peer}"'),
         "udp_route_args must name {peer} and {addr}"),
        (ROUTED.replace("udp_route_args: [", "udp_route_args: 7 #"), "udp_route_args"),
    ],
)
def test_a_bad_udp_dial_map_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(str(write(tmp_path, text)))
    assert fragment in str(info.value) and "\n" not in str(info.value)
