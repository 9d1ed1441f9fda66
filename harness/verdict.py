"""Requirements (loaded from the catalogue) and the verdicts checkers hand back for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from specs import spec_path

__all__ = [
    "LEVELS",
    "STATUSES",
    "CatalogueError",
    "Requirement",
    "Verdict",
    "load_catalogue",
    "overall_verdict",
]

LEVELS = ("MUST", "SHOULD")
STATUSES = ("pass", "fail", "not-applicable", "error")
_REQUIRED_FIELDS = (
    "id",
    "level",
    "title",
    "capability",
    "measures",
    "unit",
    "bound",
    "derivation",
    "checker",
)


class CatalogueError(ValueError):
    """The requirement catalogue is malformed."""


@dataclass(frozen=True)
class Requirement:
    """One entry of ``specs/requirements.yaml``.

    ``constants`` carries the catalogue-wide constants (such as ``slack_ms``) so that a
    requirement alone is enough to evaluate its bound. ``scenario`` names the shipped
    scenario (``chaos/scenarios/<name>.yaml``) that exercises it.
    """

    id: str
    level: str
    title: str
    capability: str
    measures: str
    unit: str
    bound: str
    derivation: str
    checker: str
    constants: Mapping[str, float] = field(default_factory=dict)
    scenario: str = "default"


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one requirement against one history.

    ``measured`` and ``bound`` are in ``unit``; ``measured`` is ``None`` when nothing could
    be measured (not applicable, error). ``evidence`` is one line for people and
    ``details`` a small structured record (which node, which key, when) for tools.
    """

    id: str
    level: str
    title: str
    status: str
    measured: float | None
    bound: float | None
    unit: str
    evidence: str
    details: Mapping[str, Any] = field(default_factory=dict)
    scenario: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status {self.status!r} is not one of {STATUSES}")

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        """The report's shape of a verdict (see ``specs/report.schema.json``)."""
        return {
            "id": self.id,
            "level": self.level,
            "title": self.title,
            "status": self.status,
            "measured": self.measured,
            "bound": self.bound,
            "unit": self.unit,
            "evidence": {"summary": self.evidence, "details": dict(self.details)},
            **({"scenario": self.scenario} if self.scenario else {}),
        }


def overall_verdict(verdicts: Iterable[Verdict]) -> str:
    """``pass`` when every MUST passed or does not apply; SHOULDs only inform."""
    for verdict in verdicts:
        if verdict.level == "MUST" and verdict.status not in ("pass", "not-applicable"):
            return "fail"
    return "pass"


def load_catalogue(path: Path | str | None = None) -> list[Requirement]:
    """Read and validate the requirement catalogue (default: the shipped one)."""
    source = Path(path) if path is not None else spec_path("requirements.yaml")
    with source.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or not isinstance(data.get("requirements"), list):
        raise CatalogueError(f"{source}: expected a mapping with a 'requirements' list")
    constants = _constants(data.get("constants") or {}, source)
    requirements = [_requirement(raw, constants, source) for raw in data["requirements"]]
    ids = [r.id for r in requirements]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogueError(f"{source}: duplicate requirement ids {duplicates}")
    return requirements


def _constants(raw: Any, source: Path) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{source}: 'constants' must be a mapping of names to numbers")
    out: dict[str, float] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CatalogueError(f"{source}: constant {name!r} must be a number")
        out[str(name)] = float(value)
    return out


def _requirement(raw: Any, constants: Mapping[str, float], source: Path) -> Requirement:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{source}: every requirement must be a mapping, got {raw!r}")
    missing: Sequence[str] = [name for name in _REQUIRED_FIELDS if raw.get(name) in (None, "")]
    if missing:
        raise CatalogueError(f"{source}: requirement {raw.get('id')!r} lacks {list(missing)}")
    level = str(raw["level"])
    if level not in LEVELS:
        raise CatalogueError(f"{source}: requirement {raw['id']!r} has level {level!r}")
    values = {name: " ".join(str(raw[name]).split()) for name in _REQUIRED_FIELDS}
    scenario = raw.get("scenario", "default")
    if not isinstance(scenario, str) or not scenario:
        raise CatalogueError(f"{source}: requirement {raw['id']!r} has a bad scenario {scenario!r}")
    return Requirement(**values, constants=dict(constants), scenario=scenario)
