"""Checkers fed synthetic histories: each must pass what is right and fail what is wrong."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from gossipcert.harness.history import Entry, build
from gossipcert.harness.judging.bounds import derived_parameters
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.verdict import Requirement, Verdict, load_catalogue
from gossipcert.harness.workloads.broadcast import (
    broadcast_latencies,
    check_broadcast_delivery,
    member_deadline,
)
from gossipcert.harness.workloads.capabilities import CHECKERS, run_checks
from gossipcert.harness.workloads.failure_detection import (
    check_failure_detection,
    check_no_false_positive,
)
from gossipcert.harness.workloads.kv import check_kv_convergence, check_kv_lww
from gossipcert.harness.workloads.membership import check_member_join, check_partition_heal
from simulated_runs import reference_timing

# The reference node's manifest timing.
TIMING = reference_timing()
ALL_CAPS = ["membership", "failure-detection", "broadcast", "kv", "events", "metrics", "leave"]
CATALOGUE = {r.id: r for r in load_catalogue()}
# With n = 3 and TIMING: MEM-JOIN 4000, FD-DETECT 11850, BCAST-DELIVERY 3000,
# KV-CONVERGENCE 5000, PARTITION-HEAL 6500 (ms).


class Hist:
    """A tiny builder of synthetic histories."""

    def __init__(
        self,
        nodes: tuple[str, ...] = ("n1", "n2", "n3"),
        *,
        caps: list[str] | None = None,
        policy: str = "lww",
    ) -> None:
        self.nodes = nodes
        self.rows: list[dict[str, Any]] = [
            {
                "time_ms": 0,
                "type": "meta",
                "op": "run",
                "args": {
                    "implementation": "synthetic",
                    "seed": 1,
                    "nodes": list(nodes),
                    "timing": TIMING,
                    "conflict_policy": policy,
                    "capabilities": ALL_CAPS if caps is None else caps,
                },
            }
        ]
        self.calls = itertools.count(1)

    def op(
        self,
        op: str,
        node: str,
        invoked: float,
        completed: float | None,
        outcome: str = "ok",
        args: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
    ) -> Hist:
        call = next(self.calls)
        self.rows.append(
            {
                "time_ms": invoked,
                "type": "invoke",
                "op": op,
                "node": node,
                "call": call,
                "args": args or {},
            }
        )
        if completed is not None:
            self.rows.append(
                {
                    "time_ms": completed,
                    "type": outcome,
                    "op": op,
                    "node": node,
                    "call": call,
                    "args": args or {},
                    "result": result,
                }
            )
        return self

    def start_all(self, at: float = 1000, step: float = 100) -> Hist:
        for i, node in enumerate(self.nodes):
            self.op("start", node, at + i * step - 50, at + i * step)
        return self

    def member(
        self, observer: str, subject: str, status: str, at: float, polled: float | None = None
    ) -> Hist:
        """A member event of ``observer``'s feed stamped ``at`` (read by the harness's
        event poll at ``polled`` when given: the event cannot be later)."""
        self.rows.append(
            {
                "time_ms": at,
                "type": "event",
                "op": "member",
                "node": observer,
                "args": {
                    "seq": 0,
                    "at_ms": at,
                    "kind": "member",
                    "member": subject,
                    "status": status,
                    "incarnation": 0,
                    **({} if polled is None else {"polled_ms": polled}),
                },
            }
        )
        return self

    def all_alive(self, at: float, nodes: tuple[str, ...] | None = None) -> Hist:
        nodes = nodes or self.nodes
        for observer in nodes:
            for subject in nodes:
                if observer != subject:
                    self.member(observer, subject, "alive", at)
        return self

    def delivered(self, node: str, bid: str, at: float) -> Hist:
        self.rows.append(
            {
                "time_ms": at,
                "type": "event",
                "op": "broadcast",
                "node": node,
                "args": {"seq": 0, "at_ms": at, "kind": "broadcast", "id": bid},
            }
        )
        return self

    def fault(self, op: str, at: float, node: str | None = None, **args: Any) -> Hist:
        self.rows.append({"time_ms": at, "type": "fault", "op": op, "node": node, "args": args})
        return self

    def phase(self, name: str, start: float, end: float) -> Hist:
        self.rows.append({"time_ms": start, "type": "phase", "op": name, "args": {"edge": "start"}})
        self.rows.append({"time_ms": end, "type": "phase", "op": name, "args": {"edge": "end"}})
        return self

    def members_read(
        self, node: str, at: float, statuses: dict[str, str], invoked: float | None = None
    ) -> Hist:
        """A ``GET /v1/members`` of ``node`` completed at ``at`` (invoked 5 ms before
        unless ``invoked`` says when)."""
        members = [{"id": node, "address": "x", "status": "alive", "incarnation": 0}]
        members += [
            {"id": m, "address": "x", "status": s, "incarnation": 0} for m, s in statuses.items()
        ]
        start = at - 5 if invoked is None else invoked
        return self.op("members", node, start, at, result={"members": members})

    def look(self, at: float, nodes: tuple[str, ...] | None = None) -> Hist:
        """Each of ``nodes`` (every node) reads its member list at ``at``, listing every
        other node alive: the harness's own evidence that a window was watched."""
        nodes = nodes or self.nodes
        for node in nodes:
            self.members_read(node, at, {m: "alive" for m in self.nodes if m != node})
        return self

    def kv_read(
        self, node: str, at: float, entries: dict[str, list[Any]], digest: str | None = None
    ) -> Hist:
        body = {k: {"values": v} for k, v in entries.items()}
        digest = digest if digest is not None else repr(sorted(entries.items()))
        return self.op("kv", node, at - 5, at, result={"digest": digest, "entries": body})

    def put(
        self,
        node: str,
        key: str,
        value: Any,
        invoked: float,
        completed: float | None,
        outcome: str = "ok",
        timestamp: list[int] | None = None,
    ) -> Hist:
        result: dict[str, Any] | None = None
        if outcome == "ok":
            result = {"context": "c"}
            if timestamp is not None:
                result["timestamp"] = timestamp
        elif outcome == "fail":
            result = {"error": "unavailable", "message": "no"}
        return self.op(
            "put",
            node,
            invoked,
            completed,
            outcome,
            args={"key": key, "value": value},
            result=result,
        )

    def until(self, at: float) -> Hist:
        """Stretch the history to ``at`` (a harmless read of n1's node)."""
        return self.op("node", self.nodes[0], at - 1, at)

    def build(self) -> list[Entry]:
        return build(sorted(self.rows, key=lambda r: r["time_ms"]))


def params(n: int = 3) -> dict[str, float]:
    return derived_parameters(TIMING, n)


def check(checker: Any, requirement_id: str, history: list[Entry]) -> Verdict:
    verdict: Verdict = checker(history, CATALOGUE[requirement_id], params())
    assert verdict.id == requirement_id
    return verdict


def formed() -> Hist:
    """Three nodes started at 1000..1200 and seeing each other alive at 1500."""
    return Hist().start_all().all_alive(1500)


# ---------------------------------------------------------------- MEM-JOIN


def test_join_passes_when_every_member_sees_every_other_alive() -> None:
    verdict = check(check_member_join, "MEM-JOIN", formed().until(20000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(400)  # n1 and n2 see each other 400 ms late
    assert verdict.bound == pytest.approx(4000)
    assert verdict.details["checked"] == 6


def test_join_fails_when_a_member_never_sees_a_joiner() -> None:
    h = Hist().start_all()
    for observer, subject in itertools.permutations(h.nodes, 2):
        if (observer, subject) != ("n3", "n1"):
            h.member(observer, subject, "alive", 1500)
    verdict = check(check_member_join, "MEM-JOIN", h.until(20000).build())
    assert verdict.status == "fail"
    assert verdict.details["never"][0]["observer"] == "n3"
    assert verdict.details["never"][0]["member"] == "n1"
    assert verdict.measured is not None and verdict.bound is not None
    assert verdict.measured > verdict.bound


def test_join_fails_when_seen_too_late() -> None:
    h = Hist().start_all().all_alive(1500, ("n1", "n2")).all_alive(9000)
    verdict = check(check_member_join, "MEM-JOIN", h.until(20000).build())
    assert verdict.status == "fail"
    assert verdict.measured == pytest.approx(9000 - 1200)


def test_join_uses_members_reads_without_events() -> None:
    h = Hist().start_all()
    for node in h.nodes:
        h.members_read(node, 2000, {m: "alive" for m in h.nodes if m != node})
    verdict = check(check_member_join, "MEM-JOIN", h.until(20000).build())
    assert verdict.status == "pass"
    assert verdict.measured == pytest.approx(900)


def test_join_is_untested_without_starts_and_not_claimed_without_capability() -> None:
    no_starts = Hist().all_alive(1500).until(20000).build()
    assert check(check_member_join, "MEM-JOIN", no_starts).status == "untested"
    h = Hist(caps=["kv"]).start_all().until(20000).build()
    verdict = check(check_member_join, "MEM-JOIN", h)
    assert verdict.status == "not-claimed"
    assert "membership" in verdict.evidence


def test_join_is_untested_when_history_ends_before_the_deadline() -> None:
    verdict = check(check_member_join, "MEM-JOIN", Hist().start_all().until(2000).build())
    assert verdict.status == "untested"
    assert "undetermined" in verdict.evidence


# ---------------------------------------------------------------- FD-DETECT


def killed_n3(n1_dead: float | None, n2_dead: float | None) -> Hist:
    h = formed().fault("kill", 10000, "n3", signal="KILL")
    if n1_dead is not None:
        h.member("n1", "n3", "suspect", n1_dead - 2000).member("n1", "n3", "dead", n1_dead)
    if n2_dead is not None:
        h.member("n2", "n3", "dead", n2_dead)
    return h.until(40000)


def test_detection_passes_within_bound() -> None:
    verdict = check(check_failure_detection, "FD-DETECT", killed_n3(13000, 14000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(4000)
    assert verdict.bound == pytest.approx(11850)
    assert verdict.details["worst"]["observer"] == "n2"


def test_detection_fails_when_a_member_never_marks_dead() -> None:
    verdict = check(check_failure_detection, "FD-DETECT", killed_n3(13000, None).build())
    assert verdict.status == "fail"
    assert verdict.details["never"] == [
        {"observer": "n2", "killed": "n3", "kill_ms": 10000.0, "at_least_ms": 30000.0}
    ]
    assert "n2" in verdict.evidence


def test_detection_fails_when_too_late() -> None:
    verdict = check(check_failure_detection, "FD-DETECT", killed_n3(13000, 22500).build())
    assert verdict.status == "fail"
    assert verdict.measured == pytest.approx(12500)
    assert verdict.details["late"][0]["observer"] == "n2"


def test_a_detection_within_the_worst_case_but_slow_fails_the_should() -> None:
    """4 s at n = 3 meets FD-DETECT's worst case (11.85 s) but not what SWIM leads one to
    expect (1.582 periods + timeout + minimum suspicion + dissemination + slack, 4.82 s
    here) once it is 6 s: slow, not broken."""
    from gossipcert.harness.workloads.failure_detection import check_detection_speed

    fast = check(check_detection_speed, "FD-DETECT-EXPECTED", killed_n3(13000, 14000).build())
    assert fast.status == "pass" and fast.bound == pytest.approx(4824.6, abs=0.1)
    slow = killed_n3(13000, 16000).build()
    assert check(check_failure_detection, "FD-DETECT", slow).status == "pass"
    verdict = check(check_detection_speed, "FD-DETECT-EXPECTED", slow)
    assert verdict.status == "fail" and verdict.level == "SHOULD"
    assert verdict.measured == pytest.approx(6000)


def test_detection_accepts_reads_and_reaping() -> None:
    h = formed().fault("kill", 10000, "n3").member("n1", "n3", "dead", 12000)
    h.members_read("n2", 15000, {"n1": "alive"})  # n3 already reaped from n2's list
    verdict = check(check_failure_detection, "FD-DETECT", h.until(40000).build())
    assert verdict.status == "pass"
    assert verdict.measured == pytest.approx(5000)


def test_detection_ignores_a_member_killed_before_its_deadline() -> None:
    h = killed_n3(13000, None).fault("kill", 15000, "n2").member("n1", "n2", "dead", 18000)
    verdict = check(check_failure_detection, "FD-DETECT", h.build())
    assert verdict.status == "pass"
    assert verdict.details["undetermined"] >= 1


def test_detection_untested_without_kill() -> None:
    verdict = check(check_failure_detection, "FD-DETECT", formed().until(40000).build())
    assert verdict.status == "untested"
    assert "kill" in verdict.evidence


# ---------------------------------------------------------------- FD-NO-FALSE-POSITIVE


def test_quiet_passes_without_suspicion() -> None:
    h = formed().phase("quiet", 5000, 10000)
    for t in (6000, 8000):
        for node in h.nodes:
            h.members_read(node, t, {m: "alive" for m in h.nodes if m != node})
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", h.until(12000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == 0 and verdict.bound == 0


def test_quiet_fails_when_a_live_member_is_suspected() -> None:
    h = formed().phase("quiet", 5000, 10000)
    h.member("n2", "n1", "suspect", 7000).member("n2", "n1", "alive", 7400)
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", h.until(12000).build())
    assert verdict.status == "fail"
    assert verdict.measured == 1
    assert verdict.details["false_positives"][0] == {
        "observer": "n2",
        "member": "n1",
        "status": "suspect",
        "at_ms": 7000.0,
        "window": "quiet",
    }


def test_quiet_counts_a_suspicion_still_standing_in_a_read() -> None:
    h = formed().member("n1", "n2", "suspect", 4000).phase("quiet", 5000, 10000)
    h.members_read("n1", 6000, {"n2": "suspect", "n3": "alive"})
    h.members_read("n1", 7000, {"n2": "suspect", "n3": "alive"})
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", h.until(12000).build())
    assert verdict.status == "fail"
    assert verdict.measured == 1  # one standing mark, not one per read


def test_quiet_ignores_suspicion_outside_the_window_and_of_dead_nodes() -> None:
    h = formed().member("n1", "n2", "suspect", 4000).member("n1", "n2", "alive", 4500)
    h.fault("kill", 4600, "n3").member("n1", "n3", "dead", 6000)
    h.phase("quiet", 5000, 10000).member("n2", "n1", "alive", 6000)
    h.members_read("n2", 7000, {"n1": "alive"})
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", h.until(12000).build())
    assert verdict.status == "pass", verdict.evidence


def test_quiet_untested_without_quiet_phase_or_any_observation() -> None:
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", formed().build())
    assert verdict.status == "untested"
    blind = Hist().start_all().phase("quiet", 5000, 10000).until(12000).build()
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", blind)
    assert verdict.status == "untested"


def test_quiet_with_a_silent_event_feed_passes_once_views_were_read() -> None:
    """A silent feed is evidence only next to the harness's own reads: a quiet phase with
    no read in it observed nothing, whatever the feeds said elsewhere in the run."""
    h = formed().phase("quiet", 5000, 10000).until(12000)
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", h.build())
    assert verdict.status == "untested", verdict.evidence
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", h.look(7000).build())
    assert verdict.status == "pass", verdict.evidence


# ---------------------------------------------------------------- BCAST-DELIVERY


def broadcast(h: Hist, outcome: str = "ok") -> Hist:
    return h.op("broadcast", "n1", 5000, 5010, outcome, args={"id": "b1", "payload": 1})


def asked(h: Hist, node: str = "n3", at: float = 15_000) -> Hist:
    """A ``GET /v1/broadcasts`` of ``node`` at ``at`` listing nothing: the harness asked
    after the deadline, so a missing receipt is evidence of a miss."""
    return h.op("broadcasts", node, at - 5, at, result={"received": []})


def test_broadcast_passes_when_everyone_receives() -> None:
    h = broadcast(formed()).delivered("n2", "b1", 5200)
    h.op(
        "broadcasts",
        "n3",
        6000,
        6005,
        result={"received": [{"id": "b1", "origin": "n1", "payload": 1, "at_ms": 5300}]},
    )
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(20000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(300)
    assert verdict.bound == pytest.approx(3000)


def receipts(h: Hist, node: str, reads: list[tuple[float, bool]], stamp: float) -> Hist:
    """``GET /v1/broadcasts`` reads of ``node`` completed at each time, listing b1 (with
    the node's own receive time ``stamp``) or not."""
    for at, listed in reads:
        item = {"id": "b1", "origin": "n1", "payload": 1, "at_ms": stamp}
        h.op("broadcasts", node, at - 5, at, result={"received": [item] if listed else []})
    return h


def test_a_node_cannot_stamp_a_late_delivery_early() -> None:
    """n3 first listed the broadcast 25 s after it was sent, after reads without it,
    but stamped it 1 ms after the send: a clock violation, judged at the observed time."""
    polls = [(5100, False), (12_000, False), (30_000, True)]
    h = receipts(broadcast(formed()).delivered("n2", "b1", 5200), "n3", polls, 5001)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(40_000).build())
    assert verdict.status == "fail", verdict.evidence
    assert verdict.measured == pytest.approx(25_000)
    assert "clock violation" in verdict.evidence
    violation = verdict.details["clock_violations"][0]
    assert violation["node"] == "n3" and violation["claimed_ms"] == 5001
    assert violation["window_ms"] == [11_995, 30_000]
    # The same stamp inside the window the reads allow is the node's word, and passes.
    polls = [(5000.5, False), (30_000, True)]
    h = receipts(broadcast(formed()).delivered("n2", "b1", 5200), "n3", polls, 5001)
    honest = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(40_000).build())
    assert honest.status == "pass", honest.evidence
    assert "clock_violations" not in honest.details


def test_a_receive_time_before_the_send_or_after_the_poll_is_a_clock_violation() -> None:
    early = receipts(broadcast(formed()).delivered("n2", "b1", 5200), "n3", [(5400, True)], 10)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", early.until(20_000).build())
    assert verdict.details["clock_violations"][0]["reason"].startswith("stamped before")
    assert verdict.measured == pytest.approx(400)  # the read that listed it
    h = broadcast(formed()).delivered("n2", "b1", 5200)
    h.rows[-1]["args"]["polled_ms"] = 5150.0  # the harness read the event before its stamp
    late = check(check_broadcast_delivery, "BCAST-DELIVERY", receipts(h, "n3", [(5300, True)],
                                                                      5250).until(20_000).build())
    assert late.details["clock_violations"][0]["node"] == "n2"
    assert late.details["clock_violations"][0]["reason"].startswith("stamped after")


def test_broadcast_fails_when_one_member_misses_it() -> None:
    h = broadcast(formed()).delivered("n2", "b1", 5200)
    unasked = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(20000).build())
    assert unasked.status == "pass" and unasked.details["undetermined"] == 1  # never asked
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", asked(h).until(20000).build())
    assert verdict.status == "fail"
    assert verdict.details["never"][0]["member"] == "n3"
    assert "b1" in verdict.evidence


def test_a_receipt_first_seen_late_after_a_gap_is_not_a_late_receipt() -> None:
    """No node times: n3's reads skip from 5100 (without it) to 20000 (with it). It may
    have received it at 5200, so that is no FAIL, and no PASS either (it used to pass):
    nobody saw it in time. A read without it after the deadline makes the lateness
    certain, and so does a read n3 failed to answer then: that gap is n3's own."""
    h = broadcast(formed()).delivered("n2", "b1", 5200)
    h.op("broadcasts", "n3", 5095, 5100, result={"received": []})
    h.op("broadcasts", "n3", 19_995, 20_000, result={"received": [{"id": "b1"}]})
    gap = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(30_000).build())
    assert gap.status == "untested" and gap.details["undetermined"] == 1, gap.evidence
    assert gap.details["unsettled"] == 1 and "no pass" in gap.evidence
    late = check(check_broadcast_delivery, "BCAST-DELIVERY", asked(h, at=12_000).until(30_000)
                 .build())
    assert late.status == "fail" and late.measured == pytest.approx(15_000)
    for outcome, result in (("fail", {"status": 500}), ("info", None)):
        refused = h.op("broadcasts", "n3", 11_995, 12_000, outcome, result=result)
        verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", refused.until(30_000).build())
        assert verdict.status == "fail" and verdict.measured == pytest.approx(15_000), outcome


def test_a_backdated_receipt_behind_failed_reads_is_judged_when_seen() -> None:
    """n3 stamps its receipt at 5200 while its broadcasts reads at 6000 to 12000 fail and
    the one at 15000 lists it: it passed on the stamp; a failed read bounds nothing in the
    node's favour, so the stamp is a clock violation and the receipt counts at 15000.
    With those reads answered and listing it, the stamp stands."""
    def history(outcome: str, listed: bool = False) -> list[Entry]:
        h = broadcast(formed()).delivered("n2", "b1", 5200)
        h.op("broadcasts", "n3", 5095, 5100, result={"received": []})
        for at in range(6000, 13_000, 2000):
            body = {"received": [{"id": "b1", "at_ms": 5200}] if listed else []}
            h.op("broadcasts", "n3", at - 5, at, outcome, result=body if outcome == "ok" else None)
        h.op("broadcasts", "n3", 14_995, 15_000, result={"received": [{"id": "b1", "at_ms": 5200}]})
        return h.until(30_000).build()

    for outcome in ("fail", "info"):
        verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", history(outcome))
        assert verdict.status == "fail" and verdict.measured == pytest.approx(10_000), outcome
        violation = verdict.details["clock_violations"][0]
        assert (violation["node"], violation["used_ms"]) == ("n3", 15_000), violation
    honest = check(check_broadcast_delivery, "BCAST-DELIVERY", history("ok", listed=True))
    assert honest.status == "pass" and honest.measured == pytest.approx(200), honest.evidence


def test_broadcast_fails_when_late() -> None:
    h = broadcast(formed()).delivered("n2", "b1", 5200).delivered("n3", "b1", 9000)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(20000).build())
    assert verdict.status == "fail"
    assert verdict.measured == pytest.approx(4000)


def test_broadcast_skips_failed_sends_and_members_cut_off_for_good() -> None:
    failed = broadcast(formed(), "fail").until(20000).build()
    assert check(check_broadcast_delivery, "BCAST-DELIVERY", failed).status == "untested"
    # A partition never healed: n3 has no deadline at all.
    h = formed().fault("partition", 4000, groups=[["n1", "n2"], ["n3"]])
    h = asked(broadcast(h).delivered("n2", "b1", 5200), at=19_000)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(20000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.details["excluded_partitioned"] == 1


def delivered_as(payload: Any = 1, origin: Any = "n1", twice: bool = False) -> Hist:
    """b1 sent by n1 with payload 1 reaches n2 (event) and n3 (a read listing it as
    ``payload`` from ``origin``, twice when ``twice``), both in time."""
    item = {"id": "b1", "origin": origin, "payload": payload, "at_ms": 5300}
    h = broadcast(formed()).delivered("n2", "b1", 5200)
    return h.op("broadcasts", "n3", 6000, 6005,
                result={"received": [item, item] if twice else [item]})


def test_a_broadcast_delivered_with_another_payload_fails() -> None:
    """Broadcasts were matched by id only: a member holding b1 with a payload the origin
    never sent passed."""
    assert check(check_broadcast_delivery, "BCAST-DELIVERY",
                 delivered_as().until(20000).build()).status == "pass"
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY",
                    delivered_as({"mangled": 1}).until(20000).build())
    assert verdict.status == "fail", verdict.evidence
    assert "payload {'mangled': 1}" in verdict.evidence and "sent as 1" in verdict.evidence
    wrong = verdict.details["not_as_sent"]
    assert wrong == [{"kind": "payload", "member": "n3", "broadcast": "b1", "sent": 1,
                      "received": {"mangled": 1}, "read_ms": 6005}]
    # A member that reports no payload (a Maelstrom node's messages carry none) is not
    # judged on it.
    assert check(check_broadcast_delivery, "BCAST-DELIVERY",
                 delivered_as(None, None).until(20000).build()).status == "pass"


def test_a_broadcast_reported_from_another_origin_fails() -> None:
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY",
                    delivered_as(origin="n2").until(20000).build())
    assert verdict.status == "fail", verdict.evidence
    assert verdict.details["not_as_sent"][0]["kind"] == "origin"
    assert "reported from 'n2', sent from 'n1'" in verdict.evidence
    h = delivered_as()
    h.rows[-3]["args"]["origin"] = "n3"  # n2's delivery event
    assert h.rows[-3]["op"] == "broadcast" and h.rows[-3]["type"] == "event"
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(20000).build())
    assert verdict.status == "fail" and verdict.details["not_as_sent"][0]["member"] == "n2"


def test_a_broadcast_delivered_twice_to_one_member_fails() -> None:
    """Listed twice in one read, or two deliveries in one life's event feed: each a
    duplicate. One event recorded twice (the same seq), or a new life's delivery after a
    restart, is not."""
    twice = check(check_broadcast_delivery, "BCAST-DELIVERY",
                  delivered_as(twice=True).until(20000).build())
    assert twice.status == "fail", twice.evidence
    assert twice.details["not_as_sent"][0] == {
        "kind": "duplicate", "member": "n3", "broadcast": "b1", "times": 2, "read_ms": 6005}

    def with_events(*deliveries: tuple[float, int]) -> Hist:
        h = delivered_as()
        h.rows = [r for r in h.rows if r["type"] != "event" or r["op"] != "broadcast"]
        for at, seq in deliveries:
            h.delivered("n2", "b1", at)
            h.rows[-1]["args"]["seq"] = seq
        return h

    again = check(check_broadcast_delivery, "BCAST-DELIVERY",
                  with_events((5200, 7), (7000, 9)).until(20000).build())
    assert again.status == "fail", again.evidence
    assert again.details["not_as_sent"][0]["source"] == "event feed"
    once = check(check_broadcast_delivery, "BCAST-DELIVERY",
                 with_events((5200, 7)).until(20000).build())
    assert once.status == "pass", once.evidence
    restarted = with_events((5200, 7))
    restarted.op("kill", "n2", 8000, 8010).op("start", "n2", 9000, 9100)
    restarted.delivered("n2", "b1", 9500)
    restarted.rows[-1]["args"]["seq"] = 7
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", restarted.until(20000).build())
    assert "not_as_sent" not in verdict.details, verdict.evidence


def cut_off_until_heal() -> Hist:
    """n1 broadcasts b1 at 5000 while a partition (4000 to 15000) cuts n3 off from it;
    n2 gets it at once. The bound is 3000 ms, counted from the heal plus heal_repair_ms
    (3500 at n = 3 with the reference timing), so n3 owes it by 21500."""
    h = formed().fault("partition", 4000, groups=[["n1", "n2"], ["n3"]])
    return broadcast(h).delivered("n2", "b1", 5200).fault("heal", 15_000)


def test_a_member_cut_off_from_the_origin_owes_the_broadcast_after_the_heal() -> None:
    """Deferred, not excused: never delivered after the heal is a FAIL, whose evidence
    says so."""
    never = asked(cut_off_until_heal(), at=22_000).until(25_000).build()
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", never)
    assert verdict.status == "fail", verdict.evidence
    missing = verdict.details["never"][0]
    assert missing["member"] == "n3" and missing["deferred_to_heal_ms"] == 15_000
    assert missing["counted_from_ms"] == 18_500  # the heal, plus the time to repair
    assert missing["at_least_ms"] == pytest.approx(6500)  # the history's end, from then
    assert "after the heal at 15.0 s" in verdict.evidence
    # Read only before the deferred deadline: a miss is not yet evidence.
    early = asked(cut_off_until_heal(), at=17_000).until(25_000).build()
    unsure = check(check_broadcast_delivery, "BCAST-DELIVERY", early)
    assert unsure.status == "pass" and unsure.details["undetermined"] == 1, unsure.evidence


def test_a_member_cut_off_from_the_origin_passes_when_it_gets_it_soon_after_the_heal() -> None:
    assert params()["heal_repair_ms"] == 3500  # 5 probe rounds and 2 push-pull exchanges
    h = cut_off_until_heal().delivered("n3", "b1", 20_000)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(25_000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(1500)  # counted from the heal plus the repair
    late = cut_off_until_heal().delivered("n3", "b1", 22_000)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", late.until(25_000).build())
    assert verdict.status == "fail" and verdict.measured == pytest.approx(3500)


def test_a_later_cut_inside_the_deferred_window_defers_again() -> None:
    """Healed at 15000, cut again 16000 to 30000 (inside the deferred window): n3 owes b1
    by 30000 + 3500 + 3000; the broadcast's latency plot leaves n3 out (it measured the
    partition)."""
    h = cut_off_until_heal().fault("cut", 16_000, links=[["n1", "n3"]])
    h = h.fault("heal", 30_000).delivered("n3", "b1", 31_000)
    index = HistoryIndex.build(h.until(40_000).build())
    assert member_deadline(index, 5000, 3000) == (33_000, 30_000)
    assert member_deadline(index, 5000, 3000, 3500) == (36_500, 30_000)
    assert member_deadline(index, 40_000, 3000) == (43_000, None)  # after every fault
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(40_000).build())
    assert verdict.status == "pass", verdict.evidence
    assert {s["member"] for s in broadcast_latencies(index)} == {"n2"}


def test_broadcast_info_counts_once_delivered_somewhere() -> None:
    h = asked(broadcast(formed(), "info").delivered("n2", "b1", 5200))
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(20000).build())
    assert verdict.status == "fail"  # it happened, so n3 must get it too
    unknown = broadcast(formed(), "info").until(20000).build()
    assert check(check_broadcast_delivery, "BCAST-DELIVERY", unknown).status == "untested"


def test_broadcast_not_claimed_without_capability() -> None:
    h = broadcast(Hist(caps=["membership", "kv"]).start_all()).until(20000).build()
    assert check(check_broadcast_delivery, "BCAST-DELIVERY", h).status == "not-claimed"


# ---------------------------------------------------------------- KV-CONVERGENCE


def writes(h: Hist) -> Hist:
    """Two acknowledged puts of key k from two nodes whose calls overlap (a contested
    pair: conflict resolution is exercised); b carries the greater timestamp."""
    h.phase("writes", 5000, 6000)
    h.put("n1", "k", "a", 5100, 5110, timestamp=[5105, 0])
    h.put("n2", "k", "b", 5105, 5510, timestamp=[5505, 0])
    return h


def test_convergence_passes_once_digests_agree() -> None:
    h = writes(formed())
    h.kv_read("n1", 7000, {"k": ["b"]}).kv_read("n2", 7000, {"k": ["b"]})
    h.kv_read("n3", 7000, {"k": ["a"]})
    for node in h.nodes:
        h.kv_read(node, 8000, {"k": ["b"]})
    verdict = check(check_kv_convergence, "KV-CONVERGENCE", h.until(20000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(2000)
    assert verdict.bound == pytest.approx(5000)


def test_convergence_fails_when_digests_never_agree() -> None:
    h = writes(formed())
    for t in (7000, 12000, 19000):
        h.kv_read("n1", t, {"k": ["b"]}).kv_read("n2", t, {"k": ["b"]})
        h.kv_read("n3", t, {"k": ["a"]})
    verdict = check(check_kv_convergence, "KV-CONVERGENCE", h.until(20000).build())
    assert verdict.status == "fail"
    diverging = verdict.details["diverging_keys"][0]
    assert diverging == {"key": "k", "values": {"n1": ["b"], "n2": ["b"], "n3": ["a"]}}


def test_convergence_fails_when_agreement_breaks_again() -> None:
    h = writes(formed())
    for node in h.nodes:
        h.kv_read(node, 7000, {"k": ["b"]})
    h.kv_read("n3", 15000, {"k": ["a"]})  # diverged with no write: not converged for good
    verdict = check(check_kv_convergence, "KV-CONVERGENCE", h.until(20000).build())
    assert verdict.status == "fail"


def test_convergence_too_slow_fails() -> None:
    h = writes(formed())
    for node in h.nodes:
        h.kv_read(node, 7000, {"k": ["b"] if node != "n3" else []})
        h.kv_read(node, 13000, {"k": ["b"]})
    verdict = check(check_kv_convergence, "KV-CONVERGENCE", h.until(20000).build())
    assert verdict.status == "fail"
    assert verdict.measured == pytest.approx(7000)


def test_convergence_untested_without_writes_or_when_cut_short() -> None:
    assert check(check_kv_convergence, "KV-CONVERGENCE", formed().build()).status == (
        "untested"
    )
    h = writes(formed()).kv_read("n1", 7000, {"k": ["b"]}).kv_read("n3", 7000, {"k": ["a"]})
    verdict = check(check_kv_convergence, "KV-CONVERGENCE", h.build())
    assert verdict.status == "untested"
    assert verdict.details["inconclusive"] is True


# ---------------------------------------------------------------- KV-LWW


def final(h: Hist, values: dict[str, list[Any]], at: float = 9000) -> Hist:
    for node, v in values.items():
        h.kv_read(node, at, {"k": v})
    return h.until(20000)


def lww(h: Hist) -> Verdict:
    return check(check_kv_lww, "KV-LWW", h.build())


def test_lww_passes_with_the_greatest_timestamp() -> None:
    verdict = lww(final(writes(formed()), {"n1": ["b"], "n2": ["b"], "n3": ["b"]}))
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == 0


def test_lww_fails_when_the_older_write_survives() -> None:
    verdict = lww(final(writes(formed()), {"n1": ["a"], "n2": ["a"], "n3": ["a"]}))
    assert verdict.status == "fail"
    violation = verdict.details["violations"][0]
    assert violation["model"]["winner"]["value"] == "b"
    assert "not the model's winner" in violation["reasons"][0]


def tie(survivor: str) -> Hist:
    h = formed().phase("writes", 5000, 6000)
    h.put("n1", "k", "from-n1", 5100, 5110, timestamp=[5105, 2])
    h.put("n2", "k", "from-n2", 5100, 5110, timestamp=[5105, 2])
    return final(h, {n: [survivor] for n in ("n1", "n2", "n3")})


def test_lww_tie_goes_to_the_greater_node_id() -> None:
    assert lww(tie("from-n2")).status == "pass"
    verdict = lww(tie("from-n1"))
    assert verdict.status == "fail"
    assert verdict.details["violations"][0]["model"]["winner"]["node"] == "n2"


def test_lww_fails_when_members_disagree() -> None:
    verdict = lww(final(writes(formed()), {"n1": ["b"], "n2": ["a"], "n3": ["b"]}))
    assert verdict.status == "fail"
    assert "members disagree" in verdict.details["violations"][0]["reasons"]
    assert verdict.details["violations"][0]["values"]["n2"] == ["a"]


def test_lww_fails_on_siblings_and_on_lost_writes() -> None:
    siblings = lww(final(writes(formed()), {n: ["a", "b"] for n in ("n1", "n2", "n3")}))
    assert siblings.status == "fail"
    assert "more than one sibling under lww" in siblings.details["violations"][0]["reasons"]
    h = writes(formed())
    for node in h.nodes:
        h.kv_read(node, 9000, {})
    lost = lww(h.until(20000))
    assert lost.status == "fail"
    assert "a completed write was lost" in lost.details["violations"][0]["reasons"]


def realtime(first: tuple[float, float], second: tuple[float, float], survivor: str) -> Hist:
    h = formed().phase("writes", 5000, 6000)
    h.put("n1", "k", "a", *first)
    h.put("n2", "k", "b", *second)
    h.put("n3", "k", "b", *second)  # races n2's write of the same value: a contested pair
    return final(h, {n: [survivor] for n in ("n1", "n2", "n3")})


def test_lww_without_timestamps_uses_real_time() -> None:
    assert lww(realtime((5000, 5100), (5200, 5300), "b")).status == "pass"
    assert lww(realtime((5000, 5100), (5200, 5300), "a")).status == "fail"  # superseded
    # Overlapping writes: either may win.
    assert lww(realtime((5000, 5300), (5100, 5200), "a")).status == "pass"
    assert lww(realtime((5000, 5300), (5100, 5200), "b")).status == "pass"


def racing(survivor: str, late: tuple[float, float] | None = None) -> Hist:
    """Every node writes key k at once, without timestamps (the extension is optional):
    the calls overlap, so any of them may win."""
    h = formed().phase("writes", 5000, 6000)
    for i, node in enumerate(h.nodes):
        h.put(node, "k", f"from-{node}", 5100 + i, 5140 + 7 * i)
    if late is not None:
        h.put("n1", "k", "late", *late)
    return final(h, {n: [survivor] for n in h.nodes})


def test_concurrent_writes_without_timestamps_are_superseded_not_lost() -> None:
    from gossipcert.harness.workloads.kv import check_no_lost_write

    for survivor in ("from-n1", "from-n2", "from-n3"):
        history = racing(survivor).build()
        assert lww(racing(survivor)).status == "pass", survivor
        lost = check(check_no_lost_write, "KV-NO-LOST-WRITE", history)
        assert lost.status == "pass", (survivor, lost.evidence)
    # A write begun after every racer completed must win: if a racer survives instead,
    # the late write is lost (and KV-LWW fails the survivor).
    history = racing("from-n2", late=(5300, 5310)).build()
    lost = check(check_no_lost_write, "KV-NO-LOST-WRITE", history)
    assert lost.status == "fail" and lost.measured == 1, lost.evidence
    assert lost.details["violations"][0]["write"]["value"] == "late"
    assert lww(racing("from-n2", late=(5300, 5310))).status == "fail"
    # ... and a racer that finished before the late write began is superseded, not lost.
    history = racing("late", late=(5300, 5310)).build()
    assert check(check_no_lost_write, "KV-NO-LOST-WRITE", history).status == "pass"


def skewed(stamp: float, skew_ms: float | None = None) -> Hist:
    h = formed().phase("writes", 5000, 6000)
    if skew_ms is not None:
        h.rows[0]["args"]["clock_skew_ms"] = skew_ms
    h.put("n1", "k", "a", 5100, 5502, timestamp=[5105, 0])  # overlaps n2's call
    h.put("n2", "k", "b", 5500, 5510, timestamp=[int(stamp), 0])
    return final(h, {n: ["b"] for n in h.nodes})


def test_lww_timestamps_must_lie_within_the_call_give_or_take_the_skew() -> None:
    assert lww(skewed(5505)).status == "pass"
    assert lww(skewed(5500 - 249)).status == "pass"  # within the default 250 ms
    # A node stamping its write an hour late wins every race: a clock violation.
    verdict = lww(skewed(5510 + 3_600_000))
    assert verdict.status == "fail"
    assert "clock violation" in verdict.details["violations"][0]["reasons"][0]
    assert lww(skewed(5510 + 300)).status == "fail"
    assert lww(skewed(5510 + 300, skew_ms=500)).status == "pass"  # configurable


def test_lww_info_may_win_and_fail_never_does() -> None:
    h = writes(formed()).put("n3", "k", "maybe", 5700, None, "info")
    assert lww(final(h, {n: ["maybe"] for n in ("n1", "n2", "n3")})).status == "pass"
    h = writes(formed()).put("n3", "k", "failed", 5700, 5710, "fail")
    assert lww(final(h, {n: ["failed"] for n in ("n1", "n2", "n3")})).status == "fail"
    # Only failed writes: nothing was acknowledged, so nothing is judged (an empty state
    # that agrees with itself proves no conflict resolution).
    h = formed().phase("writes", 5000, 6000).put("n1", "k", "x", 5100, 5110, "fail")
    for node in h.nodes:
        h.kv_read(node, 9000, {})
    assert lww(h.until(20000)).status == "untested"


def test_lww_not_claimed_under_mv_alone_and_untested_without_writes() -> None:
    h = Hist(policy="mv").start_all()
    writes(h)
    assert lww(final(h, {"n1": ["a", "b"]})).status == "not-claimed"
    assert lww(formed().until(20000)).status == "untested"


# ---------------------------------------------------------------- PARTITION-HEAL


def partitioned(heal: bool = True) -> Hist:
    h = formed().fault("partition", 10000, groups=[["n1"], ["n2", "n3"]])
    for other in ("n2", "n3"):
        h.member("n1", other, "dead", 14000).member(other, "n1", "dead", 14000)
    if heal:
        h.fault("heal", 20000)
    return h


def test_heal_passes_when_views_and_state_reconverge() -> None:
    h = partitioned()
    for other in ("n2", "n3"):
        h.member("n1", other, "alive", 21500).member(other, "n1", "alive", 22000)
    for node in h.nodes:
        h.kv_read(node, 21000, {"k": [node]})
        h.kv_read(node, 23000, {"k": ["n1"]})
    verdict = check(check_partition_heal, "PARTITION-HEAL", h.until(40000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(3000)  # kv agreement came last
    assert verdict.bound == pytest.approx(6500)


def test_heal_fails_when_halves_never_merge() -> None:
    h = partitioned().member("n1", "n2", "alive", 21500)
    verdict = check(check_partition_heal, "PARTITION-HEAL", h.until(40000).build())
    assert verdict.status == "fail"
    never = {(d["observer"], d["member"]) for d in verdict.details["never"]}
    assert never == {("n1", "n3"), ("n2", "n1"), ("n3", "n1")}


def test_heal_fails_on_flapping_after_the_heal() -> None:
    h = partitioned()
    for other in ("n2", "n3"):
        h.member("n1", other, "alive", 21500).member(other, "n1", "alive", 21500)
    h.member("n2", "n1", "suspect", 23000)
    verdict = check(check_partition_heal, "PARTITION-HEAL", h.until(40000).build())
    assert verdict.status == "fail"
    assert verdict.details["never"][0]["observer"] == "n2"


def test_heal_fails_when_state_stays_diverged() -> None:
    h = partitioned()
    for other in ("n2", "n3"):
        h.member("n1", other, "alive", 21500).member(other, "n1", "alive", 21500)
    for node in h.nodes:
        h.kv_read(node, 30000, {"k": ["a" if node == "n1" else "b"]})
    verdict = check(check_partition_heal, "PARTITION-HEAL", h.until(40000).build())
    assert verdict.status == "fail"
    assert verdict.details["kv"][0]["digests"]["n1"] != verdict.details["kv"][0]["digests"]["n2"]


def test_heal_untested_without_partition_or_heal() -> None:
    assert check(check_partition_heal, "PARTITION-HEAL", formed().build()).status == (
        "untested"
    )
    never_healed = partitioned(heal=False).until(40000).build()
    assert check(check_partition_heal, "PARTITION-HEAL", never_healed).status == ("untested")


# ---------------------------------------------------------------- run_checks


def full_run() -> list[Entry]:
    h = formed().phase("quiet", 2000, 4000).look(3000)
    broadcast(h).delivered("n2", "b1", 5100).delivered("n3", "b1", 5200)
    writes(h)
    for node in h.nodes:
        h.kv_read(node, 7000, {"k": ["b"]})
    h.fault("kill", 10000, "n3").member("n1", "n3", "dead", 14000).member("n2", "n3", "dead", 14500)
    h.fault("partition", 25000, groups=[["n1"], ["n2"]]).fault("heal", 30000)
    h.members_read("n1", 32000, {"n2": "alive"}).members_read("n2", 32000, {"n1": "alive"})
    return h.until(40000).build()


def test_run_checks_gives_one_verdict_per_requirement() -> None:
    catalogue = load_catalogue()
    verdicts = run_checks(full_run(), catalogue)
    assert [v.id for v in verdicts] == [r.id for r in catalogue]
    by_id = {v.id: v for v in verdicts}
    for rid in (
        "MEM-JOIN",
        "FD-DETECT",
        "FD-NO-FALSE-POSITIVE",
        "BCAST-DELIVERY",
        "KV-CONVERGENCE",
        "KV-LWW",
        "PARTITION-HEAL",
    ):
        assert by_id[rid].status == "pass", (rid, by_id[rid].evidence)


def test_run_checks_reports_not_claimed_for_missing_capability() -> None:
    h = Hist(caps=["membership"]).start_all().all_alive(1500)
    writes(h).fault("kill", 10000, "n3")
    verdicts = {v.id: v for v in run_checks(h.until(40000).build(), load_catalogue())}
    assert verdicts["MEM-JOIN"].status == "pass"
    for rid in ("FD-DETECT", "BCAST-DELIVERY", "KV-CONVERGENCE", "KV-LWW"):
        assert verdicts[rid].status == "not-claimed", rid


def test_run_checks_fails_a_declared_capability_that_answers_501() -> None:
    """A 501 on a declared capability is a contract violation, never a pass."""
    h = formed().phase("writes", 5000, 6000)
    h.op(
        "put",
        "n1",
        5100,
        5110,
        "fail",
        args={"key": "k", "value": 1},
        result={"status": 501, "error": "not_implemented", "message": "no kv"},
    )
    verdicts = {v.id: v for v in run_checks(h.until(20000).build(), load_catalogue())}
    assert verdicts["KV-LWW"].status == "fail"
    assert "501" in verdicts["KV-LWW"].evidence and "contract" in verdicts["KV-LWW"].evidence
    # Without the HTTP status recorded, the body's error code tells.
    h = formed().op(
        "broadcast",
        "n1",
        5000,
        5010,
        "fail",
        args={"id": "b", "payload": 1},
        result={"error": "not_implemented", "message": "no broadcast"},
    )
    verdicts = {v.id: v for v in run_checks(h.until(20000).build(), load_catalogue())}
    assert verdicts["BCAST-DELIVERY"].status == "fail"


def test_run_checks_turns_checker_crashes_and_bad_bounds_into_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(history: Any, requirement: Requirement, params: Any) -> Verdict:
        raise RuntimeError("kaboom")

    monkeypatch.setitem(CHECKERS, "check_member_join", boom)
    base = CATALOGUE["FD-DETECT"]
    bad_bound = Requirement(**{**base.__dict__, "id": "X-BAD", "bound": "__import__('os')"})
    unknown = Requirement(**{**base.__dict__, "id": "X-UNKNOWN", "checker": "check_nothing"})
    verdicts = run_checks(full_run(), [CATALOGUE["MEM-JOIN"], bad_bound, unknown])
    assert [v.status for v in verdicts] == ["error", "error", "error"]
    assert "kaboom" in verdicts[0].evidence
    assert "bad bound" in verdicts[1].evidence
    assert "check_nothing" in verdicts[2].evidence


def test_checkers_stay_fast_on_large_histories() -> None:
    """Linear-ish: 30 nodes, 300 read rounds (~270k observations) in seconds."""
    nodes = tuple(f"n{i:02d}" for i in range(30))
    h = Hist(nodes).start_all(step=10).phase("quiet", 2000, 400_000)
    h.phase("writes", 400_000, 401_000)
    for i, node in enumerate(nodes):
        h.put(node, f"k{i}", i, 400_100, 400_110, timestamp=[400_105, 0])
    h.put(nodes[1], "k0", 0, 400_100, 400_110, timestamp=[400_105, 0])  # a race on k0
    for r in range(300):
        t = 3000 + r * 1000
        for node in nodes:
            h.members_read(node, t, {m: "alive" for m in nodes if m != node})
    for node in nodes:
        h.kv_read(node, 402_000, {f"k{i}": [i] for i in range(30)}, digest="d")
    history = h.until(410_000).build()
    started = time.perf_counter()
    verdicts = run_checks(history, load_catalogue())
    elapsed = time.perf_counter() - started
    by_id = {v.id: v for v in verdicts}
    assert by_id["FD-NO-FALSE-POSITIVE"].status == "pass"
    assert by_id["KV-LWW"].status == "pass", by_id["KV-LWW"].evidence
    assert elapsed < 20, elapsed


def test_detection_before_a_later_partition_still_counts() -> None:
    h = killed_n3(13000, 14000).fault("partition", 15000, groups=[["n1"], ["n2"]])
    verdict = check(check_failure_detection, "FD-DETECT", h.fault("heal", 18000).build())
    assert verdict.status == "pass"
    assert verdict.details["excluded_partitioned"] == 0
    h = killed_n3(13000, None).fault("partition", 12000, groups=[["n1"], ["n2"]])
    verdict = check(check_failure_detection, "FD-DETECT", h.fault("heal", 18000).build())
    assert verdict.status == "pass"  # n1 saw it in time; n2, cut off and silent, is excused
    assert verdict.details["excluded_partitioned"] == 1


# ---------------------------------------------------------------- one-way cuts


def cut(h: Hist, at: float, *links: tuple[str, str], heal: float | None = None) -> Hist:
    """A ``cut`` fault dropping exactly ``links`` (directed), healed at ``heal`` if given."""
    h.fault("cut", at, links=[list(link) for link in links], plane="link", shape="one-way")
    if heal is not None:
        h.fault("heal", heal)
    return h


def test_a_one_way_cut_excuses_a_missed_detection_like_a_partition() -> None:
    by_partition = killed_n3(13000, None).fault("partition", 9000, groups=[["n1"], ["n2"]])
    by_cut = cut(killed_n3(13000, None), 9000, ("n2", "n1"))  # n2 cannot reach n1: one way
    for h in (by_partition, by_cut):
        verdict = check(check_failure_detection, "FD-DETECT", h.fault("heal", 30000).build())
        assert verdict.status == "pass", verdict.evidence
        assert verdict.details["excluded_partitioned"] == 1


def test_a_cut_between_other_nodes_does_not_excuse_a_missed_detection() -> None:
    h = cut(killed_n3(13000, None), 9000, ("n1", "n3"), ("n3", "n1"), heal=30000)
    verdict = check(check_failure_detection, "FD-DETECT", h.build())
    assert verdict.status == "fail"
    assert verdict.details["excluded_partitioned"] == 0
    assert verdict.details["never"][0]["observer"] == "n2"


def test_a_one_way_cut_excludes_join_pairs_in_both_directions() -> None:
    h = cut(Hist(), 500, ("n3", "n1"))  # open for the whole run
    h.start_all()
    for observer, subject in itertools.permutations(h.nodes, 2):
        if {observer, subject} != {"n1", "n3"}:
            h.member(observer, subject, "alive", 1500)
    verdict = check(check_member_join, "MEM-JOIN", h.until(20000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.details["excluded_partitioned"] == 2
    h = cut(Hist(), 500, ("n2", "n1"))  # cuts n1 and n2 apart, not n1 and n3
    h.start_all()
    for observer, subject in itertools.permutations(h.nodes, 2):
        if {observer, subject} != {"n1", "n3"}:
            h.member(observer, subject, "alive", 1500)
    verdict = check(check_member_join, "MEM-JOIN", h.until(20000).build())
    assert verdict.status == "fail"
    assert {(d["observer"], d["member"]) for d in verdict.details["never"]} == {
        ("n1", "n3"),
        ("n3", "n1"),
    }


def test_a_cut_anywhere_defers_every_member_to_the_heal() -> None:
    """A cut of n1 -> n3 held while n1's broadcast spread: n3 owes it from the heal plus
    the repair time (21500), and so does a member the cut never separated from the origin
    (n2 here, had it missed the rumor): rumor mongering spent its transmissions on a
    member it could not tell was unreachable, and only anti-entropy repairs that."""
    h = broadcast(cut(formed(), 4000, ("n1", "n3"), heal=15000)).delivered("n2", "b1", 5200)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(23000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.details["undetermined"] == 1  # owed by 21500; not asked since
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY",
                    asked(h, at=22_000).until(23000).build())
    assert verdict.status == "fail"
    assert verdict.details["never"][0]["deferred_to_heal_ms"] == 15000
    # The origin's own side, late by the call's bound but in time after the heal: pass.
    h = broadcast(cut(formed(), 4000, ("n1", "n3"), heal=15000))
    h = h.delivered("n3", "b1", 5200).delivered("n2", "b1", 20_000)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY", h.until(23000).build())
    assert verdict.status == "pass", verdict.evidence
    # Never delivered at all: a fail, whichever side of the cut.
    h = broadcast(cut(formed(), 4000, ("n3", "n1"), heal=15000)).delivered("n2", "b1", 5200)
    verdict = check(check_broadcast_delivery, "BCAST-DELIVERY",
                    asked(h, at=22_000).until(23000).build())
    assert verdict.status == "fail"
    assert verdict.details["never"][0]["member"] == "n3"


def cut_off_n1() -> Hist:
    h = cut(formed(), 10000, ("n1", "n2"), ("n1", "n3"), heal=20000)
    for other in ("n2", "n3"):
        h.member(other, "n1", "dead", 14000)
    return h


def test_heal_after_a_cut_is_judged_like_after_a_partition() -> None:
    h = cut_off_n1()
    for other in ("n2", "n3"):
        h.member(other, "n1", "alive", 21500)
    verdict = check(check_partition_heal, "PARTITION-HEAL", h.until(40000).build())
    assert verdict.status == "pass", verdict.evidence
    assert verdict.measured == pytest.approx(1500)
    h = cut_off_n1().member("n2", "n1", "alive", 21500)
    verdict = check(check_partition_heal, "PARTITION-HEAL", h.until(40000).build())
    assert verdict.status == "fail"
    assert {(d["observer"], d["member"]) for d in verdict.details["never"]} == {("n3", "n1")}
    unhealed = cut(formed(), 10000, ("n1", "n2")).until(40000).build()
    assert check(check_partition_heal, "PARTITION-HEAL", unhealed).status == "untested"
