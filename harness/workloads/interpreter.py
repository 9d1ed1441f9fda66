"""The one interpreter of operations: runs a sequence against any cluster driver.

Each operation carries its own ``run`` (:mod:`harness.workloads.operations`); an :class:`Execution`
gives it the driver and the shared means: bounded waits (the named requirement's bound
plus a margin, so a broken implementation makes the run fail, never hang), reads of every
live node, and what earlier steps left behind (contexts from gets, CRDTs in use). Every
step is written into the history as a ``step`` entry before it runs, so a history holds
the sequence that produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gossipcert.harness.drivers.interface import ClusterDriver
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import Requirement, crdt_type_claimed

WAIT_MARGIN_S = 5.0
DEFAULT_BOUND_MS = 10_000.0
# Broadcast ids for implementations whose messages are integers (manifest
# ``broadcast_ids: integer``): decimal strings of integers in [0, 2**31).
INTEGER_ID_LIMIT = 2**31


# How often a watch loop reads the fault planes' traffic counters for the figures.
TRAFFIC_EVERY_S = 1.0

class Step(Protocol):
    """What the interpreter needs of an operation (:class:`harness.workloads.operations.Op`)."""

    @property
    def kind(self) -> str: ...

    @property
    def needs(self) -> str | None: ...

    def to_json(self) -> dict[str, Any]: ...

    def run(self, x: Execution) -> None: ...


@dataclass(frozen=True)
class StepStatus:
    """Where a run is: step ``number`` of ``total`` (its ``kind``) begins, ``elapsed_s``
    after the sequence began on the driver's clock. ``remaining_s`` is what the steps left
    plan to take (their waits), None when the sequence plans no time at all; ``open_ended``
    says awaits of an outcome remain, whose length no plan knows (so it is a floor)."""

    number: int
    total: int
    kind: str
    elapsed_s: float
    remaining_s: float | None
    open_ended: bool


def planned_s(ops: Sequence[Step], elapsed_s: float) -> tuple[float | None, bool]:
    """The time ``ops`` plan to take from ``elapsed_s`` into the sequence: their waits
    (a ``wait-until`` is a time from the start), None when none of them waits; and whether
    an await of an outcome is among them (its length is the implementation's)."""
    t, timed, open_ended = elapsed_s, False, False
    for op in ops:
        if op.kind == "wait":
            t, timed = t + float(getattr(op, "ms", 0)) / 1000.0, True
        elif op.kind == "wait-until":
            t, timed = max(t, float(getattr(op, "ms", 0)) / 1000.0), True
        elif op.kind.startswith("await"):
            open_ended = True
    return (t - elapsed_s if timed else None), open_ended


class Execution:
    """One run of operations on a driver. ``on_step`` hears each step as it begins and
    None once the run ends (a live progress line); it must return at once."""

    def __init__(self, driver: ClusterDriver, catalogue: Sequence[Requirement],
                 timing: Mapping[str, Any], *,
                 progress: Callable[[str], None] | None = None,
                 on_step: Callable[[StepStatus | None], None] | None = None) -> None:
        self.driver = driver
        self.progress = progress or (lambda line: None)
        self.on_step = on_step
        self.params = derived_parameters(dict(timing), len(driver.node_ids))
        self.bounds_ms = {r.id: float(evaluate(r.bound, {**self.params, **r.constants}))
                          for r in catalogue if r.bound}
        self.capabilities = set(driver.capabilities)
        self.contexts: dict[tuple[str, str], Any] = {}
        self.crdt_types: dict[str, str] = {}
        self.sent_broadcasts: list[str] = []
        # Broadcast ids as sent (see :meth:`broadcast_id`): the step's id -> the wire id.
        self.integer_ids = getattr(driver, "broadcast_ids", "any") == "integer"
        self._wire_ids: dict[str, str] = {}
        self._wire_taken: set[int] = set()
        self.steps_run = 0
        self.started = driver.clock()
        # Faults a driver could not apply (latency without a link plane): the phase of
        # the window records why, so its requirement says it stayed untested.
        self.skipped: dict[str, str] = {}
        # Per capability, how its client calls were answered so far: (refused with 501,
        # answered otherwise). A capability every call of which was refused has nothing
        # to wait for (see :meth:`step`).
        self.answers: dict[str, tuple[int, int]] = {}
        # Periodic traffic readings while a scenario watches (see :meth:`sample_traffic`).
        self._traffic_next = 0.0
        self._traffic_counts = True

    # ---- running ---------------------------------------------------------------------

    def applies(self, op: Step) -> bool:
        when = getattr(op, "when", "")
        crdt_type = getattr(op, "crdt_type", None)
        return ((op.needs is None or op.needs in self.capabilities)
                and (not when or when in self.capabilities)
                and (crdt_type is None or crdt_type_claimed(self.capabilities, crdt_type)))

    def broadcast_id(self, msg_id: str) -> str:
        """The id a broadcast is sent with: ``msg_id`` itself, or, for an implementation
        whose messages are integers, a decimal string of an integer below 2**31 drawn from
        a hash of ``msg_id`` (the same on every run and every reuse of a cluster; a
        collision within this run moves to the next free integer). The history records
        the call with the id sent, so the checkers match what nodes report."""
        if not self.integer_ids:
            return msg_id
        wire = self._wire_ids.get(msg_id)
        if wire is None:
            digest = hashlib.sha256(msg_id.encode("utf-8")).digest()
            n = int.from_bytes(digest[:4], "big") % INTEGER_ID_LIMIT
            while n in self._wire_taken:
                n = (n + 1) % INTEGER_ID_LIMIT
            self._wire_taken.add(n)
            wire = self._wire_ids[msg_id] = str(n)
        return wire

    def run(self, ops: Sequence[Step]) -> None:
        try:
            for number, op in enumerate(ops, 1):
                if self.on_step is not None and self.applies(op):
                    self._announce(ops, number, op)
                self.step(op)
        finally:
            if self.on_step is not None:
                self.on_step(None)
        self.driver.poll_events()

    def _announce(self, ops: Sequence[Step], number: int, op: Step) -> None:
        assert self.on_step is not None
        elapsed = self.driver.clock() - self.started
        remaining, open_ended = planned_s(ops[number - 1:], elapsed)
        self.on_step(StepStatus(number, len(ops), op.kind, elapsed, remaining, open_ended))

    def step(self, op: Step) -> None:
        if not self.applies(op):
            return
        if op.kind.startswith("await") and op.needs is not None and self.refused(op.needs):
            # Waiting for the effect of calls the node refused would only wait out the
            # bound: the refusal is the verdict (a declared capability answering 501
            # fails its requirements), so the run goes on.
            text = (f"{op.kind} skipped: every {op.needs} call so far answered 501 "
                    "(not implemented)")
            self.driver.history.append("step", "note", args={"op": "note", "text": text})
            self.progress(text)
            return
        self.driver.history.append("step", op.kind, args=op.to_json())
        self.steps_run += 1
        before = len(self.driver.history)
        op.run(self)
        if getattr(op, "client_call", False) and op.needs is not None:
            call = op.kind.replace("-", "_")  # the call a client operation makes
            self._count_answers(op.needs, [e for e in self.driver.history.entries()[before:]
                                           if e.op == call])

    def refused(self, capability: str) -> bool:
        """Whether every client call of ``capability`` made so far answered 501."""
        refused, answered = self.answers.get(capability, (0, 0))
        return refused > 0 and answered == 0

    def _count_answers(self, capability: str, entries: Sequence[Any]) -> None:
        refused, answered = self.answers.get(capability, (0, 0))
        for entry in entries:
            if entry.type not in ("ok", "fail", "info"):
                continue
            result = entry.result if isinstance(entry.result, Mapping) else {}
            if result.get("status") == 501 or result.get("error") == "not_implemented":
                refused += 1
            else:
                answered += 1
        self.answers[capability] = (refused, answered)

    # ---- waiting -----------------------------------------------------------------------

    def wait_s(self, requirement: str) -> float:
        return self.bounds_ms.get(requirement, DEFAULT_BOUND_MS) / 1000.0 + WAIT_MARGIN_S

    def await_(self, predicate: Callable[[], bool], requirement: str,
               every_s: float, *, extra_s: float = 0.0) -> float | None:
        """Seconds (on the driver's clock) until ``predicate`` held, or None once the
        requirement's bound, ``extra_s`` and a margin have passed."""
        def watched() -> bool:
            self.sample_traffic()
            return predicate()

        return wait_until(watched, self.wait_s(requirement) + extra_s,
                          max(every_s, self.driver.min_sleep_s),
                          clock=self.driver.clock, sleep=self.driver.sleep)

    def hold(self, seconds: float, *, observe: bool = True) -> None:
        """Let ``seconds`` pass; when observing, read member views each second and kv
        digests twice a second: evidence of what every node held meanwhile, so that a
        convergence reached during a fault is seen when it happens, not after it."""
        clock = self.driver.clock
        deadline = clock() + seconds
        if not observe:
            self.driver.sleep(seconds)
            return
        next_members = clock() + 1.0
        next_kv = clock() + 0.5
        while clock() < deadline:
            self.sample_traffic()
            now = clock()
            if now >= next_members:
                if "membership" in self.capabilities:
                    self.driver.read_round("members")
                next_members = now + 1.0
            if "kv" in self.capabilities and now >= next_kv:
                self.driver.read_round("kv")
                next_kv = now + 0.5
            self.driver.sleep(min(0.1, max(0.0, deadline - clock())))

    def sample_traffic(self) -> None:
        """A traffic reading at most once every ``TRAFFIC_EVERY_S`` while the run watches
        (holds and waits), so the report's message flow covers what happened between the
        scenario's own readings. Marked ``periodic``: checkers that difference readings
        use the scenario's rounds only. Stops for the run once no plane can count."""
        if not self._traffic_counts:
            return
        now = self.driver.clock()
        if now < self._traffic_next:
            return
        self._traffic_next = now + TRAFFIC_EVERY_S
        if self.driver.traffic(periodic=True) is None:
            self._traffic_counts = False

    # ---- reads -------------------------------------------------------------------------

    def read_round(self, what: str) -> None:
        if what == "traffic":
            self.driver.traffic()
        elif what == "events":
            self.driver.poll_events()
        elif what == "crdt":
            self.crdts_agree()
        elif what == "broadcasts":
            if "broadcast" in self.capabilities:
                for node_id in self.driver.live_nodes():
                    self.driver.call(node_id, "broadcasts", {})
        elif what == "metrics":
            if "metrics" in self.capabilities:
                self.driver.read_round("metrics")
        elif what == "kv":
            if "kv" in self.capabilities:
                self.driver.read_round("kv")
        else:
            self.driver.read_round(what)

    def all_see(self, expected: Sequence[str], statuses: Sequence[str] = ("alive",)) -> bool:
        """Every live node reports every one of ``expected`` in one of ``statuses``
        (``absent``: not listed at all). Without the membership capability there is no
        view to wait for: true at once."""
        if "membership" not in self.capabilities:
            return True
        for observer, reply in self.driver.read_round("members").items():
            if not reply.ok or not isinstance(reply.body, dict):
                return False
            seen = {m["id"]: m["status"] for m in reply.body.get("members", [])}
            if any(seen.get(n, "absent") not in statuses for n in expected if n != observer):
                return False
        return True

    def digests_equal(self) -> bool:
        replies = self.driver.read_round("kv")
        digests = {r.body.get("digest") for r in replies.values()
                   if r.ok and isinstance(r.body, dict)}
        return len(digests) == 1 and all(r.ok for r in replies.values())

    def has_broadcast(self, node_id: str, msg_id: str) -> bool:
        wire = self.broadcast_id(msg_id)
        reply = self.driver.call(node_id, "broadcasts", {})
        body = reply.body if reply.ok and isinstance(reply.body, dict) else {}
        return any(x.get("id") == wire for x in body.get("received", []))

    def crdts_agree(self) -> bool:
        names = sorted(self.crdt_types)
        values: dict[str, set[str]] = {name: set() for name in names}
        for node_id in self.driver.live_nodes():
            for name in names:
                reply = self.driver.call(node_id, "crdt_read", {"name": name})
                if not reply.ok or not isinstance(reply.body, dict):
                    return False
                value = reply.body.get("value")
                canonical = sorted(value, key=str) if isinstance(value, list) else value
                values[name].add(json.dumps(canonical, sort_keys=True))
        return all(len(v) == 1 for v in values.values())

    def converge(self, label: str, requirement: str = "PARTITION-HEAL") -> float | None:
        """Wait until every live node sees every live node alive and kv digests agree."""
        if "membership" not in self.capabilities and "kv" not in self.capabilities:
            self.progress(f"{label}: no membership or kv state to converge")
            return 0.0
        live = self.driver.live_nodes()

        def converged() -> bool:
            alive = self.all_see(live)
            return alive and ("kv" not in self.capabilities or self.digests_equal())

        took = self.await_(converged, requirement, 0.2)
        self.progress(f"{label}: " + (f"converged in {took:.1f} s" if took is not None
                                      else "did not converge"))
        return took
