"""Seeded defect: the node takes its UDP dial map (``--udp-route``) and ignores it,
sending every datagram to the address its peer advertises, as a memberlist node does when
nobody told it otherwise. Its datagrams never cross the link plane's UDP proxies, so a cut
of its links would not cut its probes: the harness must name it before faulting its
links, from what the proxies relayed.

It patches the runtime, not the core: it exists as real processes only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.effects import SendMessage
from gossipcert.reference_node.framing import DATAGRAM_KINDS
from gossipcert.reference_node.runtime import GossipRuntime


@contextmanager
def installed() -> Iterator[None]:
    def straight_to_the_peer(self: GossipRuntime, effect: SendMessage) -> str | None:
        return effect.address if effect.message.kind in DATAGRAM_KINDS else None

    with patch.object(GossipRuntime, "datagram_dial", straight_to_the_peer):
        yield
