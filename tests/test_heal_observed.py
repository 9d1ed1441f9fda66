"""PARTITION-HEAL and MEM-REJOIN settle a pair only on what was seen after the heal or
the restart: an alive standing from before with nothing reported since is unobserved
(undetermined), never a settled pair measured at 0 ms. Each case is a synthetic history
(the ``Hist`` helper of ``test_checkers``) that passed before, next to the correct one."""

from __future__ import annotations

from test_checkers import formed
from test_checkers_catalogue import verdict_of


def test_a_heal_settles_a_pair_only_on_a_read_after_it() -> None:
    """Views alive before a partition, not one report after the heal: that used to be a
    settled pair at 0 ms (PASS). Reads after the heal settle it."""
    h = formed().fault("partition", 10_000, groups=[["n1"], ["n2", "n3"]]).fault("heal", 12_000)
    v = verdict_of("PARTITION-HEAL", h.until(40_000).build())
    assert v.status == "untested", v.evidence
    assert v.details["undetermined"] == 6
    v = verdict_of("PARTITION-HEAL", h.look(13_000).until(40_000).build())
    assert v.status == "pass", v.evidence
    assert v.measured == 0  # alive throughout, seen so after the heal


def test_a_restart_settles_only_on_a_report_of_the_new_life() -> None:
    """The observers' alive from before the kill, nothing after the restart: that used to
    be a rejoin at 0 ms."""
    h = formed().fault("kill", 3000, node="n3").op("start", "n3", 4000, 4100)
    v = verdict_of("MEM-REJOIN", h.until(20_000).build())
    assert v.status == "untested", v.evidence
    h.members_read("n1", 5000, {"n2": "alive", "n3": "alive"})
    h.members_read("n2", 5000, {"n1": "alive", "n3": "alive"})
    v = verdict_of("MEM-REJOIN", h.until(20_000).build())
    assert v.status == "pass", v.evidence
    assert v.measured == 0  # never seen otherwise: alive from the new life's readiness


def test_a_pair_left_dead_at_the_heal_with_nothing_after_still_fails() -> None:
    """A standing non-alive report is evidence: unobserved is only the alive case."""
    h = formed().fault("partition", 10_000, groups=[["n1"], ["n2", "n3"]])
    h.member("n1", "n2", "dead", 11_000).fault("heal", 12_000).look(13_000, ("n2", "n3"))
    v = verdict_of("PARTITION-HEAL", h.until(40_000).build())
    assert v.status == "fail", v.evidence
    assert {(d["observer"], d["member"]) for d in v.details["never"]} >= {("n1", "n2")}
