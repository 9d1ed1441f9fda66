"""Every capability a certification judges, in one table: its operations, the generator
rules that draw them and the checkers of its requirements.

A capability is one module (:mod:`.membership`, :mod:`.failure_detection`,
:mod:`.broadcast`, :mod:`.kv`, :mod:`.crdt`, :mod:`.security`): everything a manifest's
capability means lives there, and adding one is that module and a row here. The judge
(:func:`run_checks`) finds checkers here, the generator draws the client
calls of the rows below, and the operation vocabulary holds every row's operations
(importing :mod:`harness.workloads` imports this table, so a JSON operation of any
capability loads). Faults are not a capability of the implementation: they are packaged
with their heals in :mod:`.faults`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.bounds import BoundError, derived_parameters
from gossipcert.harness.judging.checker import Checker, bound_of, make_verdict
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.verdict import Requirement, Verdict
from gossipcert.harness.workloads import (
    broadcast,
    crdt,
    failure_detection,
    kv,
    leave,
    membership,
    security,
)
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import (
    GeneratorRules,
    SequenceBuilder,
    Space,
    sequences,
)
from hypothesis import strategies as st

__all__ = [
    "CAPABILITIES",
    "CHECKERS",
    "GENERATORS",
    "Capability",
    "operation_sequences",
    "resolve_checker",
    "run_checks",
    "sequence_builder",
    "simulation_sequences",
]


@dataclass(frozen=True)
class Capability:
    """One capability as a manifest declares it (``name``), and what it brings."""

    name: str
    operations: tuple[type[Op], ...]
    generator: GeneratorRules | None
    checkers: Mapping[str, Checker]


# kv, crdt and broadcast stay in this order: drawn sequences offer their client calls in
# table order, so the order is part of what a seed draws.
CAPABILITIES: tuple[Capability, ...] = (
    Capability("membership", membership.OPERATIONS, None, membership.CHECKERS),
    Capability("leave", leave.OPERATIONS, None, leave.CHECKERS),
    Capability("failure-detection", (), None, failure_detection.CHECKERS),
    Capability("kv", kv.OPERATIONS, kv.GENERATOR, kv.CHECKERS),
    Capability("crdt", crdt.OPERATIONS, crdt.GENERATOR, crdt.CHECKERS),
    Capability("broadcast", broadcast.OPERATIONS, broadcast.GENERATOR, broadcast.CHECKERS),
    Capability("encryption", security.OPERATIONS, None, security.CHECKERS),
)

# Every requirement's checker by the name the catalogue gives it.
CHECKERS: dict[str, Checker] = {
    name: check for capability in CAPABILITIES for name, check in capability.checkers.items()
}

# The generator rules of the capabilities that add client calls to drawn sequences.
GENERATORS: tuple[GeneratorRules, ...] = tuple(
    c.generator for c in CAPABILITIES if c.generator is not None
)


def sequence_builder(space: Space) -> SequenceBuilder:
    """A builder of sequences over ``space`` that knows every capability's rules."""
    return SequenceBuilder(space, {k: r for g in GENERATORS for k, r in g.rules.items()})


def operation_sequences(space: Space) -> st.SearchStrategy[list[Op]]:
    """Sequences of operations over ``space``: every capability's client calls with
    faults over them (:mod:`harness.workloads.strategies` says what keeps them sound)."""
    return sequences(space, GENERATORS)


def simulation_sequences(nodes: Sequence[str] = ("n1", "n2", "n3"), *,
                         timing: Mapping[str, Any] | None = None, policy: str = "lww",
                         capabilities: Sequence[str] | None = None, max_steps: int = 12,
                         faults: bool = True) -> st.SearchStrategy[list[Op]]:
    """The same sequences for the simulator of the reference core: every capability it
    has and every fault plane (its network delays, drops and cuts any directed link).
    What is not given is the reference manifest's."""
    from gossipcert.harness.manifest import load_manifest

    reference = load_manifest("reference")
    if timing is None:
        timing = reference.timing
    caps = frozenset(capabilities if capabilities is not None else reference.capabilities)
    return operation_sequences(Space(tuple(nodes), caps, dict(timing), policy=policy,
                                     max_steps=max_steps, faults=faults))


# ---- judging a history ------------------------------------------------------------------


def resolve_checker(name: str) -> Checker:
    """The checker a catalogue entry names, from the capabilities table; KeyError when
    there is none."""
    try:
        return CHECKERS[name]
    except KeyError:
        known = ", ".join(sorted(CHECKERS))
        raise KeyError(f"no checker named {name!r} (known: {known})") from None


def run_checks(
    history: Sequence[Entry],
    catalogue: Sequence[Requirement],
    progress: Callable[[str], None] | None = None,
    *,
    index: HistoryIndex | None = None,
) -> list[Verdict]:
    """One verdict per requirement, in catalogue order; a checker that raises yields error.

    ``progress``, when given, hears one line per requirement checked (long histories).
    ``index``, when given, is ``history``'s index, built by the caller to pass on to the
    reports as well (:meth:`harness.judging.index.HistoryIndex.build`); else it is built here.
    """
    if index is None:
        index = HistoryIndex.build(history)
    # Derived once per judged history, from the timing in its meta, for every checker.
    params = derived_parameters(index.timing, len(index.nodes))
    verdicts: list[Verdict] = []
    for number, requirement in enumerate(catalogue, 1):
        bound: float | None = None
        try:
            bound = bound_of(requirement, params)
            check = resolve_checker(requirement.checker)
            verdicts.append(check(index, requirement, params))
        except BoundError as exc:
            verdicts.append(make_verdict(requirement, "error", None, None, f"bad bound: {exc}"))
        except Exception as exc:  # a checker bug must not hide the other verdicts
            verdicts.append(
                make_verdict(
                    requirement,
                    "error",
                    None,
                    bound,
                    f"checker {requirement.checker} raised {type(exc).__name__}: {exc}",
                )
            )
        if progress is not None:
            progress(f"checked {number}/{len(catalogue)} {requirement.id}: {verdicts[-1].status}")
    return verdicts
