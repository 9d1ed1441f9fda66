"""The full catalogue's checkers on synthetic histories: each passes what is right, fails
what is wrong (with its id), and is untested when its operations are absent."""

from __future__ import annotations

from typing import Any

import pytest
from gossipcert.harness.history import Entry
from gossipcert.harness.judging.verdict import Verdict, load_catalogue
from gossipcert.harness.workloads.capabilities import CHECKERS, run_checks
from test_checkers import ALL_CAPS, CATALOGUE, Hist, formed, params


def verdict_of(requirement_id: str, history: list[Entry], n: int = 3) -> Verdict:
    requirement = CATALOGUE[requirement_id]
    verdict: Verdict = CHECKERS[requirement.checker](history, requirement, params(n))
    assert verdict.id == requirement_id
    assert verdict.scenario == requirement.scenario
    return verdict


def test_every_requirement_is_untested_or_not_claimed_on_an_empty_run() -> None:
    """Absent operations never fail and never pass: what the capabilities claim is
    untested, the rest (crdt, encryption, the mv policy) is not claimed."""
    history = Hist().build()
    not_claimed = {"KV-MV", "SEC-WRONG-KEY"} | {
        r.id for r in load_catalogue() if r.capability == "crdt"
    }
    for v in run_checks(history, load_catalogue()):
        expected = "not-claimed" if v.id in not_claimed else "untested"
        assert v.status == expected, (v.id, v.evidence)
        assert v.evidence


# ---------------------------------------------------------------- MEM-LEAVE


def leaving(statuses: list[tuple[str, float]]) -> Hist:
    h = formed()
    h.op("leave", "n3", 3000, 3010)
    for status, at in statuses:
        h.member("n1", "n3", status, at)
        h.member("n2", "n3", "left", 3300)
    return h.until(9000)


def test_leave_passes_when_everyone_sees_left() -> None:
    v = verdict_of("MEM-LEAVE", leaving([("left", 3200)]).build())
    assert v.status == "pass", v.evidence
    assert v.measured == 300


def test_leave_fails_when_it_ends_as_failed() -> None:
    v = verdict_of("MEM-LEAVE", leaving([("suspect", 3100), ("dead", 3500)]).build())
    assert v.status == "fail"
    assert "suspect instead of left" in v.evidence
    assert v.details["reported_failed"][0]["observer"] == "n1"


def test_leave_fails_when_never_seen_and_na_without_leave() -> None:
    v = verdict_of("MEM-LEAVE", leaving([]).build())
    assert v.status == "fail" and "never" in v.evidence
    assert verdict_of("MEM-LEAVE", formed().until(9000).build()).status == "untested"


def test_leave_fails_when_a_leaver_seen_left_later_turns_dead() -> None:
    """A member that reported the leaver left and later reports it dead (it never came
    back) turned a graceful leave into a failure, only later: the same failure."""
    v = verdict_of("MEM-LEAVE", leaving([("left", 3200), ("dead", 6000)]).build())
    assert v.status == "fail", v.evidence
    assert "after reporting it left" in v.evidence
    assert v.details["reported_failed"][0]["after_left_ms"] == 3200
    # Forgotten (no longer listed), then dead: the same.
    v = verdict_of("MEM-LEAVE", leaving([("absent", 3200), ("suspect", 6000)]).build())
    assert v.status == "fail", v.evidence


def test_leave_after_the_leaver_starts_again_is_its_new_life() -> None:
    """Once the leaver is started again, what members say of it is no longer about the
    leave."""
    h = leaving([("left", 3200)])
    h.op("start", "n3", 7000, 7100)
    h.member("n1", "n3", "dead", 7050)
    assert verdict_of("MEM-LEAVE", h.build()).status == "pass"


def test_leave_is_its_own_capability() -> None:
    """Membership without a graceful leave claims no MEM-LEAVE; a declared leave that
    answered 501 to every call breaks the contract."""
    h = Hist(caps=["membership", "failure-detection"]).start_all().all_alive(1500)
    h.op("leave", "n3", 3000, 3010, "fail",
         result={"status": 501, "error": "not_implemented", "message": "no leave"})
    v = verdict_of("MEM-LEAVE", h.until(9000).build())
    assert v.status == "not-claimed", v.evidence
    h = Hist(caps=["membership", "failure-detection", "leave"]).start_all().all_alive(1500)
    h.op("leave", "n3", 3000, 3010, "fail",
         result={"status": 501, "error": "not_implemented", "message": "no leave"})
    v = verdict_of("MEM-LEAVE", h.until(9000).build())
    assert v.status == "fail" and "contract violation" in v.evidence, v.evidence


# ---------------------------------------------------------------- MEM-REJOIN


def restarted(views: dict[str, list[tuple[str, float]]]) -> Hist:
    h = formed()
    h.fault("kill", 3000, node="n3", signal="KILL")
    h.op("start", "n3", 4000, 4100)
    for observer, seq in views.items():
        for status, at in seq:
            h.member(observer, "n3", status, at)
    return h.until(20_000)


def test_rejoin_passes_when_the_restarted_node_settles_alive() -> None:
    h = restarted(
        {"n1": [("dead", 3500), ("alive", 4300)], "n2": [("dead", 3600), ("alive", 4200)]}
    )
    v = verdict_of("MEM-REJOIN", h.build())
    assert v.status == "pass", v.evidence
    assert v.measured == 200


def test_rejoin_fails_when_shadowed_by_an_old_dead() -> None:
    h = restarted(
        {"n1": [("dead", 3500), ("alive", 4300), ("dead", 4400)], "n2": [("alive", 4200)]}
    )
    v = verdict_of("MEM-REJOIN", h.build())
    assert v.status == "fail"
    assert v.details["never"][0]["observer"] == "n1"


def test_rejoin_untested_without_restart() -> None:
    assert verdict_of("MEM-REJOIN", formed().until(9000).build()).status == "untested"


# ---------------------------------------------------------------- FD-DEAD-STAYS-DEAD


def killed(n1: list[tuple[str, float]]) -> Hist:
    h = formed().fault("kill", 3000, node="n3", signal="KILL")
    for status, at in n1:
        h.member("n1", "n3", status, at)
    return h.member("n2", "n3", "dead", 6000).until(20_000)


def test_dead_stays_dead_passes_and_fails_on_resurrection() -> None:
    ok = verdict_of("FD-DEAD-STAYS-DEAD", killed([("suspect", 4000), ("dead", 6000)]).build())
    assert ok.status == "pass", ok.evidence
    bad = verdict_of(
        "FD-DEAD-STAYS-DEAD", killed([("dead", 6000), ("alive", 7000), ("dead", 9000)]).build()
    )
    assert bad.status == "fail"
    assert bad.measured == 1
    assert "brought a dead node back" in bad.evidence


def test_dead_stays_dead_allows_alive_after_restart() -> None:
    h = killed([("dead", 6000), ("alive", 8200)]).op("start", "n3", 8000, 8100)
    assert verdict_of("FD-DEAD-STAYS-DEAD", h.build()).status == "pass"


# ---------------------------------------------------------------- FD-NO-FP-*


def windowed(phase: str, args: dict[str, Any], dead_at: float | None) -> Hist:
    h = formed()
    h.rows.append(
        {"time_ms": 3000, "type": "phase", "op": phase, "args": {"edge": "start", **args}}
    )
    h.rows.append({"time_ms": 8000, "type": "phase", "op": phase, "args": {"edge": "end"}})
    h.member("n1", "n2", "suspect", 4000).member("n1", "n2", "alive", 4200).look(3500)
    if dead_at is not None:
        h.member("n2", "n3", "dead", dead_at)
    return h.until(9000)


@pytest.mark.parametrize(
    ("rid", "phase", "args"),
    [
        ("FD-NO-FP-LATENCY", "latency", {"latency_ms": 50, "jitter_ms": 10}),
        ("FD-NO-FP-LOSS", "lossy", {"loss": 0.1}),
        ("FD-NO-FP-PAUSE", "paused", {"node": "n1"}),
    ],
)
def test_false_positive_windows(rid: str, phase: str, args: dict[str, Any]) -> None:
    ok = verdict_of(rid, windowed(phase, args, None).build())
    assert ok.status == "pass", ok.evidence
    assert ok.details["suspicions_refuted_or_pending"] >= (0 if phase == "paused" else 1)
    bad = verdict_of(rid, windowed(phase, args, 5000).build())
    assert bad.status == "fail"
    assert "n2 declared n3 dead" in bad.evidence


def test_false_positive_windows_that_do_not_qualify_are_untested() -> None:
    slow = verdict_of("FD-NO-FP-LATENCY", windowed("latency", {"latency_ms": 400}, 5000).build())
    assert slow.status == "untested" and "probe timeout" in slow.evidence
    heavy = verdict_of("FD-NO-FP-LOSS", windowed("lossy", {"loss": 30}, 5000).build())
    assert heavy.status == "untested"
    assert verdict_of("FD-NO-FP-PAUSE", formed().until(9000).build()).status == "untested"


def test_pause_window_from_faults_exempts_the_paused_node() -> None:
    h = formed().fault("pause", 3000, node="n3").fault("resume", 6000, node="n3").look(3500)
    h.member("n1", "n3", "dead", 5500).until(9000)
    assert verdict_of("FD-NO-FP-PAUSE", h.build()).status == "pass"
    h.member("n3", "n1", "dead", 6100)  # the resumed node declares a healthy one dead
    v = verdict_of("FD-NO-FP-PAUSE", h.build())
    assert v.status == "fail" and "n3 declared n1 dead" in v.evidence


def test_latency_window_from_faults() -> None:
    h = formed().fault("latency", 3000, latency_ms=40).fault("heal", 6000)
    h.member("n1", "n2", "dead", 4000).until(9000)
    assert verdict_of("FD-NO-FP-LATENCY", h.build()).status == "fail"


# ---------------------------------------------------------------- BCAST-LATENCY


def spread(latencies: list[float], events: bool = True) -> Hist:
    h = formed_n(Hist(tuple(f"n{i}" for i in range(1, 6))))
    for b in range(2):
        h.op("broadcast", "n1", 3000 + b * 1000, 3005 + b * 1000, args={"id": f"b{b}"})
        for i, lat in enumerate(latencies, start=2):
            if events:
                h.delivered(f"n{i}", f"b{b}", 3000 + b * 1000 + lat)
            else:
                h.op("broadcasts", f"n{i}", 6000, 6005 + i, result={"received": [{"id": f"b{b}"}]})
    return h.until(12_000)


def formed_n(h: Hist) -> Hist:
    return h.start_all().all_alive(1500)


def test_broadcast_latency_quantiles_and_resolution() -> None:
    h = formed_n(Hist(tuple(f"n{i}" for i in range(1, 6))))
    for i, lat in enumerate([100, 200, 300, 400], start=2):
        h.op("broadcast", "n1", 3000, 3005, args={"id": "b"})
        h.delivered(f"n{i}", "b", 3000 + lat)
    v = verdict_of("BCAST-LATENCY", h.until(9000).build(), n=5)
    assert v.status == "pass"
    assert v.details["quantiles_ms"]["p50"] == 200
    assert v.details["quantiles_ms"]["max"] == 400
    assert v.details["resolution_ms"] == 1.0
    assert v.measured == 200


def test_broadcast_latency_fails_when_the_median_is_slow() -> None:
    h = formed_n(Hist(tuple(f"n{i}" for i in range(1, 6))))
    h.op("broadcast", "n1", 3000, 3005, args={"id": "b"})
    for i in range(2, 6):
        h.delivered(f"n{i}", "b", 3000 + 2500)
    v = verdict_of("BCAST-LATENCY", h.until(9000).build(), n=5)
    assert v.status == "fail" and "median 2500" in v.evidence


def test_broadcast_latency_reports_read_resolution_without_node_times() -> None:
    h = formed_n(Hist(tuple(f"n{i}" for i in range(1, 4))))
    h.op("broadcast", "n1", 3000, 3005, args={"id": "b"})
    for at in (3200, 3700, 4500):
        h.op("broadcasts", "n2", at - 5, at, result={"received": [{"id": "b"}]})
    v = verdict_of("BCAST-LATENCY", h.until(9000).build())
    assert v.details["resolution_ms"] == 800
    assert "no node-side times" in v.details["source"]


# ---------------------------------------------------------------- BCAST-MSGS-PER-OP


def metrics_round(h: Hist, at: float, sent: dict[str, int], label: int) -> None:
    for node, count in sent.items():
        h.op("metrics", node, at, at + 5, args={"round": label}, result={"messages_sent": count})


def test_messages_per_op_net_of_background() -> None:
    h = formed()
    h.phase("quiet", 2000, 3000)
    metrics_round(h, 2000, {"n1": 0, "n2": 0, "n3": 0}, 1)
    metrics_round(h, 2995, {"n1": 100, "n2": 100, "n3": 100}, 2)  # 300 messages / ~1 s
    metrics_round(h, 3000, {"n1": 100, "n2": 100, "n3": 100}, 3)
    for i in range(10):
        h.put("n1", f"k{i}", i, 3100 + i, 3102 + i)
    metrics_round(h, 4000, {"n1": 250, "n2": 250, "n3": 250}, 4)
    v = verdict_of("BCAST-MSGS-PER-OP", h.until(9000).build())
    assert v.status == "pass", v.evidence
    assert v.details["gross_per_op"] == 45
    assert v.measured is not None and v.measured < 20  # ~300/s of background removed
    assert "background_per_s" in v.details


def test_messages_per_op_fails_on_a_flood_and_na_without_metrics() -> None:
    h = formed()
    metrics_round(h, 3000, {"n1": 0, "n2": 0, "n3": 0}, 1)
    h.put("n1", "k", 1, 3100, 3102)
    metrics_round(h, 3500, {"n1": 1000, "n2": 0, "n3": 0}, 2)
    v = verdict_of("BCAST-MSGS-PER-OP", h.until(9000).build())
    assert v.status == "fail" and v.measured == 1000
    assert verdict_of("BCAST-MSGS-PER-OP", formed().until(9000).build()).status == (
        "untested"
    )


# ---------------------------------------------------------------- KV-AFTER-PARTITION / RESTART


def healed(converges: bool) -> Hist:
    h = formed().fault("partition", 3000, groups=[["n1"], ["n2", "n3"]])
    h.put("n1", "a", 1, 3100, 3105).fault("heal", 5000)
    h.kv_read("n1", 6000, {"a": [1]}).kv_read("n2", 6000, {"a": [1]})
    h.kv_read("n3", 6000, {"a": [1]} if converges else {})
    return h.until(20_000)


def test_kv_after_partition() -> None:
    ok = verdict_of("KV-AFTER-PARTITION", healed(True).build())
    assert ok.status == "pass" and ok.measured == 1000
    bad = verdict_of("KV-AFTER-PARTITION", healed(False).build())
    assert bad.status == "fail"
    assert verdict_of("KV-AFTER-PARTITION", formed().until(9000).build()).status == (
        "untested"
    )


def test_kv_after_restart() -> None:
    def run(restarted_state: dict[str, list[Any]]) -> Verdict:
        h = formed().put("n1", "a", 1, 2000, 2005)
        h.fault("kill", 3000, node="n3", signal="KILL").op("start", "n3", 4000, 4100)
        h.kv_read("n1", 5000, {"a": [1]}).kv_read("n2", 5000, {"a": [1]})
        h.kv_read("n3", 5000, restarted_state)
        return verdict_of("KV-AFTER-RESTART", h.until(20_000).build())

    ok = run({"a": [1]})
    assert ok.status == "pass" and ok.measured == 900
    bad = run({})
    assert bad.status == "fail" and "never" in bad.evidence


# ---------------------------------------------------------------- KV-MV


def mv_history(final: list[Any], with_context: bool = True) -> Hist:
    h = formed_n(Hist(policy="mv"))
    h.put("n1", "k", "a", 2000, 2005).put("n2", "k", "b", 2000, 2006)
    h.op("get", "n3", 2500, 2505, args={"key": "k"}, result={"values": ["a", "b"], "context": "C1"})
    args = {"key": "k", "value": "c"}
    if with_context:
        args["context"] = "C1"
    h.op("put", "n3", 2600, 2605, args=args, result={"context": "C2"})
    h.put("n1", "k", "d", 2600, 2604)  # concurrent with c: a sibling
    for node in ("n1", "n2", "n3"):
        h.kv_read(node, 6000, {"k": final})
    return h.until(9000)


def test_mv_keeps_exactly_the_causally_maximal_writes() -> None:
    ok = verdict_of("KV-MV", mv_history(["c", "d"]).build())
    assert ok.status == "pass", ok.evidence


def test_mv_fails_on_a_lost_sibling() -> None:
    bad = verdict_of("KV-MV", mv_history(["c"]).build())
    assert bad.status == "fail"
    assert "lost sibling" in bad.evidence and "'d'" in bad.evidence


def test_mv_fails_on_a_superseded_sibling_and_is_na_under_lww() -> None:
    bad = verdict_of("KV-MV", mv_history(["a", "c", "d"]).build())
    assert bad.status == "fail" and "superseded" in bad.evidence
    blind = verdict_of("KV-MV", mv_history(["a", "b", "c", "d"], with_context=False).build())
    assert blind.status == "pass", blind.evidence
    assert verdict_of("KV-MV", formed().until(9000).build()).status == "not-claimed"
    both = Hist(policy="lww")
    both.rows[0]["args"]["conflict_policies"] = ["lww", "mv"]
    assert verdict_of("KV-MV", both.start_all().until(9000).build()).status == "untested"


# ---------------------------------------------------------------- CRDTs


def crdt(
    h: Hist, node: str, name: str, kind: str, op: str, value: Any, at: float, outcome: str = "ok"
) -> Hist:
    args = {"name": name, "type": kind, "op": op, "value": value}
    return h.op(
        "crdt",
        node,
        at,
        at + 5 if outcome != "info" else None,
        outcome,
        args=args,
        result={} if outcome == "ok" else None,
    )


def formed_crdt() -> Hist:
    return formed_n(Hist(caps=[*ALL_CAPS, "crdt"]))


def crdt_reads(h: Hist, name: str, values: dict[str, Any], at: float = 8000) -> Hist:
    for node, value in values.items():
        h.op("crdt_read", node, at, at + 5, args={"name": name}, result={"value": value})
    return h


def counter_history(values: dict[str, Any], kind: str = "g-counter") -> Hist:
    h = formed_crdt()
    crdt(h, "n1", "c", kind, "increment", 2, 2000)
    crdt(h, "n2", "c", kind, "increment", 3, 2000)
    crdt(h, "n3", "c", kind, "increment", 5, 2100, outcome="info")
    if kind == "pn-counter":
        crdt(h, "n3", "c", kind, "decrement", 1, 2200)
    return crdt_reads(h, "c", values).until(20_000)


def test_g_counter_range_with_unknown_outcomes() -> None:
    for value in (5, 10):
        v = verdict_of(
            "CRDT-G-COUNTER", counter_history(dict.fromkeys(("n1", "n2", "n3"), value)).build()
        )
        assert v.status == "pass", (value, v.evidence)
    low = verdict_of(
        "CRDT-G-COUNTER", counter_history(dict.fromkeys(("n1", "n2", "n3"), 3)).build()
    )
    assert low.status == "fail" and "outside [5, 10]" in low.evidence
    split = verdict_of("CRDT-G-COUNTER", counter_history({"n1": 5, "n2": 5, "n3": 10}).build())
    assert split.status == "fail" and "disagree" in split.evidence


def test_pn_counter() -> None:
    ok = verdict_of(
        "CRDT-PN-COUNTER",
        counter_history(dict.fromkeys(("n1", "n2", "n3"), 4), "pn-counter").build(),
    )
    assert ok.status == "pass", ok.evidence
    bad = verdict_of(
        "CRDT-PN-COUNTER",
        counter_history(dict.fromkeys(("n1", "n2", "n3"), 3), "pn-counter").build(),
    )
    assert bad.status == "fail" and "outside [4, 9]" in bad.evidence


def test_or_set_add_wins() -> None:
    """x is added on n1 while n2, cut off from n1 by a partition, adds and removes x: the
    remove cannot have seen n1's add, so add-wins keeps x. A remove-wins (or LWW-element)
    set drops it, and used to pass. Without the partition the remove may have seen the
    add (gossip can be that fast), so either outcome stands."""

    def run(final: list[Any], partitioned: bool = True) -> Verdict:
        h = formed_crdt()
        if partitioned:
            h.fault("partition", 1900, groups=[["n1"], ["n2", "n3"]]).fault("heal", 4000)
        crdt(h, "n1", "s", "or-set", "add", "x", 2000)
        crdt(h, "n2", "s", "or-set", "add", "x", 2100)
        crdt(h, "n2", "s", "or-set", "remove", "x", 2200)  # saw its own add, not n1's
        crdt(h, "n2", "s", "or-set", "add", "y", 2000)
        crdt(h, "n3", "s", "or-set", "remove", "y", 2100)
        crdt(h, "n1", "s", "or-set", "add", "y", 3000)  # after every remove of y: must stay
        return verdict_of(
            "CRDT-OR-SET",
            crdt_reads(h, "s", dict.fromkeys(("n1", "n2", "n3"), final)).until(20_000).build(),
        )

    assert run(["x", "y"]).status == "pass"
    remove_wins = run(["y"])
    assert remove_wins.status == "fail" and "'x'" in remove_wins.evidence, remove_wins.evidence
    assert run(["y"], partitioned=False).status == "pass"
    assert run(["x", "y"], partitioned=False).status == "pass"
    missing = run(["x"])
    assert missing.status == "fail" and "'y'" in missing.evidence
    phantom = run(["x", "y", "z"])
    assert phantom.status == "fail" and "never added" in phantom.evidence


def observed_remove(
    final: list[Any], *, seen_first: bool = True, own_node: bool = False
) -> Verdict:
    """x added on n1; n2 reads the set (showing x, or not) and then removes x."""
    h = formed_crdt()
    crdt(h, "n1", "s", "or-set", "add", "x", 2000)
    remover = "n1" if own_node else "n2"
    crdt_reads(h, "s", {remover: ["x"] if seen_first else []}, at=2500)
    crdt(h, "n1", "s", "or-set", "add", "y", 2600)
    crdt(h, remover, "s", "or-set", "remove", "x", 3000)
    return verdict_of(
        "CRDT-OR-SET",
        crdt_reads(h, "s", dict.fromkeys(("n1", "n2", "n3"), final)).until(20_000).build(),
    )


def test_or_set_a_remove_that_observed_every_add_pins_the_element_out() -> None:
    """A set that ignores removes (a G-set) keeps x and fails; a correct OR-set drops it."""
    assert observed_remove(["y"]).status == "pass"
    gset = observed_remove(["x", "y"])
    assert gset.status == "fail" and "removes ignored" in gset.evidence, gset.evidence
    # Removed on the node that added it: observed without any read.
    assert observed_remove(["x", "y"], seen_first=False, own_node=True).status == "fail"
    # The remover never showed x: it may not have observed the add, so x may survive.
    assert observed_remove(["x", "y"], seen_first=False).status == "pass"


def test_or_set_a_read_pins_only_an_add_it_can_only_have_come_from() -> None:
    """Two adds of x before the remover's read: the read shows x, but maybe only one tag
    of it, so the remove may have left the other and x may survive."""
    h = formed_crdt()
    crdt(h, "n1", "s", "or-set", "add", "x", 2000)
    crdt(h, "n3", "s", "or-set", "add", "x", 2001)
    crdt_reads(h, "s", {"n2": ["x"]}, at=2500)
    crdt(h, "n2", "s", "or-set", "remove", "x", 3000)
    history = crdt_reads(h, "s", dict.fromkeys(("n1", "n2", "n3"), ["x"])).until(20_000)
    assert verdict_of("CRDT-OR-SET", history.build()).status == "pass"


def test_counters_are_checked_on_every_read_not_only_the_last() -> None:
    """A read during the run above anything begun by then (an increment counted twice,
    later repaired) fails, though the final reads are right; so does a read of a node
    missing its own completed increment, and a grow-only counter going down."""
    def run(early: dict[str, Any], at: float = 2050, kind: str = "g-counter") -> Verdict:
        final = 10 if kind == "g-counter" else 9
        h = crdt_reads(counter_history(dict.fromkeys(("n1", "n2", "n3"), final), kind), "c",
                       early, at=at)
        rid = "CRDT-G-COUNTER" if kind == "g-counter" else "CRDT-PN-COUNTER"
        return verdict_of(rid, h.build())

    assert run({"n1": 2}).status == "pass"  # n1 has its own increment, n2's not yet
    assert run({"n1": 4}).status == "pass"  # n2's 3 may have arrived: within [2, 5]
    doubled = run({"n2": 6}, at=2050)  # 2 + 3 begun by 2055, 6 is more
    assert doubled.status == "fail" and "outside [3, 5]" in doubled.evidence, doubled.evidence
    forgot = run({"n2": 0}, at=2050)  # n2's own increment completed at 2005
    assert forgot.status == "fail" and "outside [3, 5]" in forgot.evidence
    h = counter_history(dict.fromkeys(("n1", "n2", "n3"), 10))
    crdt_reads(h, "c", {"n1": 7}, at=3000)
    crdt_reads(h, "c", {"n1": 5}, at=3100)
    shrank = verdict_of("CRDT-G-COUNTER", h.build())
    assert shrank.status == "fail" and "shrank" in shrank.evidence, shrank.evidence
    pn = run({"n3": -1}, at=2300, kind="pn-counter")  # n3's own decrement applied
    assert pn.status == "pass", pn.evidence
    assert run({"n3": 11}, at=2300, kind="pn-counter").status == "fail"


def test_lww_register_and_untested_without_crdt_ops() -> None:
    def run(final: Any) -> Verdict:
        h = formed_crdt()
        crdt(h, "n1", "r", "lww-register", "set", "old", 2000)
        crdt(h, "n2", "r", "lww-register", "set", "new", 3000)
        return verdict_of(
            "CRDT-LWW-REGISTER",
            crdt_reads(h, "r", dict.fromkeys(("n1", "n2", "n3"), final)).until(20_000).build(),
        )

    assert run("new").status == "pass"
    assert run("old").status == "fail"
    for rid in ("CRDT-G-COUNTER", "CRDT-PN-COUNTER", "CRDT-OR-SET", "CRDT-LWW-REGISTER"):
        assert verdict_of(rid, formed_crdt().until(9000).build()).status == "untested"


def test_crdt_requirements_need_the_crdt_capability() -> None:
    h = Hist(caps=["membership", "kv"]).start_all().all_alive(1500)
    crdt(h, "n1", "c", "g-counter", "increment", 1, 2000)
    v = verdict_of("CRDT-G-COUNTER", crdt_reads(h, "c", {"n1": 0}).until(9000).build())
    assert v.status == "not-claimed" and "crdt" in v.evidence


# ---------------------------------------------------------------- KV-NO-LOST-WRITE / DELETES


def test_no_lost_write() -> None:
    h = formed()
    h.put("n1", "a", "first", 2000, 2005, timestamp=[2000, 0])
    h.put("n2", "a", "second", 2100, 2105, timestamp=[2100, 0])
    h.put("n3", "b", "only", 2100, 2105, timestamp=[2100, 0])
    h.phase("writes", 1900, 2200)
    ok = h.kv_read("n1", 6000, {"a": ["second"], "b": ["only"]})
    ok.kv_read("n2", 6000, {"a": ["second"], "b": ["only"]})
    ok.kv_read("n3", 6000, {"a": ["second"], "b": ["only"]})
    assert verdict_of("KV-NO-LOST-WRITE", ok.until(9000).build()).status == "pass"
    ok.kv_read("n3", 7000, {"a": ["second"]})
    v = verdict_of("KV-NO-LOST-WRITE", ok.until(9000).build())
    assert v.status == "fail" and "'only'" in v.evidence


def test_a_write_whose_node_died_at_once_is_excused() -> None:
    h = formed().put("n3", "b", "gone", 2000, 2005, timestamp=[2000, 0])
    h.fault("kill", 2006, node="n3", signal="KILL")
    h.kv_read("n1", 6000, {}).kv_read("n2", 6000, {})
    v = verdict_of("KV-NO-LOST-WRITE", h.until(9000).build())
    assert v.status == "pass" and v.details["excused_writer_killed"] == 1


def test_deletes_stay_deleted() -> None:
    def run(final: dict[str, list[Any]]) -> Verdict:
        h = formed().put("n1", "a", "v1", 2000, 2005, timestamp=[2000, 0])
        h.op("delete", "n2", 2500, 2505, args={"key": "a"}, result={"timestamp": [2500, 0]})
        for node in ("n1", "n2", "n3"):
            h.kv_read(node, 6000, final)
        return verdict_of("KV-DELETE-STAYS", h.until(9000).build())

    assert run({}).status == "pass"
    back = run({"a": ["v1"]})
    assert back.status == "fail" and "written before a delete" in back.evidence
    assert verdict_of("KV-DELETE-STAYS", formed().until(9000).build()).status == "untested"


# ---------------------------------------------------------------- SEC-WRONG-KEY


def test_wrong_key_node_is_kept_out() -> None:
    caps = ["membership", "failure-detection", "broadcast", "kv", "encryption"]
    h = Hist(("n1", "n2", "n3", "x1"), caps=caps).start_all()
    h.op("start", "x1", 1900, 2000, args={"key": "wrong"})
    h.all_alive(1500, ("n1", "n2", "n3")).until(9000)
    assert verdict_of("SEC-WRONG-KEY", h.build()).status == "pass"
    h.member("n2", "x1", "alive", 2500)
    v = verdict_of("SEC-WRONG-KEY", h.build())
    assert v.status == "fail" and "n2 listed as alive x1" in v.evidence
    assert verdict_of("SEC-WRONG-KEY", formed().until(9000).build()).status == "not-claimed"
    no_intruder = Hist(caps=caps).start_all().all_alive(1500).until(9000)
    assert verdict_of("SEC-WRONG-KEY", no_intruder.build()).status == "untested"


def paused_then_partitioned(fault: str, dead: tuple[str, str, float]) -> list[Entry]:
    """n3 paused 3000..6000, then n1 cut off from n2 at 7000 (inside the aftermath), and
    ``dead`` = (observer, member, at) one death declaration."""
    h = formed().fault("pause", 3000, node="n3").fault("resume", 6000, node="n3").look(3500)
    if fault == "partition":
        h.fault("partition", 7000, groups=[["n1", "n3"], ["n2"]])
    else:
        h.fault("cut", 7000, links=[["n2", "n1"]], plane="link", shape="one-way")
    h.fault("heal", 12000)
    observer, member, at = dead
    return h.member(observer, member, "dead", at).until(20000).build()


@pytest.mark.parametrize("fault", ["partition", "cut"])
def test_pause_excuses_a_death_the_later_partition_explains(fault: str) -> None:
    v = verdict_of("FD-NO-FP-PAUSE", paused_then_partitioned(fault, ("n1", "n2", 9000)))
    assert v.status == "pass", v.evidence
    assert v.details["excluded_partitioned"] == 1
    assert v.details["excluded_examples"][0]["member"] == "n2"


@pytest.mark.parametrize("fault", ["partition", "cut"])
def test_pause_still_fails_a_death_no_partition_explains(fault: str) -> None:
    unseparated = verdict_of("FD-NO-FP-PAUSE", paused_then_partitioned(fault, ("n3", "n1", 9000)))
    assert unseparated.status == "fail", unseparated.evidence
    assert "n3 declared n1 dead" in unseparated.evidence
    before = verdict_of("FD-NO-FP-PAUSE", paused_then_partitioned(fault, ("n1", "n2", 6500)))
    assert before.status == "fail"  # declared before the partition began
    assert before.details["excluded_partitioned"] == 0


def test_pause_excuses_a_partition_death_that_spreads_after_the_heal() -> None:
    h = formed().fault("pause", 3000, node="n3").fault("resume", 6000, node="n3").look(3500)
    h.fault("partition", 7000, groups=[["n1", "n3"], ["n2"]])
    h.member("n2", "n1", "dead", 9000).fault("heal", 12000)
    h.member("n3", "n1", "dead", 12050)  # n1's own side hears n2's verdict after the heal
    v = verdict_of("FD-NO-FP-PAUSE", h.until(20000).build())
    assert v.status == "pass", v.evidence
    assert v.details["excluded_partitioned"] == 2
    assert "2 explained by a partition or cut" in v.evidence
    h.member("n1", "n3", "dead", 12100)  # n3 is the paused node: exempt anyway
    h.member("n2", "n3", "dead", 12200)
    h.member("n1", "n2", "dead", 6500)  # before any partition: the pause's doing
    v = verdict_of("FD-NO-FP-PAUSE", h.until(20000).build())
    assert v.status == "fail" and "n1 declared n2 dead" in v.evidence


def test_each_requirement_is_checked_by_the_module_of_its_capability() -> None:
    """The capabilities table is the one registry: a requirement's checker is listed by
    the capability the catalogue files it under, and by no other."""
    from gossipcert.harness.workloads.capabilities import CAPABILITIES

    owners = {name: c.name for c in CAPABILITIES for name in c.checkers}
    assert sum(len(c.checkers) for c in CAPABILITIES) == len(owners) == len(CHECKERS)
    for requirement in load_catalogue():
        assert owners[requirement.checker] == requirement.capability, requirement.id


def test_no_checker_derives_the_timing_itself() -> None:
    """The derived parameters come once per judged history through the judging context;
    a checker that derived them again could judge with a timing of its own."""
    import inspect

    from gossipcert.harness.workloads.capabilities import CAPABILITIES

    for capability in CAPABILITIES:
        module = inspect.getmodule(next(iter(capability.checkers.values())))
        assert "derived_parameters" not in inspect.getsource(module), capability.name
