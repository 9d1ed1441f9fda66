"""Property-based certification in simulation: Hypothesis sequences of operations, run on
reference cores in the simulator (:mod:`harness.drivers.simulated`), judged by the requirement
catalogue.

* :func:`run_schedule` runs a :class:`Schedule` (nodes, core, policy, timing and a list
  of operations, :mod:`harness.workloads.operations`) from a fresh simulated cluster, ending with a
  settle, and returns the verdicts; a schedule file replays with ``gossipcert replay``.
* :func:`schedules` draws sequences of operations (workload with faults between and
  over it); :class:`ClusterMachine` is the same as a state machine whose invariant is
  "every MUST requirement that applies passes". Another core reuses them by subclassing
  ``ClusterMachine`` (override :attr:`ClusterMachine.core`).

The simulator is deterministic (its randomness comes from the seed, time only moves when
an operation says so), so Hypothesis can shrink a failure to a minimal sequence, which
:func:`save_schedule` writes down. ``gossipcert explore`` runs the same kind of search
against real clusters of any implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.simulated import core_context, simulate
from gossipcert.harness.history import Entry
from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import Requirement, Verdict, load_catalogue
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.faults import Heal, Kill, Partition, Restart
from gossipcert.harness.workloads.kv import Delete, Put
from gossipcert.harness.workloads.membership import Leave
from gossipcert.harness.workloads.operations import Op
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

__all__ = [
    "DEFAULT_TIMING",
    "SCHEDULE_FORMAT",
    "ClusterMachine",
    "Schedule",
    "ScheduleError",
    "failures",
    "fault_ops",
    "load_schedule",
    "register_profiles",
    "run_schedule",
    "save_schedule",
    "schedules",
    "settle_ops",
    "workload_ops",
]

SCHEDULE_FORMAT = "gossipcert-ops/1"  # the replay file format (harness.run.replay)

# The reference manifest's timing: fast enough that a settle is a few virtual seconds.
DEFAULT_TIMING: dict[str, int] = {
    "probe_interval_ms": 300,
    "probe_timeout_ms": 150,
    "indirect_checks": 3,
    "suspicion_mult": 4,
    "suspicion_max_timeout_mult": 6,
    "gossip_interval_ms": 100,
    "fanout": 3,
    "retransmit_mult": 4,
    "push_pull_interval_ms": 1000,
}
WAIT_CHOICES_MS = (0, 50, 200, 1000)


def register_profiles() -> None:
    """``ci``: a fixed, derandomized budget; ``long``: a deep local search
    (``HYPOTHESIS_PROFILE=long``); ``dev``: a quick look."""
    common: dict[str, Any] = {"deadline": None, "print_blob": True}
    settings.register_profile("ci", max_examples=25, derandomize=True, **common)
    settings.register_profile("dev", max_examples=10, **common)
    settings.register_profile("long", max_examples=1000, **common)


register_profiles()


# --------------------------------------------------------------------------- schedules


@dataclass
class Schedule:
    """A simulated run as data: the cluster, the core and the operations. ``settled``:
    the operations already end with a settle (a schedule read back from a file holds
    exactly what ran, settle included)."""

    nodes: list[str]
    ops: list[Op]
    core: str = ""
    policy: str = "lww"
    timing: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMING))
    failure: dict[str, Any] | None = None
    settled: bool = False

    def all_ops(self, catalogue: Sequence[Requirement] | None = None) -> list[Op]:
        if self.settled:
            return list(self.ops)
        catalogue = list(catalogue if catalogue is not None else load_catalogue())
        return [*self.ops, *settle_ops(settle_ms(self.timing, len(self.nodes), catalogue))]


class ScheduleError(ValueError):
    """A schedule file is malformed."""


def load_schedule(path: Path) -> Schedule:
    """Read a replay file (:mod:`harness.run.replay`) as a simulated schedule."""
    from gossipcert.harness.run.replay import ReplayError, load_replay

    try:
        recorded = load_replay(path)
    except ReplayError as exc:
        raise ScheduleError(str(exc)) from None
    timing = recorded.timing or DEFAULT_TIMING
    return Schedule(nodes=recorded.nodes, ops=recorded.ops, core=recorded.core,
                    policy=recorded.conflict_policy,
                    timing={k: int(v) for k, v in timing.items()},
                    failure=recorded.failure, settled=True)


def save_schedule(path: Path, schedule: Schedule) -> None:
    """Write a schedule as a replay file that ``gossipcert replay --sim`` runs exactly:
    its operations and the settle that followed them."""
    from gossipcert.harness.run.replay import ReplayFile, save_replay

    save_replay(path, ReplayFile(
        nodes=list(schedule.nodes), ops=schedule.all_ops(), implementation="reference",
        backend="simulation", timing=dict(schedule.timing), conflict_policy=schedule.policy,
        core=schedule.core, failure=schedule.failure))


def settle_ms(timing: Mapping[str, int], n: int, catalogue: Sequence[Requirement]) -> int:
    """Time after which every timed requirement's deadline has passed."""
    params = derived_parameters(timing, n)
    bounds = [evaluate(r.bound, {**params, **r.constants}) for r in catalogue if r.unit == "ms"]
    return int(max(bounds, default=10_000)) + 500


def settle_ops(settle: int) -> list[Op]:
    """Heal, end the workload, let every deadline pass while reading member views and kv
    digests as certify holds do (a convergence is seen when it happens, not seconds
    later), and read everything at the end."""
    return [Heal(), o.Phase("writes", "end"), o.ReadRound("broadcasts"), o.Wait(settle),
            o.ReadRound("members"), o.ReadRound("kv"), o.ReadRound("broadcasts")]


def failures(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The MUST requirements that failed or errored."""
    return [v for v in verdicts if v.level == "MUST" and v.status in ("fail", "error")]


def run_schedule(
    schedule: Schedule, catalogue: Sequence[Requirement] | None = None
) -> tuple[list[Verdict], list[Entry]]:
    """Run a schedule on a fresh simulated cluster, then settle, and judge its history."""
    catalogue = list(catalogue if catalogue is not None else load_catalogue())
    return simulate(schedule.all_ops(catalogue), schedule.nodes,
                    timing=schedule.timing, policy=schedule.policy, core=schedule.core,
                    catalogue=catalogue)


# --------------------------------------------------------------------------- strategies


def workload_ops(nodes: Sequence[str], keys: Sequence[str] = ("k0", "k1")
                 ) -> st.SearchStrategy[Op]:
    """One client step: a put, delete or broadcast on any node, or time passing. Values
    and ids come from small integers, so shrinking makes them small."""
    node = st.sampled_from(list(nodes))
    key = st.sampled_from(list(keys))
    return st.one_of(
        st.builds(lambda n, k, v: Put(n, k, f"{n}-{v}"), node, key, st.integers(0, 3)),
        st.builds(Delete, node, key),
        st.builds(lambda n, i: Broadcast(n, f"b{i}", {"from": n}), node, st.integers(0, 3)),
        st.builds(lambda ms: o.Wait(ms, observe=False), st.sampled_from(WAIT_CHOICES_MS)),
    )


def membership_ops(nodes: Sequence[str]) -> st.SearchStrategy[Op]:
    """Leaves of any node but the first (it is every restart's seed)."""
    return st.builds(Leave, st.sampled_from(list(nodes[1:])))


def fault_ops(nodes: Sequence[str]) -> st.SearchStrategy[Op]:
    """Which fault, where: a kill or restart of a node, a partition into two sides, a
    heal; when and how long come from where it falls among workload steps and waits."""
    node = st.sampled_from(list(nodes[1:]))
    side = st.sets(st.sampled_from(list(nodes)), min_size=1, max_size=len(nodes) - 1)

    def split(chosen: set[str]) -> Op:
        left = tuple(sorted(chosen))
        right = tuple(n for n in nodes if n not in chosen)
        return Partition((left, right))

    return st.one_of(st.builds(Kill, node), st.builds(Restart, node), side.map(split),
                     st.just(Heal()))


def _runnable(ops: list[Op]) -> list[Op]:
    """Drop steps a cluster cannot take in that order: a second kill of a node that is
    down, a leave of a node that is gone, calls to a node that left."""
    down: set[str] = set()
    gone: set[str] = set()
    out: list[Op] = []
    for op in ops:
        node = getattr(op, "node", None)
        if node in gone:
            continue
        if isinstance(op, Kill):
            if node in down:
                continue
            down.add(op.node)
        elif isinstance(op, Restart):
            down.discard(op.node)
        elif isinstance(op, Leave):
            gone.add(op.node)
        out.append(op)
    return out


def schedules(
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    *,
    faults: bool = True,
    membership: bool = False,
    max_steps: int = 12,
    keys: Sequence[str] = ("k0", "k1"),
) -> st.SearchStrategy[list[Op]]:
    """Workload and faults interleaved: faults land between (so overlap) client steps."""
    parts = [workload_ops(nodes, keys)]
    if faults:
        parts.append(fault_ops(nodes))
    if membership:
        parts.append(membership_ops(nodes))
    return st.lists(st.one_of(*parts), max_size=max_steps).map(_runnable)


# --------------------------------------------------------------------------- the machine


class ClusterMachine(RuleBasedStateMachine):
    """Operations and faults as rules; the requirement catalogue as the invariant.

    Each rule adds steps; ``settle_now`` runs the steps so far, with a settle, on a fresh
    simulated cluster and judges the history (the simulator is deterministic, so a run
    of the steps so far is the state the machine is in). A failure saves the steps to
    :attr:`save_to` (the last save is the shrunk example, which Hypothesis replays last),
    ready for ``gossipcert replay``. Subclass and set ``core``/``nodes``/``save_to`` to
    certify another core.
    """

    core: str = ""
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    policy: str = "lww"
    save_to: Path | None = None
    faults: bool = True
    keys: tuple[str, ...] = ("k0", "k1")

    def __init__(self) -> None:
        super().__init__()
        self.catalogue = load_catalogue()
        core_context(self.core)  # a bad core name fails here, before any rule
        self.steps: list[Op] = []
        self.judge_now = False

    @rule(data=st.data())
    def client(self, data: st.DataObject) -> None:
        self.steps.append(data.draw(workload_ops(self.nodes, self.keys), label="client step"))

    @precondition(lambda self: self.faults)
    @rule(data=st.data())
    def fault(self, data: st.DataObject) -> None:
        self.steps.append(data.draw(fault_ops(self.nodes), label="fault step"))

    @rule()
    def settle_now(self) -> None:
        self.judge_now = True

    @invariant()
    def requirements_hold(self) -> None:
        if not self.judge_now:
            return
        self.judge_now = False
        schedule = Schedule(nodes=list(self.nodes), ops=_runnable(list(self.steps)),
                            core=self.core, policy=self.policy)
        failed = failures(run_schedule(schedule, self.catalogue)[0])
        if failed:
            if self.save_to is not None:
                schedule.failure = {"requirements": [v.id for v in failed],
                                    "evidence": failed[0].evidence}
                save_schedule(self.save_to, schedule)
            raise AssertionError("; ".join(f"{v.id}: {v.evidence}" for v in failed))
