"""Seeded defect: a node that was not scheduled for a long while (SIGSTOP, a starved
CPU, a long GC pause) runs its failure detector before it reads what arrived meanwhile:
every member whose probe deadline passed during the stall, that is all of them, is
declared dead at once, though it is the sleeper that was gone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.messages import MemberUpdate, Message, Status
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.core.suspicion import suspicion_timeout_ms


def _sweep_after_stall(self: Node, now_ms: int) -> None:
    last = getattr(self, "_last_input_ms", None)
    self._last_input_ms = now_ms  # type: ignore[attr-defined]
    stall_ms = suspicion_timeout_ms(
        self.config.suspicion_mult, self.members.live_count(), self.config.probe_interval_ms
    )
    if last is None or now_ms - last <= stall_ms or self.leaving:
        return
    for member_id in self.members.ids_with(Status.ALIVE, Status.SUSPECT, exclude=self.id):
        member = self.members.get(member_id)
        assert member is not None
        dead = MemberUpdate(member.id, member.address, Status.DEAD, member.incarnation)
        self._apply_member(dead, now_ms, from_push_pull=False)


@contextmanager
def installed() -> Iterator[None]:
    receive, tick = Node.receive, Node.tick

    def receive_late(self: Node, message: Message, now_ms: int) -> None:
        _sweep_after_stall(self, now_ms)
        receive(self, message, now_ms)

    def tick_late(self: Node, now_ms: int) -> None:
        _sweep_after_stall(self, now_ms)
        tick(self, now_ms)

    with (
        patch.object(Node, "receive", receive_late),
        patch.object(Node, "tick", tick_late),
    ):
        yield
