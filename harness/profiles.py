"""Timing profiles: the ceilings and floors a certification holds declared timing to.

Bounds derive from the timing a manifest declares, so an implementation could loosen
every bound by declaring slow timing (or by leaving a parameter out). A certification
therefore runs against a named profile (``specs/timing-profiles.yaml``): a parameter
declared slower than the profile is judged at the profile's value, one left out takes
it, and the report says which. What the harness sizes from the judged timing (the
latency storm, the stall threshold, scenario durations) needs it to be physically
meaningful, so a parameter declared faster than its floor (the same file) is judged at
the floor. The nodes still run as declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml
from gossipcert.harness.errors import GossipcertError
from gossipcert.specs import spec_path

__all__ = [
    "DEFAULT_PROFILE",
    "JudgedTiming",
    "default_timing",
    "floors",
    "judged_timing",
    "profile_names",
    "profile_timing",
    "profiles",
]

DEFAULT_PROFILE = "lan"

# Larger is slower for these: a longer period or timeout, more retransmissions, a larger
# suspicion multiplier all stretch the bounds. fanout and indirect_checks have no slow
# direction in the bounds (see the profiles file) and are judged as declared.
_CAPPED = (
    "probe_interval_ms",
    "probe_timeout_ms",
    "suspicion_mult",
    "suspicion_max_timeout_mult",
    "gossip_interval_ms",
    "retransmit_mult",
    "push_pull_interval_ms",
)


@lru_cache(maxsize=1)
def _load() -> dict[str, dict[str, Any]]:
    with spec_path("timing-profiles.yaml").open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return {str(k): dict(v) for k, v in (data.get("profiles") or {}).items()}


@lru_cache(maxsize=1)
def _load_floors() -> dict[str, float]:
    with spec_path("timing-profiles.yaml").open(encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return {str(k): float(v) for k, v in (data.get("floors") or {}).items()}


def floors() -> dict[str, float]:
    """The least each timing parameter is judged at, whatever the profile."""
    return dict(_load_floors())


def profiles() -> dict[str, dict[str, float]]:
    """Every shipped profile's timing, by name."""
    return {name: {k: float(v) for k, v in p["timing"].items()} for name, p in _load().items()}


def profile_timing(name: str) -> dict[str, Any]:
    """A shipped profile's timing as the profiles file writes it (the one place a
    profile's numbers are written); GossipcertError names the known ones."""
    known = _load()
    if name not in known:
        raise GossipcertError(
            f"unknown timing profile {name!r} (available: {', '.join(sorted(known))})"
        )
    return dict(known[name]["timing"])


def default_timing() -> dict[str, Any]:
    """The default profile's timing: what fills every timing parameter a manifest leaves
    out, and what a bound is derived with when a history names none."""
    return profile_timing(DEFAULT_PROFILE)


def profile_names() -> list[str]:
    return sorted(_load())


@dataclass(frozen=True)
class JudgedTiming:
    """The timing a run is judged at, and how it came from the declaration."""

    profile: str
    timing: dict[str, float]
    declared: dict[str, float]
    capped: dict[str, tuple[float, float]] = field(default_factory=dict)  # declared, ceiling
    defaulted: tuple[str, ...] = ()
    floored: dict[str, tuple[float, float]] = field(default_factory=dict)  # declared, floor

    def describe(self) -> dict[str, Any]:
        """The certificate's ``timing_profile``."""
        return {
            "name": self.profile,
            "timing": dict(self.timing),
            "declared": dict(self.declared),
            "capped": {k: {"declared": d, "ceiling": c} for k, (d, c) in self.capped.items()},
            "defaulted": list(self.defaulted),
            "floored": {k: {"declared": d, "floor": f} for k, (d, f) in self.floored.items()},
        }

    def note(self) -> str:
        """One line for progress output and reports: what the profile changed."""
        parts = [f"{k} {d:g} -> {c:g}" for k, (d, c) in sorted(self.capped.items())]
        text = f"timing profile {self.profile}"
        if parts:
            text += (
                f": declared slower than the profile, judged at its ceiling ({'; '.join(parts)})"
            )
        if self.floored:
            low = "; ".join(f"{k} {d:g} -> {f:g}" for k, (d, f) in sorted(self.floored.items()))
            text += f"; declared faster than its floor, judged at the floor ({low})"
        if self.defaulted:
            text += f"; not declared, taken from the profile: {', '.join(self.defaulted)}"
        return text


def judged_timing(declared: Mapping[str, Any], profile: str = DEFAULT_PROFILE) -> JudgedTiming:
    """``declared`` (a manifest's own timing) judged against ``profile``."""
    known = profiles()
    if profile not in known:
        raise GossipcertError(
            f"unknown timing profile {profile!r} (available: {', '.join(sorted(known))})"
        )
    ceiling = known[profile]
    own = {
        str(k): float(v)
        for k, v in declared.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    least = floors()
    timing: dict[str, float] = {}
    capped: dict[str, tuple[float, float]] = {}
    floored: dict[str, tuple[float, float]] = {}
    defaulted: list[str] = []
    for name, limit in ceiling.items():
        if name not in own:
            timing[name] = limit
            defaulted.append(name)
        elif name in _CAPPED and own[name] > limit:
            timing[name] = limit
            capped[name] = (own[name], limit)
        elif name in least and own[name] < least[name]:
            timing[name] = least[name]
            floored[name] = (own[name], least[name])
        else:
            timing[name] = own[name]
    for name, value in own.items():
        timing.setdefault(name, value)
    return JudgedTiming(profile, timing, own, capped, tuple(defaulted), floored)
