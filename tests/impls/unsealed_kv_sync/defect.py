"""Seeded defect: the key/value anti-entropy (the Merkle exchange) travels outside the
keyring. Membership, probes, gossip and push-pull are sealed and opened as they should
be, but Merkle hops are sent in the clear and a clear frame is let through when it is a
Merkle hop: the exchange was treated as a bulk state-sync channel whose hashes already
"check" what it carries, which they do not (anyone can compute them). A joining node also
pushes its own replicated state to each seed in a Merkle items hop alongside its join
request, instead of waiting for the seed to answer.

Why it takes both: in the reference node key/value state moves only by Merkle hops (and
by rumors piggybacked on sealed messages); membership moves only by sealed messages. An
unauthenticated Merkle path alone lets no wrong-key node in, because the reference starts
its Merkle exchange only with a member it already knows, or after a seed has answered its
join, and a wrong-key node is never answered. Pushing the joiner's state with the join is
an ordinary design (a join that is a state sync); with the unsealed path it lets a node
holding the wrong key write into every member's state while no member ever lists it nor
receives its broadcast, which the members' views alone cannot show. (A full exchange
opened at join, digest first, does not get through on real processes: the seed closes the
connection on the sealed join right behind it, so the later hops are lost; one items hop
is enough.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core import merkle
from gossipcert.reference_node.core.codec import update_size
from gossipcert.reference_node.core.keyring import Keyring, ReplayGuard
from gossipcert.reference_node.core.messages import Merkle
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.core.state import DEFAULT_CHUNK_BYTES

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
    """Each join attempt first pushes this node's replicated state to every seed."""
    seeds = self._join_seeds
    if seeds is not None and now_ms >= self._join_next_ms:
        ids = sorted(self.state.tree.items_under(0, (0,)))
        parts = merkle._items(self.state, ids, (), DEFAULT_CHUNK_BYTES, update_size)
        for seed in seeds:
            for part in parts:
                push = Merkle(**self._header(now_ms, piggyback=False), part=part)
                self._send(None, seed, push)
    _tick_join(self, now_ms)


@contextmanager
def installed() -> Iterator[None]:
    with (
        patch.object(Keyring, "open", _open_or_clear_merkle),
        patch.object(Keyring, "seal", _seal_but_merkle),
        patch.object(Node, "_tick_join", _tick_join_with_sync),
    ):
        yield
