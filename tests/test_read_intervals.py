"""Reads are intervals: a read contradicts an event only when it was certainly served
after it.

Built from a false FAIL seen on the reference node: n3's ``GET /v1/members`` was invoked
before n3 reported killed n2 ``dead`` (an event stamped in whole milliseconds, rounded
down) and completed 1 ms after that stamp, still showing ``suspect``. Sorted by completion
the read came after the event and read as a resurrection; it was not one.
"""

from __future__ import annotations

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.index import HistoryIndex, clock_resolution
from gossipcert.harness.judging.verdict import Verdict
from gossipcert.harness.workloads.capabilities import CHECKERS
from test_checkers import CATALOGUE, Hist, formed, params

# Epoch milliseconds as in the run that failed: the kill, and n3's dead event for n2.
KILL = 1_796_132_160_500.0
DEAD = 1_796_132_163_186.0


def verdict_of(requirement_id: str, history: list[Entry]) -> Verdict:
    requirement = CATALOGUE[requirement_id]
    return CHECKERS[requirement.checker](history, requirement, params(3))


def killed_n2(read_invoked: float, read_completed: float, status: str = "suspect") -> Hist:
    """Three nodes started around the kill time; n2 killed; n3 reports it dead, and one
    members read of n3 shows ``status`` for n2; later reads show dead."""
    h = Hist().start_all(at=KILL - 5000).all_alive(KILL - 4000)
    h.fault("kill", KILL, node="n2", signal="KILL")
    h.member("n3", "n2", "suspect", KILL + 1500)
    h.member("n3", "n2", "dead", DEAD)
    h.member("n1", "n2", "dead", DEAD + 40)
    h.members_read("n3", read_completed, {"n1": "alive", "n2": status}, invoked=read_invoked)
    for k in range(1, 6):
        h.members_read("n3", DEAD + 200 * k, {"n1": "alive", "n2": "dead"})
    return h.until(DEAD + 20_000)


def test_a_read_straddling_the_dead_event_is_no_resurrection() -> None:
    # Invoked 0.4 ms before the stamp, completed 1 ms after it: the exact case.
    v = verdict_of("FD-DEAD-STAYS-DEAD", killed_n2(DEAD - 0.4, DEAD + 1.0).build())
    assert v.status == "pass", v.evidence


def test_a_read_invoked_within_the_clock_resolution_is_no_resurrection() -> None:
    # The event's true time lies anywhere in its millisecond: a read invoked 0.5 ms after
    # the stamp may still have been served before the node marked n2 dead.
    v = verdict_of("FD-DEAD-STAYS-DEAD", killed_n2(DEAD + 0.5, DEAD + 3.0).build())
    assert v.status == "pass", v.evidence


def test_a_read_invoked_after_the_dead_stamp_contradicts_the_stamp() -> None:
    """n3's feed says dead at DEAD and never changes again, yet a read invoked after that
    stamp still shows suspect: by the node's own feed nothing went back, so the stamp is
    what the harness's observation rules out (a clock violation). The dead counts from
    the latest time the reads allow, the first read showing it dead after that one (as a
    broadcast receipt does), and no resurrection was observed."""
    for status, read in (("suspect", (DEAD + 2.0, DEAD + 4.0)), ("alive", (DEAD + 50, DEAD + 60))):
        history = killed_n2(*read, status).build()
        v = verdict_of("FD-DEAD-STAYS-DEAD", history)
        assert v.status == "pass", v.evidence
        violation = HistoryIndex.build(history).clock_violations[0]
        assert (violation["node"], violation["member"], violation["status"]) == ("n3", "n2", "dead")
        assert violation["used_ms"] == DEAD + 200  # the first read showing it dead
        line = HistoryIndex.build(history).timeline("n3", "n2")
        assert line.times[line.statuses.index("dead")] == DEAD + 200


def test_reads_alone_show_a_resurrection() -> None:
    """Without any feed, a read showing dead and a later read certainly served after it
    showing suspect is a resurrection: the harness's own observations in order."""
    h = Hist().start_all(at=KILL - 5000)
    h.fault("kill", KILL, node="n2", signal="KILL")
    h.members_read("n3", DEAD, {"n1": "alive", "n2": "dead"}, invoked=DEAD - 3)
    h.members_read("n3", DEAD + 10, {"n1": "alive", "n2": "suspect"}, invoked=DEAD + 5)
    v = verdict_of("FD-DEAD-STAYS-DEAD", h.until(DEAD + 20_000).build())
    assert v.status == "fail", v.evidence
    incident = v.details["resurrections"][0]
    assert (incident["observer"], incident["member"], incident["status"]) == ("n3", "n2", "suspect")


def test_the_nodes_own_feed_keeps_its_order_within_one_millisecond() -> None:
    # dead then suspect in one feed, both stamped the same millisecond: the node itself
    # says it went back, whatever the clock's resolution.
    h = killed_n2(DEAD - 100, DEAD - 90)
    h.member("n3", "n2", "suspect", DEAD)
    assert verdict_of("FD-DEAD-STAYS-DEAD", h.build()).status == "fail"


def test_clock_resolution_follows_the_stamps() -> None:
    assert clock_resolution([1000.0, 2001.0, 3000.0]) == 1.0
    assert clock_resolution([1000.0, 2000.0, 7000.0]) == 1000.0
    assert clock_resolution([1010.0, 2020.0, 7000.0]) == 10.0
    assert clock_resolution([1000.0, 2000.0]) == 1.0  # too few to judge
    assert clock_resolution([1000.25, 2000.0, 3000.0]) == 0.001


def test_a_node_with_a_seconds_clock_is_trusted_to_the_second() -> None:
    """An event stamped in whole seconds may have happened up to a second later than its
    stamp: a read invoked 400 ms after such a dead stamp neither contradicts it nor is a
    resurrection; one invoked after the second contradicts the stamp."""
    def history(invoked: float) -> list[Entry]:
        h = Hist().start_all(at=10_000).all_alive(11_000)
        h.fault("kill", 20_000, node="n2", signal="KILL")
        h.member("n3", "n2", "suspect", 22_000).member("n3", "n2", "dead", 24_000, polled=25_500)
        h.member("n1", "n2", "dead", 24_000)
        h.members_read("n3", invoked + 20, {"n1": "alive", "n2": "suspect"}, invoked=invoked)
        return h.until(40_000).build()

    assert verdict_of("FD-DEAD-STAYS-DEAD", history(24_400)).status == "pass"
    assert HistoryIndex.build(history(24_400)).clock_violations == []
    # Contradicted, it counts from the latest time the harness allows: the poll.
    assert HistoryIndex.build(history(25_100)).clock_violations[0]["used_ms"] == 25_500
    line = HistoryIndex.build(history(24_400)).timeline("n3", "n2")
    assert line.latest[line.statuses.index("dead")] == 25_000


# ------------------------------------------------- settling alive: PARTITION-HEAL, MEM-REJOIN


def healed_with_a_read(invoked: float, completed: float) -> Hist:
    """Partition n1 | n2 n3 from 10 s, healed at 20 s; n2 turns n1 alive at 21500 and a
    members read of n2 showing n1 suspect spans [invoked, completed]."""
    h = formed().fault("partition", 10_000, groups=[["n1"], ["n2", "n3"]])
    for other in ("n2", "n3"):
        h.member("n1", other, "dead", 14_000).member(other, "n1", "dead", 14_000)
    h.fault("heal", 20_000)
    for other in ("n2", "n3"):
        h.member("n1", other, "alive", 21_500).member(other, "n1", "alive", 21_500)
    h.members_read("n2", completed, {"n1": "suspect", "n3": "alive"}, invoked=invoked)
    return h.until(40_000)


def test_heal_a_straddling_read_does_not_undo_settling() -> None:
    v = verdict_of("PARTITION-HEAL", healed_with_a_read(21_499.5, 21_501).build())
    assert v.status == "pass", v.evidence
    assert v.measured == 1500


def test_heal_a_read_certainly_after_the_alive_undoes_settling() -> None:
    v = verdict_of("PARTITION-HEAL", healed_with_a_read(21_600, 21_610).build())
    assert v.status == "fail", v.evidence
    assert v.details["never"][0]["observer"] == "n2"


def test_heal_settles_no_sooner_than_the_alive_a_straddling_read_may_follow() -> None:
    """alive at 21500, a suspect read [21800, 22100] certainly after it, an alive read
    [22000, 22005] it may precede: the view is known alive for good only from 22005."""
    h = healed_with_a_read(21_800, 22_100)
    h.members_read("n2", 22_005, {"n1": "alive", "n3": "alive"}, invoked=22_000)
    v = verdict_of("PARTITION-HEAL", h.build())
    assert v.status == "pass", v.evidence
    assert v.measured == 2005


def test_rejoin_a_straddling_read_does_not_undo_settling() -> None:
    def history(invoked: float, completed: float) -> list[Entry]:
        h = formed().fault("kill", 3000, node="n3", signal="KILL")
        h.op("start", "n3", 4000, 4100)
        h.member("n1", "n3", "dead", 3500).member("n1", "n3", "alive", 4300)
        h.member("n2", "n3", "dead", 3600).member("n2", "n3", "alive", 4200)
        h.members_read("n1", completed, {"n2": "alive", "n3": "dead"}, invoked=invoked)
        return h.until(20_000).build()

    assert verdict_of("MEM-REJOIN", history(4299.5, 4301)).status == "pass"
    assert verdict_of("MEM-REJOIN", history(4400, 4405)).status == "fail"


# ------------------------------------------------- MEM-LEAVE and the false-positive windows


def test_leave_a_read_invoked_before_the_leave_is_not_a_failed_leave() -> None:
    def history(invoked: float) -> list[Entry]:
        h = formed()
        h.member("n1", "n3", "suspect", 2990)  # a suspicion raised before the leave
        h.op("leave", "n3", 3000, 3010)
        h.members_read("n1", 3020, {"n2": "alive", "n3": "suspect"}, invoked=invoked)
        h.member("n1", "n3", "left", 3200).member("n2", "n3", "left", 3300)
        return h.until(9000).build()

    assert verdict_of("MEM-LEAVE", history(2995)).status == "pass"
    assert verdict_of("MEM-LEAVE", history(3005)).status == "fail"


def test_quiet_window_counts_only_reads_served_inside_it() -> None:
    def history(invoked: float) -> list[Entry]:
        h = formed().phase("quiet", 3000, 8000)
        h.members_read("n1", 3010, {"n2": "suspect", "n3": "alive"}, invoked=invoked)
        h.members_read("n1", 3500, {"n2": "alive", "n3": "alive"})
        return h.until(9000).build()

    assert verdict_of("FD-NO-FALSE-POSITIVE", history(2990)).status == "pass"
    assert verdict_of("FD-NO-FALSE-POSITIVE", history(3001)).status == "fail"


# ------------------------------------------------- node-stamped times inside the polls


def test_a_node_cannot_stamp_a_slow_detection_early() -> None:
    """n3 reports the killed n2 dead with a stamp 1 ms after the kill, while its members
    reads kept showing n2 alive for 20 s: the stamp is a clock violation and FD-DETECT
    measures the detection the harness saw."""
    h = Hist().start_all(at=KILL - 5000).all_alive(KILL - 4000)
    h.fault("kill", KILL, node="n2", signal="KILL")
    h.member("n1", "n2", "dead", KILL + 2000)
    h.member("n3", "n2", "dead", KILL + 1)
    for k in range(1, 21):
        h.members_read("n3", KILL + 1000 * k, {"n1": "alive", "n2": "alive"})
    h.members_read("n3", KILL + 20_100, {"n1": "alive", "n2": "dead"})
    v = verdict_of("FD-DETECT", h.until(KILL + 60_000).build())
    assert v.status == "fail", v.evidence
    assert v.measured == 20_100  # the first read showing it dead completed then
    assert "clock violation" in v.evidence
    assert v.details["clock_violations"][0]["what"] == "report of n2 dead"


def test_a_detection_first_read_after_a_gap_is_no_late_detection() -> None:
    """No events: n3's members reads stop at the kill and resume 20 s later showing n2
    dead. It may have marked n2 dead in time, so FD-DETECT cannot fail it, nor pass it
    (it used to pass): that detection was never seen in time. A read after the deadline
    still showing n2 alive makes the lateness certain, and so does a read n3 failed to
    answer after the deadline: the gap is then n3's own, not the harness's."""
    def history(alive_read_at: float | None, outcome: str = "ok") -> list[Entry]:
        h = Hist().start_all(at=KILL - 5000)
        h.members_read("n1", KILL - 100, {"n2": "alive", "n3": "alive"})
        h.members_read("n3", KILL - 100, {"n1": "alive", "n2": "alive"})
        h.fault("kill", KILL, node="n2", signal="KILL")
        h.members_read("n1", KILL + 2000, {"n2": "dead", "n3": "alive"})
        if alive_read_at is not None and outcome == "ok":
            h.members_read("n3", alive_read_at, {"n1": "alive", "n2": "alive"})
        elif alive_read_at is not None:
            h.op("members", "n3", alive_read_at - 5, alive_read_at, outcome)
        h.members_read("n3", KILL + 20_000, {"n1": "alive", "n2": "dead"})
        return h.until(KILL + 60_000).build()

    gap = verdict_of("FD-DETECT", history(None))
    assert gap.status == "untested" and gap.details["undetermined"] == 1, gap.evidence
    assert gap.details["unsettled"] == 1 and "no pass" in gap.evidence
    late = verdict_of("FD-DETECT", history(KILL + 15_000))
    assert late.status == "fail" and late.measured == 20_000, late.evidence
    for outcome in ("fail", "info"):
        refused = verdict_of("FD-DETECT", history(KILL + 15_000, outcome))
        assert refused.status == "fail" and refused.measured == 20_000, refused.evidence
    # A read failed before the deadline leaves the gap the harness's.
    early = verdict_of("FD-DETECT", history(KILL + 5_000, "fail"))
    assert early.status == "untested", early.evidence


def failing_reads_then(
    stamp: float, polled: float, confirmed_at: float | None, fail_from: float
) -> list[Entry]:
    """n2 killed; n3 stamps it dead at ``stamp`` (read by the event poll at ``polled``),
    its members reads answer 500 from ``fail_from`` until 34 s after the kill, when one
    shows n2 dead; one more read at ``confirmed_at`` (if given) already shows it dead."""
    h = Hist().start_all(at=KILL - 5000).all_alive(KILL - 4000)
    h.members_read("n3", KILL - 100, {"n1": "alive", "n2": "alive"})
    h.fault("kill", KILL, node="n2", signal="KILL")
    h.member("n1", "n2", "dead", KILL + 2000, polled=KILL + 2100)
    h.member("n3", "n2", "dead", stamp, polled=polled)
    if confirmed_at is not None:
        h.members_read("n3", confirmed_at, {"n1": "alive", "n2": "dead"})
    t = fail_from
    while t < KILL + 34_000:
        h.op("members", "n3", t, t + 20, "fail", result={"status": 500, "error": "internal"})
        t += 1000
    h.members_read("n3", KILL + 34_000, {"n1": "alive", "n2": "dead"})
    return h.until(KILL + 60_000).build()


def test_a_dead_stamp_behind_failed_reads_counts_when_the_harness_saw_it() -> None:
    """n3 stamps n2 dead 100 ms after the kill while every members read of it fails for
    34 s (it passed at 100 ms, with no clock violation). A read the node failed to answer
    bounds nothing in its favour: the stamp is a clock violation and the detection counts
    at the latest time the harness allows, the poll that returned it. The same failing
    reads after a read that already showed n2 dead leave the stamp standing."""
    lying = verdict_of("FD-DETECT", failing_reads_then(KILL + 100, KILL + 33_000, None, KILL + 500))
    assert lying.status == "fail" and lying.measured == 33_000, lying.evidence
    violation = lying.details["clock_violations"][0]
    assert (violation["node"], violation["status"], violation["used_ms"]) == (
        "n3", "dead", KILL + 33_000
    )
    assert "failed a members read" in violation["reason"]
    honest = failing_reads_then(KILL + 100, KILL + 300, KILL + 250, KILL + 500)
    v = verdict_of("FD-DETECT", honest)
    assert v.status == "pass" and v.measured == 2000, v.evidence
    assert HistoryIndex.build(honest).clock_violations == []


def test_reads_failing_while_the_harness_paused_the_node_are_not_its_own() -> None:
    """The same failing reads, made while the harness had n3 paused: the harness made
    them fail, so they bound nothing and the stamp stands."""
    history = failing_reads_then(KILL + 100, KILL + 33_000, None, KILL + 500)
    paused = [
        Entry(len(history), KILL + 400, "fault", "pause", "n3"),
        Entry(len(history) + 1, KILL + 33_500, "fault", "resume", "n3"),
    ]
    v = verdict_of("FD-DETECT", history + paused)
    assert v.status == "pass" and v.measured == 2000, v.evidence


def test_a_contradicted_dead_stamp_counts_at_the_latest_time_the_reads_allow() -> None:
    """n3 stamps n2 dead at +1 s, a read invoked after that still shows it suspect at
    +2 s, and nothing shows it dead until the event poll at +17 s. The event counted from
    the contradicting read (the earliest time allowed: a pass at 2 s); it counts at the
    latest, the poll, as a broadcast receipt does: beyond the 11.85 s bound. Stamped
    truthfully after that read, polled at once, it passes."""
    def history(stamp: float, polled: float) -> list[Entry]:
        h = Hist().start_all(at=KILL - 5000).all_alive(KILL - 4000)
        h.fault("kill", KILL, node="n2", signal="KILL")
        h.member("n1", "n2", "dead", KILL + 2000, polled=KILL + 2100)
        h.member("n3", "n2", "suspect", KILL + 500, polled=KILL + 600)
        h.member("n3", "n2", "dead", stamp, polled=polled)
        h.members_read("n3", KILL + 2000, {"n1": "alive", "n2": "suspect"}, invoked=KILL + 1990)
        h.members_read("n3", KILL + 18_000, {"n1": "alive", "n2": "dead"})
        return h.until(KILL + 60_000).build()

    lying = verdict_of("FD-DETECT", history(KILL + 1000, KILL + 17_000))
    assert lying.status == "fail" and lying.measured == 17_000, lying.evidence
    honest = verdict_of("FD-DETECT", history(KILL + 2500, KILL + 2700))
    assert honest.status == "pass" and honest.measured == 2500, honest.evidence


def test_a_suspect_stamp_is_bounded_by_the_reads_too() -> None:
    """n1 really suspects live n2 inside the quiet window (reads at 3500 and 4500 still
    show it alive, then fail) but stamps the suspicion at 2500, before the window: it
    passed, suspect events having no lower bound. Now the reads contradict the stamp and
    the suspicion counts at the poll that returned it, inside the window. A suspicion
    truly raised and refuted before the window, seen so by a read, still passes."""
    def history(lying: bool) -> list[Entry]:
        h = formed().phase("quiet", 3000, 8000)
        if lying:
            h.member("n1", "n2", "suspect", 2500, polled=5100)
            h.members_read("n1", 3500, {"n2": "alive", "n3": "alive"})
            h.members_read("n1", 4500, {"n2": "alive", "n3": "alive"})
            for t in range(5000, 8500, 1000):
                h.op("members", "n1", t, t + 20, "fail", result={"status": 500})
            h.member("n1", "n2", "alive", 9000, polled=9100)
        else:
            h.member("n1", "n2", "suspect", 2500, polled=2600)
            h.members_read("n1", 2800, {"n2": "suspect", "n3": "alive"})
            h.member("n1", "n2", "alive", 2900, polled=3000)
            h.members_read("n1", 3500, {"n2": "alive", "n3": "alive"})
            h.members_read("n1", 4500, {"n2": "alive", "n3": "alive"})
        h.members_read("n1", 9500, {"n2": "alive", "n3": "alive"})
        return h.until(10_000).build()

    lying = verdict_of("FD-NO-FALSE-POSITIVE", history(True))
    assert lying.status == "fail", lying.evidence
    assert lying.details["false_positives"][0]["at_ms"] == 5100
    honest = verdict_of("FD-NO-FALSE-POSITIVE", history(False))
    assert honest.status == "pass", honest.evidence
