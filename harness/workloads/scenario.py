"""Scenario files: load and validate them, and compile them into operations.

A scenario (YAML in ``chaos/scenarios/``, schema ``specs/scenario.schema.json``) is a
list of steps. :func:`harness.workloads.planner.plan` compiles the steps into operations
(:mod:`harness.workloads.operations`) from the run's seed; the run pipeline
(:mod:`harness.run.pipeline`) runs them through the one interpreter against any cluster
driver (real or simulated).

Every wait is bounded by the requirement's own bound plus a margin, so a broken
implementation makes the run fail, never hang; every fault is confirmed in effect by the
cluster before the sequence goes on.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.judging.bounds import derived_parameters
from gossipcert.harness.manifest import Manifest, with_run_options
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.planner import PlanError, plan
from gossipcert.specs import spec_path

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "chaos" / "scenarios"


class ScenarioError(GossipcertError):
    """A scenario file is missing, unreadable, fails the schema, or cannot be planned."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    min_nodes: int
    steps: list[dict[str, Any]]
    path: Path
    conflict_policy: str | None = None  # overrides the manifest's, when it supports it
    encryption: bool = False             # run with a fresh gossip key (capability encryption)


def shipped_scenarios() -> dict[str, Path]:
    """The scenarios shipped in ``chaos/scenarios/``, by name."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


@functools.cache
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(spec_path("scenario.schema.json").read_text())
    return data


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario file by path; validated."""
    text = str(name_or_path)
    shipped = shipped_scenarios()
    if text in shipped:
        path = shipped[text]
    else:
        path = Path(text)
        if not path.is_file():
            known = ", ".join(shipped)
            raise ScenarioError(f"no scenario {text!r}: not a shipped name ({known}) "
                                "nor a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"scenario {path}: cannot read: {str(exc).splitlines()[0]}") \
            from None
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        # The deepest error names the offending field better than a failed oneOf/allOf.
        err = errors[0]
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        where = "/".join(str(p) for p in best.absolute_path) or "(top level)"
        raise ScenarioError(f"scenario {path}: {where}: {best.message}")
    return Scenario(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        min_nodes=int(data.get("min_nodes", 3)),
        steps=[dict(s) for s in data["steps"]],
        path=path,
        conflict_policy=data.get("conflict_policy"),
        encryption=bool(data.get("encryption", False)),
    )


def run_manifest(manifest: Manifest, scenario: Scenario) -> Manifest:
    """The manifest as this scenario runs it: its conflict policy and gossip key (see
    :func:`harness.manifest.with_run_options`). Its ``conflict_policy`` is the effective
    one the history's meta must record."""
    return with_run_options(manifest, conflict_policy=scenario.conflict_policy,
                            encryption=scenario.encryption)


def schedule(scenario: Scenario, nodes: list[str], seed: int, timing: Mapping[str, Any],
             *, quiet_s: float | None = None, partition_s: float | None = None) -> list[Op]:
    """The operations of a scenario for these nodes, this seed and this timing."""
    if len(nodes) < scenario.min_nodes:
        raise ScenarioError(f"scenario {scenario.name} needs at least {scenario.min_nodes} "
                            f"nodes, got {len(nodes)}")
    params = derived_parameters(dict(timing), len(nodes))
    try:
        return plan(scenario.steps, nodes, seed, params, quiet_s=quiet_s,
                    partition_s=partition_s)
    except (PlanError, ValueError) as exc:
        raise ScenarioError(f"scenario {scenario.name}: {exc}") from None
