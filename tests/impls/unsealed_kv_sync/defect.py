"""Seeded defect: the key/value anti-entropy (the Merkle exchange) travels outside the
keyring. Membership, probes, gossip and push-pull are sealed and opened as they should
be, but Merkle hops are sent in the clear and a clear frame is let through when it is a
Merkle hop: the exchange was treated as a bulk state-sync channel whose hashes already
"check" what it carries, which they do not (anyone can compute them). A joining node also
opens that exchange with each seed alongside its join request, to fetch the replicated
state one round trip sooner.

Why it takes both: in the reference node key/value state moves only by Merkle hops (and
by rumors piggybacked on sealed messages); membership moves only by sealed messages. An
unauthenticated Merkle path alone lets no wrong-key node in, because the reference starts
its Merkle exchange only with a member it already knows, or after a seed has answered its
join, and a wrong-key node is never answered. Opening the exchange at join time is an
ordinary design (a join that is a state sync); with the unsealed path it lets a node
holding the wrong key write into every member's state while no member ever lists it nor
receives its broadcast, which the members' views alone cannot show.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core import merkle
from gossipcert.reference_node.core.keyring import Keyring, ReplayGuard
from gossipcert.reference_node.core.messages import Merkle
from gossipcert.reference_node.core.node import Node

_open = Keyring.open
_seal = Keyring.seal
_tick_join = Node._tick_join


def _is_merkle(body: bytes) -> bool:
    if body[:1] != b"{":
        return False
    try:
        return bool(json.loads(body).get("t") == Merkle.kind)
    except (ValueError, AttributeError):
        return False


def _seal_but_merkle(self: Keyring, plaintext: bytes, nonce: bytes, now_ms: int) -> bytes:
    """Merkle hops leave unsealed; every other message is sealed as before."""
    return plaintext if _is_merkle(plaintext) else _seal(self, plaintext, nonce, now_ms)


def _open_or_clear_merkle(
    self: Keyring, body: bytes, now_ms: int, guard: ReplayGuard | None = None
) -> bytes:
    """A clear frame is accepted when it is a Merkle hop; anything else must open."""
    return body if _is_merkle(body) else _open(self, body, now_ms, guard)


def _tick_join_with_sync(self: Node, now_ms: int) -> None:
    """Each join attempt also opens a Merkle exchange with every seed, first."""
    seeds = self._join_seeds
    if seeds is not None and now_ms >= self._join_next_ms:
        for seed in seeds:
            opening = Merkle(
                **self._header(now_ms, piggyback=False), part=merkle.start(self.state.tree)
            )
            self._send(None, seed, opening)
    _tick_join(self, now_ms)


@contextmanager
def installed() -> Iterator[None]:
    with (
        patch.object(Keyring, "open", _open_or_clear_merkle),
        patch.object(Keyring, "seal", _seal_but_merkle),
        patch.object(Node, "_tick_join", _tick_join_with_sync),
    ):
        yield
