"""KV, CRDT and security checkers judged only on evidence: hand-built histories that a
broken implementation used to pass with (nothing acknowledged, no race, a digest that
does not summarise its entries, a timed-out put excusing every lost write, writes after
a restart never judged, an intruder's write on a member, a remove that wins over an add
it could not see), each next to the correct history that passes."""

from __future__ import annotations

from typing import Any

from gossipcert.harness.judging.verdict import Verdict
from test_checkers import ALL_CAPS, Hist, formed
from test_checkers_catalogue import crdt, crdt_reads, formed_crdt, verdict_of

KV_REQUIREMENTS = ("KV-CONVERGENCE", "KV-LWW", "KV-NO-LOST-WRITE", "KV-DELETE-STAYS")


def writes_then_delete(outcome: str) -> Hist:
    """Three nodes race a put of k (each answering ``outcome``), then n1 deletes k and
    the delete succeeds; every member ends empty with one digest."""
    h = formed().phase("writes", 5000, 6000)
    for i, node in enumerate(h.nodes):
        h.op("put", node, 5100 + i, 5150 + i, outcome, args={"key": "k", "value": node},
             result={"context": "c"} if outcome == "ok"
             else {"status": 500, "error": "internal", "message": "no"})
    h.op("delete", "n1", 5500, 5510, args={"key": "k"}, result={})
    for node in h.nodes:
        h.kv_read(node, 8000, {}, digest="empty")
    return h.until(20_000)


def test_kv_requirements_rest_on_acknowledged_puts() -> None:
    """Every put answering 500 and one delete succeeding: empty states agree, "all 0
    acknowledged writes survive", yet nothing was stored. Used to pass all four."""
    for rid in KV_REQUIREMENTS:
        v = verdict_of(rid, writes_then_delete("fail").build())
        assert v.status == "untested", (rid, v.status, v.evidence)
        assert "acknowledged" in v.evidence, (rid, v.evidence)
        assert verdict_of(rid, writes_then_delete("ok").build()).status == "pass", rid


def race(outcomes: tuple[str, str], second_at: float) -> Hist:
    """n1 and n2 put key k (n2 from ``second_at``); every member ends holding n2's."""
    h = formed().phase("writes", 5000, 6000)
    h.put("n1", "k", "a", 5100, 5200, outcomes[0])
    h.op("put", "n2", second_at, second_at + 100, outcomes[1], args={"key": "k", "value": "b"},
         result={"context": "c"} if outcomes[1] == "ok"
         else {"status": 409, "error": "conflict", "message": "raced"})
    for node in h.nodes:
        h.kv_read(node, 8000, {"k": ["b"] if outcomes[1] == "ok" else ["a"]})
    return h.until(20_000)


def test_conflict_resolution_needs_a_contested_pair() -> None:
    """Sequential puts, or a node refusing the put that races another, never exercise
    conflict resolution: KV-LWW is untested (it used to pass)."""
    assert verdict_of("KV-LWW", race(("ok", "ok"), 5150).build()).status == "pass"
    sequential = verdict_of("KV-LWW", race(("ok", "ok"), 6000).build())
    assert sequential.status == "untested" and "contested" in sequential.evidence
    refused = verdict_of("KV-LWW", race(("ok", "fail"), 5150).build())
    assert refused.status == "untested", refused.evidence
    # KV-NO-LOST-WRITE does not need a race: the sequential history is judged.
    assert verdict_of("KV-NO-LOST-WRITE", race(("ok", "ok"), 6000).build()).status == "pass"


def test_a_violation_without_a_race_still_fails() -> None:
    """The race is what a PASS needs, not what a FAIL needs: sequential puts whose older
    value survives everywhere (oldest wins) fail KV-LWW."""
    h = formed().phase("writes", 5000, 6000)
    h.put("n1", "k", "a", 5100, 5200)
    h.put("n2", "k", "b", 6000, 6100)
    for node in h.nodes:
        h.kv_read(node, 8000, {"k": ["a"]})
    oldest_wins = verdict_of("KV-LWW", h.until(20_000).build())
    assert oldest_wins.status == "fail", oldest_wins.evidence


def digests(reads: dict[str, tuple[Any, dict[str, list[Any]]]]) -> list[Any]:
    h = formed().phase("writes", 5000, 6000)
    h.put("n1", "k", "a", 5100, 5110).put("n2", "j", "b", 5100, 5110)
    for node, (digest, entries) in reads.items():
        body = {k: {"values": v} for k, v in entries.items()}
        result: dict[str, Any] = {"entries": body}
        if digest is not None:
            result["digest"] = digest
        h.op("kv", node, 7995, 8000, result=result)
    return h.until(20_000).build()


def test_convergence_recomputes_the_digest_from_the_entries() -> None:
    """A digest that stands for different entries (a stale or lying digest) fails, and
    a missing digest no longer makes every node equal; both used to pass."""
    both = {"k": ["a"], "j": ["b"]}
    same = digests({n: ("d", both) for n in ("n1", "n2", "n3")})
    assert verdict_of("KV-CONVERGENCE", same).status == "pass"
    lying = digests({"n1": ("d", both), "n2": ("d", both), "n3": ("d", {"k": ["a"]})})
    v = verdict_of("KV-CONVERGENCE", lying)
    assert v.status == "fail" and "does not summarise" in v.evidence, v.evidence
    missing = digests({"n1": (None, both), "n2": (None, both), "n3": (None, {"k": ["a"]})})
    v = verdict_of("KV-CONVERGENCE", missing)
    assert v.status == "fail" and "never converged" in v.evidence, v.evidence
    agreed = digests({n: (None, both) for n in ("n1", "n2", "n3")})
    assert verdict_of("KV-CONVERGENCE", agreed).status == "pass"


def timed_out(final: list[Any]) -> list[Any]:
    """n1's put of a, then n2's put of b times out; every member ends with ``final``."""
    h = formed().phase("writes", 5000, 6000)
    h.put("n1", "k", "a", 5100, 5110)
    h.put("n2", "k", "b", 5200, 5700, "info")
    for node in h.nodes:
        h.kv_read(node, 8000, {"k": final} if final else {})
    return h.until(20_000).build()


def test_a_timed_out_put_excuses_only_what_it_could_supersede() -> None:
    """The timed-out put may have won (b everywhere: a is superseded), but it did not
    when nothing or something else is there: a is lost. One timeout used to excuse every
    lost write of its key."""
    assert verdict_of("KV-NO-LOST-WRITE", timed_out(["b"])).status == "pass"
    assert verdict_of("KV-NO-LOST-WRITE", timed_out(["a"])).status == "pass"
    lost = verdict_of("KV-NO-LOST-WRITE", timed_out([]))
    assert lost.status == "fail" and "'a'" in lost.evidence, lost.evidence


def restart_then_write(restarted_holds: dict[str, list[Any]]) -> list[Any]:
    """n3 restarted and caught up; then a put on n1; n3 ends with ``restarted_holds``."""
    h = formed().put("n1", "a", 1, 2000, 2005)
    h.fault("kill", 3000, node="n3", signal="KILL").op("start", "n3", 4000, 4100)
    for node in h.nodes:
        h.kv_read(node, 5000, {"a": [1]})
    h.put("n1", "b", 2, 6000, 6005)
    h.kv_read("n1", 7000, {"a": [1], "b": [2]}).kv_read("n2", 7000, {"a": [1], "b": [2]})
    h.kv_read("n3", 7000, restarted_holds)
    return h.until(20_000).build()


def test_writes_after_a_restart_reach_the_restarted_node() -> None:
    """A write after the restart that never reaches the restarted node fails
    KV-AFTER-RESTART; it used to be skipped (writes continued) and pass on the catch-up."""
    ok = verdict_of("KV-AFTER-RESTART", restart_then_write({"a": [1], "b": [2]}))
    assert ok.status == "pass" and ok.details["checked"] == 2, ok.evidence
    bad = verdict_of("KV-AFTER-RESTART", restart_then_write({"a": [1]}))
    assert bad.status == "fail" and bad.details["checked"] == 2, bad.evidence


def test_an_unread_member_leaves_a_heal_untested_for_kv() -> None:
    """A heal after which n3's kv was never read is reported untested for kv, not
    passed on the members that were read."""
    h = formed().fault("partition", 3000, groups=[["n1"], ["n2", "n3"]])
    h.put("n1", "a", 1, 3100, 3105).fault("heal", 5000)
    h.kv_read("n1", 6000, {"a": [1]}).kv_read("n2", 6000, {"a": [1]})
    v = verdict_of("KV-AFTER-PARTITION", h.until(20_000).build())
    assert v.status == "untested", v.evidence
    assert "n3" in v.details["heals"][0]["untested"]


def test_crdt_requirements_rest_on_acknowledged_updates() -> None:
    """Every update failed: an empty set or a zero counter agrees with itself. Used to
    pass all four CRDT requirements."""
    cases = {"CRDT-G-COUNTER": ("g-counter", "increment", 1, 0, 1),
             "CRDT-PN-COUNTER": ("pn-counter", "increment", 1, 0, 1),
             "CRDT-OR-SET": ("or-set", "add", "x", [], ["x"]),
             "CRDT-LWW-REGISTER": ("lww-register", "set", "v", None, "v")}
    for rid, (kind, op, value, empty, full) in cases.items():
        for outcome, final in (("fail", empty), ("ok", full)):
            h = formed_crdt()
            crdt(h, "n1", "c", kind, op, value, 2000, outcome)
            crdt_reads(h, "c", dict.fromkeys(("n1", "n2", "n3"), final))
            v = verdict_of(rid, h.until(20_000).build())
            expected = "untested" if outcome == "fail" else "pass"
            assert v.status == expected, (rid, outcome, v.evidence)


def intruded(seen_on_member: bool) -> list[Any]:
    caps = [*ALL_CAPS, "encryption"]
    h = Hist(("n1", "n2", "n3", "x1"), caps=caps).start_all()
    h.op("start", "x1", 1900, 2000, args={"key": "wrong"})
    h.all_alive(1500, ("n1", "n2", "n3"))
    h.put("x1", "key-wrong-key-x1", "x1/intruder", 2100, 2105)
    held = {"key-wrong-key-x1": ["x1/intruder"]} if seen_on_member else {}
    h.kv_read("n1", 4000, {}).kv_read("n2", 4000, held)
    return h.until(9000).build()


def test_an_intruders_write_on_a_member_fails_wrong_key() -> None:
    """The wrong-key node's write showing on a member is state injected past the key;
    it used to pass (only membership and broadcasts were read)."""
    assert verdict_of("SEC-WRONG-KEY", intruded(False)).status == "pass"
    v: Verdict = verdict_of("SEC-WRONG-KEY", intruded(True))
    assert v.status == "fail" and "n2 holds key 'key-wrong-key-x1'" in v.evidence, v.evidence
