"""``gossipcert replay FILE``: run a saved sequence of operations again and judge it.

A replay file is what ``gossipcert explore`` writes when it finds a violation and
shrinks it (``replay.json`` in its report directory), and what the property-based suite
in simulation writes; format ``gossipcert-ops/1``:

.. code-block:: json

    {"format": "gossipcert-ops/1",
     "implementation": "tests/impls/acks_unkept_writes",
     "manifest": "/abs/path/tests/impls/acks_unkept_writes/manifest.yaml",
     "backend": "process",
     "nodes": ["n1", "n2", "n3", "n4", "n5"],
     "timing": {"probe_interval_ms": 300, "...": 0},
     "timing_profile": "lan",
     "conflict_policy": "lww",
     "core": "tests/impls/acks_unkept_writes/defect.py:installed",
     "seed": 4711,
     "ops": [{"op": "await-members"},
             {"op": "put", "node": "n1", "key": "x3-k0", "value": "n1/w1"},
             {"op": "put", "node": "n1", "key": "x3-k0", "value": "n1/w2"},
             {"op": "await-convergence", "label": "end of the sequence"}],
     "failure": {"requirements": ["KV-NO-LOST-WRITE"], "evidence": "...",
                 "verdicts": [{"id": "KV-NO-LOST-WRITE", "status": "fail", "...": 0}]}}

``backend`` is where the sequence ran: ``process``, ``docker`` or ``simulation`` (a file
without one comes from the simulator, as the property tests' older files do).
``implementation`` is what ``--impl`` was (``reference`` or a manifest path); ``manifest``
the resolved manifest, used when that path does not resolve from where replay runs.
``timing`` is the timing the bounds derive from (the profile's ceilings applied);
``core`` names the reference core's seeded defect the implementation runs, when it is
one (``file.py:attribute``, see :mod:`harness.drivers.simulated`), so ``--sim`` can replay it in
the simulator. ``ops`` are operations in their JSON form (``specs/operations.schema.json``).

A replay runs on a fresh cluster (``--impl`` and ``--backend`` override the recorded
ones) or, with ``--sim``, in the simulator of the reference core. The history is judged
by the checkers certify uses. Exit 1 while a MUST requirement still fails, 0 once none
does (the defect is fixed), 2 for a file that cannot be replayed.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.backends import BACKENDS, SIMULATION, unknown_backend
from gossipcert.harness.errors import EXIT_FAIL, EXIT_PASS, GossipcertError
from gossipcert.harness.judging.verdict import failing_musts
from gossipcert.harness.manifest import REFERENCE_MANIFEST, Manifest, load_manifest
from gossipcert.harness.workloads.operations import Op, OperationError, load_ops

__all__ = [
    "REPLAY_FORMAT",
    "ReplayError",
    "ReplayFile",
    "defect_core",
    "load_replay",
    "plain_timing",
    "replay",
    "save_replay",
]

REPLAY_FORMAT = "gossipcert-ops/1"
_OLD_FORMAT = "gossipcert-schedule/1"
RECORDED_BACKENDS = (*BACKENDS, SIMULATION)


class ReplayError(GossipcertError):
    """The file cannot be replayed: unreadable, malformed, or asking for what cannot be
    given (a simulation of an implementation that is not the reference node)."""


@dataclass
class ReplayFile:
    """A sequence of operations and what it ran against: JSON-ready."""

    nodes: list[str]
    ops: list[Op]
    implementation: str = "reference"
    name: str = ""
    manifest: str | None = None
    backend: str = "process"
    timing: dict[str, float] | None = None
    timing_profile: str = "lan"
    conflict_policy: str = "lww"
    core: str = ""
    seed: int | None = None
    example: int | None = None
    failure: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": REPLAY_FORMAT, "implementation": self.implementation}
        if self.name:
            out["name"] = self.name
        if self.manifest is not None:
            out["manifest"] = self.manifest
        out.update({"backend": self.backend, "nodes": list(self.nodes)})
        if self.timing is not None:
            out["timing"] = {k: _number(v) for k, v in self.timing.items()}
        out.update({"timing_profile": self.timing_profile,
                    "conflict_policy": self.conflict_policy, "core": self.core})
        if self.seed is not None:
            out["seed"] = self.seed
        if self.example is not None:
            out["example"] = self.example
        out["ops"] = [op.to_json() for op in self.ops]
        if self.failure is not None:
            out["failure"] = self.failure
        return out


def _number(value: float) -> float:
    """A whole number as an int (cores take counts such as ``fanout`` as ints)."""
    return int(value) if float(value).is_integer() else value


def plain_timing(timing: Mapping[str, Any]) -> dict[str, float]:
    """Timing with whole numbers as ints, as a manifest states them."""
    return {str(k): _number(v) for k, v in timing.items()}


def save_replay(path: Path, replay_file: ReplayFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(replay_file.to_dict(), indent=1) + "\n", encoding="utf-8")


def load_replay(path: Path) -> ReplayFile:
    """Read and check a replay file; :class:`ReplayError` says what is wrong, in one line."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReplayError(f"{path} is not a text file") from None
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ReplayError(f"{path}: expected a JSON object with format {REPLAY_FORMAT!r}")
    found = data.get("format")
    if found == _OLD_FORMAT:
        raise ReplayError(f"{path} is a {_OLD_FORMAT} file, a format that is gone: record the "
                          f"failure again (gossipcert explore, or the property tests)")
    if found != REPLAY_FORMAT:
        raise ReplayError(f"{path}: 'format' is {found!r}, expected {REPLAY_FORMAT!r}")
    nodes = data.get("nodes")
    if (not isinstance(nodes, list) or len(nodes) < 2
            or not all(isinstance(n, str) and n for n in nodes) or len(set(nodes)) != len(nodes)):
        raise ReplayError(f"{path}: 'nodes' must list at least two distinct node ids")
    raw_ops = data.get("ops")
    if not isinstance(raw_ops, list) or not raw_ops:
        raise ReplayError(f"{path}: 'ops' must be a non-empty list of operations")
    try:
        ops = load_ops(raw_ops, "ops")
    except OperationError as exc:
        raise ReplayError(f"{path}: {exc}") from None
    for i, op in enumerate(ops):
        unknown = op.node_names() - set(nodes)
        if unknown and op.kind != "intruder":
            raise ReplayError(f"{path}: ops[{i}] ({op.kind}) names node {sorted(unknown)[0]!r}, "
                              f"not one of 'nodes'")
    timing = data.get("timing")
    if timing is not None and not (
            isinstance(timing, dict)
            and all(isinstance(v, int | float) and not isinstance(v, bool)
                    and math.isfinite(v) and v >= 0 for v in timing.values())):
        raise ReplayError(f"{path}: 'timing' must map timing names to non-negative numbers")
    strings = {name: data.get(name, default) for name, default in
               (("implementation", "reference"), ("backend", SIMULATION),
                ("timing_profile", "lan"), ("conflict_policy", "lww"), ("core", ""))}
    for name, value in strings.items():
        if not isinstance(value, str):
            raise ReplayError(f"{path}: {name!r} must be a string")
    if strings["backend"] not in RECORDED_BACKENDS:
        raise ReplayError(f"{path}: 'backend' is {strings['backend']!r}, expected one of "
                          f"{', '.join(RECORDED_BACKENDS)}")
    if strings["conflict_policy"] not in ("lww", "mv"):
        raise ReplayError(f"{path}: 'conflict_policy' must be lww or mv")
    failure = data.get("failure")
    if failure is not None and not (isinstance(failure, dict)
                                    and isinstance(failure.get("requirements", []), list)):
        raise ReplayError(f"{path}: 'failure' must be an object with a 'requirements' list")
    manifest = data.get("manifest")
    seed, example = data.get("seed"), data.get("example")
    return ReplayFile(
        nodes=list(nodes), ops=ops, implementation=strings["implementation"],
        name=str(data.get("name") or ""),
        manifest=manifest if isinstance(manifest, str) else None,
        backend=strings["backend"],
        timing={str(k): _number(v) for k, v in timing.items()} if timing else None,
        timing_profile=strings["timing_profile"], conflict_policy=strings["conflict_policy"],
        core=strings["core"], seed=seed if isinstance(seed, int) else None,
        example=example if isinstance(example, int) else None, failure=failure, path=path,
    )


def defect_core(manifest: Manifest) -> str:
    """The core a simulation of this implementation runs: the seeded defect of the
    reference node its folder holds (``defect.py`` with ``installed()``, as in
    ``tests/impls/``), else nothing ("" also for the reference itself)."""
    defect = manifest.path.parent / "defect.py"
    try:
        text = defect.read_text(encoding="utf-8")
    except OSError:
        return ""
    return f"{defect}:installed" if "def installed(" in text else ""


def _is_reference(spec: str, manifest_path: str | None) -> bool:
    if spec == "reference":
        return True
    for text in (spec, manifest_path):
        if not text:
            continue
        path = Path(text)
        path = path / "manifest.yaml" if path.is_dir() else path
        if path.is_file() and path.resolve() == REFERENCE_MANIFEST.resolve():
            return True
    return False


def _manifest_for(recorded: ReplayFile, impl: str | None) -> tuple[str, Manifest]:
    if impl is not None:
        return impl, load_manifest(impl)
    try:
        return recorded.implementation, load_manifest(recorded.implementation)
    except GossipcertError:
        if recorded.manifest is None:
            raise
        return recorded.manifest, load_manifest(recorded.manifest)


# A real cluster does not fail a timing-dependent sequence every time (two writes that
# land in the same millisecond tie under any last-writer-wins rule): a replay on one runs
# it on fresh clusters until a MUST fails or this many attempts pass. The simulator is
# deterministic and needs one.
DEFAULT_ATTEMPTS = 5


@dataclass
class ReplayOptions:
    impl: str | None = None
    backend: str | None = None
    sim: bool = False
    report_dir: Path | None = None
    clock_skew_ms: float | None = None
    attempts: int | None = None  # None: DEFAULT_ATTEMPTS on a real cluster, 1 in simulation
    progress: Callable[[str], None] = field(default=lambda line: None)


@dataclass
class ReplayOutcome:
    """What a replay found: its exit code, the verdicts of the attempt kept, the lines it
    prints, and where a real replay's reports are (None in simulation)."""

    exit_code: int
    verdicts: list[Any]
    lines: list[str]
    report_dir: Path | None
    implementation: str


def replay(path: Path, opts: ReplayOptions | None = None,
           out: Callable[[str], None] = print) -> int:
    """Replay ``path``; print one line per requirement judged; the exit code."""
    outcome = replay_outcome(path, opts)
    for line in outcome.lines:
        out(line)
    return outcome.exit_code


def replay_outcome(path: Path, opts: ReplayOptions | None = None) -> ReplayOutcome:
    """Replay ``path``: the outcome, printed by :func:`replay`."""
    from gossipcert.harness.judging.verdict import load_catalogue

    opts = opts or ReplayOptions()
    recorded = load_replay(path)
    catalogue = load_catalogue()
    sim = opts.sim or (opts.backend is None and recorded.backend == SIMULATION)
    if opts.attempts is not None and opts.attempts < 1:
        raise ReplayError(f"--attempts must be at least 1, not {opts.attempts}")
    if sim and (opts.attempts or 1) > 1:
        raise ReplayError("the simulator replays deterministically: --attempts applies to a "
                          "real cluster only")
    attempts = 1 if sim else (opts.attempts or DEFAULT_ATTEMPTS)
    from gossipcert.harness.run.pipeline import default_report_dir

    name = recorded.name or Path(recorded.implementation).name
    report_dir = opts.report_dir or default_report_dir(name, "replay")
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            opts.progress(f"attempt {attempt} of {attempts}: no MUST failed on attempt "
                          f"{attempt - 1}; replaying on a fresh cluster")
        if sim:
            verdicts, where = _replay_in_simulation(recorded, opts, catalogue)
        else:
            verdicts, where = _replay_on_cluster(recorded, opts, catalogue, report_dir)
        failed = failing_musts(verdicts)
        if failed:
            break
    lines: list[str] = []
    tried = ("" if attempts == 1 else
             f" (attempt {attempt} of {attempts})" if failed else
             f" ({attempts} attempts, each on a fresh cluster; the last one's reports)")
    lines.append(f"replayed {len(recorded.ops)} operations {where}{tried}")
    for v in verdicts:
        if v.status not in ("untested", "not-claimed"):
            lines.append(f"{v.status.upper():>6}  {v.id:<20} {v.evidence}")
    expected = list((recorded.failure or {}).get("requirements") or [])
    if expected:
        still = [r for r in expected if any(v.id == r for v in failed)]
        lines.append(f"recorded failure: {', '.join(expected)}; still failing: "
                     f"{', '.join(still) or 'none'}")
    if failed:
        lines.append("verdict: FAIL (a MUST still fails)")
    elif attempts > 1:
        lines.append(f"verdict: PASS (no MUST failed in {attempts} attempts)")
    else:
        lines.append("verdict: PASS (no MUST failed)")
    return ReplayOutcome(EXIT_FAIL if failed else EXIT_PASS, list(verdicts), lines,
                         None if sim else report_dir, name)


def _replay_in_simulation(recorded: ReplayFile, opts: ReplayOptions,
                          catalogue: Sequence[Any]) -> tuple[list[Any], str]:
    from gossipcert.harness.run.pipeline import SIMULATION, RunSpec, execute

    if opts.impl is not None and not _is_reference(opts.impl, None):
        raise ReplayError(f"--sim replays the reference node's core only, not {opts.impl}")
    core = "" if opts.impl is not None else recorded.core
    if opts.impl is None and not core and not _is_reference(recorded.implementation,
                                                            recorded.manifest):
        raise ReplayError(
            f"--sim replays the reference node's core only (or a seeded defect of it, "
            f"recorded as 'core'); {recorded.path} was recorded against "
            f"{recorded.implementation} with no core")
    timing = recorded.timing or dict(load_manifest("reference").timing)
    # The simulator's own randomness: seed 0, as every sequence in simulation is judged.
    spec = RunSpec(backend=SIMULATION, nodes=tuple(recorded.nodes), seed=0,
                   timing=timing, ops=tuple(recorded.ops), scenario="replay",
                   catalogue=tuple(catalogue), policy=recorded.conflict_policy, core=core)
    try:
        record = execute(spec)
    except ValueError as exc:
        raise ReplayError(f"{recorded.path}: {exc}") from None
    return record.verdicts, (f"in simulation on {len(recorded.nodes)} reference cores "
                             f"(core: {core or 'the reference as shipped'}); "
                             f"{len(record.entries)} history entries")


def _replay_on_cluster(recorded: ReplayFile, opts: ReplayOptions, catalogue: Sequence[Any],
                       report_dir: Path) -> tuple[list[Any], str]:
    from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS
    from gossipcert.harness.manifest import with_run_options
    from gossipcert.harness.profiles import judged_timing
    from gossipcert.harness.run.pipeline import RunSpec, execute, node_ids, publish
    from gossipcert.harness.run.preflight import check_backend, fit_or_refuse, offers

    expected_ids = node_ids(len(recorded.nodes))
    if recorded.nodes != expected_ids:
        raise ReplayError(f"{recorded.path}: a real cluster names its nodes "
                          f"{', '.join(expected_ids)}; the file has {', '.join(recorded.nodes)}")
    backend = opts.backend or (recorded.backend if recorded.backend != SIMULATION
                               else "process")
    if backend not in BACKENDS:
        raise ReplayError(unknown_backend(backend))
    spec_text, manifest = _manifest_for(recorded, opts.impl)
    manifest = with_run_options(manifest, conflict_policy=recorded.conflict_policy)
    manifest.launch_for(backend)
    machine = check_backend(backend)
    fitted = fit_or_refuse(recorded.ops, offers(manifest, backend, machine),
                           f"the replay of {recorded.path or 'this file'}")
    for note in fitted.notes:
        opts.progress(f"replay: {note}")
    judged = judged_timing(manifest.declared_timing, recorded.timing_profile)
    # The recorded timing is what the run was judged at; the profile fills what it lacks.
    timing = {**judged.timing, **(recorded.timing or {})}
    spec = RunSpec(backend=backend, nodes=tuple(recorded.nodes),
                   seed=recorded.seed if recorded.seed is not None else 0, timing=timing,
                   ops=fitted.ops, scenario="replay", catalogue=tuple(catalogue),
                   manifest=manifest, timing_profile=judged.describe(), run_dir=report_dir,
                   clock_skew_ms=(opts.clock_skew_ms if opts.clock_skew_ms is not None
                                  else DEFAULT_CLOCK_SKEW_MS),
                   meta_extra={"preflight": {"notes": list(fitted.notes)}} if fitted.notes
                   else {})
    opts.progress(f"replaying {len(recorded.ops)} operations on {len(recorded.nodes)} fresh "
                  f"{backend} nodes of {manifest.name} ({manifest.conflict_policy}); run dir "
                  f"{report_dir}")
    record = execute(spec, progress=opts.progress)
    publish(record, report_dir, mode="scenario",
            run_extra={"replay_of": str(recorded.path) if recorded.path else None})
    return record.verdicts, (f"on {len(recorded.nodes)} fresh {backend} nodes of "
                             f"{manifest.name} ({spec_text}); reports in {report_dir}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(replay(Path(sys.argv[1])))
