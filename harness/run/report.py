"""A run's report as data: what ``report.json`` holds and every report writer renders.

Its shape is ``specs/report.schema.json``. The harness builds it from the verdicts
(:func:`build_report`); the writers in ``reports/`` only render it (the JSON writer
validates it against the schema before writing, so a report that a tool downstream
cannot read is never produced).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from gossipcert.harness.history import Entry
from gossipcert.harness.judging.verdict import STATUSES, Verdict, overall_verdict
from gossipcert.specs import SPECS_DIR, gossipcert_version, spec_path

__all__ = [
    "PROCESS_FAULTS",
    "REPORT_VERSION",
    "build_report",
    "contract_version",
    "history_provenance",
    "host_description",
    "load_report_schema",
    "manifest_label",
    "manifest_provenance",
    "preflight_lines",
    "relative_path",
    "source_commit",
]

REPORT_VERSION = 1


def load_report_schema() -> dict[str, Any]:
    with spec_path("report.schema.json").open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


# ---- provenance: what ran, on what, and how to run it again --------------------------

# Faults the process plane applies (signals to a node's process), whatever the backend.
PROCESS_FAULTS = ("kill", "pause", "resume", "restart", "stop")
_SOURCE_ROOT = SPECS_DIR.parent  # the package's source tree (a checkout, or site-packages)


@cache
def source_commit() -> dict[str, Any]:
    """The commit of the harness's source tree and whether it has local changes, when it
    is a git checkout; ``{"commit": None}`` when installed from a wheel (no tree to ask)."""
    if not (_SOURCE_ROOT / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        head = subprocess.run(["git", "-C", str(_SOURCE_ROOT), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "-C", str(_SOURCE_ROOT), "status", "--porcelain",
                                 "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head.stdout.strip() or None, "dirty": bool(status.stdout.strip())}


@cache
def contract_version() -> str:
    """The control API's version (``specs/control-api.yaml`` ``info.version``)."""
    try:
        with spec_path("control-api.yaml").open(encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return "unknown"
    return str((data.get("info") or {}).get("version") or "unknown")


def relative_path(path: Path | str) -> str:
    """``path`` as someone else can read it: relative to the harness's source tree or
    the working directory when inside one, else as given; never made absolute."""
    target = Path(path)
    if not target.is_absolute():
        return str(target)
    for root in (Path.cwd(), _SOURCE_ROOT):
        try:
            return str(target.resolve().relative_to(root.resolve()))
        except ValueError:
            continue
    return str(target)


def manifest_label(path: Path | str) -> str:
    """What a report names a manifest by: its path inside the harness's tree or the
    working directory, else its folder and file name; never a machine's absolute path."""
    label = relative_path(path)
    if Path(label).is_absolute():
        return str(Path(*Path(label).parts[-2:]))
    return label


def manifest_provenance(path: Path | str) -> dict[str, Any]:
    """The manifest's name (:func:`manifest_label`) and the sha256 of its bytes, as run."""
    out: dict[str, Any] = {"manifest": manifest_label(path)}
    with contextlib.suppress(OSError):  # a manifest gone since: no hash, not a guess
        out["manifest_sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def host_description() -> dict[str, Any]:
    """The machine a run ran on, as far as a report needs it."""
    return {"system": platform.system(), "kernel": platform.release(),
            "machine": platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}


def history_provenance(entries: Sequence[Entry]) -> dict[str, Any]:
    """What a history says of its run: its start (the origin of every relative time,
    the first entry's time), the version the nodes reported (``version`` of
    ``GET /v1/node``, which every start's answer carries) and the fault planes used."""
    if not entries:
        return {}
    begin = min(e.time_ms for e in entries)
    versions = sorted({str(e.result["version"]) for e in entries
                       if e.type == "ok" and e.op in ("start", "node")
                       and isinstance(e.result, Mapping) and e.result.get("version")})
    planes = set()
    for e in entries:
        if e.type != "fault":
            continue
        if e.op in PROCESS_FAULTS:
            planes.add("process")
        plane = (e.args or {}).get("plane")
        if isinstance(plane, str):
            planes.add(plane)
    return {
        "started_at_ms": begin,
        "started_at": datetime.fromtimestamp(begin / 1000, UTC).isoformat(
            timespec="milliseconds"),
        "implementation_version": ", ".join(versions) if versions else "unknown",
        "fault_planes": sorted(planes),
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON: tuples to lists, non-finite floats to strings (JSON has no Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _fault(fault: Entry | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(fault, Entry):
        return {"time_ms": fault.time_ms, "op": fault.op, "node": fault.node, "args": fault.args}
    out = {
        "time_ms": float(fault["time_ms"]),
        "op": str(fault["op"]),
        "node": fault.get("node"),
        "args": dict(fault.get("args") or {}),
    }
    if fault.get("scenario") is not None:  # a suite's: the scenario run it was applied in
        out["scenario"] = str(fault["scenario"])
    return out


def build_report(
    *,
    implementation: str,
    seed: int | str | None,
    verdicts: Sequence[Verdict],
    faults: Iterable[Entry | Mapping[str, Any]],
    run: Mapping[str, Any],
    certificate: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]] | None = None,
    harness_error: Mapping[str, Any] | None = None,
    preflight: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a dict: ``certificate`` says what it certifies
    (:func:`harness.run.suite.certificate`), ``runs`` lists a suite's scenario runs,
    ``preflight`` the scenarios this machine could not run and the steps it moved to
    another fault plane (:mod:`harness.run.preflight`).

    ``harness_error`` (message, scenario, kind): the harness's own parts failed and cut
    the run short. The verdict is then ``error`` and the report certifies nothing; the
    requirements show what was observed until then."""
    counts = Counter(v.status for v in verdicts)
    run_info = dict(run)
    if "gossipcert_version" not in run_info or "gossipcert_commit" not in run_info:
        # Judged now, by this harness (a re-rendered report drops the version it had).
        run_info["gossipcert_version"] = gossipcert_version()
        run_info["gossipcert_commit"] = source_commit()["commit"]
        run_info["gossipcert_dirty"] = source_commit()["dirty"]
    run_info.setdefault("contract_version", contract_version())
    manifest = run_info.get("manifest")
    if isinstance(manifest, str) and Path(manifest).is_absolute():
        run_info["manifest"] = manifest_label(manifest)  # an older report's local path
    cert = dict(certificate)
    if harness_error is not None:
        cert["capabilities_certified"] = []
    report = {
        "report_version": REPORT_VERSION,
        "implementation": implementation,
        "verdict": "error" if harness_error is not None else overall_verdict(verdicts),
        "certificate": cert,
        "seed": seed,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": {status: counts.get(status, 0) for status in STATUSES},
        "faults": sorted((_fault(f) for f in faults), key=lambda f: f["time_ms"]),
        "requirements": [v.to_dict() for v in verdicts],
        "run": run_info,
    }
    if runs is not None:
        report["runs"] = [dict(r) for r in runs]
    if harness_error is not None:
        report["harness_error"] = dict(harness_error)
    if preflight and (preflight.get("skipped") or preflight.get("notes")):
        report["preflight"] = {"skipped": [dict(s) for s in preflight.get("skipped") or []],
                               "notes": [dict(n) for n in preflight.get("notes") or []]}
    out: dict[str, Any] = _jsonable(report)
    return out


def preflight_lines(report: Mapping[str, Any]) -> list[str]:
    """What this machine could not give the run (``preflight``): one line per skipped
    scenario and per step moved to another fault plane; empty when nothing was missing."""
    found: Mapping[str, Any] = report.get("preflight") or {}
    lines = [f"scenario {s.get('scenario')} skipped: {s.get('reason')}"
             for s in found.get("skipped") or []]
    lines += [f"scenario {n.get('scenario')}: {n.get('note')}" for n in found.get("notes") or []]
    return lines
