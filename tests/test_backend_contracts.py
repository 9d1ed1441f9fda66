"""What a backend is, read from one place: the registry the command line and every name
check use, and the optional features each backend declares (read once by the cluster,
never probed at each use)."""

from __future__ import annotations

import argparse

import pytest
from gossipcert.harness.commands.cli import build_parser
from gossipcert.harness.drivers.backends import (
    BACKENDS,
    SIMULATION,
    BackendFeatures,
    make_backend,
    unknown_backend,
)
from gossipcert.harness.errors import GossipcertError


def _backend_choices(command: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if a.dest == "backend")
    return list(action.choices or [])


@pytest.mark.parametrize("command", ["certify", "explore", "replay"])
def test_the_command_line_offers_the_registered_backends(command: str) -> None:
    assert _backend_choices(command) == ["process", "docker", "swarm"] == list(BACKENDS)


def test_simulation_is_a_replay_name_not_a_backend() -> None:
    assert SIMULATION not in BACKENDS
    with pytest.raises(GossipcertError) as raised:
        make_backend(SIMULATION)
    assert str(raised.value) == unknown_backend(SIMULATION)
    assert str(raised.value) == ("unknown backend 'simulation' "
                                 "(available: process, docker, swarm)")


def test_each_backend_runs_the_launch_section_of_its_kind() -> None:
    assert {k.name: k.launch for k in BACKENDS.values()} == {
        "process": "process", "docker": "docker", "swarm": "docker"}


@pytest.mark.parametrize(("name", "offered"), [
    ("process", {"prepares", "pins_sources", "cgroups"}),
    ("docker", {"prepares", "link_server", "template_values"}),
    ("swarm", {"prepares", "link_server", "template_values", "packet_plane"}),
])
def test_each_backend_declares_its_optional_features(name: str, offered: set[str]) -> None:
    backend = make_backend(name)  # builds nothing yet: no engine is asked
    features = BackendFeatures.of(backend)
    declared = {field for field, value in vars(features).items() if value is not None}
    assert declared == offered
    assert all(value is backend for value in vars(features).values() if value is not None)


def test_a_backend_with_no_optional_feature_declares_none() -> None:
    class Bare:
        name = "bare"

    assert BackendFeatures.of(Bare()) == BackendFeatures()  # type: ignore[arg-type]
