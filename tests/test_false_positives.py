"""False positives judged wherever the run gives a correct failure detector no excuse:
a live member dropped from a list counts like one declared dead, every stretch of a run no
fault touches is judged (not only the named windows), a victim declared dead before its
kill is a false positive and no detection, and no verdict passes on windows nobody read.

Each case is a synthetic history (the ``Hist`` helper of ``test_checkers``) that passed
before these rules, next to the correct history that still passes."""

from __future__ import annotations

from typing import Any

import pytest
from gossipcert.harness.judging.bounds import evaluate
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.workloads.failure_detection import fault_grace, untouched_stretches
from test_checkers import CATALOGUE, Hist, formed, params
from test_checkers_catalogue import verdict_of

GRACE = fault_grace(params())


def test_the_grace_after_a_fault_is_the_catalogue_s_own_bound() -> None:
    """The grace after a heal is PARTITION-HEAL's bound and after a restart MEM-REJOIN's,
    so the two can never drift apart; after a resume it is at least FD-NO-FP-PAUSE's
    aftermath plus the slack."""
    p = params()
    assert GRACE["heal"] == pytest.approx(evaluate(CATALOGUE["PARTITION-HEAL"].bound, p))
    assert GRACE["restart"] == pytest.approx(evaluate(CATALOGUE["MEM-REJOIN"].bound, p))
    aftermath = p["suspicion_max_ms"] + p["dissemination_ms"] + p["slack_ms"]
    assert GRACE["resume"] == pytest.approx(max(GRACE["restart"], aftermath))


# ---------------------------------------------------------------- hole 3: absent


def windowed(phase: str, args: dict[str, Any]) -> Hist:
    """A fault window 3000..8000 read at 3500 by every node."""
    h = formed()
    h.rows.append(
        {"time_ms": 3000, "type": "phase", "op": phase, "args": {"edge": "start", **args}}
    )
    h.rows.append({"time_ms": 8000, "type": "phase", "op": phase, "args": {"edge": "end"}})
    return h.look(3500)


WINDOWS = [
    ("FD-NO-FP-LATENCY", "latency", {"latency_ms": 50, "jitter_ms": 10}),
    ("FD-NO-FP-LOSS", "lossy", {"loss": 0.1}),
    ("FD-NO-FP-PAUSE", "paused", {"node": "n1"}),
]


@pytest.mark.parametrize(("rid", "phase", "args"), WINDOWS)
def test_a_live_member_dropped_inside_a_fault_window_is_a_false_positive(
    rid: str, phase: str, args: dict[str, Any]
) -> None:
    """n2's list stops showing live n3 (it used to pass: only dead counted)."""
    h = windowed(phase, args).members_read("n2", 5000, {"n1": "alive"})
    v = verdict_of(rid, h.until(9000).build())
    assert v.status == "fail", v.evidence
    assert "n2 dropped live n3 from its list" in v.evidence
    assert v.details["declared_dead"][0]["status"] == "absent"
    ok = windowed(phase, args).members_read("n2", 5000, {"n1": "alive", "n3": "alive"})
    assert verdict_of(rid, ok.until(9000).build()).status == "pass"


def test_a_live_member_dropped_in_a_quiet_phase_is_a_false_positive() -> None:
    h = formed().phase("quiet", 3000, 8000).look(3500)
    h.members_read("n1", 5000, {"n3": "alive"})
    v = verdict_of("FD-NO-FALSE-POSITIVE", h.until(9000).build())
    assert v.status == "fail", v.evidence
    assert v.details["false_positives"][0] == {
        "observer": "n1", "member": "n2", "status": "absent", "at_ms": 5000.0,
        "window": "quiet",
    }


def test_absent_before_the_first_sighting_or_after_a_leave_is_no_false_positive() -> None:
    """A joiner not learnt yet and a leaver that asked to go are legitimately absent."""
    h = Hist().start_all().phase("quiet", 1000, 8000)
    h.members_read("n1", 1300, {})  # n1 has not learnt anyone yet
    h.all_alive(1500).look(2500)
    h.op("leave", "n3", 4000, 4010)
    h.members_read("n1", 4005, {"n2": "alive"}, invoked=4001)  # n3 leaving: gone from n1
    h.look(6000, ("n1", "n2"))
    v = verdict_of("FD-NO-FALSE-POSITIVE", h.until(9000).build())
    assert v.status == "pass", v.evidence


# ---------------------------------------------------------------- hole 10: every stretch


def test_a_death_outside_every_named_window_is_judged_where_no_fault_touches_the_pair() -> None:
    """A dead of live n2 at 12000, after the quiet phase, with no fault anywhere: it used
    to pass (only the quiet phase was judged)."""
    h = formed().phase("quiet", 2000, 5000).look(3000).look(10000)
    h.member("n1", "n2", "dead", 12000).member("n1", "n2", "alive", 12500)
    v = verdict_of("FD-NO-FALSE-POSITIVE", h.until(20000).build())
    assert v.status == "fail", v.evidence
    assert "a stretch no fault touched" in v.evidence
    assert v.details["false_positives"][0]["window"] == "untouched"


def test_a_suspicion_outside_a_quiet_phase_is_not_counted() -> None:
    """Outside a quiet phase a workload may load the machine: a suspicion refuted in
    time is SWIM working."""
    h = formed().phase("quiet", 2000, 5000).look(3000).look(10000)
    h.member("n1", "n2", "suspect", 12000).member("n1", "n2", "alive", 12500)
    v = verdict_of("FD-NO-FALSE-POSITIVE", h.until(20000).build())
    assert v.status == "pass", v.evidence


@pytest.mark.parametrize(
    ("fault", "grace"),
    [("partition", "heal"), ("latency", "heal"), ("pause", "resume")],
)
def test_a_fault_touches_a_pair_until_its_grace_after_it_ends(fault: str, grace: str) -> None:
    """A death inside a fault, or within its grace after it ended, is not this check's
    (the fault's own requirement judges it); one after the grace is."""
    def run(dead_at: float) -> str:
        h = formed().look(3000)
        if fault == "partition":
            h.fault("partition", 5000, groups=[["n1"], ["n2", "n3"]]).fault("heal", 8000)
        elif fault == "latency":
            h.fault("latency", 5000, links=[["n1", "n2"]], latency_ms=40).fault("heal", 8000)
        else:
            h.fault("pause", 5000, node="n2").fault("resume", 8000, node="n2")
        h.look(8000 + GRACE[grace] + 500)
        h.member("n1", "n2", "dead", dead_at)
        h.member("n1", "n2", "alive", dead_at + 100)
        return verdict_of("FD-NO-FALSE-POSITIVE", h.until(60_000).build()).status

    assert run(6000) == "pass"
    assert run(8000 + GRACE[grace] - 100) == "pass"
    assert run(8000 + GRACE[grace] + 1000) == "fail"


def test_stretches_follow_lives_and_faults() -> None:
    """Kill and restart of n3: pairs with n3 are judged again once the new life has had
    MEM-REJOIN's time; pairs without it are never touched; the faulting step's time
    opens the touch (the fault entry comes once the fault is confirmed)."""
    h = formed()
    h.rows.append({"time_ms": 4990, "type": "step", "op": "kill", "args": {"node": "n3"}})
    h.fault("kill", 5000, "n3").op("start", "n3", 6000, 6100)
    index = HistoryIndex.build(h.until(30_000).build())
    stretches = untouched_stretches(index, params())
    assert stretches[("n1", "n2")] == [(1100.0, 30_000.0)]
    assert stretches[("n1", "n3")] == [(1200.0, 4990.0), (6100.0 + GRACE["restart"], 30_000.0)]
    assert stretches[("n3", "n1")] == stretches[("n1", "n3")]


def test_a_victim_declared_dead_before_its_kill_is_a_false_positive_not_a_detection() -> None:
    """n1 held n3 dead before n3 was killed: FD-DETECT used to count it a 0 ms detection
    and FD-NO-FALSE-POSITIVE did not look outside the quiet phase."""
    h = formed().phase("quiet", 2000, 4000).look(3000)
    h.member("n1", "n3", "dead", 6000).fault("kill", 10_000, "n3")
    h.member("n2", "n3", "dead", 13_000).until(40_000)
    history = h.build()
    v = verdict_of("FD-NO-FALSE-POSITIVE", history)
    assert v.status == "fail", v.evidence
    assert v.details["false_positives"][0]["at_ms"] == 6000
    detect = verdict_of("FD-DETECT", history)
    assert detect.details["checked"] == 1 and detect.measured == 3000
    assert detect.details["dead_before_kill"][0]["observer"] == "n1"
    # Declared dead after the kill: a detection, no false positive.
    h = formed().phase("quiet", 2000, 4000).look(3000).fault("kill", 10_000, "n3")
    h.member("n1", "n3", "dead", 12_000).member("n2", "n3", "dead", 13_000).until(40_000)
    assert verdict_of("FD-NO-FALSE-POSITIVE", h.build()).status == "pass"
    assert verdict_of("FD-DETECT", h.build()).details["checked"] == 2


# ---------------------------------------------------------------- hole 8: zero observations


@pytest.mark.parametrize(("rid", "phase", "args"), WINDOWS)
def test_a_window_nobody_read_is_untested_whatever_the_feeds_said_elsewhere(
    rid: str, phase: str, args: dict[str, Any]
) -> None:
    """Member events before the window (the joins) used to make an unread window pass."""
    h = formed()
    h.rows.append(
        {"time_ms": 3000, "type": "phase", "op": phase, "args": {"edge": "start", **args}}
    )
    h.rows.append({"time_ms": 8000, "type": "phase", "op": phase, "args": {"edge": "end"}})
    v = verdict_of(rid, h.until(9000).build())
    assert v.status == "untested", v.evidence
    assert "no member view was read inside" in v.evidence


def test_the_quiet_check_is_untested_when_nothing_was_read_where_it_judges() -> None:
    h = formed().phase("quiet", 3000, 8000).until(9000)
    v = verdict_of("FD-NO-FALSE-POSITIVE", h.build())
    assert v.status == "untested", v.evidence
