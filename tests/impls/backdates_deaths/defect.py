"""Seeded defect: a slow detection, backdated, behind members reads that fail.

A suspicion runs ``HOLD_MS`` (16 s) before it declares its member dead: with the kill
found within a few probe periods, the detection lands past FD-DETECT's bound for the
reference timing at five nodes (about 13 s). The node then stamps every dead event with
the time it began to suspect that member, as if it had declared it dead at once, and
while any member is suspect it answers ``GET /v1/members`` with 500, so no read can show
the suspicion the stamp hides. Judging the stamp only against reads that answered, the
harness measured the detection at the suspicion, well within the bound.

``installed()`` patches the reference core and its control API and undoes it on exit.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node import api
from gossipcert.reference_node.core.events import EventLog, MemberEvent
from gossipcert.reference_node.core.messages import Status
from gossipcert.reference_node.core.suspicion import Suspicion

HOLD_MS = 16_000


def _held(self: Suspicion) -> int:
    return self.started_ms + HOLD_MS


@contextmanager
def installed() -> Iterator[None]:
    record = EventLog.__dict__["member"]
    read_members = api._ACTIONS[("members", "GET")]
    # Per event log: member -> when this node last reported it suspect.
    suspected: weakref.WeakKeyDictionary[EventLog, dict[str, int]] = weakref.WeakKeyDictionary()

    def backdated(
        self: EventLog, at_ms: int, member: str, status: Status, incarnation: int
    ) -> MemberEvent:
        mine = suspected.setdefault(self, {})
        if status is Status.SUSPECT:
            mine[member] = at_ms
        elif status is Status.DEAD and member in mine:
            at_ms = mine[member]
        event: MemberEvent = record(self, at_ms, member, status, incarnation)
        return event

    def hiding(r: Any) -> Any:
        if any(m.status is Status.SUSPECT for m in r.host.node.member_list()):
            body = {"error": "internal", "message": "the member list is being rebuilt"}
            return api.Response(500, body)
        return read_members(r)

    with (
        patch.object(Suspicion, "deadline_ms", _held),
        patch.object(EventLog, "member", backdated),
        patch.dict(api._ACTIONS, {("members", "GET"): hiding}),
    ):
        yield
