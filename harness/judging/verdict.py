"""Requirements (loaded from the catalogue) and the verdicts checkers hand back for them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from gossipcert.specs import spec_path

__all__ = [
    "CRDT_TYPES",
    "LEVELS",
    "STATUSES",
    "VERDICTS",
    "CatalogueError",
    "Requirement",
    "Verdict",
    "crdt_type_claimed",
    "failing_musts",
    "load_catalogue",
    "overall_verdict",
]

LEVELS = ("MUST", "SHOULD")
# What one requirement came to:
#   pass         exercised, and the implementation met it
#   fail         exercised, and the implementation did not (a 501 on a declared
#                capability is a contract violation, so a fail too)
#   not-claimed  its capability (or conflict policy) is not declared by the manifest
#   untested     declared, but the run never exercised it
#   error        the harness could not judge it (every read failed, a checker broke)
STATUSES = ("pass", "fail", "not-claimed", "untested", "error")
# The certificate: PASS needs every claimed MUST exercised and passed; a MUST failed is
# FAIL; a MUST left untested or in error (and none failed) is INCOMPLETE.
VERDICTS = ("pass", "fail", "incomplete", "error")  # error: the harness failed mid-run
# The CRDT types of the contract; requirement CRDT-<TYPE> is about type <type>.
CRDT_TYPES = ("g-counter", "pn-counter", "or-set", "lww-register")
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
    requirement alone is enough to evaluate its bound. ``scenarios`` names the shipped
    scenarios (``chaos/scenarios/<name>.yaml``) that exercise it, the first its own: a
    certification runs each of them and the requirement passes only when it passed in
    every one (a partition shape is certified only where it ran). ``policy``, when set,
    is the conflict policy the requirement is about: it is claimed only by a manifest
    that declares that policy.
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
    scenarios: tuple[str, ...] = ("default",)
    policy: str | None = None

    @property
    def scenario(self) -> str:
        """The requirement's own scenario: the first it names."""
        return self.scenarios[0]

    @property
    def crdt_type(self) -> str | None:
        """The CRDT type this requirement is about (``CRDT-G-COUNTER``: g-counter), if any."""
        if self.capability != "crdt" or not self.id.startswith("CRDT-"):
            return None
        name = self.id.removeprefix("CRDT-").lower()
        return name if name in CRDT_TYPES else None

    def claimed_by(self, capabilities: Iterable[str], policies: Iterable[str]) -> bool:
        """Whether an implementation declaring these capabilities and conflict policies
        claims this requirement."""
        caps = set(capabilities)
        if self.capability not in caps:
            return False
        if self.crdt_type is not None and not crdt_type_claimed(caps, self.crdt_type):
            return False
        return self.policy is None or self.policy in set(policies)


def crdt_type_claimed(capabilities: Iterable[str], crdt_type: str) -> bool:
    """Whether these capabilities claim CRDT type ``crdt_type``.

    ``crdt`` alone claims every type. An implementation with only some types (a manifest's
    ``crdt_types``) also lists each as ``crdt:<type>``, and then claims those alone: one
    rule for which requirements are claimed and which operations run.
    """
    caps = set(capabilities)
    if "crdt" not in caps:
        return False
    listed = {c.removeprefix("crdt:") for c in caps if c.startswith("crdt:")}
    return not listed or crdt_type in listed


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one requirement against one history.

    ``measured`` and ``bound`` are in ``unit``; ``measured`` is ``None`` when nothing could
    be measured (not claimed, untested, error). ``evidence`` is one line for people and
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
    # What a timing failure is about, for judging whether a stall of the host excuses it:
    # one (start, end) per failing observation, from when its clock started to when it
    # was made or the watch ended; None when the checker does not say, () when the
    # failure is not about timing. Judging only: the report does not carry it.
    windows: tuple[tuple[float, float], ...] | None = field(
        default=None, compare=False, repr=False
    )

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


def failing_musts(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The MUST requirements that failed: what makes a run FAIL, an explored sequence a
    counterexample and a replay still failing. An ``error`` (not judged) and an
    ``untested`` are not failures: they make a run incomplete, never failed."""
    return [v for v in verdicts if v.level == "MUST" and v.status == "fail"]


def overall_verdict(verdicts: Iterable[Verdict]) -> str:
    """``fail`` when a MUST failed; else ``incomplete`` when a claimed MUST was left
    untested or could not be judged; else ``pass``. SHOULDs only inform; a requirement
    whose capability is not claimed is outside the certificate."""
    verdicts = list(verdicts)
    if failing_musts(verdicts):
        return "fail"
    musts = [v for v in verdicts if v.level == "MUST"]
    if any(v.status in ("untested", "error") for v in musts):
        return "incomplete"
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
    scenarios = _scenarios(raw, source)
    policy = raw.get("policy")
    if policy is not None and policy not in ("lww", "mv"):
        raise CatalogueError(f"{source}: requirement {raw['id']!r} has a bad policy {policy!r}")
    return Requirement(**values, constants=dict(constants), scenarios=scenarios, policy=policy)


def _scenarios(raw: Mapping[str, Any], source: Path) -> tuple[str, ...]:
    """The scenarios a requirement names: ``scenarios`` (a list, its own first), or one
    ``scenario`` (a name); never both. Without either, the default scenario."""
    if "scenario" in raw and "scenarios" in raw:
        raise CatalogueError(f"{source}: requirement {raw['id']!r} has both 'scenario' and "
                             "'scenarios': name them all in 'scenarios'")
    value = raw.get("scenarios", [raw.get("scenario", "default")])
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise CatalogueError(f"{source}: requirement {raw['id']!r} has bad scenarios {value!r}")
    if len(set(value)) != len(value):
        raise CatalogueError(f"{source}: requirement {raw['id']!r} names a scenario twice: "
                             f"{value!r}")
    return tuple(value)
