"""Seeded defect: a probe not answered within the probe timeout declares its target dead
at once: no indirect probes through other members and no suspicion the target could
refute. A slow link or one lost packet is enough to kill a healthy member."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.messages import MemberUpdate, Status
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.core.probing import ActiveProbe


def _give_up(self: Node, probe: ActiveProbe, now_ms: int) -> None:
    probe.indirect_sent = True
    self._probe = None
    target = self.members.get(probe.target)
    if target is None or not target.status.is_live or target.incarnation != probe.incarnation:
        return
    dead = MemberUpdate(target.id, target.address, Status.DEAD, target.incarnation)
    self._apply_member(dead, now_ms, from_push_pull=False)


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Node, "_send_indirect_probes", _give_up):
        yield
