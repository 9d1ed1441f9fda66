"""The contract validator (harness/drivers/contract.py): good and bad bodies against the
OpenAPI document, and the checkers naming a response that broke it."""

from __future__ import annotations

from typing import Any

from gossipcert.harness.drivers.contract import (
    check_reply,
    check_response,
    check_undeclared,
    expected_501,
    undeclared_probes,
)
from gossipcert.harness.workloads.broadcast import check_broadcast_delivery
from gossipcert.harness.workloads.membership import check_member_join
from test_checkers import check, formed


def member(**changes: Any) -> dict[str, Any]:
    return {"id": "n1", "address": "127.0.0.1:7000", "status": "alive", "incarnation": 0,
            **changes}


def test_a_good_members_body_passes() -> None:
    assert check_response("members", 200, {"members": [member(), member(id="n2")]}) == []


def test_a_wrong_type_names_the_field_through_a_ref() -> None:
    """Member is a $ref to components/schemas; the path and the type come back."""
    (found,) = check_response("members", 200, {"members": [member(), member(incarnation="3")]})
    assert found.endpoint == "GET /v1/members"
    assert found.field == "$.members[1].incarnation"
    assert (found.expected, found.got) == ("integer", 'string "3"')


def test_an_unknown_status_value_is_named() -> None:
    (found,) = check_response("members", 200, {"members": [member(status="zombie")]})
    assert found.field == "$.members[0].status"
    assert found.expected == "one of alive, suspect, dead, left"


def test_a_missing_field_and_a_nested_event_are_named() -> None:
    (found,) = check_response("kv", 200, {"entries": {}})
    assert found.field == "$" and "digest" in found.expected
    event = {"seq": 1, "at_ms": 5, "kind": "member", "member": "n2", "status": "dead",
             "incarnation": -1}
    (bad,) = check_response("events", 200, {"events": [event], "next": 1})
    assert bad.field == "$.events[0].incarnation" and bad.expected == "minimum 0"
    assert check_response("events", 200, {"events": [{**event, "incarnation": 2}], "next": 1}) == []
    # In the oneOf of events, the branch of the event's own kind is the one named.
    (seq,) = check_response("events", 200, {"events": [{**event, "incarnation": 2, "seq": 0}],
                                            "next": 1})
    assert (seq.field, seq.expected) == ("$.events[0].seq", "minimum 1")


def test_statuses_an_undocumented_success_and_errors() -> None:
    (found,) = check_response("leave", 200, {})
    assert (found.expected, found.got) == ("status 202", "status 200")
    assert check_response("get", 404, {"error": "not_found", "message": "no key"}) == []
    # Any error status takes the Error body (the ``default`` response).
    found = check_response("put", 500, {"oops": 1})[0]
    assert found.expected.startswith("the field(s) error")
    assert check_response("broadcast", 202, None, is_json=False)[0].expected == "a JSON body"
    assert check_reply("members", 0, None) == []  # no answer: the transport's matter


def test_null_origin_and_receive_time_are_allowed() -> None:
    """A node that cannot tell them (a Maelstrom node) says null; the checkers then judge
    from the harness's reads (docs/contract.md)."""
    body = {"received": [{"id": "1", "origin": None, "payload": None, "at_ms": None}]}
    assert check_response("broadcasts", 200, body) == []
    (found,) = check_response("broadcasts", 200, {"received": [{"id": "1", "origin": None,
                                                                 "payload": 1, "at_ms": "5"}]})
    assert found.field == "$.received[0].at_ms"


def test_undeclared_capabilities_must_answer_501() -> None:
    declared = ["membership", "failure-detection", "broadcast"]
    assert not expected_501("members", ["failure-detection"])
    assert expected_501("kv", declared) and expected_501("crdt_read", declared)
    assert [op for op, _ in undeclared_probes(declared)] == [
        "kv", "crdt_read", "events", "metrics", "keyring"]
    assert check_undeclared("kv", 501, {"error": "not_implemented", "message": "no"}) == []
    (found,) = check_undeclared("kv", 200, {"digest": "d", "entries": {}})
    assert found.expected == "status 501 (capability 'kv' is not declared)"


BAD = ['GET /v1/members at $.members[1].incarnation: expected integer, got string "0"']


def test_a_requirement_whose_evidence_broke_the_contract_fails_naming_it() -> None:
    """The same history passes MEM-JOIN without the mark the cluster puts on a response
    that broke the schema, and fails it as a contract violation with it."""
    good = formed().until(20000)
    assert check(check_member_join, "MEM-JOIN", good.build()).status == "pass"
    bad = formed().op("members", "n2", 1600, 1605, result={"members": [], "contract": BAD})
    verdict = check(check_member_join, "MEM-JOIN", bad.until(20000).build())
    assert verdict.status == "fail"
    assert "contract violation" in str(verdict.evidence)
    assert "GET /v1/members at $.members[1].incarnation" in str(verdict.evidence)
    # Broadcast requirements never read members: they are not concerned.
    assert check(check_broadcast_delivery, "BCAST-DELIVERY",
                 bad.until(20000).build()).status != "fail"


def test_an_events_feed_that_broke_the_contract_concerns_the_requirements() -> None:
    """An events feed that broke the contract fails the requirements timed by events."""
    what = ["GET /v1/events at $.events[0].at_ms: expected integer, got string \"1\""]
    bad = formed().op("events", "n1", 1600, 1605, result={"status": 200, "contract": what})
    verdict = check(check_member_join, "MEM-JOIN", bad.until(20000).build())
    assert verdict.status == "fail" and what[0] in str(verdict.evidence)


def test_an_undeclared_capability_answering_200_fails_no_claimed_requirement() -> None:
    """A probe of an undeclared capability that did not answer 501 (a router's 404, or
    a store served but not declared) is check-contract's deviation; a claimed
    requirement whose evidence is sound is judged on that evidence alone."""
    what = ["GET /v1/kv: expected status 501 (capability 'kv' is not declared), got status 200"]
    bad = formed().op("undeclared", "n1", 1600, 1605, result={"status": 200, "contract": what})
    verdict = check(check_member_join, "MEM-JOIN", bad.until(20000).build())
    assert verdict.status == "pass", verdict.evidence
